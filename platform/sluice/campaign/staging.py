"""The run's staging area: candidates and quarantined rows of pass 1, on disk.

The sink writes one file per task (retries overwrite their own file) and reports
counts and the distinct copy keys, so the copy step never reads the candidates back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from ray.data import Datasink
from ray.data.block import Block

from sluice.campaign.candidates import KEY_COLUMNS


@dataclass
class StageReport:
    scored: int = 0
    quarantined: int = 0
    keys: Counter[tuple[str, ...]] = field(default_factory=Counter)
    """Candidates per copy key (KEY_COLUMNS), for the copy step."""
    reasons: dict[str, int] = field(default_factory=dict)


class CandidateSink(Datasink[StageReport]):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.report = StageReport()

    def on_write_start(self, schema: Any = None) -> None:
        for sub in ("candidates", "quarantine"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def write(self, blocks: Iterable[Block], ctx: Any) -> StageReport:
        report = StageReport()
        writers: dict[str, pq.ParquetWriter] = {}
        name = f"part-{ctx.task_idx:05d}.parquet"
        try:
            for block in blocks:
                table = block if isinstance(block, pa.Table) else pa.Table.from_batches([block])
                bad = pc.is_valid(table.column("reason"))
                good = table.filter(pc.invert(bad))
                quarantined = table.filter(bad).select(["customer_id", "reason", "record"])
                for kind, part in (("candidates", good), ("quarantine", quarantined)):
                    if part.num_rows:
                        if kind not in writers:
                            writers[kind] = pq.ParquetWriter(self.root / kind / name, part.schema)
                        writers[kind].write_table(part)
                report.scored += good.num_rows
                report.quarantined += quarantined.num_rows
                live = good.filter(
                    pc.and_(
                        pc.is_valid(good.column("offer_id")),
                        pc.not_equal(good.column("arm"), "holdout"),
                    )
                )
                if live.num_rows:
                    keyed = (
                        live.select(list(KEY_COLUMNS))
                        .group_by(list(KEY_COLUMNS))
                        .aggregate([([], "count_all")])
                    )
                    for r in keyed.to_pylist():
                        n = r.pop("count_all")
                        report.keys[tuple(r[c] for c in KEY_COLUMNS)] += n
        finally:
            for w in writers.values():
                w.close()
        return report

    def on_write_complete(self, write_result: Any) -> None:
        total = StageReport()
        for part in write_result.write_returns:
            total.scored += part.scored
            total.quarantined += part.quarantined
            total.keys.update(part.keys)
        self.report = total
