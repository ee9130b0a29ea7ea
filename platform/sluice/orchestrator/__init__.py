"""The orchestrator: the one always-on actor of time.

It consumes events (the API's inbox and a Redis stream), runs journeys
(:class:`sluice.journeys.JourneyEngine`), delivers messages deferred by quiet hours
when their time comes (campaigns' and journeys'), enters scheduled journey audiences,
starts scheduled campaigns, and evaluates guardrails on a timer.
"""

from sluice.orchestrator.loop import Orchestrator, OrchestratorConfig

__all__ = ["Orchestrator", "OrchestratorConfig"]
