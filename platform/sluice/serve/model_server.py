"""A model deployment of its own, for a model that needs its own hardware.

By default a decision replica predicts in its own process. A model brought with a GPU
in mind (a PyTorch network, say) instead gets the ``Model`` deployment, whose replicas
ask for what the Serve config gives them (``ray_actor_options: {num_gpus: 1}``) and scale
on their own. The decision replicas still resolve every alias, check the version's
contract and label every answer with the version; they hand the validated rows to
``Model`` with that exact version, which it loads on first use (keeping the few most
recent), so a hot swap never mixes versions within a request.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np
from ray import serve

from sluice.registry.registry import Registry
from sluice.registry.uri import ModelURI
from sluice.scoring.predictor import Predictor, PredictorMode, prepare_predictor

if TYPE_CHECKING:
    from sluice.serve.deployments import Stores

KEEP_VERSIONS = 4
"""Versions a Model replica keeps loaded (champion and challenger, and the ones before)."""


@serve.deployment(name="Model", max_ongoing_requests=64)
class ModelServer:
    """Scores validated rows with a named model version."""

    def __init__(self, stores: Stores, predictor: str = "auto") -> None:
        self.registry = Registry(stores.settings())
        self.mode: PredictorMode = predictor  # type: ignore[assignment]
        self.loaded: OrderedDict[tuple[str, str], Predictor] = OrderedDict()
        self.lock = threading.Lock()

    def _predictor(self, name: str, version: str) -> Predictor:
        key = (name, version)
        with self.lock:
            found = self.loaded.get(key)
            if found is None:
                model = self.registry.load(ModelURI(name, version=version))
                cache = self.registry.settings.home_dir / "cache" / "compiled"
                found = prepare_predictor(model, self.mode, cache).build()
                self.loaded[key] = found
                while len(self.loaded) > KEEP_VERSIONS:
                    self.loaded.popitem(last=False)
            self.loaded.move_to_end(key)
            return found

    async def predict(self, name: str, version: str, matrix: np.ndarray) -> np.ndarray:
        predictor = await asyncio.to_thread(self._predictor, name, version)
        return await asyncio.to_thread(predictor.predict, matrix)


class RemotePredictor:
    """A decision replica's predictor for one version served by the ``Model`` deployment.
    Blocking: the engine calls it from worker threads; the call itself runs on the
    replica's event loop, where Serve's router lives."""

    kind = "remote"

    def __init__(
        self, predict: Any, loop: asyncio.AbstractEventLoop, name: str, version: str
    ) -> None:
        """``predict``: the handle of ``Model.predict``; ``loop``: the replica's."""
        self.handle, self.loop, self.name, self.version = predict, loop, name, version

    async def _call(self, X: np.ndarray) -> Any:
        return await self.handle.remote(self.name, self.version, X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        try:
            on_loop = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            raise RuntimeError("a remote predict blocks: call it off the replica's event loop")
        future = asyncio.run_coroutine_threadsafe(self._call(X), self.loop)
        return np.asarray(future.result(), np.float64)
