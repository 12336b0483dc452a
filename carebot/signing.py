"""Signed tokens: a value, an expiry and an HMAC-SHA256 over both, keyed per purpose.

Used for web chat visitor tokens and agent session cookies. A token signed for one purpose is
refused for another; an altered, forged or expired token is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from carebot.exceptions import ConfigError


class Signer:
    def __init__(self, secret: bytes, purpose: str) -> None:
        self._key = hmac.new(secret, purpose.encode(), hashlib.sha256).digest()

    def sign(self, value: str, *, ttl: float, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + ttl)
        # A lone surrogate (a platform's id that is not valid Unicode) is signed as it is;
        # verify() then refuses the token, as nothing can be done with such a value.
        payload = _b64(f"{value}\n{expires}".encode(errors="surrogatepass"))
        return f"{payload}.{self._mac(payload)}"

    def verify(self, token: str, *, now: float | None = None) -> str | None:
        """The signed value, or None when the token is altered, forged, foreign or expired."""
        if not token.isascii():  # a token is base64 and a dot: anything else is forged
            return None
        payload, _, mac = token.partition(".")
        if not payload or not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            return None
        try:
            value, _, expires = base64.urlsafe_b64decode(payload + "==").decode().rpartition("\n")
            if int(expires) < (time.time() if now is None else now):
                return None
        except (ValueError, UnicodeDecodeError):
            return None
        return value

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def load_secret(env_name: str, key_file: Path) -> bytes:
    """The signing secret: from the environment variable, else a generated one kept in a file.

    The generated key survives restarts, so visitor tokens and agent sessions stay valid.
    """
    value = os.environ.get(env_name)
    if value:
        if len(value) < 32:
            raise ConfigError(f"{env_name} must be at least 32 characters long")
        return value.encode()
    try:
        if key_file.exists():
            return key_file.read_bytes().strip()
        key_file.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48).encode()
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secret)
        return secret
    except OSError as exc:
        raise ConfigError(
            f"Cannot read or create the secret key file {key_file}: {exc.strerror}. "
            f"Set {env_name} instead."
        ) from exc
