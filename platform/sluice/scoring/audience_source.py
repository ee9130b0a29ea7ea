"""A Ray Data datasource for audiences that reads every file with its own schema.

Ray's Parquet reader unifies the schemas of all files first and fails the whole read
when one file stores a column with another type. An audience directory often mixes
uploads, and one malformed file must not sink the job: here each fragment (a run of
row groups of one file) is read with the columns it has, and the feature contract
decides row by row what is valid. Files that cannot be opened at all are reported,
not read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from sluice.errors import InputError

MIN_ROWS_PER_TASK = 32_768


@dataclass(frozen=True)
class Fragment:
    path: str
    row_groups: tuple[int, ...]
    rows: int
    size_bytes: int


@dataclass
class AudienceListing:
    """The audience's files, cut into fragments, and the files that could not be opened."""

    filesystem: pafs.FileSystem
    fragments: list[Fragment] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.fragments)


def _files(fs: pafs.FileSystem, root: str) -> list[str]:
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise InputError(f"--audience: {root} does not exist", field="audience")
    if info.type == pafs.FileType.File:
        return [root]
    found = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    names = [
        f.path
        for f in found
        if f.type == pafs.FileType.File
        and f.base_name.endswith((".parquet", ".pq"))
        and not f.base_name.startswith(("_", "."))
    ]
    if not names:
        raise InputError(f"--audience: no Parquet files under {root}", field="audience")
    return sorted(names)


def list_audience(uri: str, target_tasks: int) -> AudienceListing:
    """Open every file's footer and cut the files into about ``target_tasks`` fragments."""
    fs, root = pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), str(uri))
    listing = AudienceListing(filesystem=fs)
    metas: list[tuple[str, pq.FileMetaData]] = []
    for path in _files(fs, root):
        try:
            with fs.open_input_file(path) as handle:
                metas.append((path, pq.ParquetFile(handle).metadata))
        except (OSError, pa.ArrowException) as exc:
            listing.unreadable[path] = str(exc)
    total = sum(m.num_rows for _, m in metas)
    per_task = max(MIN_ROWS_PER_TASK, math.ceil(total / max(target_tasks, 1)))
    for path, meta in metas:
        groups: list[int] = []
        rows = size = 0
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            groups.append(g)
            rows += rg.num_rows
            size += rg.total_byte_size
            if rows >= per_task:
                listing.fragments.append(Fragment(path, tuple(groups), rows, size))
                groups, rows, size = [], 0, 0
        if groups:
            listing.fragments.append(Fragment(path, tuple(groups), rows, size))
    return listing


def _read(
    fs: pafs.FileSystem, fragment: Fragment, wanted: tuple[str, ...], id_column: str
) -> Iterator[pa.Table]:
    with fs.open_input_file(fragment.path) as handle:
        pf = pq.ParquetFile(handle)
        present = set(pf.schema_arrow.names)
        # Without the id column every row is quarantined: keep all columns for the record.
        columns = [c for c in wanted if c in present] if id_column in present else None
        for g in fragment.row_groups:
            yield pf.read_row_group(g, columns=columns)


class AudienceDatasource(Datasource):
    """Reads the fragments of an :class:`AudienceListing`, projecting contract columns."""

    def __init__(self, listing: AudienceListing, columns: tuple[str, ...], id_column: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._listing = listing
        self._columns = columns
        self._id_column = id_column

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(f.size_bytes for f in self._listing.fragments)

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        fs, cols, id_col = self._listing.filesystem, self._columns, self._id_column
        tasks = []
        for frag in self._listing.fragments:
            meta = BlockMetadata(
                num_rows=frag.rows,
                size_bytes=frag.size_bytes,
                exec_stats=None,
                input_files=(frag.path,),
            )
            read = partial(_read, fs, frag, cols, id_col)
            tasks.append(ReadTask(read, meta, per_task_row_limit=per_task_row_limit))
        return tasks
