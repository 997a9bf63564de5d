"""Encryption of secrets at rest: card keys, delivered content, buyers' checkout answers,
gateway settings, the SMTP password, payout accounts, ID numbers, TOTP secrets, webhook
secrets and payloads, queued emails.

The keys live outside the database: FAKA_ENCRYPTION_KEYS (comma-separated Fernet keys,
newest first) or, when that is unset, `encryption.keys` in the instance folder, generated
on first start. MultiFernet encrypts with the newest key and decrypts with any, so a new
key can be put in front and `flask rotate-keys` re-encrypts everything with it; once
`rotate-keys --check` finds nothing that needs an older key, the older keys can go.

Fingerprints (to find duplicate keys without decrypting) are HMAC-SHA256 under a key
derived from an encryption key; rotate-keys recomputes them, and duplicate checks try
every configured key so nothing slips through in between.

Rotation, its check and the key file's upkeep are in faka/platform/key_rotation.py.
"""

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import Flask, current_app

KEY_FILE = "encryption.keys"


def init_app(app: Flask) -> None:
    raw = app.config.get("ENCRYPTION_KEYS") or _load_or_create_key_file(app.instance_path)
    app.extensions["faka_crypto"] = make_vault(raw)


def parse_keys(raw: str) -> list[str]:
    """Keys from FAKA_ENCRYPTION_KEYS (comma-separated) or the key file (one a line)."""
    return [k.strip() for k in raw.replace("\n", ",").split(",") if k.strip()]


def make_vault(raw: str) -> "Vault":
    keys = parse_keys(raw)
    try:
        fernets = [Fernet(k) for k in keys]
    except ValueError as exc:
        raise RuntimeError("FAKA_ENCRYPTION_KEYS holds a value that is not a Fernet key") from exc
    if not fernets:
        raise RuntimeError("no encryption key configured")
    return Vault(keys, fernets)


def _load_or_create_key_file(instance_path: str) -> str:
    path = Path(instance_path) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(Fernet.generate_key().decode() + "\n")
    return path.read_text()


def keys_from_environment() -> bool:
    """Whether the running app's keys come from FAKA_ENCRYPTION_KEYS (which wins over the file)."""
    return bool(current_app.config.get("ENCRYPTION_KEYS"))


def key_file() -> Path:
    return Path(current_app.instance_path) / KEY_FILE


def write_private_file(path: Path, text: str) -> None:
    """Replace `path` with `text`, readable by its owner only, never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)


class Vault:
    def __init__(self, keys: list[str], fernets: list[Fernet]):
        self.keys = tuple(keys)  # for backups only: never log them
        self._newest = fernets[0]
        self._multi = MultiFernet(fernets)
        self._fingerprint_keys = [
            hmac.new(k.encode(), b"faka card-key fingerprint", hashlib.sha256).digest() for k in keys
        ]

    def __repr__(self) -> str:
        return f"<Vault with {len(self.keys)} key(s)>"

    def encrypt(self, plaintext: str) -> str:
        return self._multi.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        return self._multi.decrypt(ciphertext.encode()).decode()

    def decrypt_with_newest(self, ciphertext: str) -> str | None:
        """The plaintext if the newest key alone opens it, else None."""
        try:
            return self._newest.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            return None

    def rotate(self, ciphertext: str) -> str:
        return self._multi.rotate(ciphertext.encode()).decode()

    def fingerprint(self, plaintext: str) -> str:
        """The fingerprint under the newest key: the one stored."""
        return self._hmac(self._fingerprint_keys[0], plaintext)

    def all_fingerprints(self, plaintext: str) -> list[str]:
        """Fingerprints under every configured key, newest first."""
        return [self._hmac(k, plaintext) for k in self._fingerprint_keys]

    @staticmethod
    def _hmac(key: bytes, plaintext: str) -> str:
        return hmac.new(key, plaintext.encode(), hashlib.sha256).hexdigest()


def vault() -> Vault:
    return current_app.extensions["faka_crypto"]


# -- where secrets are stored, rotation and the check ----------------------------------------


__all__ = ["InvalidToken", "Vault", "init_app", "vault"]
