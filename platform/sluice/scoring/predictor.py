"""Prediction backends: LightGBM's (booster or compiled), and every other flavour's own.

``booster`` is LightGBM's own ``Booster.predict``. ``compiled`` turns the same trees
into C (:mod:`sluice.scoring.compiled`) and loads the shared library: about 1.5x faster
per core here, with bit-identical output (the integration suite checks that every
score equals ``Booster.predict``). Compiled libraries are cached under
``SLUICE_HOME/cache/compiled`` by model digest; ``auto`` compiles when a C compiler is
present and falls back to ``booster`` otherwise.

Models of other flavours (XGBoost, scikit-learn, PyTorch, pyfunc) are scored by their
flavour's own ``predict`` (:mod:`sluice.scoring.flavor_predictors`); their spec carries
the model directory as an archive.

A :class:`PredictorSpec` is the picklable recipe shipped to Ray workers; each worker
process builds the predictor once and keeps it (:func:`PredictorSpec.build`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from sluice.errors import InputError
from sluice.registry.loaded import LoadedModel
from sluice.scoring.compiled import RECIPE, CompiledModel, build_library
from sluice.scoring.flavor_predictors import build_native, pack, unpack

log = logging.getLogger(__name__)
PredictorMode = Literal["auto", "compiled", "booster"]
_BUILT: dict[tuple[str, str, int], Predictor] = {}


class Predictor(Protocol):
    kind: str

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Probabilities for the rows of a float64 matrix."""
        ...


class BoosterPredictor:
    kind = "booster"

    def __init__(self, model_text: str, threads: int) -> None:
        import lightgbm as lgb

        self._booster = lgb.Booster(model_str=model_text)
        self._threads = threads

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self._booster.predict(X, num_threads=self._threads), dtype=np.float64)


@dataclass(frozen=True)
class PredictorSpec:
    """How to build the predictor of one model version in any process."""

    kind: Literal["compiled", "booster", "native"]
    digest: str
    model_text: str = field(repr=False)
    library: bytes | None = field(default=None, repr=False)
    threads: int = 1
    flavor: str = "lightgbm"
    archive: bytes | None = field(default=None, repr=False)
    """The model directory (``native`` only), see :func:`flavor_predictors.pack`."""
    names: tuple[str, ...] = ()
    """The contract's feature names, in column order (``native`` only)."""
    num_gpus: float = 0.0

    def build(self) -> Predictor:
        """This process's predictor for the spec (built on first use, then reused)."""
        key = (self.digest, self.kind, self.threads)
        found = _BUILT.get(key)
        if found is not None:
            return found
        predictor: Predictor
        if self.kind == "compiled" and self.library is not None:
            path = Path(tempfile.gettempdir()) / f"sluice-{self.digest[:24]}-{os.getpid()}.so"
            if not path.exists():
                path.write_bytes(self.library)
            predictor = CompiledModel(path)
        elif self.kind == "native" and self.archive is not None:
            directory = unpack(self.archive, self.digest)
            predictor = build_native(self.flavor, directory, self.names, self.threads)
        else:
            predictor = BoosterPredictor(self.model_text, self.threads)
        _BUILT[key] = predictor
        return predictor


def compile_library(model: LoadedModel, cache_dir: Path) -> Path:
    """The compiled shared library of ``model`` (built once, then read from the cache)."""
    import treelite

    target = cache_dir / f"{model.digest[:32]}-tl{treelite.__version__}-{RECIPE}.so"
    if not target.exists():
        build_library(model.model_text, target)
    return target


def prepare_predictor(
    model: LoadedModel, mode: PredictorMode, cache_dir: Path, threads: int = 1
) -> PredictorSpec:
    """A spec for ``mode``; ``auto`` tries to compile and falls back to the booster.
    Models of other flavours always get their flavour's own predictor."""
    if model.flavor != "lightgbm":
        if mode == "compiled":
            raise InputError(
                f"predictor: only LightGBM models compile; {model.label} is {model.flavor}",
                field="predictor",
            )
        if model.directory is None:
            raise InputError(f"model: {model.label} has no model directory", field="model")
        return PredictorSpec(
            "native",
            model.digest,
            "",
            None,
            threads,
            flavor=model.flavor,
            archive=pack(Path(model.directory)),
            names=model.contract.names,
            num_gpus=model.num_gpus,
        )
    if mode in ("compiled", "auto"):
        try:
            library = compile_library(model, cache_dir)
            return PredictorSpec(
                "compiled", model.digest, model.model_text, library.read_bytes(), threads
            )
        except Exception as exc:
            if mode == "compiled":
                raise
            log.warning(
                "compiling %s failed (%s); scoring with LightGBM's booster", model.label, exc
            )
    return PredictorSpec("booster", model.digest, model.model_text, None, threads)
