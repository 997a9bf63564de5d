"""Checkout fields: what a product asks the buyer (the game UID to top up, a server, an
account), the merchant's tools to define them, and the buyer's answers.

A product asks at most MAX_FIELDS questions. Each has a label (Chinese; English optional,
else the Chinese shows on English pages too), a kind (text, number, email, phone or a
choice from a list), required or not, help text, and optionally a pattern: a regular
expression the whole answer must match, with the message the buyer sees when it does not.

Answers are checked in the checkout's own transaction (faka/orders/checkout.py): an
order is placed with valid answers or not at all. They are stored encrypted, with a copy
of the question, so an order keeps what the buyer said after the merchant edits or
removes the field. Lists show them masked (first and last character); the order's own
page, the merchant's CSV export and the order webhooks carry them in full: the merchant
needs the whole UID to top it up.

Patterns run on the web worker with no timeout (Python's `re` has none), so a pattern is
saved only when it cannot backtrack badly: at most MAX_PATTERN characters, no
back-references, nothing variable inside a repetition (no `(a+)+`, `(a|b)*`, `(a?){9}`),
and a bound on how many ways the rest can split an answer (`_ways`). Answers are at most
MAX_ANSWER characters; the worst pattern accepted takes some 25 ms on the longest.
"""

import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace

# The parser `re` itself uses, to look at a pattern's structure (private, stable since 3.11).
from re import _constants as sre
from re import _parser as sre_parse

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from faka.catalog import products
from faka.catalog.models import (
    KIND_CHOICE,
    KIND_EMAIL,
    KIND_NUMBER,
    KIND_PHONE,
    KIND_TEXT,
    KINDS,
    CheckoutField,
    OrderAnswer,
    Product,
)
from faka.core.crypto import vault
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.core.text import mask_email
from faka.extensions import db
from faka.orders.models import Order

MAX_FIELDS = 5
MAX_ANSWER = 200
MAX_PATTERN = 100
MAX_CHOICES = 20
MAX_CHOICE_LENGTH = 60
LABEL_MAX = 40
MESSAGE_MAX = 100
HELP_MAX = 200
# How many ways a pattern may split the longest answer (see _ways). Matching costs up to
# about 100 ns a way, so 25 ms at worst: two unbounded repetitions (201 x 201 ways) and a
# `?` or two pass; a third unbounded repetition does not.
MAX_WAYS = 250_000

EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE_SHAPE = re.compile(r"\+?\d{5,20}")
PHONE_SEPARATORS = re.compile(r"[\s\-()]")

UP, DOWN = "up", "down"


class InvalidField(DomainError):
    """A field the merchant cannot save; `field` names the form input at fault."""

    message = _l("Check the field.")

    def __init__(self, message=None, field: str = "label"):
        super().__init__(message)
        self.field = field


class TooManyFields(DomainError):
    message = _l("A product can ask at most %(count)s questions at checkout.", count=MAX_FIELDS)


class InvalidAnswers(DomainError):
    """Answers that do not fit their fields; `errors` maps a field's key to its message."""

    message = _l("Check the answers marked below.")

    def __init__(self, errors: dict):
        super().__init__()
        self.errors = errors


# -- the merchant defines the fields ----------------------------------------------------


@dataclass
class FieldDraft:
    label: str
    kind: str = KIND_TEXT
    required: bool = True
    label_en: str | None = None
    choices: str | None = None  # one per line
    pattern: str | None = None
    pattern_message: str | None = None
    pattern_message_en: str | None = None
    help_text: str | None = None
    help_text_en: str | None = None


def product_fields(merchant_id: int, slug: str) -> tuple[Product, list[CheckoutField]]:
    """The merchant's own product (else NotFound) and its fields in order."""
    product = products.get_product(merchant_id, slug)
    return product, _fields_of(product.id)


def get_field(merchant_id: int, slug: str, key: str) -> tuple[Product, CheckoutField]:
    product, fields = product_fields(merchant_id, slug)
    return product, _one(fields, key)


def add_field(merchant_id: int, slug: str, draft: FieldDraft) -> CheckoutField:
    """Add a field after the product's others; at most MAX_FIELDS."""
    values = _clean_draft(draft)
    with write_transaction():
        product = _locked_product(merchant_id, slug)
        fields = _fields_of(product.id)
        if len(fields) >= MAX_FIELDS:
            raise TooManyFields()
        field = CheckoutField(key=secrets.token_hex(8), product_id=product.id, position=len(fields), **values)
        db.session.add(field)
    return field


def update_field(merchant_id: int, slug: str, key: str, draft: FieldDraft) -> CheckoutField:
    """Change a field. Orders already placed keep the question as it was asked."""
    values = _clean_draft(draft)
    with write_transaction():
        product = _locked_product(merchant_id, slug)
        field = _one(_fields_of(product.id), key)
        for name, value in values.items():
            setattr(field, name, value)
    return field


def remove_field(merchant_id: int, slug: str, key: str) -> None:
    """Stop asking it; the answers orders already hold stay with them."""
    with write_transaction():
        product = _locked_product(merchant_id, slug)
        fields = _fields_of(product.id)
        field = _one(fields, key)
        db.session.delete(field)
        fields.remove(field)
        _renumber(fields)


def move_field(merchant_id: int, slug: str, key: str, direction: str) -> None:
    """One place earlier (UP) or later (DOWN) in the buy form."""
    if direction not in (UP, DOWN):
        raise InvalidField(field="position")
    with write_transaction():
        product = _locked_product(merchant_id, slug)
        fields = _fields_of(product.id)
        field = _one(fields, key)
        index = fields.index(field)
        fields.pop(index)
        fields.insert(max(0, index - 1) if direction == UP else index + 1, field)
        _renumber(fields)


def _locked_product(merchant_id: int, slug: str) -> Product:
    # The product's row is the lock around its fields: two merchants' tabs adding at
    # once cannot pass MAX_FIELDS between them.
    product = products.get_product(merchant_id, slug)
    db.session.execute(select(Product.id).where(Product.id == product.id).with_for_update())
    return product


def _fields_of(product_id: int) -> list[CheckoutField]:
    return list(
        db.session.execute(
            select(CheckoutField)
            .where(CheckoutField.product_id == product_id)
            .order_by(CheckoutField.position, CheckoutField.id)
        ).scalars()
    )


def _one(fields: list[CheckoutField], key: str) -> CheckoutField:
    for field in fields:
        if field.key == key:
            return field
    raise NotFound()


def _renumber(fields: list[CheckoutField]) -> None:
    for position, field in enumerate(fields):
        field.position = position


def _text(value: str | None, limit: int, message, field: str) -> str | None:
    value = (value or "").strip()
    if len(value) > limit:
        raise InvalidField(message, field)
    return value or None


def _clean_draft(draft: FieldDraft) -> dict:
    """The columns to store, or InvalidField naming what is wrong."""
    label = _text(draft.label, LABEL_MAX, _l("Write a label of 1 to 40 characters."), "label")
    if label is None:
        raise InvalidField(_l("Write a label of 1 to 40 characters."), "label")
    if draft.kind not in KINDS:
        raise InvalidField(_l("Choose what kind of answer this is."), "kind")
    values = {
        "label": label,
        "label_en": _text(draft.label_en, LABEL_MAX, _l("Write a label of 1 to 40 characters."), "label_en"),
        "kind": draft.kind,
        "required": bool(draft.required),
        "help_text": _text(draft.help_text, HELP_MAX, _l("Use at most 200 characters."), "help_text"),
        "help_text_en": _text(draft.help_text_en, HELP_MAX, _l("Use at most 200 characters."), "help_text_en"),
        "choices": None,
        "pattern": None,
        "pattern_message": None,
        "pattern_message_en": None,
    }
    if draft.kind == KIND_CHOICE:
        values["choices"] = "\n".join(_clean_choices(draft.choices or ""))
        return values  # a choice is checked against its list: no pattern
    pattern = (draft.pattern or "").strip()
    if pattern:
        check_pattern(pattern)
        values["pattern"] = pattern
        values["pattern_message"] = _text(
            draft.pattern_message, MESSAGE_MAX, _l("Use at most 100 characters."), "pattern_message"
        )
        values["pattern_message_en"] = _text(
            draft.pattern_message_en, MESSAGE_MAX, _l("Use at most 100 characters."), "pattern_message_en"
        )
    return values


def _clean_choices(text: str) -> list[str]:
    choices: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if len(line) > MAX_CHOICE_LENGTH:
            raise InvalidField(
                _l("Each choice may have at most %(count)s characters.", count=MAX_CHOICE_LENGTH), "choices"
            )
        if line and line not in choices:
            choices.append(line)
    if not choices or len(choices) > MAX_CHOICES:
        raise InvalidField(_l("List the choices, one per line (at most %(count)s).", count=MAX_CHOICES), "choices")
    return choices


# -- patterns ---------------------------------------------------------------------------


class _Unsafe(Exception):
    pass


_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT} | ({sre.POSSESSIVE_REPEAT} if hasattr(sre, "POSSESSIVE_REPEAT") else set())
_GROUP_REFERENCES = {
    getattr(sre, name)
    for name in ("GROUPREF", "GROUPREF_EXISTS", "GROUPREF_IGNORE", "GROUPREF_LOC_IGNORE", "GROUPREF_UNI_IGNORE")
    if hasattr(sre, name)
}


def check_pattern(pattern: str) -> None:
    """Refuse (InvalidField on "pattern") a pattern that is too long, not a regular
    expression, or could take long to match an answer."""
    if len(pattern) > MAX_PATTERN:
        raise InvalidField(_l("A pattern may have at most %(count)s characters.", count=MAX_PATTERN), "pattern")
    try:
        tree = sre_parse.parse(pattern)
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError, ValueError):
        raise InvalidField(_l("This is not a valid regular expression."), "pattern") from None
    try:
        ways = _ways(tree.data if hasattr(tree, "data") else tree, nested=False)
    except _Unsafe:
        raise InvalidField(
            _l(
                "This pattern could take too long to check: no back-references, and nothing that "
                "varies (*, +, ?, {m,n}, |) inside a repetition."
            ),
            "pattern",
        ) from None
    if ways > MAX_WAYS:
        raise InvalidField(
            _l(
                "This pattern could take too long to check: use fewer repetitions (*, +, ?, {m,n}) or alternatives (|)."
            ),
            "pattern",
        )


def _ways(items, nested: bool) -> int:
    """An upper bound of the ways this part of a pattern can split an answer of
    MAX_ANSWER characters, which bounds the backtracking. `nested`: inside a repetition
    of more than once, where anything variable is refused (that is what makes the
    backtracking exponential)."""
    total = 1
    for op, av in items:
        if op in _REPEATS:
            low, high, body = av
            inner = _ways(body, nested or high > 1)
            if low != high:
                if nested:
                    raise _Unsafe()
                total *= max(1, min(high, MAX_ANSWER) - low + 1) * inner
            else:
                total *= inner
        elif op == sre.BRANCH:
            if nested:
                raise _Unsafe()
            total *= sum(_ways(alternative, nested) for alternative in av[1])
        elif op == sre.SUBPATTERN:
            total *= _ways(av[-1], nested)
        elif op == getattr(sre, "ATOMIC_GROUP", None):
            total *= _ways(av, nested)
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            total *= _ways(av[1], nested)
        elif op in _GROUP_REFERENCES:
            raise _Unsafe()
    return total


# -- the buyer answers ------------------------------------------------------------------


def clean_answers(
    fields: list[CheckoutField], raw: Mapping[str, str], language: str
) -> list[tuple[CheckoutField, str]]:
    """Each field's answer as stored (trimmed; digits, phones and emails in half-width
    characters), empty optional ones left out; InvalidAnswers when any does not fit.
    `raw` maps field keys to what the buyer typed; `language` chooses the merchant's
    messages."""
    cleaned, errors = [], {}
    for field in fields:
        value, error = _check_answer(field, raw.get(field.key), language)
        if error is not None:
            errors[field.key] = error
        elif value:
            cleaned.append((field, value))
    if errors:
        raise InvalidAnswers(errors)
    return cleaned


def answer_errors(fields: list[CheckoutField], raw: Mapping[str, str], language: str) -> dict:
    """The messages clean_answers would give (for a form that came back for another reason)."""
    try:
        clean_answers(fields, raw, language)
    except InvalidAnswers as exc:
        return exc.errors
    return {}


def _check_answer(field: CheckoutField, raw, language: str):
    text = raw if isinstance(raw, str) else ""
    if field.kind in (KIND_NUMBER, KIND_PHONE, KIND_EMAIL):
        text = unicodedata.normalize("NFKC", text)  # ０-９ and ＠ from a Chinese keyboard
    text = text.strip()
    if not text:
        return None, (_l("Please fill this in.") if field.required else None)
    if len(text) > MAX_ANSWER:
        return None, _l("Use at most %(count)s characters.", count=MAX_ANSWER)
    if any(unicodedata.category(c) == "Cc" for c in text):
        return None, _l("Remove the line breaks and control characters.")
    if field.kind == KIND_NUMBER:
        text = re.sub(r"\s+", "", text)
        if not (text.isascii() and text.isdigit()):
            return None, _l("Enter digits only.")
    elif field.kind == KIND_PHONE:
        text = PHONE_SEPARATORS.sub("", text)
        if not PHONE_SHAPE.fullmatch(text):
            return None, _l("Enter a phone number: digits, optionally starting with +.")
    elif field.kind == KIND_EMAIL:
        if len(text) > 254 or not EMAIL_SHAPE.fullmatch(text):
            return None, _l("Enter a valid email address.")
    elif field.kind == KIND_CHOICE:
        if text not in field.choice_list:
            return None, _l("Choose one of the options.")
        return text, None
    if field.pattern and not re.fullmatch(field.pattern, text):
        return None, field.pattern_message_for(language) or _l("This answer is not in the form the seller asks for.")
    return text, None


def store_answers(order: Order, answers: list[tuple[CheckoutField, str]]) -> None:
    """Keep an order's answers, encrypted, in the caller's transaction (the order is flushed)."""
    v = vault()
    db.session.add_all(
        OrderAnswer(
            order_id=order.id,
            position=position,
            field_key=field.key,
            kind=field.kind,
            label=field.label,
            label_en=field.label_en,
            value_ciphertext=v.encrypt(value),
        )
        for position, (field, value) in enumerate(answers)
    )


def same_answers(order_id: int, answers: list[tuple[CheckoutField, str]]) -> bool:
    """Whether an order holds exactly these answers (a repeated tap on Buy)."""
    return [(a.key, a.value) for a in order_answers(order_id)] == [(f.key, value) for f, value in answers]


# -- reading answers --------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    key: str
    kind: str
    label: str
    label_en: str | None
    value: str

    def label_for(self, language: str) -> str:
        return self.label_en if language == "en" and self.label_en else self.label

    def masked(self) -> "Answer":
        """The answer as lists show it: a choice as it is (one of the merchant's own
        options), an email as ab***@qq.com, anything else by its first and last character."""
        return replace(self, value=mask_answer(self.kind, self.value))


def mask_answer(kind: str, value: str) -> str:
    if kind == KIND_CHOICE:
        return value
    if kind == KIND_EMAIL:
        return mask_email(value)
    if len(value) <= 2:
        return value[:1] + "*"
    return f"{value[0]}***{value[-1]}"


def order_answers(order_id: int) -> list[Answer]:
    """An order's answers in full, in the order they were asked."""
    return answers_by_order([order_id]).get(order_id, [])


def answers_by_order(order_ids: list[int]) -> dict[int, list[Answer]]:
    """The answers of several orders in full, by order id (orders without any left out)."""
    found: dict[int, list[Answer]] = {}
    v = vault()
    for start in range(0, len(order_ids), 500):
        rows = db.session.execute(
            select(OrderAnswer)
            .where(OrderAnswer.order_id.in_(order_ids[start : start + 500]))
            .order_by(OrderAnswer.order_id, OrderAnswer.position)
        ).scalars()
        for row in rows:
            found.setdefault(row.order_id, []).append(
                Answer(row.field_key, row.kind, row.label, row.label_en, v.decrypt(row.value_ciphertext))
            )
    return found


def webhook_answers(order_id: int) -> list[dict]:
    """An order's answers as order webhooks carry them."""
    return [{"key": a.key, "label": a.label, "label_en": a.label_en, "value": a.value} for a in order_answers(order_id)]
