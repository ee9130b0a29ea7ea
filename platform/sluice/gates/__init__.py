"""Validation gates: every message passes every gate before anything is delivered."""

from sluice.gates.base import ChainResult, Gate, GateChain, GateContext, MessageBatch, Verdicts

__all__ = ["ChainResult", "Gate", "GateChain", "GateContext", "MessageBatch", "Verdicts"]
