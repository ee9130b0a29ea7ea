"""Customer data: the synthetic base generator and readers of real transaction logs."""

from sluice.data.calendar import SynthCalendar
from sluice.data.population import true_propensity
from sluice.data.synth import SynthConfig, SynthResult, synthesize

__all__ = ["SynthCalendar", "SynthConfig", "SynthResult", "synthesize", "true_propensity"]
