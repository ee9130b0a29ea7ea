"""One-click unsubscribe tokens: signed, so the events endpoint can trust them.

A token carries (customer id, brand, channel, run id) and an HMAC-SHA256 over them with
the unsubscribe secret (``SLUICE_UNSUBSCRIBE_SECRET``, or a random one created once
under SLUICE_HOME). The events API turns a valid token into a suppression at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sluice.errors import InputError


@dataclass(frozen=True)
class Unsubscribe:
    customer_id: str
    brand: str
    channel: str
    run_id: str


def secret(home: Path) -> bytes:
    """The signing key: ``SLUICE_UNSUBSCRIBE_SECRET`` in this process's environment, else
    the key file under ``home``, created once."""
    env = os.environ.get("SLUICE_UNSUBSCRIBE_SECRET")
    if env:
        return env.encode()
    path = home / "secrets" / "unsubscribe.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def make_token(u: Unsubscribe, key: bytes) -> str:
    body = _b64(
        json.dumps([u.customer_id, u.brand, u.channel, u.run_id], separators=(",", ":")).encode()
    )
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()[:16]
    return f"{body}.{_b64(mac)}"


def read_token(token: str, key: bytes) -> Unsubscribe:
    if not token.isascii():
        raise InputError("token: not a valid unsubscribe token", field="token")
    body, _, mac = token.partition(".")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest()[:16])
    if not mac or not hmac.compare_digest(mac, expected):
        raise InputError("token: not a valid unsubscribe token", field="token")
    padded = body + "=" * (-len(body) % 4)
    customer_id, brand, channel, run_id = json.loads(base64.urlsafe_b64decode(padded))
    return Unsubscribe(customer_id, brand, channel, run_id)
