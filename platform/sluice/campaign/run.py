"""``sluice campaign run``: a campaign from spec to delivered messages, resumable.

1. The run is registered with its spec; what it resolves on first start (the concrete
   model version, the decision date) is stored, so a rerun of the run id repeats the
   same decisions.
2. Pass 1 (Ray Data) scores, decides and keys the audience into the run's staging area.
3. Copy: one draft per copy key (approved copy, or the LLM with approved fallback).
4. Pass 2 attaches the copy and streams candidate batches to the run's coordinator, two
   batches in flight; the driver never sends anything itself.
5. The coordinator delivers what is due; the funnel is read back from the database.

Killing the driver or the coordinator at any point and running the same run id again
sends nothing twice and loses nothing.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, cast

from sluice.campaign.candidates import CandidateTask, prepare_candidates, slim_profiles
from sluice.campaign.copy import attach_copy, drafts_for
from sluice.campaign.spec import load_spec
from sluice.contracts.campaign import CampaignSpec
from sluice.contracts.clock import Clock
from sluice.coordinator.actor import coordinator_for, stop_coordinator
from sluice.decisioning.catalog import load_catalog
from sluice.drift.measure import DriftLimits, measure_run_drift
from sluice.errors import ConfigError, InputError
from sluice.generation.cache import DraftCache
from sluice.privatefs import private_dir
from sluice.registry.registry import Registry
from sluice.runids import check_run_id
from sluice.scoring.predictor import prepare_predictor
from sluice.settings import SluiceSettings
from sluice.store.audit import AuditStore
from sluice.store.db import connect
from sluice.store.runs import Runs

log = logging.getLogger("sluice.campaign")
IN_FLIGHT = 2


@dataclass
class CampaignResult:
    run_id: str
    dry_run: bool
    funnel: dict[str, Any]
    seconds: float
    generation: dict[str, Any] | None = None
    sample: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def default_run_id(spec: CampaignSpec, dry_run: bool, clock: Clock) -> str:
    stamp = f"{clock.now():%Y%m%d-%H%M%S}"
    return f"{spec.campaign_id}-{'dry-' if dry_run else ''}{stamp}"


def run_dir(home: Path, run_id: str) -> Path:
    """The run's work directory, ``home/runs/RUN_ID``: InputError (field ``run_id``) for
    anything but a run id, or a path that resolves outside ``home/runs``."""
    runs = (home / "runs").resolve()
    work = (runs / check_run_id(run_id)).resolve()
    if work.parent != runs:
        raise InputError(f"run_id: {run_id!r} leads outside {runs}", field="run_id")
    return work


def run_campaign(
    spec_path: Path,
    run_id: str | None = None,
    dry_run: bool | None = None,
    progress: bool = False,
    *,
    settings: SluiceSettings,
) -> CampaignResult:
    """Run (or resume) a campaign; see the module docstring. ``settings`` (built by the
    caller) say where the stores are and which clock business time comes from."""
    import ray
    import ray.data

    from sluice.runtime import ensure_ray
    from sluice.scoring.audience_source import AudienceDatasource, list_audience
    from sluice.scoring.job import _configure_progress

    started = time.perf_counter()
    if run_id is not None:
        check_run_id(run_id)  # before anything else: it names directories
    spec = load_spec(spec_path, settings.home_dir)
    dry = spec.dry_run if dry_run is None else dry_run
    clock = settings.clock
    run_id = run_id if run_id is not None else default_run_id(spec, dry, clock)
    work = run_dir(settings.home_dir, run_id)
    database_url = settings.effective_database_url
    runs = Runs(connect(database_url), clock)
    registry = Registry(settings)
    record = runs.get(run_id)
    if record is not None and record.context:
        context = record.context
    else:
        info = registry.resolve(spec.model)
        context = {
            "model": f"{info.name}/{info.version}",
            "decision_date": (spec.decision_date or clock.today()).isoformat(),
        }
        if spec.canary is not None:
            challenger = registry.resolve(spec.canary.model)
            context["canary_model"] = f"{challenger.name}/{challenger.version}"
    record = runs.start(run_id, spec.campaign_id, spec.public(), dry, context)
    model = registry.load(context["model"])
    canary_model = registry.load(context["canary_model"]) if "canary_model" in context else None
    if canary_model is not None and canary_model.contract.key != model.contract.key:
        raise ConfigError(
            f"canary.model: {canary_model.label} uses feature contract "
            f"{canary_model.contract.key}, the campaign's model {model.contract.key}",
            field="canary.model",
        )
    decision_date = date.fromisoformat(context["decision_date"])
    catalog = load_catalog(spec.offers, decision_date)
    private_dir(work)  # staged candidates and the dry-run sample hold customer data
    stage = work / "stage"
    shutil.rmtree(stage, ignore_errors=True)

    ensure_ray()
    _configure_progress(progress)
    coordinator = coordinator_for(
        run_id,
        spec,
        dry,
        database_url,
        settings.home_dir,
        decision_date,
        str(work / "dry-run-sample.jsonl") if dry else None,
        clock,
    )
    ray.get(coordinator.ping.remote())

    # Pass 1: candidates.
    listing = list_audience(
        str(spec.audience.features),
        target_tasks=4 * max(int(ray.cluster_resources().get("CPU", 1)), 1),
    )
    if not listing.fragments:
        raise InputError(
            f"audience.features: no readable Parquet in {spec.audience.features}",
            field="audience.features",
        )
    profiles = ray.put(slim_profiles(spec.audience.customers))
    task = CandidateTask(
        run_id=run_id,
        campaign_id=spec.campaign_id,
        holdout_pct=spec.holdout_pct,
        contract=model.contract,
        predictor=prepare_predictor(model, "auto", settings.home_dir / "cache" / "compiled"),
        model_name=model.name,
        model_version=model.version,
        catalog=catalog,
        decision_date=decision_date,
        channels=tuple(c.value for c in spec.channels),
        variants=spec.copy_.variants,
        profiles=profiles,
        salt=spec.arm_salt,
        canary_pct=spec.canary.share_pct if spec.canary else 0.0,
        canary_predictor=(
            prepare_predictor(canary_model, "auto", settings.home_dir / "cache" / "compiled")
            if canary_model is not None
            else None
        ),
        canary_model_version=canary_model.version if canary_model is not None else None,
    )
    from sluice.campaign.staging import CandidateSink

    contract = model.contract
    source = AudienceDatasource(listing, (contract.id_column, *contract.names), contract.id_column)
    ds = ray.data.read_datasource(source, override_num_blocks=max(len(listing.fragments), 1))
    if spec.audience.limit:
        # The same rows on every rerun of the run id.
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        ds = ds.limit(spec.audience.limit)
    sink = CandidateSink(stage)
    ds.map_batches(
        prepare_candidates,
        fn_kwargs={"task": task},
        batch_format="pyarrow",
        batch_size=None,
        zero_copy_batch=True,
    ).write_datasink(sink)
    staged = sink.report
    measure_run_drift(
        run_id,
        spec.audience.features,
        stage / "candidates",
        model,
        canary_model,
        database_url,
        DriftLimits(settings.drift_warn, settings.drift_block),
    )

    # Copy, once per key.
    cache = DraftCache(settings.home_dir / "cache" / "drafts.sqlite")
    drafts, generation = drafts_for(staged.keys, spec, catalog, cache, settings.home_dir)
    drafts_json = {k: d.model_dump_json() for k, d in drafts.items()}

    # Pass 2: attach copy, stream to the coordinator.
    counts: dict[str, int] = {}
    if staged.scored:
        candidates = ray.data.read_parquet(str(stage / "candidates"))
        with_copy = candidates.map_batches(
            cast(Any, attach_copy),
            fn_kwargs={"mode": spec.copy_.mode, "drafts": drafts_json},
            batch_format="pyarrow",
            batch_size=spec.batch_size,
        )
        pending: list[Any] = []
        for batch in with_copy.iter_batches(
            batch_size=spec.batch_size, batch_format="pyarrow", prefetch_batches=1
        ):
            pending.append(coordinator.submit.remote(batch))
            if len(pending) >= IN_FLIGHT:
                _add(counts, ray.get(pending.pop(0)))
        for ref in pending:
            _add(counts, ray.get(ref))
    _add(counts, ray.get(coordinator.resume.remote()))
    down = ray.get(coordinator.channels_down.remote())
    for channel, cause in down.items():
        log.error("channel %s is down; its messages stay reserved for a resume: %s", channel, cause)

    funnel = {
        "run_id": run_id,
        "audience": staged.scored + staged.quarantined,
        "quarantined": staged.quarantined,
        **AuditStore(connect(database_url), clock).funnel(run_id),
        "channels_down": down,
    }
    runs.finish(run_id, funnel)
    stop_coordinator(run_id)
    return CampaignResult(
        run_id=run_id,
        dry_run=dry,
        funnel=funnel,
        seconds=round(time.perf_counter() - started, 2),
        generation=generation.figures() if generation else None,
        sample=str(work / "dry-run-sample.jsonl") if dry else None,
        extra={"batches": counts},
    )


def _add(total: dict[str, int], part: dict[str, int]) -> None:
    for k, v in part.items():
        total[k] = total.get(k, 0) + int(v)
