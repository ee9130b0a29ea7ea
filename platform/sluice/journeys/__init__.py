"""Journeys: event-triggered, multi-step sequences run by the orchestrator.

:class:`JourneyEngine` applies events (entries, exits, awaited events), advances due
instances step by step and hands every send to the delivery pipeline in batches;
:func:`simulate` replays recorded events through a journey on a virtual clock.
"""

from sluice.journeys.engine import EngineConfig, JourneyEngine, TickReport
from sluice.journeys.spec import load_journey

__all__ = ["EngineConfig", "JourneyEngine", "TickReport", "load_journey"]
