"""Loading a journey spec from YAML: validated, relative paths resolved against the file."""

from __future__ import annotations

from pathlib import Path

from sluice.campaign.spec import expand, read_spec
from sluice.contracts.campaign import OutboxChannel
from sluice.contracts.journey import JourneySpec


def _resolve(base: Path, spec: JourneySpec, home: Path) -> JourneySpec:
    def rel(p: Path) -> Path:
        p = expand(p, home)
        return p if p.is_absolute() else (base / p).resolve()

    channels = {
        ch: (c.model_copy(update={"path": rel(c.path)}) if isinstance(c, OutboxChannel) else c)
        for ch, c in spec.channels.items()
    }
    offers = spec.offers if spec.offers.startswith("builtin:") else str(rel(Path(spec.offers)))
    entry = spec.entry
    if entry.schedule is not None:
        entry = entry.model_copy(
            update={
                "schedule": entry.schedule.model_copy(
                    update={"audience": rel(entry.schedule.audience)}
                )
            }
        )
    return spec.model_copy(
        update={
            "customers": rel(spec.customers),
            "features": rel(spec.features) if spec.features else None,
            "channels": channels,
            "offers": offers,
            "entry": entry,
        }
    )


def load_journey(path: Path, home: Path) -> JourneySpec:
    """Read and validate a journey spec; errors name the file and the field. ``home``:
    the Sluice home that ``${SLUICE_HOME}`` in its paths stands for."""
    spec = read_spec(path, JourneySpec, "journey spec")
    return _resolve(path.parent.resolve(), spec, home)
