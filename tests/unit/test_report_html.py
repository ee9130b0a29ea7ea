"""The HTML campaign report: content, number formatting, escaping, empty data, Chromium."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sluice.contracts.feedback import (
    ArmKpi,
    DriftRow,
    FunnelStep,
    GainsPoint,
    GuardrailResult,
    Incident,
    Interval,
    Rejection,
    ReportData,
    ScoreHistogram,
)
from sluice.report import render_html

SECTIONS = ("summary", "scores", "gains", "funnel", "arms", "guardrails", "incidents", "drift")
HOSTILE = "<script>alert(1)</script>"


def _arm(
    arm: str, version: str, recipients: int, sent: int, conversions: int, revenue: float
) -> ArmKpi:
    rate = conversions / recipients
    return ArmKpi.model_validate(
        {
            "arm": arm,
            "model_version": version,
            "recipients": recipients,
            "sent": sent,
            "conversions": conversions,
            "revenue": revenue,
            "conversion_rate": Interval(value=rate, low=rate * 0.9, high=rate * 1.1),
            "revenue_per_recipient": Interval(
                value=revenue / recipients, low=revenue / recipients * 0.8, high=None
            ),
            "lift_vs_holdout": None
            if arm == "holdout"
            else Interval(value=rate - 0.02, low=rate - 0.025, high=rate - 0.015),
            "unsubscribe_rate": Interval(value=0.0012, low=0.0008, high=0.0017),
            "complaint_rate": Interval(value=0.0001, low=0.0, high=0.0003),
            "unsubscribes": 3,
            "complaints": 0,
        }
    )


def _data(campaign_name: str = "Spring reactivation") -> ReportData:
    t0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    edges = [i / 10 for i in range(11)]
    return ReportData(
        run_id="spring-reactivation-2025-03-14",
        campaign_id="spring-reactivation",
        campaign_name=campaign_name,
        status="completed",
        started_at=t0,
        finished_at=datetime(2025, 3, 14, 9, 42, 7, tzinfo=UTC),
        generated_at=datetime(2025, 3, 21, 8, 0, tzinfo=UTC),
        model_version="propensity/7",
        canary_model_version="propensity/8",
        scores=ScoreHistogram(
            edges=edges,
            counts={
                "holdout": [300, 260, 220, 180, 150, 120, 90, 60, 40, 20],
                "canary": [600, 540, 470, 390, 310, 240, 170, 120, 80, 40],
                "main": [5100, 4600, 4100, 3500, 2900, 2300, 1700, 1200, 800, 400],
            },
        ),
        gains=[
            GainsPoint(
                decile=d,
                recipients=3000,
                conversions=c,
                cum_recipients_share=d / 10,
                cum_conversions_share=cum / 1000,
                lift=c / 100,
            )
            for d, c, cum in zip(
                range(1, 11),
                [310, 190, 130, 100, 80, 60, 50, 35, 28, 17],
                [310, 500, 630, 730, 810, 870, 920, 955, 983, 1000],
                strict=True,
            )
        ],
        funnel=[
            FunnelStep(stage="audience", count=33000),
            FunnelStep(stage="scored", count=31250),
            FunnelStep(stage="selected", count=29000),
            FunnelStep(stage="sent", count=28110),
        ],
        rejections=[
            Rejection(gate="consent", reason="no email consent", count=1200),
            Rejection(gate="frequency", reason="messaged in the last 7 days", count=550),
            Rejection(gate="format", reason="subject too long", count=2250),
        ],
        arms=[
            _arm("holdout", "propensity/7", 1440, 0, 29, 1450.0),
            _arm("canary", "propensity/8", 2940, 2811, 121, 6050.5),
            _arm("main", "propensity/7", 26600, 25299, 1102, 55120.75),
        ],
        guardrails=[
            GuardrailResult(
                name="canary-conversion",
                metric="conversion_rate ratio canary/main",
                fired=True,
                observed=0.7312,
                p_value=0.00002,
                detail="canary converts worse than main",
            ),
            GuardrailResult(
                name="complaints",
                metric="complaint_rate",
                fired=False,
                observed=0.0001,
                p_value=0.61,
                detail="below 0.1%",
            ),
        ],
        drift=[
            DriftRow(variable="score", psi=0.031, level="ok"),
            DriftRow(variable="days_since_last_order", psi=0.27, level="block"),
            DriftRow(variable="orders_12m", psi=0.14, level="warn"),
        ],
        incidents=[
            Incident(
                incident_id="inc-0001",
                campaign_id="spring-reactivation",
                run_id="spring-reactivation-2025-03-14",
                arm="canary",
                guardrail="canary-conversion",
                status="open",
                opened_at=datetime(2025, 3, 15, 12, 0, tzinfo=UTC),
                evidence={"ratio": 0.7312, "p_value": 0.00002},
                actions=["canary paused"],
            )
        ],
    )


def _empty() -> ReportData:
    data = _data()
    return data.model_copy(
        update={
            "scores": ScoreHistogram(edges=[], counts={}),
            "gains": [],
            "funnel": [],
            "rejections": [],
            "arms": [],
            "guardrails": [],
            "drift": [],
            "incidents": [],
            "finished_at": None,
            "canary_model_version": None,
        }
    )


def _cell(html: str, attr: str, key: str) -> re.Match[str]:
    match = re.search(rf'<td[^>]*{attr}="{re.escape(key)}"[^>]*>(.*?)</td>', html)
    assert match is not None, f"no cell {attr}={key}"
    return match


def test_document_is_self_contained_with_every_section() -> None:
    html = render_html(_data())
    assert html.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in html
    title = re.search(r"<title>(.*?)</title>", html)
    assert title is not None and "spring-reactivation-2025-03-14" in title.group(1)
    for section in SECTIONS:
        assert f'<section id="{section}"' in html
    assert html.count("<svg") >= 6
    assert "<script" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
    assert "http://" not in html and "https://" not in html
    assert "propensity/8" in html  # the canary model version in the summary


def test_arm_cells_carry_raw_and_formatted_numbers() -> None:
    html = render_html(_data())
    main_conv = _cell(html, "data-kpi", "main.conversions")
    assert 'data-value="1102"' in main_conv.group(0) and main_conv.group(1) == "1,102"
    assert 'data-value="2811"' in _cell(html, "data-kpi", "canary.sent").group(0)
    assert _cell(html, "data-kpi", "main.recipients").group(1) == "26,600"
    assert _cell(html, "data-kpi", "holdout.sent").group(1) == "0"
    assert _cell(html, "data-kpi", "main.revenue").group(1) == "55,120.75"
    # 121 / 2940 = 4.1156%, interval ±10%.
    rate = _cell(html, "data-kpi", "canary.conversion_rate")
    assert rate.group(1).startswith("4.12%") and "3.70% – 4.53%" in rate.group(1)
    rpr = _cell(html, "data-kpi", "canary.revenue_per_recipient").group(1)
    assert rpr == "2.06"  # 6050.5 / 2940; no upper bound, so no interval shown
    assert _cell(html, "data-kpi", "holdout.lift_vs_holdout").group(1) == "n/a"
    assert _cell(html, "data-kpi", "canary.lift_vs_holdout").group(1).startswith("+2.12 pp")
    assert _cell(html, "data-kpi", "main.unsubscribe_rate").group(1).startswith("0.12%")
    assert _cell(html, "data-kpi", "main.complaint_rate").group(1).startswith("0.01%")


def test_funnel_rejections_guardrails_drift_and_incidents() -> None:
    html = render_html(_data())
    sent = _cell(html, "data-funnel", "sent")
    assert 'data-value="28110"' in sent.group(0) and sent.group(1) == "28,110"
    assert _cell(html, "data-rejection", "format.subject too long").group(1) == "2,250"
    assert "no email consent" in html
    drift = _cell(html, "data-drift", "days_since_last_order")
    assert 'data-value="0.27"' in drift.group(0) and drift.group(1) == "0.270"
    assert '<tr class="block"><td>days_since_last_order</td>' in html
    assert '<tr class="warn"><td>orders_12m</td>' in html
    fired = _cell(html, "data-guardrail", "canary-conversion").group(0)
    assert 'data-fired="true"' in fired
    assert "0.7312" in html and "&lt;0.0001" in html
    assert "inc-0001" in html and "canary paused" in html
    assert "No incidents" not in html
    gains = html[html.index('id="gains"') : html.index('id="funnel"')]
    assert "3.10" in gains and "10.33%" in gains  # lift 3.10×, decile 1 rate 310/3000


def _funnel_rows(html: str) -> dict[str, list[str]]:
    """The funnel table's cells by stage: count, parent stage, of parent, of the first."""
    section = html[html.index('id="funnel"') :]
    table = section[section.index("<table") : section.index("</table>")]
    rows = re.findall(r"<tr><td>(.*?)</td>(.*?)</tr>", table)
    return {stage: re.findall(r"<td[^>]*>(.*?)</td>", cells) for stage, cells in rows}


def test_funnel_shares_are_of_the_parent_stage() -> None:
    # The demo's shape: one quarantined row, most scored customers selected.
    counts = {
        "audience": 20001,
        "quarantined": 1,
        "scored": 20000,
        "holdout": 1000,
        "arm_paused": 0,
        "no_offer": 1652,
        "selected": 17348,
        "review": 120,
        "deferred": 300,
        "sent": 15000,
        "failed": 20,
        "suppressed_at_send": 8,
    }
    funnel = [FunnelStep(stage=stage, count=n) for stage, n in counts.items()]
    html = render_html(_data().model_copy(update={"funnel": funnel}))
    rows = _funnel_rows(html)
    assert list(rows) == list(counts)
    head = html[html.index('id="funnel"') :]
    head = head[head.index("<thead>") : head.index("</thead>")]
    assert "of parent stage" in head and "of audience" in head
    # Quarantined and scored both split the rows read, not one the other.
    assert rows["quarantined"][1:3] == ["audience", "0.00%"]
    assert rows["scored"][1:3] == ["audience", "100.00%"]
    assert rows["no_offer"][1:3] == ["scored", "8.26%"]
    assert rows["selected"][1:3] == ["scored", "86.74%"]
    assert rows["sent"][1:3] == ["selected", "86.47%"]
    assert rows["review"][1] == "selected" and rows["suppressed_at_send"][1] == "selected"
    # The top has no parent, so no share of one.
    assert rows["audience"][1:3] == ["—", ""]
    cells = [cell for row in rows.values() for cell in row if cell.endswith("%")]
    assert len(cells) == 2 * len(counts) - 1  # every share of the parent and of the top
    assert max(float(cell[:-1].replace(",", "")) for cell in cells) <= 100.0


def test_funnel_stage_without_its_parent_shows_no_share() -> None:
    # A run without its own counts starts at ``scored``; unknown stages have no parent.
    funnel = [
        FunnelStep(stage="scored", count=500),
        FunnelStep(stage="selected", count=400),
        FunnelStep(stage="mystery", count=900),
        FunnelStep(stage="sent", count=0),
    ]
    rows = _funnel_rows(render_html(_data().model_copy(update={"funnel": funnel})))
    assert rows["scored"][1:3] == ["—", ""] and rows["mystery"][1:3] == ["—", ""]
    assert rows["selected"][1:4] == ["scored", "80.00%", "80.00%"]
    assert rows["sent"][1:3] == ["selected", "0.00%"]


def test_hostile_text_is_escaped() -> None:
    data = _data(campaign_name=HOSTILE)
    data = data.model_copy(
        update={
            "funnel": [FunnelStep(stage='"><img src=x onerror=alert(1)>', count=5)],
            "drift": [DriftRow(variable="<b>x</b>", psi=0.5, level="block")],
        }
    )
    html = render_html(data)
    assert HOSTILE not in html
    assert "<script" not in html and "<img" not in html and "<b>x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_empty_data_renders_no_data_notes() -> None:
    html = render_html(_empty())
    for section in SECTIONS:
        assert f'<section id="{section}"' in html
    assert 'class="no-data"' in html and "No data" in html
    assert "No incidents" in html and "No drift measured" in html
    assert "No guardrails evaluated" in html and "data-kpi" not in html
    assert "nan" not in html.lower().replace("nav", "")


def test_missing_values_do_not_break_charts() -> None:
    data = _data()
    nothing = Interval(value=None, low=None, high=None)
    arms = [a.model_copy(update={"conversion_rate": nothing}) for a in data.arms]
    gains = [g.model_copy(update={"lift": None}) for g in data.gains]
    scores = ScoreHistogram(edges=[0.0, 0.5, 1.0], counts={"main": [0, 0], "canary": [1]})
    html = render_html(data.model_copy(update={"arms": arms, "gains": gains, "scores": scores}))
    assert _cell(html, "data-kpi", "main.conversion_rate").group(1) == "n/a"
    assert "No data" in html


def test_report_in_chromium(tmp_path: Path) -> None:
    pytest.importorskip("playwright")
    from sluice.report.browser import check_in_browser, find_chromium

    try:
        find_chromium()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    data = _data(campaign_name=HOSTILE)
    path = tmp_path / "report.html"
    path.write_text(render_html(data), encoding="utf-8")
    check = check_in_browser(path, screenshot=tmp_path / "report.png")
    assert check.console_errors == []
    assert check.failed_requests == []
    assert "spring-reactivation-2025-03-14" in check.title and HOSTILE in check.title
    assert check.svg_rendered >= 4
    for arm in data.arms:
        for field in ("recipients", "sent", "conversions"):
            assert check.values[f"{arm.arm}.{field}"] == str(getattr(arm, field))
    assert check.values["canary.sent"] == "2811"
    assert check.values["funnel.sent"] == "28110"
    assert check.values["rejection.consent.no email consent"] == "1200"
    assert float(check.values["drift.orders_12m"]) == 0.14
    assert check.values["holdout.lift_vs_holdout"] == "n/a"
    assert (tmp_path / "report.png").stat().st_size > 10_000
