"""The sign-in services' write transactions (write_transaction()): what a refusal keeps
(its failed attempt) and what it discards (everything else it had begun)."""

from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import update
from test_passkeys import english, failed_login_events, owner, passwordless  # noqa: F401 (owner: a fixture)

from conftest import count, reload, with_totp
from faka.accounts import reauth, twofactor
from faka.accounts.models import User
from faka.core import clock
from faka.core.db import write_transaction
from faka.extensions import db
from faka.platform.models import AuditEvent
from faka.risk import engine as risk
from faka.risk.models import RiskEvent, SecurityEvent


def test_a_passkey_sign_in_to_a_locked_account_keeps_only_the_failed_login(app, owner, merchant):  # noqa: F811
    db.session.execute(
        update(User).where(User.id == merchant.user_id).values(locked_until=clock.now() + timedelta(minutes=5))
    )
    db.session.commit()
    answer = passwordless(english(app.test_client()), owner.authenticator)
    assert answer.status_code == 400
    assert failed_login_events("passkey (sign-in): locked") == 1
    [passkey] = reload(merchant.user).passkeys
    assert passkey.sign_count == 0 and passkey.last_used_at is None  # the refused signature is not its use


def test_a_wrong_code_is_counted_and_a_right_one_clears_the_count(app, merchant):
    secret = with_totp(merchant.user)
    right = pyotp.TOTP(secret).now()
    wrong = f"{(int(right) + 500000) % 1000000:06d}"
    with pytest.raises(twofactor.WrongCode):
        twofactor.verify_login(merchant.user_id, wrong)
    db.session.rollback()
    assert reload(merchant.user).failed_logins == 1
    assert twofactor.verify_login(merchant.user_id, right).id == merchant.user_id
    db.session.rollback()
    assert reload(merchant.user).failed_logins == 0
    with pytest.raises(twofactor.CodeAlreadyUsed):
        twofactor.verify_login(merchant.user_id, right)
    db.session.rollback()
    assert reload(merchant.user).failed_logins == 0  # a code sent twice does not count


def test_a_wrong_reauthentication_password_is_counted_and_logged(app, merchant):
    with pytest.raises(reauth.WrongPassword):
        reauth.reauthenticate(merchant.user_id, "not-the-password", None, ip="198.51.100.31")
    db.session.rollback()
    assert reload(merchant.user).failed_logins == 1
    assert count(SecurityEvent, SecurityEvent.ip == "198.51.100.31", SecurityEvent.detail == "re-authentication") == 1


def test_a_risk_refusal_inside_a_write_transaction_is_recorded_and_the_rest_discarded(app, monkeypatch):
    verdict = risk.Verdict(risk.BLOCK, 100, (risk.Hit("blacklisted", 100, "test"),))
    monkeypatch.setattr(risk, "assess", lambda signals: verdict)
    signals = risk.Signals(risk.LOGIN, "198.51.100.32", None, now=clock.now())
    with pytest.raises(risk.Blocked), write_transaction():
        db.session.add(AuditEvent(actor_id=None, action="tx.before-refusal", target="test"))
        risk.check(signals)
    db.session.rollback()
    assert count(AuditEvent, AuditEvent.action == "tx.before-refusal") == 0
    assert count(RiskEvent, RiskEvent.ip == "198.51.100.32") == 1
