"""Private data stays private: the database, outbox files and dry-run samples are 0600 in
0700 directories, tokens stay out of logs, the API keys file out of errors, and the
coordinator actor never receives a password."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hygiene_support import HEX_KEY, NO_ENV, U, candidates, mode, spec_for

from sluice.auth import KeyStore, Scope
from sluice.channels.base import OutboundMessage
from sluice.channels.outbox import OutboxTransport
from sluice.channels.unsubscribe import (
    Keyring,
    make_token,
    read_token,
    secret,
)
from sluice.contracts.clock import SYSTEM_CLOCK
from sluice.coordinator.core import CoordinatorCore
from sluice.errors import ConfigError, UnavailableError
from sluice.serve.backoffice_api import create_backoffice_api
from sluice.settings import SluiceSettings
from sluice.store import connect, dispose_all
from sluice.store.db import with_password, without_password


def test_the_database_is_private(tmp_path: Path) -> None:
    db = tmp_path / "home" / "sluice.db"
    engine = connect(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.exec_driver_sql("SELECT 1")
    try:
        assert mode(db.parent) == 0o700
        files = [db, db.with_name("sluice.db-wal"), db.with_name("sluice.db-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        dispose_all()
    # A database an older version left readable to others is tightened.
    db.chmod(0o644)
    connect(f"sqlite:///{db}")
    dispose_all()
    assert mode(db) == 0o600


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_outbox_files_are_private(tmp_path: Path, fmt: str) -> None:
    outbox = OutboxTransport(tmp_path / "out", "run-1", "sms", fmt)
    sent = outbox.send(
        OutboundMessage("k" * 40, "sms", "+15550001111", "run-1", "camp", "c1", text="hi")
    )
    files = list((tmp_path / "out" / "run-1").iterdir())
    assert len(files) == 1 and sent.startswith(files[0].name)
    assert mode(files[0]) == 0o600
    assert mode(tmp_path / "out") == 0o700 and mode(tmp_path / "out" / "run-1") == 0o700


def test_a_dry_run_sample_is_private(tmp_path: Path) -> None:
    sample = tmp_path / "home" / "runs" / "r1" / "dry-run-sample.jsonl"
    url = f"sqlite:///{tmp_path / 'db' / 'sluice.db'}"
    keys = Keyring.of(HEX_KEY)
    core = CoordinatorCore(
        "r1", spec_for(tmp_path), True, url, keys, SYSTEM_CLOCK.today(), str(sample)
    )
    try:
        counts = core.submit(candidates("r1", [("c1", "c1@example.com", "S")]))
    finally:
        core.close()
        dispose_all()
    assert counts["would_send"] == 1
    assert mode(sample) == 0o600 and mode(sample.parent) == 0o700
    record = json.loads(sample.read_text())
    assert read_token(record["unsubscribe_token"], keys).customer_id == "c1"


def test_a_one_click_unsubscribe_token_never_appears_in_the_service_logs(
    fresh_settings: SluiceSettings, caplog: pytest.LogCaptureFixture
) -> None:
    store = KeyStore(fresh_settings.home_dir / "keys.json")
    api = create_backoffice_api(store, fresh_settings)
    token = make_token(U, secret(fresh_settings.home_dir, NO_ENV))
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, "ray.serve.sluice"):
        response = TestClient(api).post(
            f"/v1/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click"
        )
        # What the HTTP server writes for the same request (uvicorn's access line).
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d',
            "10.0.0.1:5000",
            "POST",
            f"/v1/unsubscribe/{token}",
            "1.1",
            200,
        )
    assert response.status_code == 200
    service = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    lines = [logging.Formatter("%(name)s %(message)s").format(r) for r in service]
    assert any("POST /v1/unsubscribe/<redacted> 200" in line for line in lines), lines
    assert any(line.startswith("uvicorn.access") and "<redacted>" in line for line in lines)
    body = token.split(".")[1]
    assert not [line for line in lines if token in line or body in line]


def test_an_invalid_api_keys_file_is_named_never_echoed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "api-keys.json"
    leak = "slk_abc_LEAKED-PLAINTEXT-KEY"
    record = {
        "name": "svc",
        "key_id": "abc",
        "scopes": ["score"],
        "salt": "00",
        "digest": "00",
        "created_at": leak,  # not a time: pydantic's own message would quote it
    }
    for content in (
        json.dumps({"keys": [record]}),
        json.dumps({"keys": [], leak: 1}),
        '{"keys": [' + leak,
    ):
        path.write_text(content)
        with pytest.raises(ConfigError) as err:
            KeyStore(path).list()
        assert str(path) in err.value.message and leak not in err.value.message
        assert "LEAKED" not in str(err.value.to_dict())
        store = KeyStore(path)
        with caplog.at_level(logging.ERROR), pytest.raises(UnavailableError):
            store.authenticate("Bearer slk_abc_secret")
        assert str(path) in caplog.text and "LEAKED" not in caplog.text
        caplog.clear()
    path.write_text(json.dumps({"keys": []}))  # mended: keys work again
    key, _ = KeyStore(path).create("svc", (Scope.SCORE,))
    assert KeyStore(path).authenticate(f"Bearer {key}").name == "svc"


def test_the_coordinator_actor_receives_no_password() -> None:
    from sluice.coordinator.actor import actor_args

    url = "postgresql://sluice:s3cr3t-pw@db.example:5432/sluice"
    spec = spec_for(Path("/tmp/outbox"))
    args = actor_args("r1", spec, False, url, Path("/h"), date(2026, 7, 1), None, SYSTEM_CLOCK)
    assert "s3cr3t-pw" not in repr(args)
    assert "postgresql://sluice@db.example:5432/sluice" in args
    stripped = without_password(url)
    # Inside the actor: from its own environment, never from an argument.
    assert with_password(stripped, {"SLUICE_DATABASE_PASSWORD": "s3cr3t-pw"}).endswith(
        "sluice:s3cr3t-pw@db.example:5432/sluice"
    )
    assert "s3cr3t-pw" in with_password(stripped, {"SLUICE_DATABASE_URL": url})
    other = "postgresql://sluice:s3cr3t-pw@elsewhere:5432/sluice"
    assert with_password(stripped, {"SLUICE_DATABASE_URL": other}) == stripped  # libpq's turn
    assert with_password(stripped, NO_ENV) == stripped
    assert without_password("sqlite:////h/sluice.db") == "sqlite:////h/sluice.db"
