from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from sluice.campaign.spec import load_spec
from sluice.contracts.campaign import CampaignSpec, SmtpChannel
from sluice.contracts.customer import Channel
from sluice.coordinator.transports import smtp_settings
from sluice.errors import ConfigError

REPO = Path(__file__).parents[2]


def write(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def example() -> dict[str, object]:
    data = yaml.safe_load((REPO / "jobs" / "spring-boots.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_the_example_campaign_loads_with_paths_resolved(sluice_home: Path) -> None:
    spec = load_spec(REPO / "jobs" / "spring-boots.yaml", sluice_home)
    assert spec.audience.features == sluice_home / "demo" / "audience"
    assert spec.channels_transport("email") == "smtp" and spec.copy_.mode == "fixed"
    # Relay overrides and the password are read where the run delivers (from that
    # process's environment, given here as a mapping), never into the spec.
    email = spec.channels[Channel.EMAIL]
    assert isinstance(email, SmtpChannel)
    env = {"SLUICE_SMTP_HOST": "mail.internal", "SLUICE_SMTP_PORT": "587"}
    relay = smtp_settings(
        "email", email, {**env, "SLUICE_SMTP_USER": "u", "SLUICE_SMTP_PASSWORD": "pw"}
    )
    assert (relay.host, relay.port, relay.username, relay.password) == (
        "mail.internal",
        587,
        "u",
        "pw",
    )
    with pytest.raises(ConfigError, match="needs a password in SLUICE_SMTP_PASSWORD") as info:
        smtp_settings("email", email, {"SLUICE_SMTP_USER": "u"})
    assert info.value.field == "channels.email.password_env"
    with pytest.raises(ConfigError, match="not a port number"):
        smtp_settings("email", email, {"SLUICE_SMTP_PORT": "smtp"})


def test_a_spec_refuses_secrets_and_empty_variants() -> None:
    data = example()
    data["channels"]["email"]["password"] = "hunter2"  # type: ignore[index]
    with pytest.raises(ValidationError, match="a spec holds no secrets"):
        CampaignSpec.model_validate(data)
    data = example()
    data["copy"] = {"variants": []}
    with pytest.raises(ValidationError, match=r"copy\.variants|variants"):
        CampaignSpec.model_validate(data)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda d: d.update(holdout_pct=150), "holdout_pct", "less than or equal to 100"),
        (lambda d: d.update(surprise=1), "surprise", "Extra inputs are not permitted"),
        (
            lambda d: d["channels"]["email"].update(transport="pigeon"),
            "channels.email",
            "transport",
        ),
        (
            lambda d: d["gates"]["frequency_cap"].update(per_day=0),
            "gates.frequency_cap.per_day",
            "greater than or equal to 1",
        ),
        (
            lambda d: d["channels"].update(fax={"transport": "outbox", "path": "x"}),
            "channels.fax.[key]",
            "Input should be",
        ),
        (lambda d: d["copy"].update(mode="generate", llm_url_env=""), "copy", "LLM URL"),
    ],
)
def test_errors_name_the_file_and_the_field(
    tmp_path: Path, change: object, field: str, message: str
) -> None:
    data = example()
    change(data)  # type: ignore[operator]
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_spec(path, tmp_path)
    assert str(path) in info.value.message and message in info.value.message
    assert info.value.field is not None and info.value.field.startswith(field.split(".[")[0])


def test_relative_paths_are_relative_to_the_spec(tmp_path: Path) -> None:
    data = example()
    data["audience"] = {"features": "aud", "customers": "../profiles/customers.parquet"}
    spec = load_spec(write(tmp_path, data), tmp_path)
    assert spec.audience.features == tmp_path / "aud"
    assert spec.audience.customers == (tmp_path.parent / "profiles" / "customers.parquet").resolve()
    with pytest.raises(ConfigError, match="not found"):
        load_spec(tmp_path / "nope.yaml", tmp_path)
