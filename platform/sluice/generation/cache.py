"""Generated drafts, kept across runs by (prompt hash, model id, template version).

The same brief rendered by the same template for the same model gives the same prompt
hash, so a second campaign run reuses the draft instead of generating it again. Only
generated drafts are kept: a fallback is retried next time. SQLite under
``SLUICE_HOME/cache/drafts.sqlite``, safe for concurrent readers and writers.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sluice.contracts.drafts import DraftSource, MessageDraft

_SCHEMA = """
CREATE TABLE IF NOT EXISTS drafts (
  prompt_hash TEXT NOT NULL,
  model_id TEXT NOT NULL,
  template_version TEXT NOT NULL,
  draft TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT (datetime('now')),
  PRIMARY KEY (prompt_hash, model_id, template_version)
)
"""


class DraftCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def get_many(
        self, keys: list[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], MessageDraft]:
        found: dict[tuple[str, str, str], MessageDraft] = {}
        with self._connect() as db:
            for key in keys:
                row = db.execute(
                    "SELECT draft FROM drafts"
                    " WHERE prompt_hash=? AND model_id=? AND template_version=?",
                    key,
                ).fetchone()
                if row:
                    found[key] = MessageDraft.model_validate_json(row[0])
        return found

    def put_many(self, drafts: list[MessageDraft]) -> int:
        rows = [
            (d.prompt_hash, d.model_id, d.template_version, d.model_dump_json())
            for d in drafts
            if d.source is DraftSource.GENERATED
            and d.prompt_hash
            and d.model_id
            and d.template_version
        ]
        with self._connect() as db:
            db.executemany(
                "INSERT OR REPLACE INTO drafts (prompt_hash, model_id, template_version, draft)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )
        return len(rows)
