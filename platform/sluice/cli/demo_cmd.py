"""``sluice demo``"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from sluice.cli.output import console, emit_json, table
from sluice.settings import get_settings


def demo(
    customers: Annotated[
        int | None,
        typer.Option(
            min=1_000, help="Size of the synthetic base (default 50,000; the scenario 40,000)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option()] = 7,
    as_of: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="The synthetic world's today and decision date (default: today).",
        ),
    ] = None,
    workdir: Annotated[
        Path | None, typer.Option(help="Where data and outputs go (default SLUICE_HOME/demo).")
    ] = None,
    campaign: Annotated[Path, typer.Option(help="Campaign spec to run at the end.")] = Path(
        "jobs/spring-boots.yaml"
    ),
    no_campaign: Annotated[bool, typer.Option("--no-campaign", help="Stop after scoring.")] = False,
    journey: Annotated[Path, typer.Option(help="Journey spec the orchestrator runs.")] = Path(
        "jobs/cart-abandonment.yaml"
    ),
    no_journey: Annotated[bool, typer.Option("--no-journey", help="No journey.")] = False,
    no_llm: Annotated[
        bool, typer.Option("--no-llm", help="Approved copy only; no LLM deployment.")
    ] = False,
    llm_prompts: Annotated[
        int, typer.Option(min=1, help="Prompt keys the LLM drafts (the most frequent).")
    ] = 4,
    scenario: Annotated[
        str | None,
        typer.Option(
            help="Run a scenario instead: harmful-challenger (canary, guardrail, rollback)."
        ),
    ] = None,
) -> None:
    """Run the platform end to end on embedded defaults."""
    from sluice.demo import DemoConfig, run_demo

    if scenario is not None:
        _scenario(scenario, customers, seed, workdir, campaign)
        return

    figures = run_demo(
        DemoConfig(
            customers=customers or DemoConfig.customers,
            seed=seed,
            as_of=as_of.date() if as_of else None,
            workdir=workdir,
            campaign=None if no_campaign else campaign,
            journey=None if no_journey else journey,
            llm=not no_llm,
            llm_prompts=llm_prompts,
        ),
        get_settings(),
        step=lambda s: console.print(f"[bold cyan]>[/] {s}"),
    )
    rows = [
        ["customers", f"{figures['customers']:,} (as of {figures['as_of']})"],
        ["model", f"sluice-propensity version {figures['model_version']}"],
        ["ROC AUC / PR AUC", f"{figures['roc_auc']:.4f} / {figures['pr_auc']:.4f}"],
        ["top-decile lift", f"{figures['top_decile_lift']:.2f}"],
        ["rows scored", f"{figures['scored']:,}"],
        ["rows quarantined", f"{figures['quarantined']:,}"],
    ]
    rows += [
        [f"  quarantined for {k}", v] for k, v in sorted(figures["quarantine_reasons"].items())
    ]
    rows += [["scores", figures["scores"]]]
    online = figures["online_store"]
    rows += [["online store", f"{online['rows']:,} customers in {online['store']}"]]
    funnel = figures.get("funnel")
    if funnel:
        from sluice.cli.campaign_cmd import funnel_table

        rows += [[f"campaign {figures['campaign_run_id']}", f"{figures['campaign_s']} s"]]
        rows += [
            [f"  {k}", f"{v:,}" if isinstance(v, int) else str(v)] for k, v in funnel_table(funnel)
        ]
        rows += [["  emails in the mail sink", f"{figures['emails_received']:,}"]]
        rows += [["  SMS and push in the outbox", f"{figures['outbox_messages']:,}"]]
        rows += [["  report", figures["report"]]]
        generation = figures.get("generation")
        if generation:
            rows += llm_rows(generation, funnel)
    journey_figures = figures.get("journey")
    if journey_figures:
        rows += _journey_rows(journey_figures, figures)
    console.print(table("Sluice demo", ["", ""], rows))
    emit_json(figures)


def llm_rows(generation: dict[str, Any], funnel: dict[str, Any]) -> list[list[str]]:
    """The LLM's part of a campaign: prompts drafted, drafts that passed every content
    gate, fallbacks and why, and messages delivered with generated copy."""
    share = generation.get("pass_share")
    rows = [
        ["  LLM prompts", f"{generation['prompts']} ({generation['cached']} from the cache)"],
        ["  LLM drafts generated", str(generation["generated"] + generation["cached"])],
        [
            "  LLM drafts that passed every gate",
            f"{generation['passed']}" + (f" ({share:.0%})" if share is not None else ""),
        ],
    ]
    why = {k: v for k, v in generation["reasons"].items() if k != "ok"}
    why.update(generation["rejected"])
    fallen = generation["fallback"] + sum(generation["rejected"].values())
    rows += [["  fell back to approved copy", str(fallen)]]
    rows += [[f"    {reason}", str(n)] for reason, n in sorted(why.items())]
    sent = (funnel.get("copy") or {}).get("generated", {}).get("sent", 0)
    rows += [["  delivered with LLM copy", f"{sent:,}"]]
    return rows


def _journey_rows(j: dict[str, object], figures: dict[str, object]) -> list[list[str]]:
    """The journey's funnel, step by step, treated (holdout)."""
    rows = [[f"journey {j['journey_id']}", f"{figures['journey_s']} s"]]
    rows += [["  entered", f"{j['entries']:,}"]]
    steps = j["steps"]
    assert isinstance(steps, list)
    for s in steps:
        for outcome, arms in sorted(s["outcomes"].items()):
            held = arms.get("holdout", 0)
            rows += [
                [
                    f"  {s['step']}: {outcome}",
                    f"{arms.get('treated', 0):,}" + (f" (holdout {held:,})" if held else ""),
                ]
            ]
    exited = j["exited"]
    assert isinstance(exited, dict)
    rows += [[f"  exited: {k}", f"{v:,}"] for k, v in sorted(exited.items())]
    rows += [["  still waiting (quiet hours)", f"{j['live']:,}"]]
    rows += [["  emails in the mail sink", f"{figures['journey_emails_received']:,}"]]
    return rows


SCENARIO_CUSTOMERS = 40_000


def _scenario(
    name: str, customers: int | None, seed: int, workdir: Path | None, campaign: Path
) -> None:
    from sluice.demo.scenario import ScenarioConfig, run_scenario
    from sluice.errors import InputError

    if name != "harmful-challenger":
        raise InputError(
            f"--scenario: unknown scenario {name!r} (known: harmful-challenger)", field="scenario"
        )
    figures = run_scenario(
        ScenarioConfig(
            customers=customers or SCENARIO_CUSTOMERS,
            seed=seed,
            workdir=workdir,
            campaign=campaign,
        ),
        get_settings(),
        step=lambda s: console.print(f"[bold cyan]>[/] {s}"),
    )
    rows = [
        [
            "champion / challenger",
            f"{figures['champion_version']} / {figures['challenger_version']}",
        ],
        ["challenger approval", figures["challenger_approval_refused"] or "approved"],
        ["incident", figures["incident_id"] or "none"],
        *[["  action", a] for a in figures["incident_actions"]],
        ["challenger alias now", figures["challenger_now"]],
        ["canary sends after rollback", figures["canary_sends_after_rollback"]],
        ["report", figures["report"]],
    ]
    console.print(table("Scenario: harmful challenger", ["", ""], rows))
    emit_json(
        {
            "rolled_back": figures["rolled_back"],
            "incident_id": figures["incident_id"],
            "canary_sends_after_rollback": figures["canary_sends_after_rollback"],
            "report": figures["report"],
        }
    )
