"""Copy generation: the LLM deployment, the copywriter and campaign-scale batch drafting.

The LLM sees segment-level briefs only (:mod:`sluice.contracts.briefs`); personal values
go into declared slots after generation (:mod:`sluice.generation.slots`).
"""
