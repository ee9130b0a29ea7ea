"""API keys: created once, shown once, stored only as salted hashes.

A key looks like ``slk_<id>_<secret>``. The keys file (``SLUICE_API_KEYS_FILE``, default
``SLUICE_HOME/api-keys.json``, mode 0600) holds per key its name, id, scopes, the brands
its ``events`` scope is limited to (none: every brand), a random salt and
``sha256(salt + secret)``. The secret is 256 random bits, so a fast hash is enough:
there is nothing to brute-force, unlike a password. The store re-reads the file when it
changes, so a revocation takes effect on the next request without a restart. Keys are
never logged; only names are. An invalid keys file is refused with an error that names
the file and the problem, never its content; the service then refuses every key (503)
until the file is mended.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import AwareDatetime, Field, ValidationError, model_validator

from sluice.contracts._base import Contract, Slug
from sluice.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    ForbiddenError,
    InputError,
    NotFoundError,
    UnavailableError,
)

PREFIX = "slk"
BRAND = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
log = logging.getLogger("sluice.auth")


class Scope(StrEnum):
    SCORE = "score"
    DECIDE = "decide"
    EVENTS = "events"
    LLM = "llm"
    """The LLM app's OpenAI API (chat completions, models) where it requires keys."""
    ADMIN = "admin"
    """Everything, including the review queue and other administrative endpoints."""


class KeyRecord(Contract):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    key_id: str
    scopes: tuple[Scope, ...]
    brands: tuple[Slug, ...] | None = None
    """The brands the ``events`` scope is limited to; None (keys made before brands
    existed too): every brand."""
    salt: str
    digest: str
    created_at: AwareDatetime
    revoked_at: AwareDatetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes

    @model_validator(mode="after")
    def _brands_limit_events(self) -> Self:
        if self.brands is not None:
            try:
                check_brands(self.brands, self.scopes)
            except InputError as exc:
                raise ValueError(exc.message.removeprefix("--brand: ")) from None
        return self


class KeyFile(Contract):
    keys: tuple[KeyRecord, ...] = ()


_FIELDS = frozenset({*KeyFile.model_fields, *KeyRecord.model_fields})


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def parse_scopes(text: str) -> tuple[Scope, ...]:
    try:
        scopes = tuple(dict.fromkeys(Scope(s.strip()) for s in text.split(",") if s.strip()))
    except ValueError as exc:
        allowed = ", ".join(s.value for s in Scope)
        raise InputError(f"--scopes: {exc}; allowed: {allowed}", field="scopes") from exc
    if not scopes:
        raise InputError("--scopes: give at least one scope", field="scopes")
    return scopes


def check_brands(brands: tuple[str, ...], scopes: tuple[Scope, ...]) -> tuple[str, ...]:
    """``brands`` as a key's limit (unique, in order), or InputError (field ``brand``):
    a limit needs at least one brand, limits the ``events`` scope, and an ``admin`` key
    may do everything, so it is never limited."""
    unique = tuple(dict.fromkeys(brands))
    for brand in unique:
        if not BRAND.fullmatch(brand):
            raise InputError(
                f"--brand: {brand[:64]!r} is not a brand (1 to 64 of a-z, 0-9, '_', '.', '-', "
                "starting with a letter or digit)",
                field="brand",
            )
    if not unique:
        raise InputError("--brand: give at least one brand", field="brand")
    if Scope.ADMIN in scopes:
        raise InputError("--brand: an admin key is not limited to brands", field="brand")
    if Scope.EVENTS not in scopes:
        raise InputError(
            "--brand: limits the events scope, and the key does not have it", field="brand"
        )
    return unique


class KeyStore:
    """The keys file, cached in memory and re-read when it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._bad: tuple[int, int] | None = None
        self._by_id: dict[str, KeyRecord] = {}

    def _load(self) -> KeyFile:
        """The keys file; ConfigError naming the file and the problem (never the content:
        pydantic's messages quote the input, so they are not passed on)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return KeyFile()
        except OSError as exc:
            raise ConfigError(
                f"{self.path}: cannot be read ({exc.strerror})", field="keys_file"
            ) from None
        try:
            return KeyFile.model_validate_json(raw)
        except ValidationError as exc:
            # The message and the location, with any name that is not a field (a key of
            # the file's own) masked: no value from the file.
            first = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(
                str(p) if isinstance(p, int) or p in _FIELDS else "?" for p in first["loc"]
            )
            raise ConfigError(
                f"{self.path}: invalid API keys file at {where or 'the top level'}: {first['msg']}",
                field="keys_file",
            ) from None

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp != self._stamp:
            with self._lock:
                try:
                    self._by_id = {k.key_id: k for k in self._load().keys}
                except ConfigError as exc:
                    self._by_id = {}  # fail closed: no key is known
                    if stamp != self._bad:
                        log.error("%s", exc.message)  # once per version of the file
                    self._bad = stamp
                    raise UnavailableError(
                        "API keys are unavailable", field="authorization"
                    ) from None
                self._stamp, self._bad = stamp, None

    def _save(self, data: KeyFile) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(data.model_dump_json(indent=2))
        tmp.replace(self.path)

    def create(
        self, name: str, scopes: tuple[Scope, ...], brands: tuple[str, ...] | None = None
    ) -> tuple[str, KeyRecord]:
        """A new key: returns the plaintext (shown once) and its stored record. With
        ``brands``, its ``events`` scope is limited to them (see :func:`check_brands`)."""
        if brands is not None:
            brands = check_brands(brands, scopes)
        with self._lock:
            data = self._load()
            if any(k.name == name and k.active for k in data.keys):
                raise ConflictError(
                    f"--name: an active key named {name!r} exists; revoke it first", field="name"
                )
            key_id, secret, salt = (
                secrets.token_hex(6),
                secrets.token_urlsafe(32),
                secrets.token_hex(16),
            )
            record = KeyRecord(
                name=name,
                key_id=key_id,
                scopes=scopes,
                brands=brands,
                salt=salt,
                digest=_digest(salt, secret),
                created_at=datetime.now(UTC),
            )
            self._save(KeyFile(keys=(*data.keys, record)))
            self._stamp = None
        return f"{PREFIX}_{key_id}_{secret}", record

    def list(self) -> list[KeyRecord]:
        return list(self._load().keys)

    def revoke(self, name: str) -> KeyRecord:
        with self._lock:
            data = self._load()
            hits = [k for k in data.keys if k.name == name and k.active]
            if not hits:
                raise NotFoundError(f"no active key named {name!r}", field="name")
            now = datetime.now(UTC)
            keys = tuple(
                k.model_copy(update={"revoked_at": now}) if k in hits else k for k in data.keys
            )
            self._save(KeyFile(keys=keys))
            self._stamp = None
        return hits[0].model_copy(update={"revoked_at": now})

    def authenticate(self, authorization: str | None) -> KeyRecord:
        """The active key behind an ``Authorization: Bearer`` header, or AuthError (401)."""
        if not authorization:
            raise AuthError("missing Authorization: Bearer header", field="authorization")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError("Authorization must be 'Bearer <key>'", field="authorization")
        parts = token.strip().split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            raise AuthError("unknown API key", field="authorization")
        self._refresh()
        record = self._by_id.get(parts[1])
        if (
            record is None
            or not record.active
            or not hmac.compare_digest(record.digest, _digest(record.salt, parts[2]))
        ):
            raise AuthError("unknown API key", field="authorization")
        return record

    def authorize(self, authorization: str | None, scope: Scope) -> KeyRecord:
        """As :meth:`authenticate`, and ForbiddenError (403) without ``scope``."""
        record = self.authenticate(authorization)
        if not record.allows(scope):
            raise ForbiddenError(
                f"key {record.name!r} lacks the {scope.value!r} scope", field="authorization"
            )
        return record
