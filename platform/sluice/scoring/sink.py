"""A Ray Data sink that writes scores and quarantined rows to separate Parquet files.

Layout under the output directory::

    scores/part-<task>.parquet      customer_id, score, model_name, model_version, scored_at
    quarantine/part-<task>.parquet  customer_id, reason, record, model_name, model_version,
                                    scored_at
    summary.json                    counts, written once every task has finished

Each write task streams its blocks into one file per kind, named by its task index, so
a retried task overwrites its own partial output instead of adding to it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from ray.data import Datasink
from ray.data.block import Block

from sluice.scoring.batch import QUARANTINE_COLUMNS, ROW_SCHEMA, SCORE_COLUMNS


@dataclass
class SinkReport:
    scored: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    """Quarantined rows per field at fault."""

    def merge(self, other: SinkReport) -> None:
        self.scored += other.scored
        self.quarantined += other.quarantined
        total = Counter(self.reasons)
        total.update(other.reasons)
        self.reasons = dict(total)


def _fields(reasons: pa.Array) -> Counter[str]:
    found: Counter[str] = Counter()
    for text in reasons.to_pylist():
        found.update({part.split(":", 1)[0].strip() for part in str(text).split("; ")})
    return found


class ScoreSink(Datasink[SinkReport]):
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.report = SinkReport()

    def on_write_start(self, schema: Any = None) -> None:
        for sub in ("scores", "quarantine"):
            (self.out_dir / sub).mkdir(parents=True, exist_ok=True)

    def write(self, blocks: Iterable[Block], ctx: Any) -> SinkReport:
        report = SinkReport()
        reasons: Counter[str] = Counter()
        writers: dict[str, pq.ParquetWriter] = {}
        name = f"part-{ctx.task_idx:05d}.parquet"
        try:
            for block in blocks:
                table = block if isinstance(block, pa.Table) else pa.Table.from_batches([block])
                table = table.cast(ROW_SCHEMA)
                bad = pc.is_valid(table.column("reason"))
                good = table.filter(pc.invert(bad)).select(list(SCORE_COLUMNS))
                quarantined = table.filter(bad).select(list(QUARANTINE_COLUMNS))
                for kind, part in (("scores", good), ("quarantine", quarantined)):
                    if part.num_rows == 0:
                        continue
                    if kind not in writers:
                        writers[kind] = pq.ParquetWriter(self.out_dir / kind / name, part.schema)
                    writers[kind].write_table(part)
                report.scored += good.num_rows
                report.quarantined += quarantined.num_rows
                if quarantined.num_rows:
                    reasons.update(_fields(quarantined.column("reason").combine_chunks()))
        finally:
            for w in writers.values():
                w.close()
        report.reasons = dict(reasons)
        return report

    def on_write_complete(self, write_result: Any) -> None:
        total = SinkReport()
        for part in write_result.write_returns:
            total.merge(part)
        self.report = total
        (self.out_dir / "summary.json").write_text(json.dumps(asdict(total), indent=2))
