"""The journey report: one self-contained HTML5 document of a journey's funnel.

Built from the funnel dict of :func:`sluice.journeys.funnel.funnel` and the spec's step
graph, in the campaign report's look (its style sheet, table helpers and inline SVG
charts): no scripts, no external resources, all text escaped.

A step's *reached* count is the sum of its recorded outcomes, treated and holdout
together (instances still waiting at a step have no outcome there yet: they are shown
under "Live now"). Each step's count is shown against the step it comes from: the
entries for the first step, otherwise that step's reached count; never the row above,
since a branch's paths each come from the branch. A step reached from several places (a
merge after a branch, a loop back) lists them all and shows no share of one.

Cells carrying numbers hold the raw value in ``data-value``; step reached counts are
marked ``data-funnel="{step}"``, their share of the step they come from
``data-share="{step}"``, outcome counts ``data-outcome="{step}.{outcome}.{arm}"``, exit
counts ``data-exit="{reason}"``, live counts ``data-live="{step}"`` and conversion cells
``data-kpi="{arm}.{field}"`` (``treated`` / ``holdout``; ``lift``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sluice.contracts.feedback import Interval
from sluice.contracts.journey import JourneySpec
from sluice.feedback.stats import wilson
from sluice.report import svg
from sluice.report.format import _e, fmt_int, fmt_pct, fmt_pp, fmt_time
from sluice.report.html import (
    ARM_COLOURS,
    _badge,
    _code,
    _count,
    _empty,
    _int_td,
    _interval_td,
    _section,
    _status_kind,
    _table,
    _td,
)
from sluice.report.style import CSS

ENTRIES = ""
"""In :func:`step_sources`, the journey's entries (no step id is empty)."""

JOURNEY_COLOURS = {"treated": ARM_COLOURS["main"], "holdout": ARM_COLOURS["holdout"]}
_ARMS = ("treated", "holdout")


def step_sources(spec: JourneySpec) -> dict[str, tuple[str, ...]]:
    """Step id -> where its instances come from, in spec order: :data:`ENTRIES` for the
    first step, then every step that may lead to it (by ``next``, a wait's paths, a
    branch's paths or the step below)."""
    found: dict[str, list[str]] = {s.id: [] for s in spec.steps}
    found[spec.steps[0].id].append(ENTRIES)
    for step in spec.steps:
        for target in sorted(spec.successors(step)):
            if step.id not in found[target]:
                found[target].append(step.id)
    return {sid: tuple(froms) for sid, froms in found.items()}


def _n(x: object) -> int:
    return int(x) if isinstance(x, int | float) else 0


def _arm_counts(arms: object) -> tuple[int, int]:
    a = arms if isinstance(arms, Mapping) else {}
    return _n(a.get("treated", 0)), _n(a.get("holdout", 0))


def reached(step: Mapping[str, Any]) -> int:
    """Instances that reached a step of the funnel dict: the sum of its outcomes."""
    return sum(sum(_arm_counts(a)) for a in dict(step.get("outcomes") or {}).values())


def _share_td(n: int, base: int, **attrs: str) -> str:
    """``n`` as a share of ``base`` (``n/a`` when ``base`` is 0)."""
    share = n / base if base else None
    return _td(fmt_pct(share), share, "num", False, **attrs)


def _source_name(source: str) -> str:
    return "entries" if source == ENTRIES else source


def _summary(figures: Mapping[str, Any], name: str, status: str, details: Mapping[str, str]) -> str:
    facts = {
        "Journey": f"{_e(name)} ({_code(str(figures.get('journey_id', '')))})",
        "Status": _badge(status, _status_kind(status)),
        **{k: _e(v) for k, v in details.items()},
    }
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in facts.items())
    exited = dict(figures.get("exited") or {})
    conv = figures.get("conversions")
    lift = conv.get("lift") if isinstance(conv, Mapping) else None
    cards = {
        "entries": fmt_int(_n(figures.get("entries"))),
        "live now": fmt_int(_n(figures.get("live"))),
        "completed": fmt_int(_n(figures.get("completed"))),
        "exited": fmt_int(sum(_n(v) for v in exited.values())),
        "messages sent": fmt_int(_n(figures.get("sent"))),
        "lift vs holdout": fmt_pp(lift.get("value")) if isinstance(lift, Mapping) else "n/a",
    }
    card = "".join(
        f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in cards.items()
    )
    body = f'<dl class="facts">{dl}</dl><div class="cards">{card}</div>'
    return _section("summary", "Summary", body)


def _step_rows(
    step: Mapping[str, Any], counts: Mapping[str, int], entries: int, froms: Sequence[str]
) -> list[str]:
    sid = str(step.get("step", ""))
    n = counts[sid]
    outcomes = sorted(dict(step.get("outcomes") or {}).items())
    span = str(max(len(outcomes), 1))  # the step's cells span its outcome rows
    if len(froms) == 1:
        base = entries if froms[0] == ENTRIES else counts.get(froms[0], 0)
        share_td = _share_td(n, base, rowspan=span, data_share=sid)
    else:
        share_td = _td("", rowspan=span, data_share=sid)
    from_text = ", ".join(_source_name(f) for f in froms) or "—"
    lead = (
        f'<tr data-step="{_e(sid)}"><th scope="row" rowspan="{span}">{_e(sid)}</th>'
        f'<td rowspan="{span}">{_e(step.get("kind", ""))}</td>'
        + _int_td(n, rowspan=span, data_funnel=sid)
        + _td(from_text, cls="", rowspan=span, data_from=sid)
        + share_td
        + _share_td(n, entries, rowspan=span)
    )
    if not outcomes:
        return [lead + '<td>—</td><td class="num"></td><td class="num"></td><td></td></tr>']
    rows = []
    for i, (outcome, arms) in enumerate(outcomes):
        treated, holdout = _arm_counts(arms)
        key = f"{sid}.{outcome}"
        cells = (
            f"<td>{_e(outcome)}</td>"
            + _int_td(treated, data_outcome=f"{key}.treated")
            + _int_td(holdout, data_outcome=f"{key}.holdout")
            + _share_td(treated + holdout, n)
        )
        rows.append((lead if i == 0 else "<tr>") + cells + "</tr>")
    return rows


def _steps(figures: Mapping[str, Any], sources: Mapping[str, Sequence[str]]) -> str:
    steps = [s for s in figures.get("steps") or () if isinstance(s, Mapping)]
    counts = {str(s.get("step", "")): reached(s) for s in steps}
    entries = _n(figures.get("entries"))
    bars = [(sid, float(n)) for sid, n in counts.items()]
    title = f"Instances reaching each step (of {entries:,} entries)"
    chart = (
        svg.hbar_chart(title, bars, x_label="instances", fmt=_count)
        if entries or any(counts.values())
        else svg.no_data(title, "No data: no instances yet")
    )
    if not steps:
        return _section("steps", "Steps", chart + _empty("No steps"))
    rows = [
        row
        for s in steps
        for row in _step_rows(s, counts, entries, sources.get(str(s.get("step", "")), ()))
    ]
    head = [
        "step", "kind", "reached", "comes from", "of where it comes from", "of entries",
        "outcome", "treated", "holdout", "of step",
    ]  # fmt: skip
    note = (
        "<p>Reached: the step's recorded outcomes, treated and holdout together (instances "
        "still waiting at a step are under Live now). Each share is of the step the "
        "instances come from (the entries for the first step), not of the row above; a "
        "step reached from several steps shows no share of one.</p>"
    )
    table = _table(head, rows, (2, 4, 5, 7, 8, 9))
    return _section("steps", "Steps", f"{chart}{note}{table}")


def _exits(figures: Mapping[str, Any]) -> str:
    exited = {str(k): _n(v) for k, v in dict(figures.get("exited") or {}).items()}
    entries = _n(figures.get("entries"))
    completed = _n(figures.get("completed"))
    summary = (
        f"<p>{_e(fmt_int(completed))} completed (reached the end of the journey); "
        f"{_e(fmt_int(sum(exited.values())))} exited early.</p>"
    )
    if not exited:
        return _section("exits", "Exits", summary + _empty("No exits"))
    order = sorted(exited.items(), key=lambda kv: (-kv[1], kv[0]))
    total = sum(exited.values())
    bars = [(reason, float(n)) for reason, n in order]
    chart = svg.hbar_chart(
        "Exits by reason", bars, x_label="instances", fmt=_count, colour="#d1495b"
    )
    rows = [
        f"<tr><td>{_e(reason)}</td>{_int_td(n, data_exit=reason)}"
        f"{_share_td(n, total)}{_share_td(n, entries)}"
        "</tr>"
        for reason, n in order
    ]
    table = _table(["reason", "instances", "of exits", "of entries"], rows, (1, 2, 3))
    return _section("exits", "Exits", f'{summary}<div class="grid2">{chart}{table}</div>')


def _live(figures: Mapping[str, Any]) -> str:
    at_step = {str(k): _n(v) for k, v in dict(figures.get("at_step") or {}).items()}
    live = _n(figures.get("live")) or sum(at_step.values())
    if not at_step:
        return _section("live", "Live now", _empty("No live instances"))
    known = [str(s.get("step", "")) for s in figures.get("steps") or () if isinstance(s, Mapping)]
    order = [s for s in known if s in at_step] + sorted(s for s in at_step if s not in known)
    rows = [
        f"<tr><td>{_e(sid)}</td>{_int_td(at_step[sid], data_live=sid)}"
        f"{_share_td(at_step[sid], live)}"
        "</tr>"
        for sid in order
    ]
    note = f"<p>{_e(fmt_int(live))} live instances, by the step each stands at now.</p>"
    table = _table(["step", "live instances", "of live"], rows, (1, 2), "narrow")
    return _section("live", "Live now", note + table)


def _arm_rate(arm: Mapping[str, Any]) -> Interval:
    n, k = _n(arm.get("instances")), _n(arm.get("converted"))
    if not n:
        return Interval(value=None, low=None, high=None)
    low, high = wilson(k, n)
    return Interval(value=k / n, low=low, high=high)


def _conversions(figures: Mapping[str, Any]) -> str:
    conv = figures.get("conversions")
    if not isinstance(conv, Mapping):
        return _section("conversions", "Conversions", _empty("No conversion event configured"))
    rows, points = [], []
    for arm in _ARMS:
        got = conv.get(arm)
        a: Mapping[str, Any] = got if isinstance(got, Mapping) else {}
        rate = _arm_rate(a)
        rows.append(
            f"<tr><th scope=row>{_badge(arm, arm)}</th>"
            f"{_int_td(_n(a.get('instances')), data_kpi=f'{arm}.instances')}"
            f"{_int_td(_n(a.get('converted')), data_kpi=f'{arm}.converted')}"
            f"{_interval_td(rate, fmt_pct, f'{arm}.rate')}</tr>"
        )
        points.append((arm, rate.value, rate.low, rate.high))
    head = ["arm", "instances", "converted", "conversion rate (95% CI)"]
    table = _table(head, rows, (1, 2, 3))
    raw = conv.get("lift")
    if isinstance(raw, Mapping):
        lift = Interval(value=raw.get("value"), low=raw.get("low"), high=raw.get("high"))
        lift_html = _table(
            ["lift: treated minus holdout (95% CI)"],
            [f"<tr>{_interval_td(lift, fmt_pp, 'lift')}</tr>"],
            (0,),
            "narrow",
        )
    else:
        lift_html = _empty("No lift yet: it needs instances in both treated and holdout")
    title = f"Conversion rate ({conv.get('event', '')}) per arm (95% interval)"
    chart = svg.error_bar_chart(title, points, y_label="rate", fmt=fmt_pct, colours=JOURNEY_COLOURS)
    event = f"<p>Conversion event: {_code(str(conv.get('event', '')))} after entry.</p>"
    body = f'{event}<div class="grid2"><div>{table}{lift_html}</div>{chart}</div>'
    return _section("conversions", "Conversions", body)


SECTIONS = ("summary", "steps", "exits", "live", "conversions")
"""The ids of the report's sections, in order."""
_NAV = ("Summary", "Steps", "Exits", "Live now", "Conversions")


def render_journey_html(
    figures: Mapping[str, Any],
    *,
    name: str,
    status: str,
    sources: Mapping[str, Sequence[str]],
    generated_at: datetime | None = None,
    details: Mapping[str, str] | None = None,
) -> str:
    """The journey report as a self-contained HTML5 document.

    ``figures``: the funnel dict; ``sources``: where each step's instances come from
    (:func:`step_sources`); ``details``: further facts for the summary (label -> text).
    """
    jid = str(figures.get("journey_id", ""))
    nav = "".join(f'<a href="#{sid}">{t}</a>' for sid, t in zip(SECTIONS, _NAV, strict=True))
    body = (
        _summary(figures, name, status, details or {})
        + _steps(figures, sources)
        + _exits(figures)
        + _live(figures)
        + _conversions(figures)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Journey report {_e(jid)} – {_e(name)}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>{_e(name)}</h1><p>Journey report · <code>{_e(jid)}</code> · "
        f"{_e(status)}</p></header>"
        f'<nav aria-label="Sections">{nav}</nav><main>{body}</main>'
        f"<footer>Generated {_e(fmt_time(generated_at))}</footer></body></html>\n"
    )


def _duration(d: timedelta) -> str:
    secs = int(d.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs and secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def spec_details(spec: JourneySpec) -> dict[str, str]:
    """The spec's entry, re-entry and holdout, for the report's summary."""
    ways = []
    if spec.entry.event is not None:
        ways.append(f"event {spec.entry.event.type}")
    if spec.entry.schedule is not None:
        ways.append(f"schedule {spec.entry.schedule.cron} (UTC)")
    if spec.entry.api:
        ways.append("API")
    r = spec.reentry
    reentry = r if isinstance(r, str) else f"after {_duration(r.after)}"
    return {
        "Entry": ", ".join(ways),
        "Re-entry": reentry,
        "Holdout": f"{spec.holdout_pct:g}% of entries",
        "Steps": str(len(spec.steps)),
    }


def write_journey_report(
    figures: Mapping[str, Any],
    spec: JourneySpec,
    out: Path,
    *,
    status: str,
    generated_at: datetime | None = None,
) -> Path:
    """Write the report of ``spec``'s funnel to ``out`` (UTF-8) and return its path."""
    html = render_journey_html(
        figures,
        name=spec.name,
        status=status,
        sources=step_sources(spec),
        generated_at=generated_at,
        details=spec_details(spec),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out.resolve()
