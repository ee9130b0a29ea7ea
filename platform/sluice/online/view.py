"""A feature contract as a Feast feature view, and Feast's value encoding.

The view is named after the contract and its version (``propensity_1_0_0``), keyed by
the entity ``customer`` (join key: the contract's id column), with one field per feature:
``float`` as ``Float64``, ``int`` as ``Int64``, ``category`` as ``String``. A value is
stored as Feast's ``ValueProto`` (a null as the empty value), so reading it back gives the
exact value written: a float64 is 8 bytes both ways, never rounded.
"""

from __future__ import annotations

import struct
from datetime import timedelta
from functools import cache
from typing import Any

from sluice.contracts.feature_contract import FeatureContract, FeatureKind

ENTITY = "customer"


def view_name(contract: FeatureContract) -> str:
    """The Feast feature view name of ``contract``."""
    return f"{contract.name}_{contract.version}".replace(".", "_").replace("-", "_")


def feast_objects(contract: FeatureContract) -> tuple[Any, Any]:
    """Feast's ``Entity`` and ``FeatureView`` of ``contract``."""
    from feast import Entity, FeatureView, Field, ValueType
    from feast.types import Float64, Int64, String

    types = {FeatureKind.FLOAT: Float64, FeatureKind.INT: Int64, FeatureKind.CATEGORY: String}
    entity = Entity(
        name=ENTITY,
        join_keys=[contract.id_column],
        value_type=ValueType.STRING,
        description="An opaque customer id.",
    )
    view = FeatureView(
        name=view_name(contract),
        entities=[entity],
        schema=[Field(name=contract.id_column, dtype=String)]
        + [
            Field(name=f.name, dtype=types[f.kind], description=f.description)
            for f in contract.features
        ],
        ttl=timedelta(hours=contract.max_age_hours),
        online=True,
        description=f"Sluice feature contract {contract.key}.",
        tags={"sluice.feature_contract": contract.key},
    )
    return entity, view


def python_value(proto: Any) -> Any:
    """The Python value of a Feast ``ValueProto`` (None for the empty value)."""
    which = proto.WhichOneof("val")
    return None if which is None else getattr(proto, which)


@cache
def _tags() -> tuple[bytes, bytes, bytes]:
    """The field tags Feast's ``ValueProto`` gives double, int64 and string values, read
    from protobuf itself rather than assumed."""
    from feast.protos.feast.types.Value_pb2 import Value

    double = Value(double_val=0.0).SerializeToString()[:-8]
    int64 = Value(int64_val=0).SerializeToString()[:-1]
    string = Value(string_val="").SerializeToString()[:-1]
    return double, int64, string


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64 as protobuf writes it: two's complement, 10 bytes if negative
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


_DOUBLE = struct.Struct("<d")


def encode_doubles(values: list[float | None]) -> list[bytes]:
    """Serialized ``ValueProto`` of each float (b"" for a null), as protobuf writes them."""
    tag = _tags()[0]
    pack = _DOUBLE.pack
    return [b"" if v is None else tag + pack(v) for v in values]


def encode_ints(values: list[int | None]) -> list[bytes]:
    """Serialized ``ValueProto`` of each int64 (b"" for a null)."""
    tag = _tags()[1]
    memo: dict[int, bytes] = {}
    out = []
    for v in values:
        if v is None:
            out.append(b"")
            continue
        found = memo.get(v)
        if found is None:
            found = memo[v] = tag + _varint(v)
        out.append(found)
    return out


def encode_strings(values: list[str | None]) -> list[bytes]:
    """Serialized ``ValueProto`` of each string (b"" for a null)."""
    tag = _tags()[2]
    memo: dict[str, bytes] = {}
    out = []
    for v in values:
        if v is None:
            out.append(b"")
            continue
        found = memo.get(v)
        if found is None:
            raw = v.encode()
            found = memo[v] = tag + _varint(len(raw)) + raw
        out.append(found)
    return out


def encoder(kind: FeatureKind) -> Any:
    """The encoder of one feature kind's column (a list of Python values)."""
    return {
        FeatureKind.FLOAT: encode_doubles,
        FeatureKind.INT: encode_ints,
        FeatureKind.CATEGORY: encode_strings,
    }[kind]
