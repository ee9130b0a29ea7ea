"""Offer catalogs from YAML files, or the one embedded in the package.

An offer's validity may be written relative to the decision date (``valid_until: +90d``),
so a catalog is read once into a :class:`CatalogSource` and resolved *for* a decision
date: a campaign run for its stored decision date, the decision service for the day of
each request. A catalog with absolute dates only resolves the same on every day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sluice.contracts.decisions import OfferCatalog
from sluice.contracts.offers import ANCHOR, RELATIVE_DAY
from sluice.errors import ConfigError

BUILTIN_PREFIX = "builtin:"


def _builtin(name: str) -> str:
    ref = resources.files("sluice.decisioning") / "catalogs" / f"{name}.yaml"
    if not ref.is_file():
        raise ConfigError(f"offers: no built-in catalog named {name!r}", field="offers")
    return ref.read_text()


@dataclass(frozen=True)
class CatalogSource:
    """A catalog as written: parsed once, resolved per decision date."""

    origin: str
    data: Any
    relative: bool
    """Whether any offer's validity is written relative to the decision date."""
    _resolved: dict[date | None, OfferCatalog] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def read(cls, source: str | Path = "builtin:default") -> CatalogSource:
        """Read ``builtin:NAME`` or a YAML file; errors name the file and the field."""
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
        except yaml.YAMLError as exc:
            raise ConfigError(f"{origin}: not valid YAML: {exc}", field="offers") from exc
        offers = data.get("offers") if isinstance(data, dict) else None
        relative = any(
            isinstance(o.get(k), str) and RELATIVE_DAY.match(o[k]) is not None
            for o in (offers if isinstance(offers, list) else [])
            if isinstance(o, dict)
            for k in ("valid_from", "valid_until")
        )
        source_ = cls(origin, data, relative)
        if not relative:
            source_.on(None)  # validate now: a broken file fails where it is named
        return source_

    def on(self, decision_date: date | None) -> OfferCatalog:
        """The catalog with every relative day resolved against ``decision_date``."""
        key = decision_date if self.relative else None
        cached = self._resolved.get(key)
        if cached is not None:
            return cached
        try:
            catalog = OfferCatalog.model_validate(self.data, context={ANCHOR: key})
        except ValidationError as exc:
            raise ConfigError.invalid(self.origin, exc, "catalog") from exc
        if len(self._resolved) > 32:
            self._resolved.clear()
        self._resolved[key] = catalog
        return catalog


def load_catalog(
    source: str | Path = "builtin:default", decision_date: date | None = None
) -> OfferCatalog:
    """A catalog from ``builtin:NAME`` or a YAML file, resolved for ``decision_date``
    (needed when an offer's validity is relative to it); errors name the file and field."""
    return CatalogSource.read(source).on(decision_date)
