"""``sluice data synth``: a realistic synthetic customer base, written as Parquet.

Writes ``customers.parquet`` (profiles with consent per channel), ``transactions.parquet``,
``events.parquet`` (email sends, opens, clicks, web visits), ``truth.parquet`` (the latent
propensity behind it all, for evaluation) and ``_meta.json``. Customers are produced in
chunks, each from its own seeded generator, so memory stays flat as ``customers`` grows
and the same seed always gives the same base.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sluice.data.geography import COUNTRIES, FIRST_NAMES, LAST_NAMES
from sluice.data.population import (
    US_PER_DAY,
    Population,
    day_us,
    draw_population,
    expected_purchases,
    poisson_times,
)

TS = pa.timestamp("us", tz="UTC")
BLAST_EVERY_DAYS = 21
GENERATOR_VERSION = "1"


@dataclass(frozen=True)
class SynthConfig:
    """What to generate."""

    customers: int
    end: date
    """Last day of history (exclusive end is the following midnight); see
    :class:`sluice.data.calendar.SynthCalendar` for the dates that follow from it."""
    seed: int = 7
    max_tenure_days: int = 5 * 365
    engagement_days: int = 455
    """How far back engagement events reach (covers every 90- and 30-day window plus slack)."""
    chunk_size: int = 200_000


@dataclass(frozen=True)
class SynthResult:
    out_dir: str
    customers: int
    transactions: int
    events: int
    seconds: float


def synthesize(
    cfg: SynthConfig, out_dir: Path, on_progress: Callable[[int], None] | None = None
) -> SynthResult:
    """Generate the base into ``out_dir`` (created; existing files are replaced)."""
    if cfg.customers < 1:
        raise ValueError("customers: must be at least 1")
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    end_us = day_us(cfg.end) + US_PER_DAY
    writers: dict[str, pq.ParquetWriter] = {}
    counts = {"transactions": 0, "events": 0}
    try:
        for k, start in enumerate(range(0, cfg.customers, cfg.chunk_size)):
            stop = min(start + cfg.chunk_size, cfg.customers)
            rng = np.random.default_rng([cfg.seed, k])
            pop = draw_population(
                rng, start, stop, seed=cfg.seed, end_us=end_us, max_tenure_days=cfg.max_tenure_days
            )
            customers, email_until = _customers(rng, pop, end_us)
            tables = {
                "customers": customers,
                "transactions": _transactions(rng, pop, end_us, prefix=f"t{k}-"),
                "events": _events(
                    rng, pop, email_until, end_us, cfg.engagement_days, prefix=f"e{k}-"
                ),
                "truth": _truth(pop, end_us),
            }
            for name, table in tables.items():
                if name not in writers:
                    writers[name] = pq.ParquetWriter(out_dir / f"{name}.parquet", table.schema)
                writers[name].write_table(table)
            counts["transactions"] += tables["transactions"].num_rows
            counts["events"] += tables["events"].num_rows
            if on_progress:
                on_progress(stop - start)
    finally:
        for w in writers.values():
            w.close()
    meta = {"generator_version": GENERATOR_VERSION, **asdict(cfg), "end": cfg.end.isoformat()}
    (out_dir / "_meta.json").write_text(json.dumps(meta, indent=2))
    return SynthResult(
        str(out_dir),
        cfg.customers,
        counts["transactions"],
        counts["events"],
        time.perf_counter() - started,
    )


def _ts(us: np.ndarray) -> pa.Array:
    return pa.array(us.astype(np.int64), pa.int64()).cast(TS)


def _ids(prefix: str, n: int) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(np.arange(n)), pa.string()), "")


def _consent(
    rng: np.random.Generator, pop: Population, end_us: int, p_grant: float, eligible: np.ndarray
) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """(state: True granted / False withdrawn / null never, updated_at, consent end time)."""
    n = len(pop)
    granted = eligible & (rng.random(n) < p_grant)
    granted_at = pop.signup_us + (rng.random(n) * 2 * US_PER_DAY).astype(np.int64)
    withdrawn = granted & (rng.random(n) < 0.07)
    withdrawn_at = granted_at + (rng.random(n) * np.clip(end_us - granted_at, 0, None)).astype(
        np.int64
    )
    state = pa.array(np.where(withdrawn, False, True), mask=~granted)
    updated = np.where(withdrawn, withdrawn_at, granted_at)
    until = np.where(granted, np.where(withdrawn, withdrawn_at, end_us), np.int64(0))
    return state, pa.array(updated, pa.int64(), mask=~granted).cast(TS), until


def _customers(
    rng: np.random.Generator, pop: Population, end_us: int
) -> tuple[pa.Table, np.ndarray]:
    n = len(pop)
    first = np.array(FIRST_NAMES)[rng.integers(0, len(FIRST_NAMES), n)]
    last = np.array(LAST_NAMES)[rng.integers(0, len(LAST_NAMES), n)]
    serial = rng.integers(1, 10_000, n)
    domain = np.array(["example.com", "example.net", "example.org"])[rng.integers(0, 3, n)]
    email = [
        f"{f.lower()}.{la.lower()}{s}@{d}"
        for f, la, s, d in zip(
            first.tolist(), last.tolist(), serial.tolist(), domain.tolist(), strict=True
        )
    ]
    has_phone = rng.random(n) < 0.65
    calling = np.array([COUNTRIES[c].calling_code for c in range(len(COUNTRIES))])[pop.country]
    local = rng.integers(10_000_000, 99_999_999, n)
    phone = pa.array(
        [f"+{c}555{x}" for c, x in zip(calling.tolist(), local.tolist(), strict=True)],
        mask=~has_phone,
    )
    email_state, email_at, email_until = _consent(rng, pop, end_us, 0.88, np.ones(n, bool))
    sms_state, sms_at, _ = _consent(rng, pop, end_us, 0.55, has_phone)
    push_state, push_at, _ = _consent(rng, pop, end_us, 0.30, np.ones(n, bool))
    table = pa.table(
        {
            "customer_id": pop.ids,
            "email": pa.array(email, pa.string()),
            "phone": phone,
            "first_name": pa.array(first.tolist(), pa.string()),
            "last_name": pa.array(last.tolist(), pa.string()),
            "country": pa.array([COUNTRIES[c].code for c in pop.country.tolist()], pa.string()),
            "time_zone": pa.array(pop.zone, pa.string()),
            "locale": pa.array([COUNTRIES[c].locale for c in pop.country.tolist()], pa.string()),
            "signup_date": pc.cast(_ts(pop.signup_us), pa.date32()),
            "consent_email": email_state,
            "consent_email_at": email_at,
            "consent_sms": sms_state,
            "consent_sms_at": sms_at,
            "consent_push": push_state,
            "consent_push_at": push_at,
        }
    )
    return table, email_until


def _transactions(rng: np.random.Generator, pop: Population, end_us: int, prefix: str) -> pa.Table:
    stop_pre = np.minimum(pop.churn_us, end_us)
    o1, t1 = poisson_times(rng, pop.rate, pop.signup_us, stop_pre)
    o2, t2 = poisson_times(
        rng, pop.rate * 0.15, np.maximum(pop.churn_us, pop.signup_us), np.full(len(pop), end_us)
    )
    owner, ts = np.concatenate([o1, o2]), np.concatenate([t1, t2])
    order = np.argsort(ts, kind="stable")
    owner, ts = owner[order], ts[order]
    spend_level = np.log(42.0) + 0.3 * rng.standard_normal(len(pop)) + 0.08 * pop.latent
    amount = np.round(np.exp(spend_level[owner] + 0.55 * rng.standard_normal(len(owner))), 2)
    return pa.table(
        {
            "transaction_id": _ids(prefix, len(owner)),
            "customer_id": pop.ids.take(pa.array(owner, pa.int64())),
            "timestamp": _ts(ts),
            "amount": pa.array(amount, pa.float64()),
            "currency": pa.array(np.full(len(owner), "USD"), pa.string()).dictionary_encode(),
        }
    )


def _events(
    rng: np.random.Generator,
    pop: Population,
    email_until: np.ndarray,
    end_us: int,
    days: int,
    prefix: str,
) -> pa.Table:
    n = len(pop)
    window_start = end_us - days * US_PER_DAY

    def churned(owner: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.asarray(t >= pop.churn_us[owner])

    # Email blasts go out every BLAST_EVERY_DAYS days at 14:00 UTC to everyone consenting.
    blasts = (
        np.arange(end_us - 3 * US_PER_DAY, window_start, -BLAST_EVERY_DAYS * US_PER_DAY)[::-1]
        - 10 * 3_600_000_000
    )
    consent_from = np.maximum(pop.signup_us, window_start)
    lo = np.searchsorted(blasts, consent_from)
    hi = np.searchsorted(blasts, email_until)
    per = np.clip(hi - lo, 0, None)
    send_owner = np.repeat(np.arange(n), per)
    offsets = np.arange(len(send_owner)) - np.repeat(np.cumsum(per) - per, per)
    send_t = blasts[lo[send_owner] + offsets]

    p_open = 1 / (1 + np.exp(-(-1.2 + 0.9 * pop.engagement)))
    p_open_send = p_open[send_owner] * np.where(churned(send_owner, send_t), 0.3, 1.0)
    opened = rng.random(len(send_owner)) < p_open_send
    open_owner = send_owner[opened]
    open_t = send_t[opened] + (rng.exponential(5.0, opened.sum()) * 3_600_000_000).astype(np.int64)
    p_click = 1 / (1 + np.exp(-(-1.9 + 0.7 * pop.engagement)))
    clicked = rng.random(len(open_owner)) < p_click[open_owner]
    click_owner = open_owner[clicked]
    click_t = open_t[clicked] + (rng.exponential(15.0, clicked.sum()) * 60_000_000).astype(np.int64)

    visit_rate = np.exp(-4.4 + 0.6 * pop.engagement + 0.35 * pop.latent)
    start = np.maximum(pop.signup_us, window_start)
    v1o, v1t = poisson_times(rng, visit_rate, start, np.minimum(pop.churn_us, end_us))
    v2o, v2t = poisson_times(
        rng, visit_rate * 0.2, np.maximum(pop.churn_us, start), np.full(n, end_us)
    )

    owner = np.concatenate([send_owner, open_owner, click_owner, v1o, v2o])
    ts = np.concatenate([send_t, open_t, click_t, v1t, v2t])
    kind = np.concatenate(
        [
            np.full(len(send_owner), 0, np.int8),
            np.full(len(open_owner), 1, np.int8),
            np.full(len(click_owner), 2, np.int8),
            np.full(len(v1o) + len(v2o), 3, np.int8),
        ]
    )
    keep = ts < end_us
    owner, ts, kind = owner[keep], ts[keep], kind[keep]
    order = np.argsort(ts, kind="stable")
    owner, ts, kind = owner[order], ts[order], kind[order]
    kinds = pa.array(["email_sent", "email_open", "email_click", "web_visit"], pa.string())
    return pa.table(
        {
            "event_id": _ids(prefix, len(owner)),
            "customer_id": pop.ids.take(pa.array(owner, pa.int64())),
            "kind": pa.DictionaryArray.from_arrays(pa.array(kind), kinds),
            "timestamp": _ts(ts),
        }
    )


def _truth(pop: Population, end_us: int) -> pa.Table:
    mu = expected_purchases(pop.rate, pop.signup_us, pop.churn_us, end_us, end_us + 90 * US_PER_DAY)
    return pa.table(
        {
            "customer_id": pop.ids,
            "latent_propensity": pa.array(pop.latent),
            "engagement": pa.array(pop.engagement),
            "rate_per_day": pa.array(pop.rate),
            "signup_at": _ts(pop.signup_us),
            "churn_at": _ts(pop.churn_us),
            "propensity_90d": pa.array(1.0 - np.exp(-mu)),
        }
    )
