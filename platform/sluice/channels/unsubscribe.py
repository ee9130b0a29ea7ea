"""One-click unsubscribe tokens: signed, so the events endpoint can trust them.

A token is ``<kid>.<body>.<mac>``: ``body`` is (customer id, brand, channel, run id) as
URL-safe base64 JSON, ``mac`` the first 16 bytes of HMAC-SHA256 over ``<kid>.<body>``
under the key the key id ``kid`` names. Tokens sign with the keyring's newest key and
verify with whichever key they name, so adding a key never breaks a link in flight.

The keyring (:func:`secret`), read by the process that makes or reads tokens, never
passed to another one:

* ``SLUICE_UNSUBSCRIBE_SECRET`` in that process's environment: the signing key;
  ``SLUICE_UNSUBSCRIBE_SECRET_PREVIOUS`` (optional, comma-separated) keys that still
  verify. Their key ids are derived from the keys. To rotate, move the current key to
  ``..._PREVIOUS`` and set a new one.
* Else the file ``<home>/secrets/unsubscribe.keys`` (directory 0700, file 0600): one
  ``<kid> <key>`` line per key, the last one signs. It is created with one random key
  when absent (atomically: a concurrent creator's file is kept, never replaced).
  :func:`add_key` rotates (appends a new key); deleting a line retires that key, and the
  links it signed stop working.

Every key must hold 256 bits: hex text of at least 64 digits, or base64 text (standard
or URL-safe, padding optional) of at least 43 characters, with at least 8 distinct
characters (``openssl rand -hex 32`` or ``openssl rand -base64 32``). An empty,
unreadable, malformed or weak keyring is refused with a ConfigError naming the file (or
variable) and the problem; it is never replaced by a new key, which would invalidate
every link already sent.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sluice.errors import ConfigError, InputError
from sluice.privatefs import private_dir

ENV, ENV_PREVIOUS = "SLUICE_UNSUBSCRIBE_SECRET", "SLUICE_UNSUBSCRIBE_SECRET_PREVIOUS"
KID = re.compile(r"[A-Za-z0-9]{1,16}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
MIN_HEX, MIN_BASE64, MIN_DISTINCT = 64, 43, 8
_INVALID = "token: not a valid unsubscribe token"


@dataclass(frozen=True)
class Unsubscribe:
    customer_id: str
    brand: str
    channel: str
    run_id: str


def kid_of(key: bytes) -> str:
    """The key id derived from a key (8 hex digits of a hash: it reveals nothing)."""
    return hashlib.sha256(b"sluice-unsubscribe-kid\0" + key).hexdigest()[:8]


def check_key(text: str, origin: str) -> bytes:
    """``text`` (surrounding white space ignored) as a signing key, or a ConfigError
    naming ``origin`` and why it is refused (see the module docstring for the rule)."""
    key = text.strip()
    if not key:
        raise ConfigError(f"{origin}: the key is empty", field="unsubscribe_key")
    if _HEX.fullmatch(key):
        if len(key) < MIN_HEX:
            raise ConfigError(
                f"{origin}: the key has {len(key)} hex digits ({4 * len(key)} bits); "
                f"at least {MIN_HEX} (256 bits) are needed",
                field="unsubscribe_key",
            )
    elif not _BASE64.fullmatch(key):
        raise ConfigError(
            f"{origin}: the key must be hex or base64 text (openssl rand -hex 32)",
            field="unsubscribe_key",
        )
    elif len(key.rstrip("=")) < MIN_BASE64:
        raise ConfigError(
            f"{origin}: the key has {len(key.rstrip('='))} base64 characters; at least "
            f"{MIN_BASE64} (256 bits) are needed",
            field="unsubscribe_key",
        )
    if len(set(key)) < MIN_DISTINCT:
        raise ConfigError(
            f"{origin}: the key repeats too few characters to be random", field="unsubscribe_key"
        )
    return key.encode()


@dataclass(frozen=True)
class Keyring:
    """Signing keys by key id; ``signing`` names the one new tokens use."""

    keys: Mapping[str, bytes] = field(repr=False)
    signing: str

    @classmethod
    def of(cls, *keys: str | bytes, origin: str = "unsubscribe key") -> Keyring:
        """Keys checked by :func:`check_key`, their ids derived; the last one signs."""
        checked = [check_key(k.decode() if isinstance(k, bytes) else k, origin) for k in keys]
        if not checked:
            raise ConfigError(f"{origin}: no key", field="unsubscribe_key")
        return cls({kid_of(k): k for k in checked}, kid_of(checked[-1]))


def secret(home: Path, env: Mapping[str, str] = os.environ) -> Keyring:
    """This process's keyring: from ``env`` (its own environment) if it names a key, else
    the keyring file under ``home``, created once (see the module docstring)."""
    current, previous = env.get(ENV), env.get(ENV_PREVIOUS)
    if current is not None:
        if not current.strip():
            raise ConfigError(f"{ENV}: set but empty; unset it to use the keyring file", field=ENV)
        old = [check_key(p, ENV_PREVIOUS) for p in (previous or "").split(",") if p.strip()]
        return Keyring.of(*old, check_key(current, ENV), origin=ENV)
    if previous is not None:
        raise ConfigError(f"{ENV_PREVIOUS}: set without {ENV}", field=ENV_PREVIOUS)
    path = keyring_file(home)
    ring = _load(path)
    if ring is None:
        _create(path)
        ring = _load(path)
    if ring is None:
        raise ConfigError(f"{path}: removed while it was being created", field="unsubscribe_key")
    return ring


def keyring_file(home: Path) -> Path:
    return home / "secrets" / "unsubscribe.keys"


def add_key(home: Path, env: Mapping[str, str] = os.environ) -> str:
    """Rotate the keyring file: append a new random key, which signs from now on (the
    others still verify). Returns its key id."""
    if env.get(ENV) is not None:
        raise ConfigError(
            f"{ENV} is set, so the keyring file is not used: move its value to "
            f"{ENV_PREVIOUS} and set a new key instead",
            field=ENV,
        )
    path = keyring_file(home)
    line = _new_line()
    with _locked(path):
        if _load(path) is None:
            _write(path, line, replace=False)
        else:
            _write(path, path.read_text(encoding="ascii").rstrip("\n") + "\n" + line, replace=True)
    return line.split()[0]


def _new_line() -> str:
    key = secrets.token_hex(32)
    return f"{kid_of(key.encode())} {key}\n"


def _load(path: Path) -> Keyring | None:
    """The keyring file, validated; None when there is none."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot be read ({exc.strerror})", field="unsubscribe_key"
        ) from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not ASCII text", field="unsubscribe_key") from None
    keys: dict[str, bytes] = {}
    last = ""
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not KID.fullmatch(parts[0]):
            raise ConfigError(
                f"{path}: line {n}: expected '<key id> <key>' (key id: 1 to 16 letters or digits)",
                field="unsubscribe_key",
            )
        kid, key = parts
        if kid in keys:
            raise ConfigError(f"{path}: line {n}: key id {kid} repeats", field="unsubscribe_key")
        keys[kid], last = check_key(key, f"{path}: line {n} (key {kid})"), kid
    if not keys:
        raise ConfigError(f"{path}: the file is empty (no key)", field="unsubscribe_key")
    return Keyring(keys, last)


def _create(path: Path) -> None:
    """The keyring file with one new key, unless another process made one first."""
    with _locked(path):
        if not path.exists():
            _write(path, _new_line(), replace=False)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialises creation and rotation across processes (``flock`` on a lock file)."""
    private_dir(path.parent, tighten=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(path: Path, text: str, replace: bool) -> None:
    """``text`` into ``path`` atomically: a 0600 temp file (O_EXCL), fsynced, then linked
    into place (``replace=False``: an existing file wins) or renamed over it; the
    directory is fsynced."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        data = text.encode("ascii")
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if replace:
            tmp.replace(path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        pass  # a concurrent creator's key is the key
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot be created ({exc.strerror})", field="unsubscribe_key"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _mac(key: bytes, kid: str, body: str) -> str:
    return _b64(hmac.new(key, f"{kid}.{body}".encode(), hashlib.sha256).digest()[:16])


def make_token(u: Unsubscribe, keyring: Keyring) -> str:
    """``<kid>.<body>.<mac>`` under the keyring's signing key (URL-safe)."""
    body = _b64(
        json.dumps([u.customer_id, u.brand, u.channel, u.run_id], separators=(",", ":")).encode()
    )
    kid = keyring.signing
    return f"{kid}.{body}.{_mac(keyring.keys[kid], kid, body)}"


def read_token(token: str, keyring: Keyring) -> Unsubscribe:
    """What a token says, once its MAC checks out under the key it names; InputError
    (field ``token``) for anything else, tokens without a key id (the old format) too."""
    parts = token.split(".") if token.isascii() else []
    if len(parts) == 2:
        raise InputError("token: an old unsubscribe token (no key id); not accepted", field="token")
    if len(parts) != 3:
        raise InputError(_INVALID, field="token")
    kid, body, mac = parts
    key = keyring.keys.get(kid)
    if key is None or not hmac.compare_digest(mac, _mac(key, kid, body)):
        raise InputError(_INVALID, field="token")
    try:
        fields = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        raise InputError(_INVALID, field="token") from None
    if not (
        isinstance(fields, list) and len(fields) == 4 and all(isinstance(f, str) for f in fields)
    ):
        raise InputError(_INVALID, field="token")
    return Unsubscribe(*fields)
