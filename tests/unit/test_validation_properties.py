"""Property tests: batch validation never loses a row and never lets a bad one through."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sluice.contracts import FeatureContract, FeatureKind, FeatureSpec, NullPolicy

CONTRACT = FeatureContract(
    name="prop",
    version="0.1.0",
    features=(
        FeatureSpec(name="x", kind=FeatureKind.FLOAT, description="d", min=-5, max=5),
        FeatureSpec(
            name="n",
            kind=FeatureKind.INT,
            description="d",
            min=0,
            max=100,
            nulls=NullPolicy.MISSING,
        ),
        FeatureSpec(name="c", kind=FeatureKind.CATEGORY, description="d", categories=("p", "q")),
    ),
)

floats = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64))
ints = st.one_of(
    st.none(),
    st.floats(min_value=-10, max_value=200, allow_nan=False).map(lambda v: round(v * 2) / 2),
)
cats = st.one_of(st.none(), st.sampled_from(["p", "q", "r", ""]))
ids = st.one_of(
    st.none(),
    st.sampled_from(["a", "b", "", " ", "x y", "id-9", "\u0085x", "üé", "a\tb", "x" * 129]),
)
rows = st.lists(st.tuples(ids, floats, ints, cats), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(rows)
def test_every_row_is_either_valid_or_quarantined_and_agrees_with_the_online_model(
    data: list[tuple],
) -> None:
    table = pa.table(
        {
            "customer_id": pa.array([r[0] for r in data], pa.string()),
            "x": pa.array([r[1] for r in data], pa.float64()),
            "n": pa.array([r[2] for r in data], pa.float64()),
            "c": pa.array([r[3] for r in data], pa.string()),
        }
    )
    checked = CONTRACT.validate_batch(table)
    assert checked.n_valid + checked.n_quarantined == len(data)
    assert all(checked.quarantine.column("reason").to_pylist())
    Vector = CONTRACT.vector_model()
    valid_rows = set(checked.rows.tolist())
    for i, (cid, x, n, c) in enumerate(data):
        payload = {"customer_id": cid, "x": x, "n": None if n is None else n, "c": c}
        try:
            Vector.model_validate(payload)
            online_ok = not (isinstance(x, float) and math.isnan(x))
        except ValidationError:
            online_ok = False
        assert (i in valid_rows) == online_ok, (payload, checked.quarantine.to_pylist())
    if checked.n_valid:
        assert np.all(np.abs(checked.matrix[:, 0]) <= 5)
        n_col = checked.matrix[:, 1]
        assert np.all(
            np.isnan(n_col) | ((n_col >= 0) & (n_col <= 100) & (n_col == np.floor(n_col)))
        )
        assert set(checked.matrix[:, 2].tolist()) <= {0.0, 1.0}
