"""Where the online store is: Feast's SQLite store (embedded) or its Redis store.

One URL names it (``SLUICE_ONLINE_STORE_URL``): ``sqlite:///ABSOLUTE/PATH.db`` or
``redis://[:PASSWORD@]HOST:PORT/DB``; unset, the SQLite store under
``SLUICE_HOME/online/``. :class:`OnlineStoreConfig` turns it into Feast's
``RepoConfig`` (project ``sluice``, a file registry beside the SQLite file or under
``SLUICE_HOME/online``) and writes the matching ``feature_store.yaml``, so Feast's own
tools (``feast feature-views list``, ``FeatureStore.get_online_features``) read the same
store. A password given in the URL is kept out of the YAML file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import Field

from sluice.contracts._base import Contract
from sluice.errors import ConfigError
from sluice.settings import SluiceSettings

PROJECT = "sluice"
KEY_SERIALIZATION = 3
"""Feast's entity key serialization version (its current one)."""


class OnlineStoreConfig(Contract):
    """One online store, as Feast addresses it."""

    kind: Literal["sqlite", "redis"]
    """Feast's SQLite online store (embedded) or its Redis online store (production)."""
    path: Path | None = None
    """The SQLite file (``kind: sqlite``)."""
    host: str | None = None
    """Redis host (``kind: redis``)."""
    port: int = Field(default=6379, ge=1, le=65535)
    """Redis port."""
    db: int = Field(default=0, ge=0, le=15)
    """Redis logical database."""
    password: str | None = Field(default=None, repr=False, exclude=True)
    """Redis password; never written to a file or shown."""
    registry: Path
    """Feast's file registry, which lists Sluice's feature views for Feast's tools."""
    project: str = Field(default=PROJECT, pattern=r"^[a-z][a-z0-9_]{0,62}$")
    """Feast project: part of every key, so two projects share a Redis without meeting."""

    @classmethod
    def from_settings(cls, settings: SluiceSettings) -> OnlineStoreConfig:
        """The store ``SLUICE_ONLINE_STORE_URL`` names (default: SQLite under home)."""
        return cls.from_url(settings.online_store_url, settings.home_dir)

    @classmethod
    def from_url(
        cls, url: str | None, home: Path, field: str = "online_store_url"
    ) -> OnlineStoreConfig:
        """The store a URL names (None: SQLite under ``home/online``)."""
        root = home / "online"
        if not url:
            return cls(kind="sqlite", path=root / "online.db", registry=root / "registry.db")
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            raw = unquote(parts.path)
            if not raw or raw == "/":
                raise ConfigError(f"{field}: {url!r} names no SQLite file", field=field)
            path = Path(raw[1:] if raw.startswith("//") else raw).expanduser()
            path = path if path.is_absolute() else (Path.cwd() / path)
            return cls(kind="sqlite", path=path, registry=path.with_suffix(".registry.db"))
        if parts.scheme in ("redis", "rediss"):
            try:
                port = parts.port or 6379
                db = int((parts.path or "/0").strip("/") or 0)
            except ValueError as exc:
                raise ConfigError(f"{field}: {url!r}: {exc}", field=field) from exc
            return cls(
                kind="redis",
                host=parts.hostname or "127.0.0.1",
                port=port,
                db=db,
                password=unquote(parts.password) if parts.password else None,
                registry=root / "registry.db",
            )
        raise ConfigError(
            f"{field}: {url!r} is neither sqlite:///PATH nor redis://HOST:PORT/DB", field=field
        )

    @property
    def url(self) -> str:
        """The store's URL without its password (what reports and logs show)."""
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        return f"redis://{self.host}:{self.port}/{self.db}"

    def _online_store(self, with_secret: bool) -> dict[str, Any]:
        if self.kind == "sqlite":
            return {"type": "sqlite", "path": str(self.path)}
        conn = f"{self.host}:{self.port},db={self.db}"
        if with_secret and self.password:
            conn += f",password={self.password}"
        return {"type": "redis", "connection_string": conn}

    def _doc(self, with_secret: bool) -> dict[str, Any]:
        """Feast's repository settings of this store (what ``feature_store.yaml`` holds)."""
        return {
            "project": self.project,
            "provider": "local",
            "registry": str(self.registry),
            "online_store": self._online_store(with_secret),
            "entity_key_serialization_version": KEY_SERIALIZATION,
        }

    def repo_config(self) -> Any:
        """Feast's ``RepoConfig`` of this store."""
        from feast.repo_config import RepoConfig

        return RepoConfig(**self._doc(with_secret=True))

    def write_feature_store_yaml(self, directory: Path) -> Path:
        """``feature_store.yaml`` for Feast's tools, password left out."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "feature_store.yaml"
        path.write_text(yaml.safe_dump(self._doc(with_secret=False), sort_keys=False))
        return path

    @classmethod
    def from_feature_store_yaml(cls, path: Path) -> OnlineStoreConfig:
        """The store a ``feature_store.yaml`` describes (what journeys name as features)."""
        try:
            doc = yaml.safe_load(path.read_text()) or {}
            store = doc["online_store"]
            registry = Path(str(doc.get("registry", path.parent / "registry.db")))
            project = str(doc.get("project", PROJECT))
            if store["type"] == "sqlite":
                db = Path(store["path"])
                db = db if db.is_absolute() else path.parent / db
                return cls(kind="sqlite", path=db, registry=registry, project=project)
            if store["type"] == "redis":
                host, _, rest = str(store["connection_string"]).partition(",")
                name, _, port = host.partition(":")
                params = dict(p.split("=", 1) for p in rest.split(",") if "=" in p)
                return cls(
                    kind="redis",
                    host=name,
                    port=int(port or 6379),
                    db=int(params.get("db", 0)),
                    password=params.get("password"),
                    registry=registry,
                    project=project,
                )
        except (OSError, KeyError, ValueError, TypeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: online_store: {exc}", field="online_store") from exc
        raise ConfigError(
            f"{path}: online_store.type: {store['type']!r} is neither sqlite nor redis",
            field="online_store.type",
        )
