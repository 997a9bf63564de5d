from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from faka.extensions import db


class Setting(db.Model):
    """Site settings the operator edits (name, announcement, ICP number, ...)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")


class GatewayConfig(db.Model):
    """A payment gateway's settings; secrets inside are encrypted as one JSON document."""

    __tablename__ = "gateway_configs"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    settings_ciphertext: Mapped[str] = mapped_column(Text, default="")
