"""Model references: ``NAME@ALIAS`` or ``NAME/VERSION`` (an optional ``models:/`` prefix)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sluice.errors import InputError

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_ALIAS = re.compile(rf"^(?P<name>{_NAME})@(?P<alias>[A-Za-z][A-Za-z0-9_-]*)$")
_VERSION = re.compile(rf"^(?P<name>{_NAME})/(?P<version>[0-9]+)$")


@dataclass(frozen=True)
class ModelURI:
    """A registered model by alias (resolved once, then pinned) or by concrete version."""

    name: str
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str, *, field: str = "model") -> ModelURI:
        s = text.strip().removeprefix("models:/")
        if m := _ALIAS.match(s):
            return cls(name=m["name"], alias=m["alias"])
        if m := _VERSION.match(s):
            return cls(name=m["name"], version=m["version"])
        raise InputError(f"{field}: {text!r} is not NAME@ALIAS or NAME/VERSION", field=field)

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else f"{self.name}/{self.version}"
