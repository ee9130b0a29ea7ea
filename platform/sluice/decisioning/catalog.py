"""Offer catalogs from YAML files, or the one embedded in the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from sluice.contracts.decisions import OfferCatalog
from sluice.errors import ConfigError

BUILTIN_PREFIX = "builtin:"


def _builtin(name: str) -> str:
    ref = resources.files("sluice.decisioning") / "catalogs" / f"{name}.yaml"
    if not ref.is_file():
        raise ConfigError(f"offers: no built-in catalog named {name!r}", field="offers")
    return ref.read_text()


def load_catalog(source: str | Path = "builtin:default") -> OfferCatalog:
    """A catalog from ``builtin:NAME`` or a YAML file; errors name the file and field."""
    text_source = str(source)
    if text_source.startswith(BUILTIN_PREFIX):
        text, origin = _builtin(text_source.removeprefix(BUILTIN_PREFIX)), text_source
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"offers: catalog file {path} does not exist", field="offers")
        text, origin = path.read_text(), str(path)
    try:
        data = yaml.safe_load(text)
        return OfferCatalog.model_validate(data)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}", field="offers") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "catalog"
        raise ConfigError(
            f"{origin}: {where}: {first['msg']}", field=where, errors=len(exc.errors())
        ) from exc
