"""Small Arrow helpers shared by the vectorised stages."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

_US = "\x1f"  # ASCII unit separator: never part of a reason or an id


def join_present(parts: Sequence[pa.Array], sep: str, length: int) -> pa.Array:
    """Element-wise join of the non-null parts with ``sep`` ("" where every part is null).

    pyarrow's own ``binary_join_element_wise(..., null_handling="skip")`` drops the rows
    whose parts are all null, which shortens the result; this never does.
    """
    if not parts:
        return pa.array([""] * length, pa.string())
    joined = pc.binary_join_element_wise(*(pc.fill_null(p, "") for p in parts), _US)
    joined = pc.replace_substring_regex(joined, pattern=f"{_US}+", replacement=_US)
    joined = pc.replace_substring_regex(joined, pattern=f"^{_US}|{_US}$", replacement="")
    return pc.replace_substring(joined, _US, sep)
