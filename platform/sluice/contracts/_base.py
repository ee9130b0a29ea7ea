"""The base class and shared field types of every contract."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints


class Contract(BaseModel):
    """Immutable, strict model: unknown fields are an error, never silently dropped."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        validate_default=True,
    )


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc
    return name


ID_PATTERN = r"^[^\x00-\x20\x7f]{1,128}$"
"""1 to 128 characters, none of them a space or an ASCII control character. Written with
explicit ranges so that Python, RE2 (Arrow) and JSON Schema (ECMA) regexes agree."""

CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN)]
"""An opaque customer identifier (see :data:`ID_PATTERN`)."""

Slug = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
]
"""A lower-case identifier used for offers, gates, campaigns and runs."""

CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
"""ISO 3166-1 alpha-2 country code, upper case."""

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""ISO 4217 currency code, upper case."""

E164Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
"""A phone number in E.164 form (``+`` and up to 15 digits)."""

IanaTimeZone = Annotated[str, AfterValidator(_check_zone)]
"""A time zone name the IANA database knows, such as ``Europe/Berlin``."""
