"""The end-to-end demo that ``make demo`` runs on embedded defaults."""

from sluice.demo.pipeline import DemoConfig, run_demo

__all__ = ["DemoConfig", "run_demo"]
