"""The database: SQLite under SLUICE_HOME by default, PostgreSQL by URL.

:func:`connect` returns an engine whose schema is at the newest Alembic revision
(migrations run on first use, under a lock, and are a no-op afterwards). A SQLite file
holds addresses and tokens: it is created 0600 (its -wal and -shm files take its mode)
in directories created 0700, and an existing one others may read is tightened.

A PostgreSQL URL may carry a password. It never travels to another process:
:func:`without_password` strips it, and the process that connects puts it back with
:func:`with_password` from its own environment, or libpq finds it (``PGPASSWORD``,
``~/.pgpass``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from sluice.privatefs import private_dir, private_fd, tighten

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()
MIGRATIONS = Path(__file__).parent / "migrations"

__all__ = [
    "Engine",
    "connect",
    "dispose_all",
    "normalise_url",
    "upgrade",
    "utc",
    "with_password",
    "without_password",
]
PASSWORD_ENV = "SLUICE_DATABASE_PASSWORD"


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` use the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _no_password(url: URL) -> URL:
    # Not ``url.set(password=None)``: ``set`` ignores None, and keeps the password.
    return URL.create(
        url.drivername, url.username, None, url.host, url.port, url.database, url.query
    )


def without_password(url: str) -> str:
    """``url`` without its password (unchanged when it has none)."""
    parsed = make_url(url)
    if parsed.password is None:
        return url
    return _no_password(parsed).render_as_string(hide_password=False)


def with_password(url: str, env: Mapping[str, str] = os.environ) -> str:
    """In the process that connects: a password-less server ``url`` with the password
    from ``env`` (this process's own environment): ``SLUICE_DATABASE_PASSWORD``, else
    the password of ``SLUICE_DATABASE_URL`` when that names the same database. Without
    either, ``url`` is unchanged and libpq looks (``PGPASSWORD``, ``~/.pgpass``)."""
    parsed = make_url(normalise_url(url))
    if parsed.password is not None or parsed.get_backend_name() == "sqlite":
        return url
    password = env.get(PASSWORD_ENV)
    if not password and env.get("SLUICE_DATABASE_URL"):
        with contextlib.suppress(ArgumentError, ValueError):
            own = make_url(normalise_url(env["SLUICE_DATABASE_URL"]))
            if _no_password(own) == parsed:
                password = own.password
    if not password:
        return url
    return parsed.set(password=password).render_as_string(hide_password=False)


def _private_sqlite(path: Path) -> None:
    """The database file created 0600 before SQLite opens it (which then creates -wal and
    -shm with its mode), in directories created 0700; existing ones are tightened."""
    private_dir(path.parent)
    os.close(private_fd(path, os.O_WRONLY))
    for p in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        tighten(p)


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def connect(url: str) -> Engine:
    """A migrated engine for ``url`` (see ``SluiceSettings.effective_database_url``),
    cached per URL."""
    url = normalise_url(url)
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            if url.startswith("sqlite:///"):
                database = make_url(url).database
                if database and database != ":memory:" and not database.startswith("file:"):
                    _private_sqlite(Path(database))
                engine = create_engine(
                    url, connect_args={"timeout": 30, "check_same_thread": False}
                )
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
            upgrade(engine)
            _ENGINES[url] = engine
    return engine


def answers(url: str) -> str | None:
    """None when the database at ``url`` answers a query; else why not (no secrets)."""
    try:
        with connect(url).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return type(exc).__name__
    return None


def utc(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands back naive ones)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def dispose_all() -> None:
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


def dispose(url: str) -> None:
    """Close and forget the engine of ``url`` (a scratch database about to be removed)."""
    with _LOCK:
        engine = _ENGINES.pop(normalise_url(url), None)
    if engine is not None:
        engine.dispose()
