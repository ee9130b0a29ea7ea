"""Sluice: score customer bases, draft copy, and deliver only what passed every gate.

The public surface is small: contracts live in :mod:`sluice.contracts`, errors in
:mod:`sluice.errors`, settings in :mod:`sluice.settings`; each stage is a sub-package
(``data``, ``features``, ``training``, ``registry``, ``scoring``, ...) and the ``sluice``
command line in :mod:`sluice.cli` drives them.
"""

from sluice.errors import (
    ConfigError,
    ConflictError,
    InputError,
    ModelNotFoundError,
    NotFoundError,
    SluiceError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ConflictError",
    "InputError",
    "ModelNotFoundError",
    "NotFoundError",
    "SluiceError",
    "__version__",
]
