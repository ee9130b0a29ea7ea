"""Point-in-time-correct features and labels as of a cutoff.

Features read only what happened strictly before the cutoff (``t < cutoff``, the
cutoff being 00:00 UTC of the given day); labels count purchases in
``cutoff <= t < cutoff + horizon``. Labels are written only when the history covers the
whole label window. All aggregation is vectorised (``np.bincount`` over customer
positions), so a million customers take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa

from sluice.contracts.feature_contract import FeatureContract
from sluice.contracts.propensity import PROPENSITY_V1
from sluice.data.population import US_PER_DAY, day_us
from sluice.errors import InputError
from sluice.features.log_features import LOG_FEATURES, log_features
from sluice.features.sources import KIND_CODES, History

LABEL_COLUMNS = ("label", "label_purchases", "label_revenue")
_SENT, _OPEN, _CLICK, _VISIT = (
    KIND_CODES[k] for k in ("email_sent", "email_open", "email_click", "web_visit")
)


@dataclass(frozen=True)
class FeatureBuild:
    """A feature table and what it took to make it."""

    table: pa.Table
    cutoff: date
    horizon_days: int
    labelled: bool
    """False when the history ends before the label window does."""


def _days_since(cut: int, last: np.ndarray) -> np.ndarray:
    out = (cut - last) / US_PER_DAY
    out[last == np.iinfo(np.int64).min] = np.nan
    return out


def _last(owner: np.ndarray, ts: np.ndarray, n: int) -> np.ndarray:
    last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, owner, ts)
    return last


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, np.minimum(num / np.maximum(den, 1), 1.0), np.nan)


def _purchase_features(h: History, cut: int, n: int) -> dict[str, np.ndarray]:
    seen = (h.tx_us < cut) & (h.tx_amount > 0)
    owner, ts, amount = h.tx_owner[seen], h.tx_us[seen], h.tx_amount[seen]
    out: dict[str, np.ndarray] = {
        "recency_days": _days_since(cut, _last(owner, ts, n)),
        "frequency_lifetime": np.bincount(owner, minlength=n),
        "monetary_lifetime": np.bincount(owner, weights=amount, minlength=n),
    }
    for days in (30, 90, 365):
        m = ts >= cut - days * US_PER_DAY
        out[f"frequency_{days}d"] = np.bincount(owner[m], minlength=n)
        out[f"monetary_{days}d"] = np.bincount(owner[m], weights=amount[m], minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["avg_order_value_365d"] = np.where(
            out["frequency_365d"] > 0, out["monetary_365d"] / out["frequency_365d"], np.nan
        )
    signup = np.minimum(h.signup_us, cut)
    out["tenure_days"] = np.floor((cut - signup) / US_PER_DAY).astype(np.int64)
    return out


def _engagement_features(h: History, cut: int, n: int) -> dict[str, np.ndarray]:
    names = (
        "email_sends_90d",
        "email_open_rate_90d",
        "email_click_rate_90d",
        "web_visits_30d",
        "web_visits_90d",
        "days_since_engagement",
    )
    if h.ev_owner is None or h.ev_us is None or h.ev_kind is None:
        return {name: np.full(n, np.nan) for name in names}
    seen = h.ev_us < cut
    owner, ts, kind = h.ev_owner[seen], h.ev_us[seen], h.ev_kind[seen]
    recent = ts >= cut - 90 * US_PER_DAY

    def count(code: int, mask: np.ndarray) -> np.ndarray:
        sel = mask & (kind == code)
        return np.bincount(owner[sel], minlength=n)

    sends = count(_SENT, recent)
    engaged = kind != _SENT
    return {
        "email_sends_90d": sends,
        "email_open_rate_90d": _ratio(count(_OPEN, recent), sends),
        "email_click_rate_90d": _ratio(count(_CLICK, recent), sends),
        "web_visits_30d": count(_VISIT, ts >= cut - 30 * US_PER_DAY),
        "web_visits_90d": count(_VISIT, recent),
        "days_since_engagement": _days_since(cut, _last(owner[engaged], ts[engaged], n)),
    }


def _labels(h: History, cut: int, horizon_days: int, n: int) -> dict[str, np.ndarray]:
    window = (h.tx_us >= cut) & (h.tx_us < cut + horizon_days * US_PER_DAY) & (h.tx_amount > 0)
    purchases = np.bincount(h.tx_owner[window], minlength=n)
    revenue = np.bincount(h.tx_owner[window], weights=h.tx_amount[window], minlength=n)
    return {
        "label": (purchases > 0).astype(np.int8),
        "label_purchases": purchases,
        "label_revenue": revenue,
    }


def build_features(
    history: History,
    cutoff: date,
    horizon_days: int = 90,
    contract: FeatureContract = PROPENSITY_V1,
) -> FeatureBuild:
    """Features of every customer known before ``cutoff``, plus labels when observable."""
    if horizon_days < 1:
        raise InputError("horizon_days: must be at least 1", field="horizon_days")
    cut = day_us(cutoff)
    n = len(history.customer_ids)
    values: dict[str, np.ndarray | pa.Array] = {
        **_purchase_features(history, cut, n),
        **_engagement_features(history, cut, n),
        "country": history.country,
    }
    if set(contract.names) & set(LOG_FEATURES):
        values.update(log_features(history, cut, n, horizon_days))
    unknown = [name for name in contract.names if name not in values]
    if unknown:
        raise InputError(
            f"contract: {contract.key} names feature(s) {', '.join(unknown)} that "
            "`features build` does not compute",
            field=unknown[0],
        )
    schema = contract.arrow_schema()
    columns: dict[str, pa.Array] = {contract.id_column: history.customer_ids}
    for spec in contract.features:
        raw = values[spec.name]
        if isinstance(raw, pa.Array):
            columns[spec.name] = raw.cast(spec.arrow_type)
        elif spec.arrow_type == pa.int64():
            columns[spec.name] = pa.array(
                raw.astype(np.float64), pa.float64(), from_pandas=True
            ).cast(pa.int64())
        else:
            columns[spec.name] = pa.array(raw.astype(np.float64), pa.float64(), from_pandas=True)
    labelled = cut + horizon_days * US_PER_DAY <= history.data_end_us
    fields = list(schema)
    if labelled:
        for name, arr in _labels(history, cut, horizon_days, n).items():
            columns[name] = pa.array(arr)
            fields.append(pa.field(name, columns[name].type))
    metadata = {
        b"sluice.feature_contract": contract.key.encode(),
        b"sluice.cutoff": cutoff.isoformat().encode(),
        b"sluice.horizon_days": str(horizon_days).encode(),
        b"sluice.labelled": b"true" if labelled else b"false",
    }
    table = pa.table(columns, schema=pa.schema(fields, metadata=metadata))
    return FeatureBuild(table=table, cutoff=cutoff, horizon_days=horizon_days, labelled=labelled)


def write_synthetic_features(
    data: Path, cutoff: date, out: Path, horizon_days: int = 90, row_group_size: int = 65_536
) -> int:
    """Features of the synthetic base in ``data`` at ``cutoff`` (labelled when the horizon
    is in its history), written to ``out`` as Parquet; returns the row count."""
    import pyarrow.parquet as pq

    from sluice.features.sources import load_synthetic

    c = day_us(cutoff)
    built = build_features(load_synthetic(data, c, c + horizon_days * US_PER_DAY), cutoff)
    pq.write_table(built.table, out, row_group_size=row_group_size)
    return int(built.table.num_rows)
