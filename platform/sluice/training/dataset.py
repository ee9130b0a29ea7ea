"""Labelled feature tables, read and checked against the feature contract."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sluice.contracts.feature_contract import FeatureContract
from sluice.contracts.propensity import PROPENSITY_V1
from sluice.errors import InputError


@dataclass(frozen=True)
class LabelledSet:
    """Valid rows of a labelled feature table."""

    ids: pa.Array
    X: np.ndarray
    y: np.ndarray
    quarantined: int
    """Rows left out because they broke the contract or had no 0/1 label."""
    cutoff: str | None
    """The cutoff the features were built at (from the file's metadata)."""


def table_contract(path: Path) -> FeatureContract:
    """The built-in contract a feature table says it was built under (its
    ``sluice.feature_contract`` metadata), or ``propensity@1.0.0`` when it names none
    that ships with Sluice."""
    from sluice.contracts.builtin import builtin_contract

    if not path.exists():
        raise InputError(f"--features: {path} does not exist", field="features")
    meta = pq.read_schema(path).metadata or {}
    named = builtin_contract(meta.get(b"sluice.feature_contract", b"").decode())
    return named or PROPENSITY_V1


def read_labelled(path: Path, contract: FeatureContract) -> LabelledSet:
    """Read ``path`` (a ``sluice features build`` output that has labels); a table without
    a column the contract names is refused at once, rows that break it are quarantined."""
    if not path.exists():
        raise InputError(f"--features: {path} does not exist", field="features")
    table = pq.read_table(path)
    if "label" not in table.column_names:
        raise InputError(
            f"--features: {path} has no label column; build it at a cutoff whose label "
            "window the history covers",
            field="label",
        )
    absent = [n for n in (contract.id_column, *contract.names) if n not in table.column_names]
    if absent:
        raise InputError(
            f"--features: {path} lacks column(s) {', '.join(absent)} of contract "
            f"{contract.key}; build the table for that contract or train with one it meets",
            field=absent[0],
        )
    checked = contract.validate_batch(table)
    label = pc.cast(table.column("label"), pa.float64()).to_numpy(zero_copy_only=False)
    label = np.asarray(label, dtype=np.float64)[checked.rows]
    ok = np.isin(label, (0.0, 1.0))
    meta = table.schema.metadata or {}
    cutoff = meta.get(b"sluice.cutoff")
    return LabelledSet(
        ids=checked.ids.filter(pa.array(ok)),
        X=checked.matrix[ok],
        y=label[ok].astype(np.int8),
        quarantined=checked.n_quarantined + int((~ok).sum()),
        cutoff=cutoff.decode() if cutoff else None,
    )
