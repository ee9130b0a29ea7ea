"""Run ids: they name directories (a run's work directory, its outbox), so every place a
run id comes in (the CLI, ``run_campaign``, the outbox) checks it."""

from __future__ import annotations

import re

from sluice.errors import InputError

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A run id: 1 to 128 letters, digits, ``.``, ``_`` or ``-``, the first a letter or digit
(so never ``.`` or ``..``, a path separator or a control character)."""


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is one (see :data:`RUN_ID`), else InputError naming ``run_id``."""
    if not RUN_ID.fullmatch(run_id):
        raise InputError(
            f"run_id: {run_id!r} is not a run id (1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit)",
            field="run_id",
        )
    return run_id
