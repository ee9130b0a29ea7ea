"""Benchmarks behind ``sluice bench ...`` and ``make bench``: ratios against a baseline
measured in the same run, never absolute thresholds in tests."""
