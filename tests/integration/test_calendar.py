"""Campaigns do not depend on the calendar: the same world run today and years ahead on
Sluice's clock gives the same funnel, and review windows, deferrals and offer ends follow
the clock, not the machine's date."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from tests.integration.test_campaign import emails_of, write_spec

from sluice.campaign.run import run_campaign
from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.data import SynthCalendar, SynthConfig, synthesize
from sluice.data.population import US_PER_DAY, day_us
from sluice.devtools.mailsink import MailSink
from sluice.errors import ConflictError
from sluice.features import build_features, load_synthetic
from sluice.registry import VersionInfo
from sluice.review import actions
from sluice.settings import SluiceSettings
from sluice.store import connect
from sluice.store.reviews import ReviewQueue

YEARS_AHEAD = timedelta(days=3 * 365 + 1)
# 19:30 UTC: Europe is in its quiet hours (deferrals), the Americas are not, and no zone
# of the synthetic base is within minutes of a quiet-hours boundary.
RUN_AT = (19, 30)


def world(root: Path, as_of: date) -> tuple[Path, Path]:
    """A small synthetic base as of ``as_of``: its audience features and customers."""
    cal = SynthCalendar(as_of)
    data = root / "data"
    synthesize(SynthConfig(customers=2_500, end=cal.history_end, seed=19, chunk_size=2_500), data)
    c = day_us(cal.score_cutoff)
    built = build_features(load_synthetic(data, c, c + 90 * US_PER_DAY), cal.score_cutoff)
    pq.write_table(built.table, root / "audience.parquet")
    return root / "audience.parquet", data / "customers.parquet"


def at(day: date, hour: int = RUN_AT[0], minute: int = RUN_AT[1]) -> Clock:
    return Clock.at(datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC))


def settings_on(settings: SluiceSettings, clock: Clock) -> SluiceSettings:
    return settings.model_copy(update={"clock_offset": clock.offset})


def spec_for(root: Path, sink: MailSink, campaign: str, features: Path, customers: Path) -> Path:
    path = write_spec(
        root / f"{campaign}.yaml",
        customers.parent,
        features.parent,
        sink,
        campaign,
        gates={
            "frequency_cap": None,
            "quiet_hours": {"start": "21:00", "end": "08:00"},
            # Valuable decisions (the EU rain jacket always) wait for a person.
            "confidence": {"margin_band": [6.5, 10_000]},
        },
        review_hours=24 * 60,
        salt="calendar",  # the same arms and variants in every world
    )
    text = path.read_text().replace(str(features.parent / "audience.parquet"), str(features))
    path.write_text(text)
    return path


def comparable(funnel: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in funnel.items() if k != "run_id"}


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Any:
    s = MailSink(tmp_path_factory.mktemp("mail")).start()
    yield s
    s.stop()


def test_the_same_world_years_ahead_runs_the_same_campaign(
    settings: SluiceSettings, champion: VersionInfo, sink: MailSink, tmp_path: Path
) -> None:
    today = SYSTEM_CLOCK.today()
    ahead = today + YEARS_AHEAD
    funnels = {}
    for label, as_of in (("today", today), ("ahead", ahead)):
        root = tmp_path / label
        root.mkdir()
        features, customers = world(root, as_of)
        spec = spec_for(root, sink, f"cal-{label}", features, customers)
        result = run_campaign(
            spec, run_id=f"cal-{label}-1", settings=settings_on(settings, at(as_of))
        )
        funnels[label] = result.funnel
    f = funnels["ahead"]
    assert comparable(f) == comparable(funnels["today"])
    assert f["sent"] > 0 and f["deferred"] > 0 and f["review"] > 0 and f["pending"] == 0

    # Copy states the offer's end as resolved for the run's decision date, years ahead.
    end = ahead + timedelta(days=90)
    bodies = [
        m.get_body(preferencelist=("plain",)).get_content() for m in emails_of(sink, "cal-ahead-1")
    ]
    assert bodies and all(str(end.year) in b for b in bodies if "until" in b)
    assert any(f"{end:%B} {end.day}, {end.year}" in b for b in bodies)

    # Deferrals go out when the clock says their time has come, not before.
    root = tmp_path / "ahead"
    spec = root / "cal-ahead.yaml"
    early = run_campaign(
        spec, run_id="cal-ahead-1", settings=settings_on(settings, at(ahead, 19, 45))
    )
    assert early.funnel["deferred"] == f["deferred"] and early.funnel["sent"] == f["sent"]
    # Next day at noon UTC Europe and the Americas are awake; Asia and the Pacific are in
    # their quiet hours again, and the send-time re-check defers them once more ...
    noon = run_campaign(
        spec,
        run_id="cal-ahead-1",
        settings=settings_on(settings, at(ahead + timedelta(days=1), 12, 0)),
    )
    assert f["sent"] < noon.funnel["sent"] < f["sent"] + f["deferred"]
    assert noon.funnel["sent"] + noon.funnel["deferred"] == f["sent"] + f["deferred"]
    # ... until their morning (23:30 UTC), when the last of them go out.
    late = run_campaign(
        spec,
        run_id="cal-ahead-1",
        settings=settings_on(settings, at(ahead + timedelta(days=1), 23, 30)),
    )
    assert late.funnel["deferred"] == 0
    assert late.funnel["sent"] == f["sent"] + f["deferred"]


def test_review_windows_end_with_the_offer_on_the_clock(
    settings: SluiceSettings, champion: VersionInfo, sink: MailSink, tmp_path: Path
) -> None:
    """Years ahead, the day after the rain jacket's last day: its review items are closed
    unsent; the boots' items, whose offer runs on, can still be approved and delivered."""
    ahead = SYSTEM_CLOCK.today() + YEARS_AHEAD
    features, customers = world(tmp_path, ahead)
    spec = spec_for(tmp_path, sink, "cal-review", features, customers)
    result = run_campaign(spec, run_id="cal-review-1", settings=settings_on(settings, at(ahead)))
    assert result.funnel["review"] > 0
    url, home = settings.effective_database_url, settings.home_dir
    queue = ReviewQueue(connect(url), at(ahead))
    items = queue.list("cal-review-1", limit=100_000)
    offers = {i.offer_id for i in items}
    assert {"rain-jacket-25", "spring-boots-20"} <= offers
    assert len(items) == result.funnel["review"]

    # The rain jacket runs ahead .. ahead+30: on its last day nothing has expired yet.
    last_day = at(ahead + timedelta(days=30), 23, 0)
    assert len(actions.pending(url, "cal-review-1", limit=100_000, clock=last_day)) == len(items)
    after_end = at(ahead + timedelta(days=31), 0, 30)
    still = actions.pending(url, "cal-review-1", limit=100_000, clock=after_end)
    assert {i.offer_id for i in still} == offers - {"rain-jacket-25"}
    jacket = next(i for i in items if i.offer_id == "rain-jacket-25")
    with pytest.raises(ConflictError, match="already expired"):
        actions.approve(jacket.review_id, "dana", url, home, after_end)

    # A European recipient: 12:00 UTC is inside their sending hours.
    boots = next(
        i
        for i in still
        if i.offer_id == "spring-boots-20"
        and str(i.table().column("time_zone")[0].as_py()).startswith("Europe/")
    )
    noon = at(ahead + timedelta(days=31), 12)
    approved = actions.approve(boots.review_id, "dana", url, home, noon)
    assert approved.result == "sent"
    assert [m["X-Sluice-Customer"] for m in emails_of(sink, "cal-review-1")].count(
        boots.customer_id
    ) == 1
