"""Site settings the operator edits, with their defaults."""
from sqlalchemy import select

from faka.extensions import db
from faka.models import Setting

DEFAULTS = {
    "site_name": "faka",
    "announcement": "",
    "icp_number": "",
    "terms": "",
    "refund_policy": "",
    "open_registration": "1",  # "0" closes the merchant sign-up page
    "prohibited_words": "",  # one per line: products whose text hits one wait for moderation
}


def site_settings() -> dict[str, str]:
    values = dict(DEFAULTS)
    values.update({s.key: s.value for s in db.session.execute(select(Setting)).scalars()})
    return values


def set_setting(key: str, value: str) -> None:
    if key not in DEFAULTS:
        raise KeyError(key)
    row = db.session.get(Setting, key)
    if row is None:
        db.session.add(Setting(key=key, value=value))
    else:
        row.value = value
    db.session.commit()
