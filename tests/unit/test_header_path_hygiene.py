"""Header and path hygiene: control characters in addresses and header fields fail at the
schema gate with the field named, and run ids cannot leave the runs directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hygiene_support import HEX_KEY, candidates, spec_for

from sluice.channels.unsubscribe import (
    Keyring,
)
from sluice.contracts.campaign import CampaignSpec
from sluice.contracts.clock import SYSTEM_CLOCK
from sluice.contracts.customer import CustomerProfile
from sluice.coordinator.core import CoordinatorCore
from sluice.errors import InputError
from sluice.gates.base import GateContext, MessageBatch
from sluice.gates.compliance import SchemaGate
from sluice.runids import check_run_id
from sluice.settings import SluiceSettings
from sluice.store import dispose_all


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
        "r2", spec_for(tmp_path), False, url, Keyring.of(HEX_KEY), SYSTEM_CLOCK.today()
    )
    people = [
        ("c1", "c1@example.com", "Fine"),
        ("c2", "c2@example.com", "Hi\nBcc: all@example.com"),
        ("c3", "c3@example.com\n", "Fine"),
    ]
    try:
        counts = core.submit(candidates("r2", people))
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
