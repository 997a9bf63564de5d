"""What a product asks the buyer at checkout (a game UID, a server, an account), and the answers."""

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from faka.extensions import db
from faka.models.types import UTCDateTime, utcnow

KIND_TEXT = "text"
KIND_NUMBER = "number"  # digits only (a UID keeps its leading zeros: stored as text)
KIND_EMAIL = "email"
KIND_PHONE = "phone"
KIND_CHOICE = "choice"
KINDS = (KIND_TEXT, KIND_NUMBER, KIND_EMAIL, KIND_PHONE, KIND_CHOICE)


def _in(language: str, chinese: str | None, english: str | None) -> str:
    """Merchant-written text in the page's language: English when asked for and given."""
    return (english if language == "en" and english else chinese) or ""


class CheckoutField(db.Model):
    """One question a product asks at checkout. The merchant writes it in Chinese, and
    optionally in English for English pages."""

    __tablename__ = "checkout_fields"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Random: names the field in the buy form and in the merchant's URLs and webhooks.
    key: Mapped[str] = mapped_column(String(16), unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    position: Mapped[int] = mapped_column(default=0)  # 0, 1, 2 ... in the order the buyer sees them
    label: Mapped[str] = mapped_column(String(40))
    label_en: Mapped[str | None] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(8), default=KIND_TEXT)
    required: Mapped[bool] = mapped_column(default=True)
    choices: Mapped[str | None] = mapped_column(Text)  # for KIND_CHOICE: one per line
    # A regular expression the whole answer must match (checked safe when saved), and
    # what the buyer is told when it does not.
    pattern: Mapped[str | None] = mapped_column(String(100))
    pattern_message: Mapped[str | None] = mapped_column(String(100))
    pattern_message_en: Mapped[str | None] = mapped_column(String(100))
    help_text: Mapped[str | None] = mapped_column(String(200))
    help_text_en: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def choice_list(self) -> list[str]:
        return [line for line in (self.choices or "").split("\n") if line]

    def label_for(self, language: str) -> str:
        return _in(language, self.label, self.label_en)

    def help_for(self, language: str) -> str:
        return _in(language, self.help_text, self.help_text_en)

    def pattern_message_for(self, language: str) -> str:
        return _in(language, self.pattern_message, self.pattern_message_en)


class OrderAnswer(db.Model):
    """A buyer's answer to one checkout field of an order. The question is copied, so the
    answer keeps its meaning when the merchant edits or removes the field later; the
    answer itself is stored encrypted, like a card key."""

    __tablename__ = "order_answers"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    field_key: Mapped[str] = mapped_column(String(16))  # CheckoutField.key when answered
    kind: Mapped[str] = mapped_column(String(8))
    label: Mapped[str] = mapped_column(String(40))
    label_en: Mapped[str | None] = mapped_column(String(40))
    value_ciphertext: Mapped[str] = mapped_column(Text)

    def label_for(self, language: str) -> str:
        return _in(language, self.label, self.label_en)
