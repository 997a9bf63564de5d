"""Back in stock: a buyer leaves an email on a sold-out variant and is told once when keys
are imported.

- `request_notice()` (the product page's form): only for a variant on sale that sells from
  key stock and has no key available right now. It emails a confirmation link (double
  opt-in): nothing else is ever sent to an address that did not confirm. Whatever happened,
  the buyer is told the same thing ("if this address is not on the list yet, we have sent
  it a link"), so the form tells nobody whether an address is waiting, and asking again
  sends no second email within RESEND_AFTER, and a request's confirmation is sent at most
  twice. An address has at most MAX_WAITING_PER_EMAIL requests waiting,
  MAX_UNCONFIRMED_PER_EMAIL of them unconfirmed, and an address that unsubscribed is sent
  nothing more until its cancelled requests are deleted (RESTOCK_DONE_DAYS): the form cannot
  be used to mail a stranger again and again.
- `confirm()` and `cancel()` (the links in the emails, each a page with a button: a mail
  scanner that follows a link changes nothing). Cancelling is unsubscribing: every request
  of that address stops.
- `notify_restocked(variant_id)`, the job "messaging.tasks.restock_notices" that a key
  import enqueues once its keys are committed (faka/inventory/keys.py): one email to each
  confirmed request still waiting, which is then done. Running it again sends nothing.
- `waiting_counts(merchant_id)`: confirmed requests waiting, per variant, for the back office.

Each request's links carry a random token; only its SHA-256 is stored. The notice email
gets a new token (its unsubscribe link), which replaces the one of the confirmation email.
Requests that are done, and unconfirmed ones, are deleted by the retention job
(faka/platform/retention.py).
"""

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from faka.accounts.models import Merchant
from faka.catalog import storefront
from faka.catalog.models import DELIVERY_AUTO, Product, ProductVariant
from faka.core import clock, tasks
from faka.core.db import write_transaction
from faka.core.errors import DomainError
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.messaging.mail import queue_email
from faka.messaging.models import RestockRequest
from faka.platform.retention import RESTOCK_UNCONFIRMED_DAYS

EMAIL_RESTOCK_CONFIRM = "restock_confirm"
EMAIL_RESTOCK_NOTICE = "restock_notice"

RESEND_AFTER = timedelta(hours=1)  # a second request for the same variant and address emails again (once) after this
MAX_WAITING_PER_EMAIL = 20
MAX_UNCONFIRMED_PER_EMAIL = 3
CONFIRM_WITHIN = timedelta(days=RESTOCK_UNCONFIRMED_DAYS)
NOTICE_BATCH = 200  # notices written per transaction

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class InvalidEmail(DomainError):
    message = _l("Enter a valid email address.")


class ChooseOption(DomainError):
    message = _l("Choose the option you want to be told about.")


class NeverSoldOut(DomainError):
    message = _l("This product does not sell out, so there is nothing to wait for.")


class InStock(DomainError):
    message = _l("This is in stock: you can buy it now.")


class InvalidLink(DomainError):
    message = _l("This link is not valid any more. If you still want to be told, ask again on the product page.")


# -- asking ---------------------------------------------------------------------------------


def request_notice(slug: str, variant_key: str | None, email: str, locale: str, ip: str | None) -> None:
    """Ask to be told when this variant is back in stock; email a confirmation link when
    it is due. NotFound for a product not on sale; InvalidEmail, ChooseOption, NeverSoldOut
    and InStock say why nothing was done. Otherwise the caller gives the same answer
    whether or not an email went out."""
    address = normalised_email(email)
    locale = locale if locale in current_app.config["LANGUAGES"] else current_app.config["BABEL_DEFAULT_LOCALE"]
    try:
        with write_transaction():
            product = storefront.product_to_sell(slug)
            variant = _chosen(product, variant_key)
            if product.delivery_type != DELIVERY_AUTO:
                raise NeverSoldOut()
            if _available(variant.id):
                raise InStock()
            now = clock.now()
            waiting = _waiting(variant.id, address)
            if waiting is not None:
                resent = waiting.emailed_at != waiting.created_at
                if waiting.confirmed_at is None and not resent and waiting.emailed_at <= now - RESEND_AFTER:
                    waiting.emailed_at, waiting.locale = now, locale
                    _send_confirmation(waiting, variant, _new_token(waiting))
                return
            if not _room_for(address):
                return
            request = RestockRequest(
                token_hash="",
                variant_id=variant.id,
                product_id=product.id,
                email=address,
                locale=locale,
                ip=ip,
                created_at=now,
                emailed_at=now,
            )
            token = _new_token(request)
            db.session.add(request)
            db.session.flush()
            _send_confirmation(request, variant, token)
    except IntegrityError:
        # The same address asked for the same variant at the same moment in another
        # request, which emails it.
        db.session.rollback()


def normalised_email(email: str) -> str:
    address = (email or "").strip().lower()
    if len(address) > 254 or not EMAIL_RE.match(address):
        raise InvalidEmail()
    return address


def _chosen(product: Product, variant_key: str | None) -> ProductVariant:
    offered = product.live_variants
    if variant_key:
        for variant in offered:
            if variant.key == variant_key:
                return variant
        raise ChooseOption()
    if len(offered) != 1:
        raise ChooseOption()
    return offered[0]


def _available(variant_id: int) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(CardKey)
        .where(CardKey.variant_id == variant_id, CardKey.status == CardKey.AVAILABLE)
    )


def _live():
    return RestockRequest.notified_at.is_(None), RestockRequest.cancelled_at.is_(None)


def _waiting(variant_id: int, address: str) -> RestockRequest | None:
    return db.session.execute(
        select(RestockRequest).where(RestockRequest.variant_id == variant_id, RestockRequest.email == address, *_live())
    ).scalar_one_or_none()


def _room_for(address: str) -> bool:
    """Whether this address may have one more request waiting (and one more unconfirmed),
    and did not unsubscribe."""
    if db.session.execute(
        select(RestockRequest.id)
        .where(RestockRequest.email == address, RestockRequest.cancelled_at.is_not(None))
        .limit(1)
    ).first():
        return False
    waiting, unconfirmed = db.session.execute(
        select(
            func.count(),
            func.count().filter(RestockRequest.confirmed_at.is_(None)),
        ).where(RestockRequest.email == address, *_live())
    ).one()
    return waiting < MAX_WAITING_PER_EMAIL and unconfirmed < MAX_UNCONFIRMED_PER_EMAIL


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _new_token(request: RestockRequest) -> str:
    """A fresh token for the request's links; the links of earlier emails stop working."""
    token = secrets.token_urlsafe(24)
    request.token_hash = _digest(token)
    return token


def _base_url() -> str:
    return current_app.config["BASE_URL"].rstrip("/")


def _language(locale: str) -> str:
    return "en" if locale == "en" else "zh_CN"


def _item(variant: ProductVariant, locale: str) -> str:
    """What the emails call the thing waited for: the title, and the option's name when
    the buyer chose between several."""
    product = variant.product
    if product.has_choice and variant.name:
        return f"{product.title} · {variant.name_for(_language(locale))}"
    return product.title


def _product_url(variant: ProductVariant) -> str:
    product = variant.product
    url = f"{_base_url()}/p/{product.slug}"
    return f"{url}?v={variant.key}" if product.has_choice else url


def _send_confirmation(request: RestockRequest, variant: ProductVariant, token: str) -> None:
    item = _item(variant, request.locale)
    with force_locale(request.locale):
        subject = _("Confirm: tell me when %(item)s is back in stock", item=item)
    email = queue_email(
        EMAIL_RESTOCK_CONFIRM,
        request.email,
        subject,
        {
            "item": item,
            "confirm_url": f"{_base_url()}/restock/{token}",
            "cancel_url": f"{_base_url()}/restock/{token}/cancel",
            "product_url": _product_url(variant),
            "days": RESTOCK_UNCONFIRMED_DAYS,
        },
        locale=request.locale,
    )
    tasks.enqueue("messaging.tasks.send_email", email.id, job_id=f"email-{email.id}")


# -- the links in the emails ------------------------------------------------------------------

WAITING_CONFIRMATION = "unconfirmed"
WAITING = "waiting"
NOTIFIED = "notified"
CANCELLED = "cancelled"


@dataclass(frozen=True)
class RestockStatus:
    """A request as its own pages show it."""

    state: str
    slug: str
    title: str
    variant_name: str | None  # the option's name (Chinese), when the product offers a choice
    variant_name_en: str | None
    variant_key: str
    created_at: datetime
    notified_at: datetime | None
    in_stock: bool = False  # confirmed while keys are there: the notice is on its way

    def item_for(self, language: str) -> str:
        name = (self.variant_name_en if language == "en" and self.variant_name_en else self.variant_name) or ""
        return f"{self.title} · {name}" if name else self.title


def request_status(token: str, to_cancel: bool = False) -> RestockStatus:
    """The request this token's links are about. InvalidLink for an unknown token, and for
    a confirmation link past its time (which may still unsubscribe: `to_cancel`)."""
    request = _by_token(token)
    if request is None or (_expired(request) and not to_cancel):
        db.session.rollback()
        raise InvalidLink()
    status = _status(request)
    db.session.rollback()  # only ends the read
    return status


def confirm(token: str) -> RestockStatus:
    """Confirm the request (the double opt-in). Confirming again changes nothing. Should the
    variant be in stock already (keys came between asking and confirming), the notice goes
    out at once. InvalidLink for an unknown, ended or expired one."""
    with write_transaction():
        request = _by_token(token)
        if request is None or _expired(request) or not request.live:
            raise InvalidLink()
        in_stock = False
        if request.confirmed_at is None:
            request.confirmed_at = clock.now()
            in_stock = _available(request.variant_id) > 0
            if in_stock:
                tasks.enqueue("messaging.tasks.restock_notices", request.variant_id)
        status = _status(request, in_stock)
    return status


def cancel(token: str) -> RestockStatus:
    """Unsubscribe: this request and every other one of the same address still waiting
    are cancelled, so nothing more is sent to it. Cancelling again changes nothing."""
    with write_transaction():
        request = _by_token(token)
        if request is None:
            raise InvalidLink()
        now = clock.now()
        db.session.execute(
            update(RestockRequest)
            .where(RestockRequest.email == request.email, *_live())
            .values(cancelled_at=now)
            .execution_options(synchronize_session=False)
        )
        if request.cancelled_at is None:
            request.cancelled_at = now
        db.session.flush()
        db.session.refresh(request)
        status = _status(request)
    return status


def token_known(token: str) -> bool:
    """Whether a request has this token (its pages are then never refused for guessing)."""
    known = _by_token(token) is not None
    db.session.rollback()  # only ends the read
    return known


def _by_token(token: str) -> RestockRequest | None:
    if not token or len(token) > 64:
        return None
    return db.session.execute(
        select(RestockRequest).where(RestockRequest.token_hash == _digest(token))
    ).scalar_one_or_none()


def _expired(request: RestockRequest) -> bool:
    return request.confirmed_at is None and request.live and request.emailed_at <= clock.now() - CONFIRM_WITHIN


def _status(request: RestockRequest, in_stock: bool = False) -> RestockStatus:
    if request.cancelled_at is not None:
        state = CANCELLED
    elif request.notified_at is not None:
        state = NOTIFIED
    elif request.confirmed_at is not None:
        state = WAITING
    else:
        state = WAITING_CONFIRMATION
    variant, product = request.variant, request.product
    named = product.has_choice and bool(variant.name)
    return RestockStatus(
        state=state,
        slug=product.slug,
        title=product.title,
        variant_name=variant.name if named else None,
        variant_name_en=variant.name_en if named else None,
        variant_key=variant.key,
        created_at=request.created_at,
        notified_at=request.notified_at,
        in_stock=in_stock,
    )


# -- telling ----------------------------------------------------------------------------------


def notify_restocked(variant_id: int) -> int:
    """Email each confirmed request waiting for this variant, once, and mark it told.
    Nothing is sent while the variant is not on sale or has no key available (the next
    import tries again). Returns how many were told; running it again tells nobody twice.
    Works in batches of NOTICE_BATCH, each in its own transaction."""
    if not _anyone_waiting(variant_id):
        db.session.rollback()  # nothing to write: no write lock taken
        return 0
    told = 0
    while True:
        with write_transaction():
            variant = db.session.get(ProductVariant, variant_id)
            if variant is None or not _sells_again(variant):
                return told  # nothing written
            requests = (
                db.session.execute(
                    select(RestockRequest)
                    .where(*_waiting_confirmed(variant_id))
                    .order_by(RestockRequest.id)
                    .limit(NOTICE_BATCH)
                    .with_for_update()
                )
                .scalars()
                .all()
            )
            now = clock.now()
            for request in requests:
                request.notified_at = now
                _send_notice(request, variant, _new_token(request))
        told += len(requests)
        if len(requests) < NOTICE_BATCH:
            return told


def due_variant_ids() -> list[int]:
    """Variants on sale with keys available and confirmed requests still waiting: their
    notice job was lost (Redis down when the import finished), and the reconciler queues it
    again."""
    has_keys = (
        select(CardKey.id)
        .where(CardKey.variant_id == RestockRequest.variant_id, CardKey.status == CardKey.AVAILABLE)
        .exists()
    )
    on_sale = (
        ProductVariant.deleted_at.is_(None),
        Product.deleted_at.is_(None),
        Product.visible.is_(True),
        Product.moderation == "approved",
        Merchant.status == Merchant.APPROVED,
    )
    return list(
        db.session.execute(
            select(RestockRequest.variant_id)
            .join(ProductVariant, ProductVariant.id == RestockRequest.variant_id)
            .join(Product, Product.id == ProductVariant.product_id)
            .join(Merchant, Merchant.id == Product.merchant_id)
            .where(RestockRequest.confirmed_at.is_not(None), *_live(), has_keys, *on_sale)
            .distinct()
        ).scalars()
    )


def _waiting_confirmed(variant_id: int):
    return (RestockRequest.variant_id == variant_id, RestockRequest.confirmed_at.is_not(None), *_live())


def _anyone_waiting(variant_id: int) -> bool:
    return (
        db.session.execute(select(RestockRequest.id).where(*_waiting_confirmed(variant_id)).limit(1)).first()
        is not None
    )


def _sells_again(variant: ProductVariant) -> bool:
    product = variant.product
    merchant = db.session.get(Merchant, product.merchant_id)
    return (
        variant.deleted_at is None
        and product.deleted_at is None
        and product.visible
        and product.moderation == "approved"
        and product.delivery_type == DELIVERY_AUTO
        and merchant is not None
        and merchant.status == Merchant.APPROVED
        and _available(variant.id) > 0
    )


def _send_notice(request: RestockRequest, variant: ProductVariant, token: str) -> None:
    item = _item(variant, request.locale)
    with force_locale(request.locale):
        subject = _("Back in stock: %(item)s", item=item)
    email = queue_email(
        EMAIL_RESTOCK_NOTICE,
        request.email,
        subject,
        {
            "item": item,
            "product_url": _product_url(variant),
            "unsubscribe_url": f"{_base_url()}/restock/{token}/cancel",
        },
        locale=request.locale,
    )
    tasks.enqueue("messaging.tasks.send_email", email.id, job_id=f"email-{email.id}")


# -- the back office -------------------------------------------------------------------------


def waiting_counts(merchant_id: int) -> dict[int, int]:
    """Confirmed requests still waiting, per variant id, for the merchant's products: what
    the stock table shows. One statement."""
    rows = db.session.execute(
        select(RestockRequest.variant_id, func.count())
        .join(Product, Product.id == RestockRequest.product_id)
        .where(Product.merchant_id == merchant_id, RestockRequest.confirmed_at.is_not(None), *_live())
        .group_by(RestockRequest.variant_id)
    )
    return dict(rows.all())
