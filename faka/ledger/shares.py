"""Who gets which fen of an order: the merchant, the reseller, the promoter, the platform.

A buyer pays an order's total. It is split, when the order is delivered, into up to three
shares, each credited to its account with the platform's fee on it taken back:

- the reseller's margin (a sub-store sale): the total less what the merchant asked for
  the goods there (`Order.resale_base`, the floor price times the quantity);
- the promoter's commission (a referred sale): fixed at payment, out of what the
  merchant asked (`Order.commission`);
- the merchant's share: the rest.

So the shares always add up to the total, and the platform's income is the fees. A
refund of part or all of the total takes back each share in proportion (the fen that
division leaves over go to the shares with the largest remainders, the merchant's first
on a tie, so no share gives back more than it got), and each share's fee in proportion to
what that share gave back. `settlement.reconcile_books` checks every order against these
same functions.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from faka.extensions import db
from faka.growth.models import Promoter, SubStore
from faka.ledger.models import LedgerEntry
from faka.orders.models import Order
from faka.platform import settings


@dataclass(frozen=True)
class ShareKinds:
    credit: str
    fee: str
    refund: str
    fee_return: str

    @property
    def kinds(self) -> tuple[str, str, str, str]:
        """Every kind of entry of this party's share."""
        return (self.credit, self.fee, self.refund, self.fee_return)


MERCHANT = ShareKinds(LedgerEntry.SALE, LedgerEntry.FEE, LedgerEntry.REFUND, LedgerEntry.FEE_RETURN)
RESELLER = ShareKinds(
    LedgerEntry.RESALE, LedgerEntry.RESALE_FEE, LedgerEntry.RESALE_REFUND, LedgerEntry.RESALE_FEE_RETURN
)
PROMOTER = ShareKinds(
    LedgerEntry.COMMISSION, LedgerEntry.COMMISSION_FEE, LedgerEntry.COMMISSION_REFUND, LedgerEntry.COMMISSION_FEE_RETURN
)
PARTIES = (MERCHANT, RESELLER, PROMOTER)  # the merchant first: it takes ties of the remainder
BY_CREDIT = {party.credit: party for party in PARTIES}
FEE_KINDS = tuple(k for party in PARTIES for k in (party.fee, party.fee_return))
ORDER_KINDS = tuple(k for party in PARTIES for k in party.kinds)

MAX_COMMISSION_BP = 5000  # a promoter earns at most half of what the merchant asked


def gross_shares(total: int, resale_base: int | None, commission: int, substore: bool, referred: bool) -> dict:
    """The order's shares by party, before fees: only the parties the order has (the
    merchant always; the reseller for a sub-store sale; the promoter when the payment
    fixed a commission above zero)."""
    base = total if resale_base is None else resale_base
    shares = {MERCHANT: base - commission}
    if substore:
        shares[RESELLER] = total - base
    if referred and commission > 0:
        shares[PROMOTER] = commission
    return shares


def order_shares(order: Order) -> dict:
    return gross_shares(
        order.total, order.resale_base, order.commission, order.substore_id is not None, order.promoter_id is not None
    )


def refunded_shares(shares: dict, refunded: int, total: int) -> dict:
    """What each share gives back of a refund of `refunded` out of `total`: all of it for
    a full refund; in proportion for a part, the leftover fen to the largest remainders."""
    if refunded >= total:
        return dict(shares)
    if total <= 0:
        return {party: 0 for party in shares}
    back = {party: amount * refunded // total for party, amount in shares.items()}
    leftover = refunded - sum(back.values())
    by_remainder = sorted(shares, key=lambda p: (-(shares[p] * refunded % total), PARTIES.index(p)))
    for party in by_remainder[:leftover]:
        back[party] += 1
    return back


def accounts_and_rates(order: Order) -> dict:
    """For each party the order may have: the account (Merchant id) its share is credited
    to, and the platform's fee rate on it in basis points (a sub-store's or promoter's own
    rate, else its programme's default)."""
    found = {MERCHANT: (order.merchant_id, order.merchant.fee_rate_bp)}
    for party, model, key, programme in (
        (RESELLER, SubStore, order.substore_id, "resale"),
        (PROMOTER, Promoter, order.promoter_id, "affiliate"),
    ):
        if key is not None:
            account_id, rate = db.session.execute(
                select(model.merchant_id, model.fee_rate_bp).where(model.id == key)
            ).one()
            found[party] = (account_id, settings.programme_fee_bp(programme) if rate is None else rate)
    return found


def credit_order(order: Order, now: datetime) -> None:
    """Inside the delivery's transaction: credit each share of the order to its account,
    less the platform's fee, all settling after the merchant's hold."""
    available_at = now + timedelta(days=order.merchant.hold_days)
    accounts = accounts_and_rates(order)
    for party, amount in order_shares(order).items():
        if party is not MERCHANT and amount <= 0:
            continue
        account_id, rate_bp = accounts[party]
        fee = amount * rate_bp // 10000
        for kind, value in ((party.credit, amount), (party.fee, -fee)):
            db.session.add(
                LedgerEntry(
                    merchant_id=account_id,
                    order_id=order.id,
                    kind=kind,
                    amount=value,
                    available_at=available_at,
                    created_at=now,
                )
            )
