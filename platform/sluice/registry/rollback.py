"""Rollback: point an alias back at the version it held before, in a person's name.

Recorded as ``rolled_back.*`` tags on the version left behind and in the operations log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sluice.errors import ConflictError
from sluice.registry.registry import CHALLENGER, CHAMPION, Registry
from sluice.registry.uri import ModelURI
from sluice.store.db import connect
from sluice.store.operations import OperationsLog


@dataclass(frozen=True)
class Rollback:
    alias: str
    from_version: str
    to_version: str


def rollback(
    by: str,
    *,
    alias: str = CHAMPION,
    name: str | None = None,
    reason: str = "",
    registry: Registry,
    only_if: str | None = None,
) -> Rollback | None:
    """Point ``alias`` back at the version it held before the current one.

    A challenger with no earlier version falls back to the champion's version (the
    canary then serves what main serves). With ``only_if``, nothing happens unless the
    alias still points at that version (a guardrail must not undo a newer decision);
    None is returned then."""
    model_name = name or registry.settings.model_name
    current = registry.resolve(ModelURI(model_name, alias=alias)).version
    if only_if is not None and current != only_if:
        return None
    earlier = [v for v in registry.alias_history(model_name, alias) if v != current]
    rolled = {
        v.version for v in registry.versions(model_name) if v.tags.get(f"rolled_back.{alias}")
    }
    candidates = [v for v in earlier if v not in rolled]
    if candidates:
        target = candidates[-1]
    elif alias == CHALLENGER:
        target = registry.resolve(ModelURI(model_name, alias=CHAMPION)).version
    else:
        raise ConflictError(
            f"{alias} of {model_name} has no earlier version to roll back to", field="alias"
        )
    registry.set_alias(model_name, alias, target)
    stamp = datetime.now(UTC).isoformat()
    client = registry.client
    client.set_model_version_tag(model_name, current, f"rolled_back.{alias}", stamp)
    client.set_model_version_tag(model_name, current, f"rolled_back.{alias}_by", by)
    if reason:
        client.set_model_version_tag(model_name, current, f"rolled_back.{alias}_reason", reason)
    OperationsLog(connect(registry.settings.effective_database_url)).record(
        "rollback",
        f"model:{model_name}/{current}",
        by,
        {"alias": alias, "from": current, "to": target, "reason": reason},
    )
    return Rollback(alias, current, target)
