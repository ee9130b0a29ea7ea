"""The HTML journey report: steps against the step they come from, exits, live instances,
conversions and lift; escaping, no external references; a real journey through the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.unit.test_journeys import World, cart, spec_data

from sluice.contracts.journey import JourneySpec
from sluice.journeys.funnel import funnel
from sluice.report.journey_html import (
    ENTRIES,
    SECTIONS,
    render_journey_html,
    step_sources,
    write_journey_report,
)
from sluice.settings import SluiceSettings

HOSTILE = "<script>alert(1)</script>"
GENERATED = datetime(2026, 12, 9, 8, 0, tzinfo=UTC)


def _spec(root: Path) -> JourneySpec:
    """A branch into two sends that meet again at an exit step."""
    steps = [
        {"id": "grace", "wait": {"for": "1h"}},
        {
            "id": "check",
            "branch": {
                "attribute": {"field": "tier", "value": "gold"},
                "then": "vip",
                "else": "plain",
            },
        },
        {"id": "vip", "send": {"channel": "email", "offer": {"id": "vip"}}, "next": "done"},
        {"id": "plain", "send": {"channel": "email", "offer": {"id": "plain"}}},
        {"id": "done", "exit": {"reason": "done"}},
    ]
    return JourneySpec.model_validate(spec_data(root, steps=steps, holdout_pct=10))


def _outcomes(**arms: tuple[int, int]) -> dict[str, dict[str, int]]:
    return {o: {"treated": t, "holdout": h} for o, (t, h) in arms.items()}


def _figures() -> dict[str, Any]:
    return {
        "journey_id": "cart",
        "entries": 1000,
        "live": 50,
        "completed": 97,
        "exited": {"done": 800, "event:purchase": 50, "unsubscribed": 3},
        "at_step": {"grace": 50},
        "steps": [
            {
                "step": "grace",
                "kind": "wait",
                "outcomes": _outcomes(waited=(810, 90), **{"event:purchase": (40, 10)}),
            },
            {
                "step": "check",
                "kind": "branch",
                "outcomes": _outcomes(then=(320, 40), **{"else": (480, 60)}),
            },
            {
                "step": "vip",
                "kind": "send",
                "outcomes": _outcomes(
                    sent=(300, 0), holdout=(0, 40), **{"rejected:consent": (20, 0)}
                ),
            },
            {
                "step": "plain",
                "kind": "send",
                "outcomes": _outcomes(sent=(450, 0), holdout=(0, 60), deferred=(30, 0)),
            },
            {"step": "done", "kind": "exit", "outcomes": _outcomes(done=(700, 100))},
        ],
        "sent": 750,
        "conversions": {
            "event": "purchase",
            "treated": {"instances": 900, "converted": 90},
            "holdout": {"instances": 100, "converted": 5},
            "lift": {"value": 0.05, "low": 0.01, "high": 0.09},
        },
    }


def _render(figures: dict[str, Any], root: Path, **kw: Any) -> str:
    spec = _spec(root)
    args: dict[str, Any] = {
        "name": spec.name,
        "status": "active",
        "sources": step_sources(spec),
        "generated_at": GENERATED,
    }
    return render_journey_html(figures, **{**args, **kw})


def _cell(html: str, attr: str, key: str) -> re.Match[str]:
    match = re.search(rf'<td[^>]*{attr}="{re.escape(key)}"[^>]*>(.*?)</td>', html)
    assert match is not None, f"no cell {attr}={key}"
    return match


def test_step_sources_follow_the_graph_not_the_order(tmp_path: Path) -> None:
    assert step_sources(_spec(tmp_path)) == {
        "grace": (ENTRIES,),
        "check": ("grace",),
        "vip": ("check",),
        "plain": ("check",),  # not vip, the step above it: vip goes on to done
        "done": ("vip", "plain"),
    }


def test_document_is_self_contained_with_every_section(tmp_path: Path) -> None:
    html = _render(_figures(), tmp_path)
    assert html.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in html
    title = re.search(r"<title>(.*?)</title>", html)
    assert title is not None and "cart" in title.group(1) and "Cart" in title.group(1)
    for section in SECTIONS:
        assert f'<section id="{section}"' in html
    assert "<script" not in html
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
    assert html.count("<svg") >= 3  # steps, exits, conversion rates
    for step in ("grace", "check", "vip", "plain", "done"):
        assert f'data-step="{step}"' in html
    assert "active" in html and "2026-12-09 08:00:00 UTC" in html


def test_step_counts_outcomes_exits_live_and_conversions(tmp_path: Path) -> None:
    html = _render(_figures(), tmp_path)
    entries = re.search(r"<b>([\d,]+)</b><span>entries</span>", html)
    assert entries is not None and entries.group(1) == "1,000"
    grace = _cell(html, "data-funnel", "grace")
    assert 'data-value="950"' in grace.group(0) and grace.group(1) == "950"
    assert _cell(html, "data-funnel", "plain").group(1) == "540"
    assert _cell(html, "data-outcome", "vip.rejected:consent.treated").group(1) == "20"
    assert _cell(html, "data-outcome", "plain.holdout.holdout").group(1) == "60"
    assert _cell(html, "data-outcome", "grace.waited.treated").group(1) == "810"
    assert _cell(html, "data-exit", "done").group(1) == "800"
    assert _cell(html, "data-exit", "event:purchase").group(1) == "50"
    assert _cell(html, "data-live", "grace").group(1) == "50"
    assert _cell(html, "data-kpi", "treated.converted").group(1) == "90"
    assert _cell(html, "data-kpi", "holdout.instances").group(1) == "100"
    rate = _cell(html, "data-kpi", "treated.rate").group(1)
    assert rate.startswith("10.00%") and 'class="ci"' in rate  # 90 / 900, Wilson interval
    lift = _cell(html, "data-kpi", "lift")
    assert lift.group(1).startswith("+5.00 pp") and "+1.00 pp – +9.00 pp" in lift.group(1)
    assert 'data-low="0.01"' in lift.group(0) and 'data-high="0.09"' in lift.group(0)
    assert "+5.00 pp" in html[: html.index('id="steps"')]  # the summary card


def test_shares_are_of_the_step_each_comes_from(tmp_path: Path) -> None:
    html = _render(_figures(), tmp_path)
    share = {s: _cell(html, "data-share", s).group(1) for s in ("grace", "check", "vip", "plain")}
    assert share["grace"] == "95.00%"  # 950 of 1,000 entries
    assert share["check"] == "94.74%"  # 900 of grace's 950
    assert share["vip"] == "40.00%"  # 360 of check's 900
    # plain comes from the branch too: 540 of 900, not of the row above (vip's 360: 150%).
    assert share["plain"] == "60.00%"
    assert "150.00%" not in html
    assert _cell(html, "data-from", "plain").group(1) == "check"
    # done is reached from two sends: both named, no share of one.
    assert _cell(html, "data-from", "done").group(1) == "vip, plain"
    assert _cell(html, "data-share", "done").group(1) == ""
    assert _cell(html, "data-from", "grace").group(1) == "entries"


def test_hostile_names_are_escaped(tmp_path: Path) -> None:
    figures = _figures()
    figures["steps"].append(
        {"step": HOSTILE, "kind": "wait", "outcomes": _outcomes(**{HOSTILE: (1, 0)})}
    )
    figures["exited"][HOSTILE] = 2
    figures["at_step"]['"><img src=x onerror=alert(1)>'] = 1
    figures["conversions"]["event"] = "<b>purchase</b>"
    sources = {**step_sources(_spec(tmp_path)), HOSTILE: ("check",)}
    html = _render(figures, tmp_path, name=HOSTILE, status=HOSTILE, sources=sources)
    assert HOSTILE not in html
    assert "<script" not in html and "<img" not in html and "<b>purchase" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "http://" not in html and "https://" not in html


def test_without_conversion_lift_or_instances(tmp_path: Path) -> None:
    figures = _figures()
    del figures["conversions"]
    html = _render(figures, tmp_path)
    assert "No conversion event configured" in html and "data-kpi" not in html
    figures = _figures()
    figures["conversions"]["holdout"] = {"instances": 0, "converted": 0}
    del figures["conversions"]["lift"]
    html = _render(figures, tmp_path)
    assert "No lift yet" in html
    assert _cell(html, "data-kpi", "holdout.rate").group(1) == "n/a"
    empty = {
        "journey_id": "cart",
        "entries": 0,
        "live": 0,
        "completed": 0,
        "exited": {},
        "at_step": {},
        "steps": [{"step": s.id, "kind": s.kind, "outcomes": {}} for s in _spec(tmp_path).steps],
        "sent": 0,
    }
    html = _render(empty, tmp_path)
    assert "No data" in html and "No exits" in html and "No live instances" in html
    assert _cell(html, "data-share", "grace").group(1) == "n/a"  # 0 of 0 entries
    assert "nan" not in html.lower().replace("nav", "")


def _run_journey(settings: SluiceSettings, root: Path) -> World:
    w = World(settings, root, 4)
    w.events(cart("c000", "k0"), cart("c001", "k1"), cart("c002", "k2"), cart("c003", "k3"))
    w.at(timedelta(minutes=30))
    w.events({"type": "purchase", "customer_id": "c000", "properties": {"cart_id": "k0"}})
    w.at(timedelta(minutes=31))
    w.at(timedelta(hours=1, minutes=1))
    return w


def test_a_real_journey_reports_its_funnel(db_settings: SluiceSettings, tmp_path: Path) -> None:
    w = _run_journey(db_settings, tmp_path)
    try:
        figures = funnel(w.db, w.spec, w.clock.now())
        out = write_journey_report(
            figures, w.spec, tmp_path / "r" / "journey.html", status="active"
        )
    finally:
        w.engine.close()
    html = out.read_text(encoding="utf-8")
    # c000 bought its cart during the grace wait; the others waited and were reminded.
    assert _cell(html, "data-funnel", "grace").group(1) == "4"
    assert _cell(html, "data-outcome", "grace.event:purchase.treated").group(1) == "1"
    assert _cell(html, "data-funnel", "remind").group(1) == "3"
    assert _cell(html, "data-share", "remind").group(1) == "75.00%"  # 3 of grace's 4
    assert _cell(html, "data-exit", "event:purchase").group(1) == "1"
    assert _cell(html, "data-live", "later").group(1) == "3"
    assert _cell(html, "data-kpi", "treated.converted").group(1) == "1"
    assert "No lift yet" in html  # holdout_pct 0
    assert "http://" not in html and "https://" not in html


def test_the_cli_writes_the_report_and_ends_with_a_json_line(
    db_settings: SluiceSettings, tmp_path: Path
) -> None:
    _run_journey(db_settings, tmp_path).engine.close()
    out = tmp_path / "reports" / "cart.html"
    url = db_settings.effective_database_url
    env = {**os.environ, "SLUICE_HOME": str(db_settings.home), "SLUICE_DATABASE_URL": url}

    def report(journey_id: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sluice", "journey", "report", journey_id, "--out", str(out)],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip

    result = report("cart")
    assert result.returncode == 0, result.stderr
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last == {"report": str(out.resolve()), "journey_id": "cart"}
    assert str(out.resolve()) in result.stdout.replace("\n", "")
    html = out.read_text(encoding="utf-8")
    assert _cell(html, "data-funnel", "remind").group(1) == "3"
    assert report("nope").returncode != 0


def test_report_in_chromium(tmp_path: Path) -> None:
    pytest.importorskip("playwright")
    from sluice.report.browser import check_in_browser, find_chromium

    try:
        find_chromium()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    path = tmp_path / "journey.html"
    path.write_text(_render(_figures(), tmp_path, name=HOSTILE), encoding="utf-8")
    check = check_in_browser(path, screenshot=tmp_path / "journey.png")
    assert check.console_errors == [] and check.failed_requests == []
    assert "cart" in check.title and HOSTILE in check.title
    assert check.svg_rendered >= 3
    assert check.values["funnel.grace"] == "950" and check.values["funnel.plain"] == "540"
    assert check.values["treated.converted"] == "90" and check.values["lift"] == "0.05"
    assert (tmp_path / "journey.png").stat().st_size > 10_000
