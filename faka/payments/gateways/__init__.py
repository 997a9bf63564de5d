"""Payment gateways: one module each, behind faka.payments.gateways.base.Gateway."""

import json
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from faka.core.cache import reused
from faka.core.crypto import vault
from faka.core.errors import NotFound
from faka.extensions import db
from faka.payments.gateways.alipay import AlipayGateway
from faka.payments.gateways.base import Gateway
from faka.payments.gateways.epay import EpayGateway
from faka.payments.gateways.sandbox import SandboxGateway
from faka.payments.gateways.stripe_checkout import StripeGateway
from faka.payments.gateways.usdt import UsdtGateway
from faka.payments.gateways.wechat import WechatGateway
from faka.payments.models import GatewayConfig

GATEWAYS: dict[str, type[Gateway]] = {
    "sandbox": SandboxGateway,
    "epay": EpayGateway,
    "alipay": AlipayGateway,
    "wechat": WechatGateway,
    "stripe": StripeGateway,
    "usdt": UsdtGateway,
}


# What buyers see when choosing how to pay.
GATEWAY_LABELS = {
    "sandbox": _l("Sandbox (test payment)"),
    "epay": _l("EPay (Alipay / WeChat via EPay)"),
    "alipay": _l("Alipay"),
    "wechat": _l("WeChat Pay"),
    "stripe": _l("Card (Stripe)"),
    "usdt": _l("USDT (TRC-20)"),
}


# What the pay page calls each way of paying in its heading and its "Continue to …" link.
GATEWAY_NAMES = {
    "sandbox": _l("the sandbox"),
    "epay": _l("EPay"),
    "alipay": _l("Alipay"),
    "wechat": _l("WeChat Pay"),
    "stripe": _l("Stripe"),
    "usdt": _l("USDT"),
}


def enabled_gateways() -> list[tuple[str, str]]:
    """The gateways buyers may choose, as (name, label), in registry order."""
    enabled = _enabled_ciphertexts()
    return [(name, str(GATEWAY_LABELS.get(name, name))) for name in GATEWAYS if name in enabled]


def gateway_settings(name: str) -> tuple[GatewayConfig | None, dict[str, str]]:
    row = db.session.get(GatewayConfig, name)
    return row, _decrypted(row.settings_ciphertext if row is not None else None)


def _decrypted(ciphertext: str | None) -> dict[str, str]:
    return json.loads(vault().decrypt(ciphertext)) if ciphertext else {}


def _enabled_ciphertexts() -> dict[str, str | None]:
    """The enabled gateways' encrypted settings by name. Every checkout and payment
    notification asks, so they are reused for PAGE_CACHE_SECONDS within this process (the
    console clears the caches of every process when it saves a gateway); they are
    decrypted only by the gateway that is used."""
    return reused(
        "enabled-gateways",
        lambda: {
            name: ciphertext
            for name, ciphertext in db.session.execute(
                select(GatewayConfig.name, GatewayConfig.settings_ciphertext).where(GatewayConfig.enabled.is_(True))
            )
        },
    )


def configure_gateway(name: str, values: dict[str, str], enabled: bool | None = None) -> GatewayConfig:
    """Merge `values` into the gateway's stored settings (encrypted) and commit."""
    cls = GATEWAYS.get(name)
    if cls is None:
        raise NotFound(f"unknown gateway {name}")
    unknown = set(values) - set(cls.settings_fields)
    if unknown:
        raise ValueError(f"{name} has no setting {', '.join(sorted(unknown))}")
    row, current = gateway_settings(name)
    if row is None:
        row = GatewayConfig(name=name, enabled=False)
        db.session.add(row)
    current.update(values)
    row.settings_ciphertext = vault().encrypt(json.dumps(current, sort_keys=True))
    if enabled is not None:
        row.enabled = enabled
    db.session.commit()
    return row


class GatewayUnavailable(NotFound):
    message = _l("This payment method is not available right now. Please try again later.")


def get_gateway(name: str) -> Gateway:
    """An enabled gateway with its settings, or GatewayUnavailable (a NotFound)."""
    cls = GATEWAYS.get(name)
    enabled = _enabled_ciphertexts()
    if cls is None or name not in enabled:
        raise GatewayUnavailable()
    return cls(_decrypted(enabled[name]))


def ensure_sandbox(enabled: bool = True) -> None:
    """Give the sandbox a fresh secret the first time: `init-db` leaves it off (on a real
    shop anyone could "pay" with it), the demo (`seed-demo`) and the tests turn it on."""
    row = db.session.get(GatewayConfig, "sandbox")
    if row is None:
        configure_gateway("sandbox", SandboxGateway.default_settings(), enabled=enabled)
    elif enabled and not row.enabled:
        configure_gateway("sandbox", {}, enabled=True)


def mask(value: str) -> str:
    """A stored secret as the console shows it: "••••" and its last four characters
    (only the dots when it is too short to show any of it)."""
    if not value:
        return ""
    return "••••" + (value[-4:] if len(value) >= 12 else "")


@dataclass(frozen=True)
class ShownSetting:
    name: str
    value: str  # the stored value, or for a secret "••••" and its last characters
    secret: bool
    multiline: bool  # a PEM key or certificate


def shown_settings(name: str) -> tuple[GatewayConfig | None, list[ShownSetting]]:
    """The gateway's row and its settings as the console shows them: secrets masked
    (every field of a gateway that names no secret fields), the rest in clear."""
    cls = GATEWAYS.get(name)
    if cls is None:
        raise NotFound(f"unknown gateway {name}")
    row, settings = gateway_settings(name)
    secrets = set(cls.secret_fields or cls.settings_fields)
    return row, [
        ShownSetting(
            field,
            mask(settings.get(field, "")) if field in secrets else settings.get(field, ""),
            field in secrets,
            field.endswith(("_key", "certificate", "_cert")),
        )
        for field in cls.settings_fields
    ]
