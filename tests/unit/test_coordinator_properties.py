"""Properties of the coordinator (gates, ledger, delivery) over random populations."""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.channels.unsubscribe import Keyring
from sluice.contracts.campaign import CampaignSpec
from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.coordinator.core import CoordinatorCore
from sluice.store import connect, dispose_all
from sluice.store.suppressions import Suppressions

KEYS = Keyring.of("fedcba9876543210" * 4)
ZONES = [
    "America/New_York",
    "America/Los_Angeles",
    "Europe/Berlin",
    "Europe/London",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Pacific/Auckland",
]
# Instants around DST changes: US spring-forward and fall-back, EU fall-back,
# Sydney/Auckland April change.
INSTANTS = [
    datetime(2026, 3, 8, 6, 59, tzinfo=UTC),
    datetime(2026, 3, 8, 7, 1, tzinfo=UTC),
    datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
    datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
    datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
    datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
    datetime(2026, 4, 4, 15, 30, tzinfo=UTC),
    datetime(2026, 4, 4, 16, 30, tzinfo=UTC),
]


def spec(outbox: Path, campaign: str, cap: int | None) -> CampaignSpec:
    return CampaignSpec.model_validate(
        {
            "campaign_id": campaign,
            "name": campaign,
            "brand": "outdoors",
            "audience": {"features": str(outbox), "customers": str(outbox)},
            "channels": {
                "email": {"transport": "outbox", "path": str(outbox)},
                "sms": {"transport": "outbox", "path": str(outbox)},
            },
            "gates": {"frequency_cap": {"per_day": cap} if cap else None, "quiet_hours": None},
        }
    )


def candidates(rows: list[dict[str, Any]], run: str) -> pa.Table:
    out = []
    for r in rows:
        cid, channel = r["customer_id"], r["channel"]
        out.append(
            {
                "customer_id": cid,
                "decision_id": f"dec_{run}_{cid}",
                "arm": "main",
                "score": 0.5,
                "model_name": "m",
                "model_version": "1",
                "feature_hash": "f",
                "offer_id": "spring-boots-20",
                "channel": channel,
                "expected_value": 1.0,
                "exclusions": "",
                "offer_url": "https://shop.example.com/x",
                "country": "US",
                "time_zone": r.get("time_zone", "Europe/Berlin"),
                "locale": "en-US",
                "email": f"{cid}@example.com",
                "phone": "+15550000000",
                "first_name": "Ada",
                "consent_email": r.get("consent_email", True),
                "consent_sms": r.get("consent_sms", True),
                "consent_push": None,
                "subject": "S" if channel == "email" else None,
                "preheader": "P" if channel == "email" else None,
                "body": "B" if channel == "email" else None,
                "cta": "C" if channel == "email" else None,
                "text": "T" if channel == "sms" else None,
                "copy_source": "fixed",
                "template_version": None,
                "prompt_hash": None,
                "llm_model_id": None,
                "draft_id": "d1",
                "draft_json": "{}",
            }
        )
    return pa.Table.from_pylist(out)


def delivered(outbox: Path, run: str) -> list[dict[str, Any]]:
    found = []
    for f in (outbox / run).glob("*.jsonl"):
        found += [json.loads(line) for line in f.read_text().splitlines()]
    return found


consent = st.sampled_from([True, False, None])
person = st.fixed_dictionaries(
    {"channel": st.sampled_from(["email", "sms"]), "consent_email": consent, "consent_sms": consent}
)
suppression = st.tuples(
    st.sampled_from(["unsubscribed", "bounced", "complained"]),
    st.sampled_from(["email", "sms", "*"]),
    st.sampled_from(["outdoors", "other", "*"]),
)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    people=st.lists(person, min_size=1, max_size=25),
    suppressed=st.dictionaries(st.integers(0, 24), suppression, max_size=8),
)
def test_nothing_is_delivered_without_consent_or_to_a_suppressed_customer(
    fresh_database: Callable[[Path], str],
    people: list[dict[str, Any]],
    suppressed: dict[int, tuple[str, str, str]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url = fresh_database(root)
        rows = [{**p, "customer_id": f"c{i}"} for i, p in enumerate(people)]
        store = Suppressions(connect(url))
        for i, (reason, channel, brand) in suppressed.items():
            store.add(f"c{i}", reason, channel=channel, brand=brand)
        core = CoordinatorCore(
            "run-p", spec(root, "camp", cap=100), False, url, KEYS, SYSTEM_CLOCK.today()
        )
        core.submit(candidates(rows, "run-p"))
        core.close()
        sent = {(m["customer_id"], m["channel"]) for m in delivered(root, "run-p")}
        for r in rows:
            cid, ch = r["customer_id"], r["channel"]
            blocked = any(
                s == cid and sup[1] in (ch, "*") and sup[2] in ("outdoors", "*")
                for s, sup in ((f"c{i}", v) for i, v in suppressed.items())
            )
            allowed = r[f"consent_{ch}"] is True and not blocked
            assert ((cid, ch) in sent) == allowed, (r, suppressed)
        dispose_all()


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=20),
    first=st.sampled_from(INSTANTS),
    gap_hours=st.sampled_from([1, 3, 12, 23, 25]),
    cap=st.sampled_from([1, 2]),
)
def test_no_recipient_exceeds_the_cap_across_zones_dst_and_two_campaigns(
    fresh_database: Callable[[Path], str],
    zones: list[str],
    first: datetime,
    gap_hours: int,
    cap: int,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url = fresh_database(root)
        people = [
            {"customer_id": f"c{i}", "channel": "email", "time_zone": z}
            for i, z in enumerate(zones)
        ]
        instants = [first, first + timedelta(hours=gap_hours)]
        errors: list[BaseException] = []

        def campaign(name: str, moment: datetime) -> None:
            try:
                run = f"{name}-{moment:%H%M}"
                core = CoordinatorCore(
                    run,
                    spec(root, name, cap),
                    False,
                    url,
                    KEYS,
                    moment.date(),
                    clock=Clock.at(moment),
                )
                core.submit(candidates(people, run))
                core.close()
            except BaseException as exc:  # pragma: no cover - surfaced below
                errors.append(exc)

        # Three campaigns at each instant, running at the same time.
        for moment in instants:
            threads = [
                threading.Thread(target=campaign, args=(name, moment)) for name in ("a", "b", "c")
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert not errors
        per_day: dict[tuple[str, object], int] = {}
        zone_of = {p["customer_id"]: p["time_zone"] for p in people}
        for moment in instants:
            for name in ("a", "b", "c"):
                for m in delivered(root, f"{name}-{moment:%H%M}"):
                    day = moment.astimezone(ZoneInfo(zone_of[m["customer_id"]])).date()
                    per_day[(m["customer_id"], day)] = per_day.get((m["customer_id"], day), 0) + 1
        assert per_day and max(per_day.values()) <= cap
        # Everyone got their first message: the cap limits, it does not starve.
        assert {cid for cid, _ in per_day} == {p["customer_id"] for p in people}
        dispose_all()


def test_a_customer_twice_in_a_batch_gets_one_message_and_the_batch_goes_on(
    database_url: str,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url = database_url
        people = [
            {"customer_id": "c1", "channel": "email"},
            {"customer_id": "c2", "channel": "email"},
            {"customer_id": "c1", "channel": "sms"},  # the same customer again
        ]
        core = CoordinatorCore(
            "run-d", spec(root, "dupes", cap=None), False, url, KEYS, SYSTEM_CLOCK.today()
        )
        counts = core.submit(candidates(people, "run-d"))
        core.close()
        dispose_all()
        assert counts["duplicate"] == 1
        sent = sorted((m["customer_id"], m["channel"]) for m in delivered(root, "run-d"))
        assert sent == [("c1", "email"), ("c2", "email")]
