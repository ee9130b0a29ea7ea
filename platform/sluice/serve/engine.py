"""Online scoring without Ray Serve: model slots per alias, hot swaps, grouped predicts.

Each configured ``NAME@ALIAS`` has a slot. :meth:`ScoringEngine.refresh` resolves every
alias; when one points at a new version, that version is loaded and compiled off to
the side and then swapped in with one reference assignment. A batch captures the
slot's model once, so every score in it comes from, and is labelled with, the same
version; requests in flight during a swap finish on the version they started with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sluice.contracts.api import ServedModel
from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.contracts.feature_contract import FeatureContract
from sluice.errors import (
    ConflictError,
    InputError,
    ModelUnavailableError,
    NotFoundError,
    SluiceError,
)
from sluice.online.lookup import OnlineFeatures
from sluice.registry.registry import Registry
from sluice.registry.uri import ModelURI
from sluice.scoring.flavor_predictors import not_probabilities, trial_matrix
from sluice.scoring.predictor import Predictor, PredictorMode, prepare_predictor
from sluice.serve.engine_types import ScoreJob, ScoreOutcome

__all__ = ["ActiveModel", "ScoreJob", "ScoreOutcome", "ScoringEngine", "Slot"]

log = logging.getLogger("ray.serve.sluice")  # under Serve: JSON, with request ids


@dataclass(frozen=True)
class ActiveModel:
    name: str
    version: str
    predictor: Predictor
    contract_key: str


@dataclass
class Slot:
    uri: ModelURI
    active: ActiveModel | None = None
    error: str | None = "not loaded yet"


def _not_a_probability(model: ActiveModel, scores: np.ndarray, wrong: np.ndarray) -> SluiceError:
    first = int(wrong[0])
    return InputError(
        f"rows[{first}]: model {model.name}/{model.version} returned {float(scores[first])!r} "
        f"for this row, not a probability in [0, 1] ({len(wrong)} row(s) of the request)",
        field=f"rows[{first}]",
    )


class ScoringEngine:
    def __init__(
        self,
        models: Sequence[str],
        contract: FeatureContract,
        registry: Registry,
        predictor: PredictorMode = "auto",
        features: OnlineFeatures | None = None,
        clock: Clock = SYSTEM_CLOCK,
        remote: Callable[[str, str], Predictor] | None = None,
    ) -> None:
        uris = [ModelURI.parse(m, field="models") for m in models]
        if not uris or any(u.alias is None for u in uris):
            raise SluiceError(
                "models: give at least one NAME@ALIAS; versions are pinned through aliases"
            )
        self.default_alias = str(uris[0].alias)
        self.slots = {str(u.alias): Slot(u) for u in uris}
        self.contract = contract
        self.registry = registry
        self.predictor_mode = predictor
        self.features = features
        """The online store that by-id jobs read (None: by-id jobs are refused)."""
        self.clock = clock
        self.remote = remote
        """Makes the predictor of a version another deployment serves (see
        :mod:`sluice.serve.model_server`); None: versions predict in this process."""

    def refresh(self) -> list[str]:
        """Re-resolve every alias and swap in versions that moved; returns what changed."""
        changed = []
        for alias, slot in self.slots.items():
            try:
                info = self.registry.resolve(slot.uri)
                if slot.active is not None and slot.active.version == info.version:
                    continue
                pinned = ModelURI(info.name, version=info.version)
                predictor: Predictor
                if self.remote is not None:  # the model's files stay with its deployment
                    contract = self.registry.contract(pinned)
                    self._check_contract(slot, info.version, contract)
                    predictor = self.remote(info.name, info.version)
                    # The model deployment loads the version now, not in a request.
                    predictor.predict(trial_matrix(contract, 1))
                else:
                    loaded = self.registry.load(pinned)
                    contract = loaded.contract
                    self._check_contract(slot, info.version, contract)
                    cache = self.registry.settings.home_dir / "cache" / "compiled"
                    predictor = prepare_predictor(loaded, self.predictor_mode, cache).build()
                previous = slot.active.version if slot.active else None
                slot.active = ActiveModel(info.name, info.version, predictor, contract.key)
                slot.error = None
                changed.append(f"{alias}: {previous} -> {info.version}")
                log.info(
                    "model %s now serves version %s (was %s)", slot.uri, info.version, previous
                )
            except SluiceError as exc:
                if slot.active is None:
                    slot.error = exc.message
                log.warning("model %s: %s", slot.uri, exc.message)
            except Exception as exc:  # a registry outage must not take the service down
                if slot.active is None:
                    slot.error = f"cannot load: {exc}"
                log.exception("refreshing %s failed", slot.uri)
        return changed

    def _check_contract(self, slot: Slot, version: str, contract: FeatureContract) -> None:
        if contract.digest() != self.contract.digest():
            raise ConflictError(
                f"{slot.uri} version {version} was trained on {contract.key}; this service "
                f"validates requests against {self.contract.key}"
            )

    def _slot(self, alias: str | None) -> Slot | SluiceError:
        name = alias or self.default_alias
        slot = self.slots.get(name)
        if slot is None:
            served = ", ".join(self.slots)
            return NotFoundError(
                f"model alias {name!r} is not served here (served: {served})", field="model"
            )
        if slot.active is None:
            return ModelUnavailableError(f"{slot.uri} is not loaded: {slot.error}", field="model")
        return slot

    def score(self, given: Sequence[ScoreJob]) -> list[ScoreOutcome]:
        """Score many requests; one online-store read for every by-id job of the batch, one
        predict per alias for the whole batch."""
        from sluice.serve.byid import resolve

        outcomes: list[ScoreOutcome | None] = [None] * len(given)
        groups: dict[str, list[int]] = {}
        jobs: list[ScoreJob] = list(given)
        for i, ready in enumerate(resolve(given, self.features, self.contract, self.clock)):
            if isinstance(ready, SluiceError):
                outcomes[i] = ScoreOutcome(error=ready)
                continue
            jobs[i] = ready
            found = self._slot(ready.alias)
            if isinstance(found, SluiceError):
                outcomes[i] = ScoreOutcome(error=found)
            else:
                groups.setdefault(str(found.uri.alias), []).append(i)
        for alias, members in groups.items():
            model = self.slots[alias].active
            assert model is not None
            matrices = [m for m in (jobs[i].matrix for i in members) if m is not None]
            matrix = np.vstack(matrices) if len(members) > 1 else matrices[0]
            scores = model.predictor.predict(matrix)
            start = 0
            for i in members:
                job = jobs[i]
                assert job.matrix is not None
                n = len(job.matrix)
                part = scores[start : start + n]
                start += n
                wrong = np.flatnonzero(not_probabilities(part))
                if len(wrong):  # another flavour may return anything: never pass it on
                    outcomes[i] = ScoreOutcome(error=_not_a_probability(model, part, wrong))
                    continue
                outcomes[i] = ScoreOutcome(
                    part,
                    model.name,
                    model.version,
                    features_at=job.features_at,
                    stale=job.stale,
                    rows=job.rows,
                )
        return [
            o if o is not None else ScoreOutcome(error=SluiceError("not scored")) for o in outcomes
        ]

    def served(self) -> list[ServedModel]:
        out = []
        for alias, slot in self.slots.items():
            a = slot.active
            out.append(
                ServedModel(
                    uri=str(slot.uri),
                    alias=alias,
                    name=slot.uri.name,
                    version=a.version if a else None,
                    loaded=a is not None,
                    predictor=a.predictor.kind if a else None,
                    feature_contract=a.contract_key if a else None,
                    error=None if a else slot.error,
                )
            )
        return out

    def ready(self) -> bool:
        """Ready once the default alias has a loaded model."""
        return self.slots[self.default_alias].active is not None
