"""Secrets handled as secrets: the unsubscribe keyring (strength, atomic creation,
rotation), private file modes, tokens kept out of logs, the API keys file kept out of
errors, no password for the coordinator actor; and header and path hygiene (control
characters failed at the schema gate, run ids that cannot leave the runs directory)."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from sluice.auth import KeyStore, Scope
from sluice.channels.base import OutboundMessage
from sluice.channels.outbox import OutboxTransport, check_run_id
from sluice.channels.unsubscribe import (
    ENV,
    ENV_PREVIOUS,
    Keyring,
    Unsubscribe,
    add_key,
    keyring_file,
    make_token,
    read_token,
    secret,
)
from sluice.contracts import PROPENSITY_V1
from sluice.contracts.campaign import CampaignSpec
from sluice.contracts.clock import SYSTEM_CLOCK
from sluice.contracts.customer import CustomerProfile
from sluice.coordinator.core import CoordinatorCore
from sluice.decisioning.catalog import CatalogSource
from sluice.errors import ConfigError, InputError, UnavailableError
from sluice.gates.base import GateContext, MessageBatch
from sluice.gates.compliance import SchemaGate
from sluice.registry import Registry
from sluice.serve.backends import LocalBackend
from sluice.serve.engine import ScoringEngine
from sluice.serve.http import create_api
from sluice.settings import SluiceSettings
from sluice.store import connect, dispose_all
from sluice.store.db import with_password, without_password

HEX_KEY = "0123456789abcdef" * 4
OTHER_KEY = "fedcba9876543210" * 4
U = Unsubscribe("c1", "outdoors", "email", "run-1")
NO_ENV: dict[str, str] = {}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- The unsubscribe keyring -------------------------------------------------------


def test_an_empty_key_file_is_refused_and_never_replaced(tmp_path: Path) -> None:
    path = keyring_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("")
    with pytest.raises(ConfigError) as err:
        secret(tmp_path, NO_ENV)
    assert str(path) in err.value.message and "empty" in err.value.message
    assert path.read_text() == ""  # not regenerated: links in flight stay verifiable later
    path.write_text("# only a comment\n\n")
    with pytest.raises(ConfigError, match="empty"):
        secret(tmp_path, NO_ENV)


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("ab12" * 8, "32 hex digits"),  # 128 bits
        ("A" * 20 + "bcdefghijklmnopqrstuv", "41 base64 characters"),
        ("a1" * 40, "too few characters"),  # long, but not random
        ("correct horse battery staple " * 3, "hex or base64"),
    ],
)
def test_a_weak_key_is_refused_in_the_file_and_in_the_environment(
    tmp_path: Path, key: str, why: str
) -> None:
    path = keyring_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(f"k1 {key}\n" if " " not in key else f"k1 {key.split()[0]}\n")
    if " " not in key:
        with pytest.raises(ConfigError, match=why) as err:
            secret(tmp_path, NO_ENV)
        assert str(path) in err.value.message and key not in err.value.message
    with pytest.raises(ConfigError, match=why) as err:
        secret(tmp_path, {ENV: key})
    assert ENV in err.value.message and key not in err.value.message


def test_the_strength_rule_accepts_256_bits_of_hex_or_base64() -> None:
    assert Keyring.of(HEX_KEY).keys  # 64 hex digits
    assert Keyring.of("Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo").keys  # 43 base64
    with pytest.raises(ConfigError, match="63 hex digits"):
        Keyring.of(HEX_KEY[:-1])
    assert HEX_KEY not in repr(Keyring.of(HEX_KEY))  # never in a log or a traceback


def test_an_unreadable_or_malformed_key_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = keyring_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(f"{HEX_KEY}\n")  # no key id
    with pytest.raises(ConfigError, match="expected '<key id> <key>'") as err:
        secret(tmp_path, NO_ENV)
    assert str(path) in err.value.message and HEX_KEY not in err.value.message
    path.write_text(f"k1 {HEX_KEY}\nk1 {OTHER_KEY}\n")
    with pytest.raises(ConfigError, match="key id k1 repeats"):
        secret(tmp_path, NO_ENV)
    if os.geteuid() != 0:  # root reads anything
        path.write_text(f"k1 {HEX_KEY}\n")
        path.chmod(0)
        with pytest.raises(ConfigError, match="cannot be read"):
            secret(tmp_path, NO_ENV)


CHILD = """
import json, sys, time
from pathlib import Path
from sluice.channels.unsubscribe import Unsubscribe, make_token, secret
home, n = Path(sys.argv[1]), sys.argv[2]
(home.parent / f"ready-{n}").touch()
while not (home.parent / "go").exists():
    time.sleep(0.001)
ring = secret(home, {})
token = make_token(Unsubscribe("c1", "b", "email", "r"), ring)
print(json.dumps({"kid": ring.signing, "token": token}))
"""


def test_processes_creating_the_keyring_at_once_end_with_one_key_all_use(tmp_path: Path) -> None:
    home, n = tmp_path / "home", 6
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(home), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()  # all at once
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    ring = secret(home, NO_ENV)
    assert len(ring.keys) == 1
    assert {r["kid"] for r in results} == {ring.signing}
    for r in results:  # every token any of them made verifies with the one key
        assert read_token(r["token"], ring) == Unsubscribe("c1", "b", "email", "r")
    secrets_dir = keyring_file(home).parent
    assert mode(secrets_dir) == 0o700 and mode(keyring_file(home)) == 0o600
    assert not list(secrets_dir.glob("*.tmp"))


def test_after_rotation_old_tokens_verify_and_new_ones_use_the_new_key(tmp_path: Path) -> None:
    first = secret(tmp_path, NO_ENV)
    old = make_token(U, first)
    new_kid = add_key(tmp_path, NO_ENV)
    ring = secret(tmp_path, NO_ENV)
    assert new_kid != first.signing and ring.signing == new_kid and len(ring.keys) == 2
    assert read_token(old, ring) == U
    new = make_token(U, ring)
    assert new.startswith(f"{new_kid}.") and read_token(new, ring) == U
    with pytest.raises(InputError):  # the old key alone does not know the new one
        read_token(new, first)
    # In the environment: the new key signs, the previous one still verifies.
    rotated = secret(tmp_path, {ENV: OTHER_KEY, ENV_PREVIOUS: HEX_KEY})
    assert read_token(make_token(U, Keyring.of(HEX_KEY)), rotated) == U
    with pytest.raises(ConfigError, match=ENV_PREVIOUS):
        secret(tmp_path, {ENV_PREVIOUS: HEX_KEY})
    with pytest.raises(ConfigError, match="set but empty"):
        secret(tmp_path, {ENV: ""})
    with pytest.raises(ConfigError, match=ENV):  # rotation goes through the variables then
        add_key(tmp_path, {ENV: OTHER_KEY})


def test_forged_and_old_format_tokens_are_refused_naming_the_token() -> None:
    ring = Keyring.of(HEX_KEY)
    kid, body, mac = make_token(U, ring).split(".")
    forger = Keyring({"evil0001": OTHER_KEY.encode()}, "evil0001")
    forged = make_token(Unsubscribe("c2", "outdoors", "email", "run-1"), forger)
    for token in (forged, f"evil0001.{body}.{mac}", f"{kid}.{body}.{mac[:-2]}xx", "a.b.c.d"):
        with pytest.raises(InputError) as err:
            read_token(token, ring)
        assert err.value.field == "token"
    with pytest.raises(InputError, match="old unsubscribe token") as err:
        read_token(f"{body}.{mac}", ring)  # the format before key ids
    assert err.value.field == "token"


# --- File modes ----------------------------------------------------------------------


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


def _spec(outbox: Path) -> CampaignSpec:
    off = ("injection", "pii", "claims", "brand_safety", "channel_format", "confidence")
    return CampaignSpec.model_validate(
        {
            "campaign_id": "camp",
            "name": "camp",
            "brand": "outdoors",
            "audience": {"features": str(outbox), "customers": str(outbox)},
            "channels": {"email": {"transport": "outbox", "path": str(outbox)}},
            "gates": {
                **dict.fromkeys(off),
                "frequency_cap": None,
                "quiet_hours": None,
            },
        }
    )


def _candidates(run: str, people: list[tuple[str, str, str]]) -> pa.Table:
    """(customer id, email, subject) per candidate."""
    rows: list[dict[str, Any]] = [
        {
            "customer_id": cid,
            "decision_id": f"dec_{cid}",
            "arm": "main",
            "score": 0.5,
            "offer_id": "spring-boots-20",
            "channel": "email",
            "offer_url": "https://shop.example.com/x",
            "time_zone": "Europe/Berlin",
            "email": email,
            "consent_email": True,
            "subject": subject,
            "preheader": "P",
            "body": "B",
            "cta": "C",
            "text": None,
        }
        for cid, email, subject in people
    ]
    return pa.Table.from_pylist(rows)


def test_a_dry_run_sample_is_private(tmp_path: Path) -> None:
    sample = tmp_path / "home" / "runs" / "r1" / "dry-run-sample.jsonl"
    url = f"sqlite:///{tmp_path / 'db' / 'sluice.db'}"
    keys = Keyring.of(HEX_KEY)
    core = CoordinatorCore(
        "r1", _spec(tmp_path), True, url, keys, SYSTEM_CLOCK.today(), str(sample)
    )
    try:
        counts = core.submit(_candidates("r1", [("c1", "c1@example.com", "S")]))
    finally:
        core.close()
        dispose_all()
    assert counts["would_send"] == 1
    assert mode(sample) == 0o600 and mode(sample.parent) == 0o700
    record = json.loads(sample.read_text())
    assert read_token(record["unsubscribe_token"], keys).customer_id == "c1"


# --- Header hygiene ------------------------------------------------------------------


def _batch(**columns: list[Any]) -> MessageBatch:
    base: dict[str, list[Any]] = {
        "customer_id": ["c1", "c2", "c3", "c4"],
        "channel": ["email", "email", "sms", "email"],
        "email": ["a@example.com", "b@example.com", None, "d@example.com"],
        "phone": [None, None, "+15550001111", None],
        "subject": ["Hi", "Hi", None, "Hi"],
        "preheader": ["P", "P", None, "P"],
        "body": ["Body\nwith lines", "Body", None, "Body"],
        "cta": ["Go", "Go", None, "Go"],
        "text": [None, None, "Two\nlines are fine in an SMS", None],
    }
    base.update(columns)
    return MessageBatch(pa.table(base))


def _ctx() -> GateContext:
    return GateContext("run-1", "camp", "outdoors", SYSTEM_CLOCK.now(), False, {})


def test_control_characters_in_header_fields_fail_at_the_schema_gate() -> None:
    gate = SchemaGate({"email", "sms"})
    clean = gate.evaluate(_batch(), _ctx())
    assert list(clean.reason) == ["ok"] * 4  # line breaks in bodies are fine
    v = gate.evaluate(
        _batch(
            email=["a@example.com\n", "b@example.com", None, "d@example.com"],
            phone=[None, None, "+15550001111\n", None],
            subject=["Hi", "Hi\r\nBcc: all@example.com", None, "Hi"],
            preheader=["P", "P", None, "P\u2028more"],
        ),
        _ctx(),
    )
    assert list(v.reason) == ["header_control_character"] * 4
    assert list(v.detail) == [
        "email contains a line break",
        "subject contains a line break",
        "phone contains a line break",
        "preheader contains a line break",
    ]
    bell = gate.evaluate(_batch(subject=["Hi\x07", "Hi", None, "Hi\x85"]), _ctx())
    assert list(bell.detail) == [
        "subject contains a control character (U+0007)",
        "",
        "",
        "subject contains a line break",
    ]


def test_a_message_with_a_newline_in_its_subject_never_reaches_the_transport(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'sluice.db'}"
    core = CoordinatorCore(
        "r2", _spec(tmp_path), False, url, Keyring.of(HEX_KEY), SYSTEM_CLOCK.today()
    )
    people = [
        ("c1", "c1@example.com", "Fine"),
        ("c2", "c2@example.com", "Hi\nBcc: all@example.com"),
        ("c3", "c3@example.com\n", "Fine"),
    ]
    try:
        counts = core.submit(_candidates("r2", people))
        funnel = core.audit.funnel("r2")
    finally:
        core.close()
        dispose_all()
    sent = [json.loads(line) for line in (tmp_path / "r2" / "email.jsonl").read_text().splitlines()]
    assert [m["customer_id"] for m in sent] == ["c1"]
    assert counts["rejected"] == 2
    assert funnel["rejected"] == {"schema": {"header_control_character": 2}}


def test_contracts_refuse_addresses_and_sender_names_with_line_breaks() -> None:
    profile = {
        "customer_id": "c1",
        "country": "US",
        "time_zone": "America/New_York",
        "signup_date": "2026-01-01",
    }
    for field, value in (("email", "a@example.com\n"), ("phone", "+15550001111\n")):
        with pytest.raises(ValueError, match=field):
            CustomerProfile.model_validate({**profile, field: value})
    with pytest.raises(ValueError, match="from_name"):
        CampaignSpec.model_validate(
            {
                "campaign_id": "camp",
                "name": "camp",
                "audience": {"features": "f", "customers": "c"},
                "channels": {"email": {"from_name": "Shop\r\nBcc: all@example.com"}},
            }
        )


# --- Run ids -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../x", "..", ".", "a/b", "", "-x", "x\n", "x" * 129])
def test_a_run_id_that_is_not_one_is_refused(bad: str) -> None:
    with pytest.raises(InputError) as err:
        check_run_id(bad)
    assert err.value.field == "run_id"


def test_run_campaign_and_the_runs_path_refuse_escaping_run_ids(
    tmp_path: Path, fresh_settings: SluiceSettings
) -> None:
    from sluice.campaign.run import run_campaign, run_dir

    assert run_dir(tmp_path, "spring-2026.a_1") == (tmp_path / "runs" / "spring-2026.a_1").resolve()
    with pytest.raises(InputError, match="run_id"):
        run_campaign(tmp_path / "spec.yaml", "../x", settings=fresh_settings)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "evil").symlink_to(tmp_path)  # a valid name that leads elsewhere
    with pytest.raises(InputError, match="outside"):
        run_dir(tmp_path, "evil")


def test_the_cli_refuses_run_id_dot_dot(tmp_path: Path) -> None:
    env = {**os.environ, "SLUICE_HOME": str(tmp_path), "COLUMNS": "120"}
    done = subprocess.run(
        [sys.executable, "-m", "sluice", "campaign", "run", "spec.yaml", "--run-id", "../x"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    error = json.loads(done.stderr.strip().splitlines()[-1])["error"]
    assert error["field"] == "run_id" and error["code"] == "invalid_input"
    assert not (tmp_path / "x").exists()


# --- Logs and arguments --------------------------------------------------------------


def test_a_one_click_unsubscribe_token_never_appears_in_the_service_logs(
    fresh_settings: SluiceSettings, caplog: pytest.LogCaptureFixture
) -> None:
    engine = ScoringEngine(["sluice-propensity@champion"], PROPENSITY_V1, Registry(fresh_settings))
    store = KeyStore(fresh_settings.home_dir / "keys.json")
    api = create_api(
        LocalBackend(engine, CatalogSource.read()), store, PROPENSITY_V1, settings=fresh_settings
    )
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
    spec = _spec(Path("/tmp/outbox"))
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
