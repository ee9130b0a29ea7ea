"""The ``sluice`` command line (one module per command group)."""
