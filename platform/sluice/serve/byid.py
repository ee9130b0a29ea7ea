"""Score jobs by customer id: their features from the online store, in the deployment
that scores.

:func:`resolve` turns every by-id job of a batch into an ordinary job (the matrix encoded
from the stored rows, exactly as batch scoring encodes the same rows) with one read of
the online store for all their ids, or into the error that answers it: 404 for an id the
store does not hold, 409 for stale rows (unless the job allows them) or rows dated after
the job's time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sluice.contracts.clock import Clock
from sluice.contracts.feature_contract import FeatureContract
from sluice.errors import SluiceError, UnavailableError
from sluice.online.lookup import OnlineFeatures, Wanted
from sluice.serve.engine_types import ScoreJob


def resolve(
    jobs: Sequence[ScoreJob],
    features: OnlineFeatures | None,
    contract: FeatureContract,
    clock: Clock,
) -> list[ScoreJob | SluiceError]:
    """Each job ready to predict, or its error (jobs with a matrix pass through)."""
    out: list[ScoreJob | SluiceError] = list(jobs)
    by_id = [i for i, j in enumerate(jobs) if j.matrix is None]
    if not by_id:
        return out
    if features is None:
        for i in by_id:
            out[i] = UnavailableError(
                "customer_ids: this service has no online store", field="customer_ids"
            )
        return out
    now = clock.now()
    wanted = [Wanted(jobs[i].ids, jobs[i].at or now, jobs[i].allow_stale) for i in by_id]
    try:
        fetched = features.lookup_many(wanted)
    except SluiceError as exc:
        for i in by_id:
            out[i] = exc
        return out
    for i, rows in zip(by_id, fetched, strict=True):
        failed = next((f.error for f in rows if f.error is not None), None)
        if failed is not None:
            out[i] = failed
            continue
        ready = [f.row for f in rows if f.row is not None]
        out[i] = replace(
            jobs[i],
            matrix=contract.encode_rows(ready),
            features_at=tuple(f.features_at for f in rows),
            stale=tuple(f.stale for f in rows),
            rows=tuple(ready) if jobs[i].return_rows else (),
        )
    return out
