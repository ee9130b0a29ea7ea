from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sluice.campaign.spec import load_spec
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


def test_the_example_campaign_loads_with_paths_resolved(
    sluice_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_spec(REPO / "jobs" / "spring-boots.yaml")
    assert spec.audience.features == sluice_home.resolve() / "demo" / "audience"
    assert spec.channels_transport("email") == "smtp" and spec.copy_.mode == "fixed"
    monkeypatch.setenv("SLUICE_SMTP_HOST", "mail.internal")
    monkeypatch.setenv("SLUICE_SMTP_PORT", "587")
    monkeypatch.setenv("SLUICE_SMTP_PASSWORD", "pw")
    email = load_spec(REPO / "jobs" / "spring-boots.yaml").channels[next(iter(spec.channels))]
    assert (email.host, email.port, email.password.get_secret_value()) == (
        "mail.internal",
        587,
        "pw",
    )  # type: ignore[union-attr]
    assert "pw" not in str(load_spec(REPO / "jobs" / "spring-boots.yaml").public())


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
        load_spec(path)
    assert str(path) in info.value.message and message in info.value.message
    assert info.value.field is not None and info.value.field.startswith(field.split(".[")[0])


def test_relative_paths_are_relative_to_the_spec(tmp_path: Path) -> None:
    data = example()
    data["audience"] = {"features": "aud", "customers": "../profiles/customers.parquet"}
    spec = load_spec(write(tmp_path, data))
    assert spec.audience.features == tmp_path / "aud"
    assert spec.audience.customers == (tmp_path.parent / "profiles" / "customers.parquet").resolve()
    with pytest.raises(ConfigError, match="not found"):
        load_spec(tmp_path / "nope.yaml")
