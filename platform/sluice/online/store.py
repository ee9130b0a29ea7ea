"""Reading and writing one feature contract's view in a Feast online store.

Reads go through Feast's online store classes (``SqliteOnlineStore``,
``RedisOnlineStore``): one query (SQLite) or one pipeline of ``HMGET`` (Redis) for a
whole batch of ids. Writes to SQLite go through Feast's ``online_write_batch``; writes to
Redis are Sluice's own pipelined ``HSET`` of exactly the hash Feast writes and reads (key:
Feast's serialized entity key and the project; fields: ``mmh3("view:feature")`` and
``_ts:view``; values: serialized ``ValueProto``), without Feast's per-value Python
objects, which is what makes a million rows a matter of seconds. Either way a row never
replaces one with a later feature timestamp.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from sluice.contracts.feature_contract import FeatureContract
from sluice.errors import UnavailableError
from sluice.online.config import OnlineStoreConfig
from sluice.online.view import encoder, feast_objects, python_value, view_name

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CHUNK = 5_000
"""Rows per Redis script call: one round trip, and Redis busy for a few milliseconds."""
_READ_CHUNK = 10_000
"""Ids per read (SQLite allows 32,766 parameters in one statement)."""
_WRITE_LUA = """
local ts_field, ts_value = ARGV[1], ARGV[2]
local sec, nanos, m = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local F = {}
for j = 1, m do F[j] = ARGV[5 + j] end
local function varint(s, i)
  local n, mul = 0, 1
  while true do
    local b = string.byte(s, i)
    n = n + (b % 128) * mul
    i = i + 1
    if b < 128 then return n, i end
    mul = mul * 128
  end
end
local function older(old)
  local i, s, ns = 1, 0, 0
  while i <= #old do
    local tag = string.byte(old, i)
    local v
    v, i = varint(old, i + 1)
    if tag == 8 then s = v elseif tag == 16 then ns = v end
  end
  return s < sec or (s == sec and ns <= nanos)
end
local written = 0
for k = 1, #KEYS do
  local old = redis.call('HGET', KEYS[k], ts_field)
  if (not old) or older(old) then
    local b = 5 + m + (k - 1) * m
    redis.call('HSET', KEYS[k], ts_field, ts_value, PAIRS)
    written = written + 1
  end
end
return written
"""
"""Feast's hash, written for a chunk of entities in one call: a row whose stored feature
timestamp (a protobuf ``Timestamp``: field 1 seconds, field 2 nanos) is later is kept."""


def _entity_key(contract: FeatureContract, customer_id: str) -> Any:
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    return EntityKey(join_keys=[contract.id_column], entity_values=[Value(string_val=customer_id)])


class OnlineStore:
    """One contract's feature view in one online store (SQLite or Redis)."""

    def __init__(self, config: OnlineStoreConfig, contract: FeatureContract) -> None:
        from feast.infra.online_stores.redis import RedisOnlineStore
        from feast.infra.online_stores.sqlite import SqliteOnlineStore

        self.config = config
        self.contract = contract
        self.repo = config.repo_config()
        self.entity, self.view = feast_objects(contract)
        self.names = list(contract.names)
        self._store: Any = SqliteOnlineStore() if config.kind == "sqlite" else RedisOnlineStore()
        self._key_head: bytes | None = None
        self._script: Any = None

    @property
    def url(self) -> str:
        return self.config.url

    def prepare(self) -> None:
        """Register the entity and the view in Feast's registry and create the view's table
        (SQLite) so that writes and Feast's tools find them."""
        from feast import FeatureStore

        self.config.registry.parent.mkdir(parents=True, exist_ok=True)
        if self.config.kind == "sqlite" and self.config.path is not None:
            self.config.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            FeatureStore(config=self.repo).apply([self.entity, self.view])
        except Exception as exc:  # a store that cannot be reached: say which and why
            raise UnavailableError(
                f"online store {self.url}: cannot register {self.view.name}: {exc}",
                field="online_store",
            ) from exc

    # -- reads --------------------------------------------------------------------------
    def read(self, ids: Sequence[str]) -> tuple[list[dict[str, Any] | None], list[datetime | None]]:
        """Each id's feature row (None when the store has none) and its feature timestamp,
        in one round trip."""
        if not ids:
            return [], []
        keys = [_entity_key(self.contract, c) for c in ids]
        try:
            found = [
                got
                for start in range(0, len(keys), _READ_CHUNK)
                for got in self._store.online_read(
                    self.repo, self.view, keys[start : start + _READ_CHUNK], list(self.names)
                )
            ]
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise UnavailableError(
                    f"online store {self.url}: cannot read {self.view.name} ({exc})",
                    field="online_store",
                ) from exc
            found = [(None, None)] * len(keys)  # nothing materialized yet: no customer known
        except Exception as exc:
            raise UnavailableError(
                f"online store {self.url}: cannot read {self.view.name} ({exc}); "
                "has `sluice features materialize` written it?",
                field="online_store",
            ) from exc
        rows: list[dict[str, Any] | None] = []
        stamps: list[datetime | None] = []
        for ts, values in found:
            if values is None or ts is None or ts <= _EPOCH:  # Redis: no hash, no _ts field
                rows.append(None)
                stamps.append(None)
                continue
            rows.append({n: python_value(values[n]) if n in values else None for n in self.names})
            stamps.append(ts)
        return rows, stamps

    # -- writes -------------------------------------------------------------------------
    def write(self, table: pa.Table, timestamp: datetime) -> int:
        """Write validated rows (the id column and every feature) with their feature
        timestamp; returns the rows written (rows whose stored timestamp is later are
        kept as they are)."""
        if table.num_rows == 0:
            return 0
        if self.config.kind == "redis":
            return self._write_redis(table, timestamp)
        return self._write_sqlite(table, timestamp)

    def _write_sqlite(self, table: pa.Table, timestamp: datetime) -> int:
        from feast.protos.feast.types.Value_pb2 import Value

        ids = [str(c) for c in table.column(self.contract.id_column).to_pylist()]
        stored = dict(zip(ids, self.read(ids)[1], strict=True))
        columns = {
            f.name: [Value.FromString(b) for b in encoder(f.kind)(table.column(f.name).to_pylist())]
            for f in self.contract.features
        }
        data = []
        for i, c in enumerate(ids):
            before = stored.get(c)
            if before is not None and before > timestamp:
                continue
            values = {n: columns[n][i] for n in self.names}
            data.append((_entity_key(self.contract, c), values, timestamp, None))
        self._store.online_write_batch(self.repo, self.view, data, None)
        return len(data)

    def _redis_keys(self, ids: list[str]) -> list[bytes]:
        """Feast's Redis key of each id: its serialized entity key, then the project."""
        if self._key_head is None:
            from feast.infra.key_encoding_utils import serialize_entity_key

            sample = serialize_entity_key(
                _entity_key(self.contract, "x"),
                entity_key_serialization_version=self.repo.entity_key_serialization_version,
            )
            assert sample.endswith(b"\x01\x00\x00\x00x"), "unexpected Feast entity key layout"
            self._key_head = sample[:-5]
        head, tail, pack = self._key_head, self.config.project.encode(), struct.Struct("<I").pack
        out = []
        for c in ids:
            raw = c.encode()
            out.append(head + pack(len(raw)) + raw + tail)
        return out

    def _write_redis(self, table: pa.Table, timestamp: datetime) -> int:
        from feast.infra.online_stores.helpers import _mmh3
        from google.protobuf.timestamp_pb2 import Timestamp

        client = self._store._get_client(self.repo.online_store)
        if self._script is None:
            pairs = ", ".join(f"F[{j}], ARGV[b + {j}]" for j in range(1, len(self.names) + 1))
            self._script = client.register_script(_WRITE_LUA.replace("PAIRS", pairs))
        name = view_name(self.contract)
        stamp = Timestamp()
        stamp.FromDatetime(timestamp)
        fields = [_mmh3(f"{name}:{f.name}") for f in self.contract.features]
        head: list[Any] = [
            f"_ts:{name}".encode(),
            stamp.SerializeToString(),
            stamp.seconds,
            stamp.nanos,
            len(fields),
            *fields,
        ]
        ids = [str(c) for c in table.column(self.contract.id_column).to_pylist()]
        last = {c: i for i, c in enumerate(ids)}
        if len(last) < len(ids):  # an id twice: its last row, as one after another would
            table = table.take(pa.array(sorted(last.values()), pa.int64()))
            ids = [str(c) for c in table.column(self.contract.id_column).to_pylist()]
        columns = [
            encoder(f.kind)(table.column(f.name).to_pylist()) for f in self.contract.features
        ]
        # Redis runs one chunk while this thread encodes the next and a second connection
        # sends it (packing a call's arguments overlaps the other call's run; the calls
        # wait on their sockets without the GIL).
        pending: list[Future[Any]] = []
        with ThreadPoolExecutor(max_workers=2) as pool:
            for start in range(0, len(ids), _CHUNK):
                keys = self._redis_keys(ids[start : start + _CHUNK])
                chunk = (c[start : start + _CHUNK] for c in columns)
                values = [v for row in zip(*chunk, strict=True) for v in row]
                pending.append(pool.submit(self._script, keys=keys, args=head + values))
            return sum(int(f.result()) for f in pending)
