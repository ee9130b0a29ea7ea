"""The vectorised campaign rules decide exactly as the online Decider does."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.contracts import Channel, DecisionContext
from sluice.decisioning import decide, load_catalog
from sluice.decisioning.vectorized import decide_batch

# Offers valid 2026-10-02 .. 2026-12-31: the sampled days fall before, inside and after.
CATALOG = load_catalog(decision_date=date(2026, 10, 2))
COUNTRIES = ["US", "DE", "FR", "GB", "JP"]
row = st.tuples(
    st.floats(0, 1),
    st.sampled_from(COUNTRIES),
    st.fixed_dictionaries({c: st.sampled_from([True, False, None]) for c in Channel}),
    st.fixed_dictionaries({c: st.booleans() for c in Channel}),
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(row, min_size=1, max_size=40),
    day=st.sampled_from([date(2026, 6, 15), date(2026, 12, 15), date(2025, 1, 1)]),
)
def test_batch_rules_equal_the_online_rules(rows: list, day: date) -> None:
    scores = np.array([r[0] for r in rows])
    batch = decide_batch(
        scores,
        pa.array([r[1] for r in rows]),
        {c: np.array([r[3][c] for r in rows]) for c in Channel},
        {c: np.array([r[2][c] is True for r in rows]) for c in Channel},
        CATALOG,
        day,
    )
    at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    for i, (score, country, consents, reach) in enumerate(rows):
        ctx = DecisionContext(
            customer_id="c",
            country=country,
            consents={c: v for c, v in consents.items() if v is not None},
            channels=tuple(c for c in Channel if reach[c]),
            at=at,
        )
        online = decide(
            ctx,
            score,
            CATALOG,
            decision_id="dec_00000000",
            model_name="m",
            model_version="1",
            now=at,
        )
        assert batch.offer_id[i].as_py() == online.offer_id
        assert batch.channel[i].as_py() == (online.channel.value if online.channel else None)
        want = ";".join(
            f"{e.offer_id}:{e.rule.value}"
            for e in sorted(online.excluded, key=lambda e: e.offer_id)
        )
        got = ";".join(sorted(p for p in batch.exclusions[i].as_py().split(";") if p))
        assert got == ";".join(sorted(want.split(";"))) if want else got == ""
        if online.offer_id is None:
            assert np.isnan(batch.expected_value[i])
        else:
            assert batch.expected_value[i] == online.expected_value
