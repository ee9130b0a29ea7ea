from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from sluice.campaign.schedule import (
    GRACE,
    MAX_MISSED,
    due,
    missed_times,
    next_time,
    scheduled_run_id,
)
from sluice.campaign.spec import load_spec
from sluice.contracts.campaign import CampaignSchedule, CampaignSpec
from sluice.errors import ConfigError
from sluice.runids import check_run_id

DAILY = "0 6 * * *"
"""06:00 UTC every day."""

CREATED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(day: int, hour: int = 6, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


def minimal_spec(**extra: object) -> dict[str, object]:
    return {
        "campaign_id": "spring-boots",
        "name": "Spring boots",
        "audience": {"features": "aud", "customers": "customers.parquet"},
        "channels": {"sms": {"transport": "outbox", "path": "outbox"}},
        **extra,
    }


# -- the contract ------------------------------------------------------------------------


def test_a_spec_takes_a_schedule_and_defaults_to_none() -> None:
    assert CampaignSpec.model_validate(minimal_spec()).schedule is None
    spec = CampaignSpec.model_validate(minimal_spec(schedule={"cron": " 0  6 * * mon-fri"}))
    assert spec.schedule == CampaignSchedule(cron="0 6 * * mon-fri", missed="run_once")
    assert spec.public()["schedule"] == {"cron": "0 6 * * mon-fri", "missed": "run_once"}
    skip = CampaignSpec.model_validate(minimal_spec(schedule={"cron": DAILY, "missed": "skip"}))
    assert skip.schedule is not None and skip.schedule.missed == "skip"


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("61 * * * *", "out of range"),
        ("every day", "not a five-field cron expression"),
        ("0 6 * * * *", "it has 6 fields"),
        ("@daily", "not a five-field cron expression"),
        ("0 0 30 2 *", "names no time that ever comes"),
        ("R 6 * * *", "random (R) and hashed (H)"),
        ("H 6 * * *", "random (R) and hashed (H)"),
    ],
)
def test_an_invalid_cron_is_refused_naming_schedule_cron(
    tmp_path: Path, cron: str, message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        CampaignSpec.model_validate(minimal_spec(schedule={"cron": cron}))
    error = info.value.errors()[0]
    assert error["loc"] == ("schedule", "cron") and message in error["msg"]
    # Loaded from a file, the error reads "FILE: schedule.cron: ...".
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(minimal_spec(schedule={"cron": cron})))
    with pytest.raises(ConfigError) as loaded:
        load_spec(path, tmp_path)
    assert f"{path}: schedule.cron: " in loaded.value.message
    assert loaded.value.field == "schedule.cron"


def test_an_unknown_missed_policy_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        CampaignSchedule.model_validate({"cron": DAILY, "missed": "catch_up"})
    assert info.value.errors()[0]["loc"] == ("missed",)


# -- next_time ---------------------------------------------------------------------------


def test_next_time_is_strictly_after_and_in_utc() -> None:
    assert next_time(DAILY, at(2, 5, 59)) == at(2)
    assert next_time(DAILY, at(2)) == at(3)  # strictly after
    assert next_time(DAILY, at(2, 6, 0, 30)) == at(3)
    berlin = timezone(timedelta(hours=1))
    found = next_time(DAILY, datetime(2026, 3, 2, 6, 30, tzinfo=berlin))  # 05:30 UTC
    assert found == at(2) and found.tzinfo == UTC
    with pytest.raises(ValueError, match="aware"):
        next_time(DAILY, datetime(2026, 3, 2, 6, 0))


# -- due ---------------------------------------------------------------------------------


@pytest.mark.parametrize("missed", ["run_once", "skip"])
def test_no_miss_runs_the_time_that_just_came(missed: str) -> None:
    # A tick shortly after 06:00 on the 3rd, the 2nd's run having started.
    assert due(DAILY, missed, at(2), at(3, 6, 0, 20), CREATED) == at(3)
    # Between times: nothing; the time already run is not run again.
    assert due(DAILY, missed, at(3), at(3, 18), CREATED) is None
    assert due(DAILY, missed, at(3), at(3, 6, 4), CREATED) is None


@pytest.mark.parametrize("missed", ["run_once", "skip"])
def test_the_boundary_is_inclusive_above_and_exclusive_below(missed: str) -> None:
    assert due(DAILY, missed, at(2), at(3), CREATED) == at(3)  # now is exactly 06:00
    assert due(DAILY, missed, at(2), at(3, 5, 59, 59), CREATED) is None
    assert due(DAILY, missed, at(3), at(3), CREATED) is None  # last is exactly 06:00


@pytest.mark.parametrize("missed", ["run_once", "skip"])
def test_nothing_is_due_before_the_first_time(missed: str) -> None:
    # Created at noon on the 1st: the first time is 06:00 on the 2nd.
    assert due(DAILY, missed, None, at(1, 13), CREATED) is None
    assert due(DAILY, missed, None, at(2, 5, 59), CREATED) is None
    assert missed_times(DAILY, None, at(2, 5, 59), CREATED) == []
    assert due(DAILY, missed, None, at(2, 6, 1), CREATED) == at(2)
    # A time at or before creation never counts.
    assert due(DAILY, missed, None, at(1, 12, 30), at(1, 6)) is None


def test_several_missed_times_run_once_under_the_latest() -> None:
    # Down from the 2nd to noon on the 5th: the 3rd, 4th and 5th were missed.
    now = at(5, 12)
    assert missed_times(DAILY, at(2), now, CREATED) == [at(3), at(4), at(5)]
    assert due(DAILY, "run_once", at(2), now, CREATED) == at(5)
    # Never run at all: counted from creation.
    assert missed_times(DAILY, None, now, CREATED) == [at(2), at(3), at(4), at(5)]
    assert due(DAILY, "run_once", None, now, CREATED) == at(5)


def test_several_missed_times_are_skipped_unless_the_latest_is_within_grace() -> None:
    assert due(DAILY, "skip", at(2), at(5, 12), CREATED) is None
    assert due(DAILY, "skip", None, at(5, 12), CREATED) is None
    # Back just after 06:00 on the 5th: the 5th's time runs, the 3rd and 4th are skipped.
    assert due(DAILY, "skip", at(2), at(5) + GRACE, CREATED) == at(5)
    assert due(DAILY, "skip", at(2), at(5) + GRACE + timedelta(seconds=1), CREATED) is None
    # Once the caller moves its cursor past the skipped times, the next time runs.
    assert due(DAILY, "skip", at(5), at(6, 6, 1), CREATED) == at(6)


def test_due_answers_in_utc_and_refuses_bad_input() -> None:
    plus2 = timezone(timedelta(hours=2))
    found = due(DAILY, "run_once", at(2), datetime(2026, 3, 3, 8, 30, tzinfo=plus2), CREATED)
    assert found == at(3) and found is not None and found.tzinfo == UTC
    with pytest.raises(ValueError, match="missed"):
        due(DAILY, "catch_up", at(2), at(3), CREATED)
    with pytest.raises(ValueError, match="now: an aware datetime"):
        due(DAILY, "run_once", at(2), datetime(2026, 3, 3, 7), CREATED)


def test_missed_times_are_capped_to_the_latest() -> None:
    every_minute = "* * * * *"
    start = at(1, 0)
    now = start + timedelta(days=3)  # 4320 times
    times = missed_times(every_minute, start, now, CREATED)
    assert len(times) == MAX_MISSED
    assert times[-1] == now and times[0] == now - timedelta(minutes=MAX_MISSED - 1)
    assert times == sorted(times)
    assert due(every_minute, "run_once", start, now, CREATED) == now


# -- run ids -----------------------------------------------------------------------------


def test_scheduled_run_ids_are_valid_and_stable() -> None:
    run_id = scheduled_run_id("spring-boots", at(3))
    assert run_id == "spring-boots-20260303T0600Z"
    assert check_run_id(run_id) == run_id
    # The same scheduled time, however written, is the same run.
    plus2 = timezone(timedelta(hours=2))
    assert scheduled_run_id("spring-boots", datetime(2026, 3, 3, 8, 0, tzinfo=plus2)) == run_id
    assert scheduled_run_id("spring-boots", at(4)) != run_id
    longest = scheduled_run_id("a" * 64, at(3))
    assert check_run_id(longest) == longest
