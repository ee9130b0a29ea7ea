"""The campaign report: one self-contained HTML5 document built from :class:`ReportData`.

The document has no scripts and no external resources: CSS and SVG charts are inline.
Table cells carrying numbers hold the raw value in ``data-value``; arm KPI cells are
marked ``data-kpi="{arm}.{field}"``, funnel counts ``data-funnel="{stage}"``, rejection
counts ``data-rejection="{gate}.{reason}"`` and drift PSI cells ``data-drift="{variable}"``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Container, Iterable, Sequence
from pathlib import Path

from sluice.contracts.feedback import ArmKpi, Incident, Interval, ReportData
from sluice.report import svg
from sluice.report.format import (
    NA,
    _e,
    _ok,
    _raw,
    fmt_int,
    fmt_money,
    fmt_num,
    fmt_pct,
    fmt_pp,
    fmt_time,
)
from sluice.report.funnel import funnel_parent
from sluice.report.style import CSS

ARM_COLOURS = {"holdout": "#8c96a3", "canary": "#e8871e", "main": "#3b6fb6"}
_ARM_ORDER = {"holdout": 0, "canary": 1, "main": 2}
_LEVEL_ORDER = {"block": 0, "warn": 1, "ok": 2}


def _td(
    text: str, value: float | None = None, cls: str = "num", raw: bool = False, **attrs: str
) -> str:
    """A cell of ``text`` (already HTML when ``raw``); ``value`` goes to ``data-value``."""
    out = f'<td class="{cls}"' if cls else "<td"
    number = _raw(value)
    if number is not None:
        out += f' data-value="{number}"'
    for key, val in attrs.items():
        out += f' {key.replace("_", "-")}="{_e(val)}"'
    return f"{out}>{text if raw else _e(text)}</td>"


def _int_td(n: int, **attrs: str) -> str:
    return _td(fmt_int(n), n, "num", False, **attrs)


def _interval_td(iv: Interval | None, fmt: Callable[[float | None], str], key: str) -> str:
    if iv is None or not _ok(iv.value):
        return _td(NA, data_kpi=key)
    text = _e(fmt(iv.value))
    extra: dict[str, str] = {}
    if _ok(iv.low) and _ok(iv.high):
        text += f'<span class="ci">{_e(fmt(iv.low))} – {_e(fmt(iv.high))}</span>'
        extra = {"data_low": _raw(iv.low) or "", "data_high": _raw(iv.high) or ""}
    return _td(text, iv.value, raw=True, data_kpi=key, **extra)


def _table(
    head: Sequence[str], rows: Iterable[str], nums: Container[int] = (), cls: str = ""
) -> str:
    th = "".join(
        f'<th scope="col"{" class=num" if i in nums else ""}>{_e(h)}</th>'
        for i, h in enumerate(head)
    )
    table = f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{"".join(rows)}</tbody>'
    return f'<div class="scroll">{table}</table></div>'


def _section(sid: str, title: str, body: str) -> str:
    head = f'<h2 id="{sid}-h">{_e(title)}</h2>'
    return f'<section id="{sid}" aria-labelledby="{sid}-h">{head}{body}</section>'


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge {kind}">{_e(text)}</span>'


def _code(text: str | None) -> str:
    return f"<code>{_e(text)}</code>" if text else "—"


def _empty(text: str) -> str:
    return f'<p class="empty">{_e(text)}</p>'


def _summary(d: ReportData) -> str:
    facts = {
        "Run": _code(d.run_id),
        "Campaign": f"{_e(d.campaign_name)} ({_code(d.campaign_id)})",
        "Status": _badge(d.status, _status_kind(d.status)),
        "Started": _e(fmt_time(d.started_at)),
        "Finished": _e(fmt_time(d.finished_at)),
        "Model version": _code(d.model_version),
        "Canary model version": _code(d.canary_model_version),
    }
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts.items())
    worst = min((r.level for r in d.drift), key=_LEVEL_ORDER.__getitem__, default="none")
    cards = {
        "recipients": fmt_int(sum(a.recipients for a in d.arms)),
        "messages sent": fmt_int(sum(a.sent for a in d.arms)),
        "conversions": fmt_int(sum(a.conversions for a in d.arms)),
        "guardrails fired": f"{sum(g.fired for g in d.guardrails)} of {len(d.guardrails)}",
        "open incidents": fmt_int(sum(i.status == "open" for i in d.incidents)),
        "worst drift level": worst,
    }
    card = "".join(
        f'<div class="card"><b>{_e(v)}</b><span>{k}</span></div>' for k, v in cards.items()
    )
    return _section(
        "summary", "Summary", f'<dl class="facts">{dl}</dl><div class="cards">{card}</div>'
    )


def _status_kind(status: str) -> str:
    s = status.lower()
    if s in {"completed", "succeeded", "finished", "done"}:
        return "good"
    return "bad" if s in {"failed", "aborted", "halted", "rolled_back", "error"} else "neutral"


def _arm_key(arm: str) -> tuple[int, str]:
    return _ARM_ORDER.get(arm, 9), arm


def _scores(d: ReportData) -> str:
    h, title = d.scores, "Score distribution per arm (share of each arm's scored customers)"
    counts = {k: h.counts[k] for k in sorted(h.counts, key=_arm_key)}
    chart = svg.histogram(title, h.edges, counts, x_label="score", colours=ARM_COLOURS)
    mids = [(lo + hi) / 2 for lo, hi in itertools.pairwise(h.edges)]
    names = [n for n, c in counts.items() if len(c) == len(mids) > 0]
    if not names:
        return _section("scores", "Score distribution", chart)
    summary = []
    for n in names:
        total = sum(counts[n])
        mean = sum(m * c for m, c in zip(mids, counts[n], strict=True)) / total if total else None
        summary.append(f"<tr><td>{_e(n)}</td>{_int_td(total)}{_td(fmt_num(mean, 3), mean)}</tr>")
    head = ["arm", "scored customers", "mean score (binned)"]
    note = "<p>Shares are per arm, so arms of different sizes compare directly.</p>"
    side = _table(head, summary, (1, 2)) + note
    rows = [
        f"<tr><td>{_e(svg.short(lo))} – {_e(svg.short(hi))}</td>"
        + "".join(_int_td(counts[n][i]) for n in names)
        + "</tr>"
        for i, (lo, hi) in enumerate(itertools.pairwise(h.edges))
    ]
    table = _table(["score bin", *names], rows, range(1, len(names) + 1), "narrow")
    body = f'<div class="grid2">{chart}<div>{side}</div></div>'
    body += f"<details><summary>Counts per bin</summary>{table}</details>"
    return _section("scores", "Score distribution", body)


def _gains(d: ReportData) -> str:
    pts = sorted(d.gains, key=lambda g: g.decile)
    curve = [(0.0, 0.0)] + [(g.cum_recipients_share, g.cum_conversions_share) for g in pts]
    chart = svg.line_chart(
        "Cumulative gains (deciles by score, highest first)",
        {"model": curve} if pts else {},
        x_label="share of recipients",
        y_label="share of conversions",
        fmt=lambda t: f"{t * 100:.0f}%",
        diagonal="random",
        colours={"model": ARM_COLOURS["main"]},
    )
    if not pts:
        return _section("gains", "Gains and lift", chart)
    rows = []
    for g in pts:
        rate = g.conversions / g.recipients if g.recipients else None
        rows.append(
            f"<tr><td>{g.decile}</td>{_int_td(g.recipients)}{_int_td(g.conversions)}"
            f"{_td(fmt_pct(rate), rate)}"
            f"{_td(fmt_pct(g.cum_recipients_share), g.cum_recipients_share)}"
            f"{_td(fmt_pct(g.cum_conversions_share), g.cum_conversions_share)}"
            f"{_td(fmt_num(g.lift, 2) + '×' if _ok(g.lift) else NA, g.lift)}</tr>"
        )
    head = ["decile", "recipients", "conversions", "rate", "cum. recipients", "cum. conv.", "lift"]
    table = _table(head, rows, range(1, 7))
    return _section("gains", "Gains and lift", f'<div class="grid2">{chart}{table}</div>')


def _count(t: float) -> str:
    return f"{t:,.0f}"


def _funnel(d: ReportData) -> str:
    steps = [(s.stage, float(s.count)) for s in d.funnel]
    chart = svg.hbar_chart("Funnel", steps, x_label="customers", fmt=_count)
    counts = {s.stage: s.count for s in d.funnel}
    first = d.funnel[0] if d.funnel else None
    rows: list[str] = []
    for s in d.funnel:
        parent = funnel_parent(s.stage)
        base = counts.get(parent) if parent else None
        of_parent = s.count / base if base else None
        of_first = s.count / first.count if first and first.count else None
        rows.append(
            f"<tr><td>{_e(s.stage)}</td>{_int_td(s.count, data_funnel=s.stage)}"
            f"<td>{_e(parent if base is not None else '—')}</td>"
            f"{_td(fmt_pct(of_parent) if base is not None else '', of_parent)}"
            f"{_td(fmt_pct(of_first), of_first)}</tr>"
        )
    top = first.stage if first else "first"
    head = ["stage", "count", "parent stage", "of parent stage", f"of {top}"]
    table = _table(head, rows, (1, 3, 4)) if rows else ""
    rej = sorted(d.rejections, key=lambda r: (-r.count, r.gate, r.reason))
    bars = [(f"{r.gate}: {r.reason}", float(r.count)) for r in rej]
    title = "Rejections by gate and reason"
    rej_chart = svg.hbar_chart(title, bars, x_label="rejected", fmt=_count, colour="#d1495b")
    total = sum(r.count for r in rej)
    rej_rows = [
        f"<tr><td>{_e(r.gate)}</td><td>{_e(r.reason)}</td>"
        f"{_int_td(r.count, data_rejection=f'{r.gate}.{r.reason}')}"
        f"{_td(fmt_pct(r.count / total if total else None))}</tr>"
        for r in rej
    ]
    head = ["gate", "reason", "count", "share"]
    rej_table = _table(head, rej_rows, (2, 3)) if rej else _empty("No rejections")
    body = f'<div class="grid2"><div>{chart}{table}</div><div>{rej_chart}{rej_table}</div></div>'
    return _section("funnel", "Funnel and rejections", body)


def _arm_row(a: ArmKpi) -> str:
    k = a.arm
    return (
        f"<tr><th scope=row>{_badge(k, k)}</th>"
        + _td(_code(a.model_version), cls="", data_kpi=f"{k}.model_version", raw=True)
        + "".join(_int_td(getattr(a, f), data_kpi=f"{k}.{f}") for f in _COUNTS)
        + _td(fmt_money(a.revenue), a.revenue, data_kpi=f"{k}.revenue")
        + "".join(_interval_td(getattr(a, f), fmt, f"{k}.{f}") for f, fmt in _INTERVALS)
        + "</tr>"
    )


_COUNTS = ("recipients", "sent", "conversions")
_INTERVALS = (
    ("conversion_rate", fmt_pct),
    ("revenue_per_recipient", fmt_money),
    ("lift_vs_holdout", fmt_pp),
    ("unsubscribe_rate", fmt_pct),
    ("complaint_rate", fmt_pct),
)
_ARM_HEAD = [
    "arm", "model version", "recipients", "sent", "conversions", "revenue",
    "conversion rate (95% CI)", "revenue / recipient", "lift vs holdout",
    "unsubscribe rate", "complaint rate",
]  # fmt: skip


def _arm_section(d: ReportData) -> str:
    arms = sorted(d.arms, key=lambda a: _arm_key(a.arm))
    if not arms:
        chart = svg.no_data("Conversion rate per arm", "No data: no arms recorded")
        return _section("arms", "Arms", chart)
    table = _table(_ARM_HEAD, [_arm_row(a) for a in arms], range(2, 11))
    holdout = next((a.conversion_rate.value for a in arms if a.arm == "holdout"), None)
    rates = [(a.arm, *_triple(a.conversion_rate)) for a in arms]
    title, ref = "Conversion rate per arm (95% interval)", ("holdout", holdout)
    conv = svg.error_bar_chart(
        title, rates, y_label="rate", fmt=fmt_pct, reference=ref, colours=ARM_COLOURS
    )
    money = [(a.arm, *_triple(a.revenue_per_recipient)) for a in arms]
    title = "Revenue per recipient (95% interval)"
    rpr = svg.error_bar_chart(title, money, y_label="revenue", fmt=fmt_money, colours=ARM_COLOURS)
    body = f'{table}<div class="grid2">{conv}{rpr}</div>'
    return _section("arms", "Arms (intention to treat)", body)


def _triple(iv: Interval) -> tuple[float | None, float | None, float | None]:
    return iv.value, iv.low, iv.high


def _p(p: float | None) -> str:
    return "<0.0001" if _ok(p) and p < 1e-4 else fmt_num(p)


def _guardrails(d: ReportData) -> str:
    if not d.guardrails:
        return _section("guardrails", "Guardrails", _empty("No guardrails evaluated"))
    rows = []
    for g in d.guardrails:
        badge = _badge("fired", "bad") if g.fired else _badge("ok", "ok")
        fired = _td(badge, None, "", True, data_guardrail=g.name, data_fired=str(g.fired).lower())
        rows.append(
            f'<tr class="{"fired" if g.fired else ""}"><td>{_e(g.name)}</td><td>{_e(g.metric)}</td>'
            f"{fired}{_td(fmt_num(g.observed), g.observed)}{_td(_p(g.p_value), g.p_value)}"
            f"<td>{_e(g.detail)}</td></tr>"
        )
    head = ["name", "metric", "fired", "observed", "p-value", "detail"]
    return _section("guardrails", "Guardrails", _table(head, rows, (3, 4)))


def _evidence_lines(evidence: dict[str, object]) -> list[str]:
    """The fired guardrails' findings and the model tried; other evidence by key."""
    lines: list[str] = []
    for key, value in evidence.items():
        if key == "fired" and isinstance(value, list):
            lines += [str(f.get("detail", f)) if isinstance(f, dict) else str(f) for f in value]
        elif key == "arms":
            continue  # the arm KPIs at the time; the Arms section shows the current ones
        else:
            lines.append(f"{key}: {value}")
    return lines


def _incident_row(i: Incident) -> str:
    actions = "<br>".join(_e(a) for a in i.actions) or "—"
    evidence = "<br>".join(_e(line) for line in _evidence_lines(i.evidence)) or "—"
    resolved = "—"
    if i.resolved_by or i.resolved_at:
        resolved = f"{_e(i.resolved_by or '')}<br>{_e(fmt_time(i.resolved_at))}"
    if i.note:
        resolved += f"<br>{_e(i.note)}"
    status = _badge(i.status, "bad" if i.status == "open" else "ok")
    return (
        f'<tr class="{"fired" if i.status == "open" else ""}"><td>{_code(i.incident_id)}</td>'
        f"<td>{_e(i.arm)}</td><td>{_e(i.guardrail)}</td><td>{status}</td>"
        f"<td>{_e(fmt_time(i.opened_at))}</td><td>{actions}</td><td>{evidence}</td>"
        f"<td>{resolved}</td></tr>"
    )


def _incidents(d: ReportData) -> str:
    if not d.incidents:
        return _section("incidents", "Incidents", _empty("No incidents"))
    head = ["incident", "arm", "guardrail", "status", "opened", "actions", "evidence", "resolved"]
    return _section("incidents", "Incidents", _table(head, map(_incident_row, d.incidents)))


def _drift(d: ReportData) -> str:
    if not d.drift:
        return _section("drift", "Drift", _empty("No drift measured"))
    rows = [
        f'<tr class="{r.level}"><td>{_e(r.variable)}</td>'
        f"{_td(fmt_num(r.psi, 3), r.psi, data_drift=r.variable)}"
        f"<td>{_badge(r.level, r.level)}</td></tr>"
        for r in sorted(d.drift, key=lambda r: (_LEVEL_ORDER[r.level], -r.psi, r.variable))
    ]
    note = "<p>Population stability index of each variable against the model's training data.</p>"
    return _section(
        "drift", "Drift", note + _table(["variable", "PSI", "level"], rows, (1,), "narrow")
    )


_PARTS = (
    ("summary", "Summary", _summary),
    ("scores", "Scores", _scores),
    ("gains", "Gains", _gains),
    ("funnel", "Funnel", _funnel),
    ("arms", "Arms", _arm_section),
    ("guardrails", "Guardrails", _guardrails),
    ("incidents", "Incidents", _incidents),
    ("drift", "Drift", _drift),
)
SECTIONS = tuple(sid for sid, _, _ in _PARTS)
"""The ids of the report's sections, in order."""


def render_html(data: ReportData) -> str:
    """The campaign report of one run as a self-contained HTML5 document."""
    nav = "".join(f'<a href="#{sid}">{name}</a>' for sid, name, _ in _PARTS)
    body = "".join(part(data) for _, _, part in _PARTS)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Campaign report {_e(data.run_id)} – {_e(data.campaign_name)}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>{_e(data.campaign_name)}</h1><p>Campaign report · run "
        f"<code>{_e(data.run_id)}</code> · {_e(data.status)}</p></header>"
        f'<nav aria-label="Sections">{nav}</nav><main>{body}</main>'
        f"<footer>Generated {_e(fmt_time(data.generated_at))}</footer></body></html>\n"
    )


def write_html(data: ReportData, path: Path) -> Path:
    """Write the report to ``path`` (UTF-8) and return it."""
    path.write_text(render_html(data), encoding="utf-8")
    return path
