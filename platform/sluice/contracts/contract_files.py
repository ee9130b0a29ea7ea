"""Feature contracts written as data: read from YAML (or the JSON stored with models),
written back as YAML, and looked up by name among the built-in ones.

A contract file holds exactly the fields of :class:`FeatureContract` (``name``,
``version``, ``features`` with ``kind``, ``min``/``max`` or ``categories``, ``nulls``,
``description`` and the optional ``direction``)::

    name: rfm-lite
    version: 1.0.0
    features:
      - name: recency_days
        kind: float
        description: Days from the last purchase to the cutoff; missing if none.
        min: 0
        nulls: missing
        direction: decreasing

Errors name the file and the path of the field at fault, such as
``contracts/mine.yaml: features[3].max: Input should be a valid number``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sluice.contracts.feature_contract import FeatureContract
from sluice.errors import ConfigError


def field_path(loc: Sequence[str | int]) -> str:
    """A pydantic error location as a path: ``('features', 3, 'max')`` -> ``features[3].max``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "contract"


def _invalid(origin: str, exc: ValidationError) -> ConfigError:
    first = exc.errors()[0]
    where = field_path(first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    extra = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    return ConfigError(
        f"{origin}: {where}: {message}{extra}", field=where, errors=len(exc.errors())
    )


def parse_contract(data: Any, origin: str = "contract") -> FeatureContract:
    """A contract from already-parsed data (a mapping); errors name ``origin`` and the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: a feature contract is a mapping", field="contract")
    try:
        return FeatureContract.model_validate(data)
    except ValidationError as exc:
        raise _invalid(origin, exc) from exc


def load_contract_file(path: Path) -> FeatureContract:
    """Read and validate a contract file (YAML; JSON, being YAML, reads the same)."""
    if not path.is_file():
        raise ConfigError(f"{path}: feature contract not found", field="contract")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}", field="contract") from exc
    return parse_contract(data, str(path))


def contract_to_yaml(contract: FeatureContract) -> str:
    """The contract as YAML that :func:`load_contract_file` reads back to an equal
    contract; unset bounds, categories and directions are left out."""
    data = contract.model_dump(mode="json")
    for feature in data["features"]:
        for key in ("min", "max", "direction"):
            if feature[key] is None:
                del feature[key]
        if not feature["categories"]:
            del feature["categories"]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=88)


def resolve_contract(ref: str | Path) -> FeatureContract:
    """A contract file's contract, or a built-in contract by ``name`` or ``name@version``."""
    from sluice.contracts.builtin import BUILTIN_CONTRACTS, builtin_contract

    path = Path(ref)
    if path.is_file():
        return load_contract_file(path)
    found = builtin_contract(str(ref))
    if found is None:
        known = ", ".join(BUILTIN_CONTRACTS)
        raise ConfigError(
            f"{ref}: neither a contract file nor a built-in contract ({known})", field="contract"
        )
    return found
