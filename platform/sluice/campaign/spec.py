"""Loading a campaign spec from YAML: validated, relative paths resolved against the file.

The spec's types are contracts (:mod:`sluice.contracts.campaign`); this is where a file
becomes one. ``${SLUICE_HOME}`` and other environment variables in paths are expanded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from sluice.contracts.campaign import CampaignSpec, OutboxChannel
from sluice.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def expand(path: Path | str, home: Path) -> Path:
    """``${SLUICE_HOME}`` (the ``home`` of the settings in use, even when the variable is
    unset) and other environment variables in a path."""
    text = str(path).replace("${SLUICE_HOME}", str(home))
    return Path(os.path.expandvars(text))


def _resolve(base: Path, spec: CampaignSpec, home: Path) -> CampaignSpec:
    def rel(p: Path) -> Path:
        p = expand(p, home)
        return p if p.is_absolute() else (base / p).resolve()

    audience = spec.audience.model_copy(
        update={"features": rel(spec.audience.features), "customers": rel(spec.audience.customers)}
    )
    channels = {
        ch: (c.model_copy(update={"path": rel(c.path)}) if isinstance(c, OutboxChannel) else c)
        for ch, c in spec.channels.items()
    }
    offers = spec.offers if spec.offers.startswith("builtin:") else str(rel(Path(spec.offers)))
    copy = spec.copy_
    if copy.processor_config is not None:
        copy = copy.model_copy(update={"processor_config": rel(copy.processor_config)})
    return spec.model_copy(
        update={"audience": audience, "channels": channels, "offers": offers, "copy_": copy}
    )


def read_spec(path: Path, model: type[M], kind: str) -> M:
    """A YAML file validated as ``model``; errors name the file and the field (``kind``
    says what the file should be: "campaign spec", "journey spec")."""
    if not path.is_file():
        raise ConfigError(f"{path}: {kind} not found", field="spec")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}", field="spec") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a {kind} is a mapping", field="spec")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError.invalid(str(path), exc) from exc


def load_spec(path: Path, home: Path) -> CampaignSpec:
    """Read and validate a campaign spec; errors name the file and the field. ``home``:
    the Sluice home that ``${SLUICE_HOME}`` in its paths stands for."""
    spec = read_spec(path, CampaignSpec, "campaign spec")
    return _resolve(path.parent.resolve(), spec, home)
