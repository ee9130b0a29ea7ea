"""Campaign runs: spec, candidates (Ray Data), copy, and the driver that feeds the
coordinator."""
