"""Loading a campaign spec from YAML: validated, relative paths resolved against the file.

The spec's types are contracts (:mod:`sluice.contracts.campaign`); this is where a file
becomes one. ``${SLUICE_HOME}`` and other environment variables in paths are expanded.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from sluice.contracts.campaign import CampaignSpec, OutboxChannel
from sluice.errors import ConfigError


def expand(path: Path | str) -> Path:
    """``${SLUICE_HOME}`` (even when unset) and other environment variables in a path."""
    from sluice.settings import get_settings

    text = str(path).replace("${SLUICE_HOME}", str(get_settings().home_dir))
    return Path(os.path.expandvars(text))


def _resolve(base: Path, spec: CampaignSpec) -> CampaignSpec:
    def rel(p: Path) -> Path:
        p = expand(p)
        return p if p.is_absolute() else (base / p).resolve()

    audience = spec.audience.model_copy(
        update={"features": rel(spec.audience.features), "customers": rel(spec.audience.customers)}
    )
    channels = {
        ch: (c.model_copy(update={"path": rel(c.path)}) if isinstance(c, OutboxChannel) else c)
        for ch, c in spec.channels.items()
    }
    offers = spec.offers if spec.offers.startswith("builtin:") else str(rel(Path(spec.offers)))
    return spec.model_copy(update={"audience": audience, "channels": channels, "offers": offers})


def load_spec(path: Path) -> CampaignSpec:
    """Read and validate a campaign spec; errors name the file and the field."""
    if not path.is_file():
        raise ConfigError(f"{path}: campaign spec not found", field="spec")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}", field="spec") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a campaign spec is a mapping", field="spec")
    try:
        spec = CampaignSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError.invalid(str(path), exc) from exc
    return _resolve(path.parent.resolve(), spec)
