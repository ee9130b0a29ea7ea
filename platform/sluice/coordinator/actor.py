"""The coordinator as a named, detached Ray actor that restarts forever.

One coordinator per run id (``sluice-coordinator:<run id>`` in namespace ``sluice``). It
outlives the driver that created it, and Ray restarts it after a crash
(``max_restarts=-1``) and retries the call that was in flight (``max_task_retries=-1``);
since every decision it made is in the database, a retried batch changes nothing twice.

Batches are handled one at a time; ``ping`` and ``pid`` run in a separate ``control``
concurrency group, so a health check answers while a batch is being delivered.

No secret travels as an actor argument (they are visible to anyone who can list the
cluster's actors): the unsubscribe keyring is read in the actor, and the database URL
goes without its password, which the actor finds in its own environment
(:func:`sluice.store.db.with_password`, or libpq's ``PGPASSWORD`` / ``~/.pgpass``).
"""

from __future__ import annotations

import contextlib
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray

from sluice.contracts.campaign import CampaignSpec
from sluice.contracts.clock import Clock
from sluice.coordinator.core import CoordinatorCore
from sluice.store.db import with_password, without_password

NAMESPACE = "sluice"


class CoordinatorActor:
    def __init__(
        self,
        run_id: str,
        spec_json: str,
        dry_run: bool,
        database_url: str,
        home: str,
        decision_date: date,
        sample_path: str | None,
        clock: Clock,
    ) -> None:
        from sluice.channels.unsubscribe import secret

        spec = CampaignSpec.model_validate_json(spec_json)
        self.core = CoordinatorCore(
            run_id,
            spec,
            dry_run,
            with_password(database_url),  # from this process's environment
            secret(Path(home)),  # read here, from this process's environment or home
            decision_date,
            sample_path,
            clock,
        )

    @ray.method(concurrency_group="control")
    def ping(self) -> str:
        return self.core.ping()

    @ray.method(concurrency_group="control")
    def pid(self) -> int:
        import os

        return os.getpid()

    @ray.method(concurrency_group="control")
    def channels_down(self) -> dict[str, str]:
        return dict(self.core.deliverer.down)

    def submit(self, table: pa.Table) -> dict[str, int]:
        return self.core.submit(table)

    def resume(self) -> dict[str, int]:
        return self.core.resume()


def actor_name(run_id: str) -> str:
    return f"sluice-coordinator:{run_id}"


def coordinator_for(
    run_id: str,
    spec: CampaignSpec,
    dry_run: bool,
    database_url: str,
    home: Path,
    decision_date: date,
    sample_path: str | None,
    clock: Clock,
) -> Any:
    """The run's coordinator: the live one if it exists, else a new one."""
    # Concurrency groups can only be declared here, not in .options().
    remote = ray.remote(concurrency_groups={"control": 1})(CoordinatorActor)  # type: ignore[call-overload]
    return remote.options(
        name=actor_name(run_id),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        max_task_retries=-1,
        num_cpus=0,
    ).remote(
        *actor_args(run_id, spec, dry_run, database_url, home, decision_date, sample_path, clock)
    )


def actor_args(
    run_id: str,
    spec: CampaignSpec,
    dry_run: bool,
    database_url: str,
    home: Path,
    decision_date: date,
    sample_path: str | None,
    clock: Clock,
) -> tuple[Any, ...]:
    """What :class:`CoordinatorActor` is created with: no secret (see the module
    docstring), so the database URL goes without its password."""
    return (
        run_id,
        spec.model_dump_json(by_alias=True),
        dry_run,
        without_password(database_url),
        str(home),
        decision_date,
        sample_path,
        clock,
    )


def stop_coordinator(run_id: str) -> None:
    with contextlib.suppress(ValueError):
        ray.kill(ray.get_actor(actor_name(run_id), namespace=NAMESPACE), no_restart=True)
