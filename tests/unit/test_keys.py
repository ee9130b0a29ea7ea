from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sluice.auth import KeyStore, Scope, parse_scopes
from sluice.errors import AuthError, ConflictError, ForbiddenError, InputError, NotFoundError


def test_keys_are_stored_only_as_salted_hashes(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key, record = store.create("ci", (Scope.SCORE,))
    assert key.startswith(f"slk_{record.key_id}_")
    secret = key.split("_", 2)[2]
    text = (tmp_path / "keys.json").read_text()
    assert secret not in text and key not in text and record.digest in text
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    _, other = store.create("ci2", (Scope.SCORE,))
    assert other.salt != record.salt


def test_authentication_scopes_and_revocation(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key, _ = store.create("svc", (Scope.SCORE, Scope.DECIDE))
    admin, _ = store.create("ops", (Scope.ADMIN,))
    assert store.authorize(f"Bearer {key}", Scope.SCORE).name == "svc"
    assert store.authorize(f"bearer {admin}", Scope.EVENTS).name == "ops"  # admin implies all
    with pytest.raises(ForbiddenError, match="lacks the 'events' scope"):
        store.authorize(f"Bearer {key}", Scope.EVENTS)
    for header in (
        None,
        "",
        "Basic abc",
        "Bearer",
        f"Bearer {key}x",
        "Bearer slk_nope",
        f"Token {key}",
    ):
        with pytest.raises(AuthError) as info:
            store.authenticate(header)
        assert info.value.status_code == 401 and key not in info.value.message
    # Another process revokes the key: this store sees the file change.
    KeyStore(tmp_path / "keys.json").revoke("svc")
    with pytest.raises(AuthError):
        store.authenticate(f"Bearer {key}")
    with pytest.raises(NotFoundError):
        store.revoke("svc")
    # A revoked name can be reused; an active one cannot.
    store.create("svc", (Scope.SCORE,))
    with pytest.raises(ConflictError):
        store.create("svc", (Scope.SCORE,))


def test_scope_parsing() -> None:
    assert parse_scopes("score, decide,score") == (Scope.SCORE, Scope.DECIDE)
    with pytest.raises(InputError, match="allowed: score, decide, events, llm, admin"):
        parse_scopes("score,write")
    with pytest.raises(InputError):
        parse_scopes(" , ")


def test_keys_cli_prints_the_key_once(tmp_path: Path) -> None:
    env = {**os.environ, "SLUICE_API_KEYS_FILE": str(tmp_path / "k.json"), "COLUMNS": "120"}

    def sluice(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sluice", "keys", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    created = sluice("create", "--name", "batch", "--scopes", "score,decide")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout.strip().splitlines()[-1])["key"]
    listed = sluice("list")
    assert listed.returncode == 0 and "batch" in listed.stdout and key not in listed.stdout
    assert json.loads(listed.stdout.strip().splitlines()[-1])["keys"][0]["active"] is True
    assert sluice("revoke", "batch").returncode == 0
    again = sluice("revoke", "batch")
    assert again.returncode == 2 and "no active key named 'batch'" in again.stderr
    assert key not in created.stderr + listed.stdout + listed.stderr
