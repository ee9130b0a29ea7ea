"""The typed app builders of the decision service and the back office.

``deployments/decision.yaml`` points Serve at :func:`build_app`
(``import_path: sluice.serve.app:build_app``) and :func:`build_backoffice_app`; their
``args`` are validated by :class:`DecisionAppArgs` and :class:`BackOfficeAppArgs`, so a
typo is an error naming the field, not a surprise.
"""

# No ``from __future__ import annotations``: Serve reads build_app's annotation to
# validate ``args`` into DecisionAppArgs.

from pathlib import Path
from typing import Any, Literal, Self, cast

from pydantic import Field, model_validator
from ray.serve import Application

from sluice.contracts._base import Contract
from sluice.contracts.contract_files import resolve_contract
from sluice.contracts.feature_contract import FeatureContract
from sluice.contracts.propensity import PROPENSITY_V1
from sluice.decisioning.catalog import CatalogSource
from sluice.errors import ConfigError, ModelNotFoundError
from sluice.online.config import OnlineStoreConfig
from sluice.registry.registry import Registry
from sluice.registry.uri import ModelURI
from sluice.serve.deployments import (
    BackOffice,
    DecisionOptions,
    Decisions,
    DecisionTuning,
    Stores,
)
from sluice.serve.model_server import ModelServer
from sluice.settings import SluiceSettings, get_settings


class StoreArgs(Contract):
    """Where an app's replicas find Sluice's state (both apps take these)."""

    sluice_home: str | None = None
    """SLUICE_HOME for the replicas; default: the builder's."""
    tracking_uri: str | None = None
    """MLflow tracking URI; default: the builder's setting."""
    registry_uri: str | None = None
    """MLflow registry URI, when it differs."""
    api_keys_file: str | None = None
    """Keys file; default SLUICE_API_KEYS_FILE or SLUICE_HOME/api-keys.json."""
    api_docs: bool | None = None
    """Serve the interactive docs (/docs, /redoc); default: SLUICE_API_DOCS, else off.
    /openapi.json is always served."""


class BackOfficeAppArgs(StoreArgs):
    """Arguments of the back-office application (reviews, events, unsubscribes,
    incidents)."""


class DecisionAppArgs(StoreArgs):
    """Arguments of the decision application."""

    models: tuple[str, ...] = ("sluice-propensity@champion", "sluice-propensity@challenger")
    """``NAME@ALIAS`` per served model; the first is the default for requests."""
    offers: str = "builtin:default"
    """Offer catalog: ``builtin:NAME`` or a YAML file (read when the app is built)."""
    predictor: Literal["auto", "compiled", "booster"] = "auto"
    """How replicas predict (``auto``: compiled trees when a C compiler is present)."""
    model_poll_interval_s: float = Field(default=5.0, gt=0, le=3600)
    """How often replicas re-resolve aliases (hot swaps); the deployment's
    ``user_config`` may change it live (see DecisionTuning)."""
    contract: str | None = None
    """The feature contract requests are validated against (and ``/openapi.json``
    describes): a built-in contract (``propensity@1.0.0``) or a contract file; default:
    the stored contract of the first model's current version (the built-in propensity
    contract while that model has no version)."""
    model_deployment: bool = False
    """Predict in a ``Model`` deployment of its own rather than in the decision replica:
    for a model that needs its own hardware (give the ``Model`` deployment
    ``ray_actor_options: {num_gpus: 1}`` in the Serve config)."""
    online_store: str | None = None
    """Online feature store for decisions by id (``sqlite:///PATH`` or
    ``redis://HOST:PORT/DB``, no password); default: each replica's
    SLUICE_ONLINE_STORE_URL, else Feast's SQLite store under SLUICE_HOME."""

    @model_validator(mode="after")
    def _aliases(self) -> Self:
        if self.online_store is not None:
            if "@" in self.online_store:
                raise ValueError("online_store: no password in args; set it in the replicas' env")
            try:
                OnlineStoreConfig.from_url(self.online_store, Path(), field="online_store")
            except ConfigError as exc:
                raise ValueError(exc.message) from exc
        uris = [ModelURI.parse(m, field="models") for m in self.models]
        if not uris or any(u.alias is None for u in uris):
            raise ValueError("models: every entry must be NAME@ALIAS")
        aliases = [u.alias for u in uris]
        if len(set(aliases)) != len(aliases):
            raise ValueError("models: aliases must be unique")
        return self


def _settings(args: StoreArgs) -> SluiceSettings:
    settings = get_settings()  # the app's edge: configuration is read here, once
    if args.sluice_home:
        settings = settings.model_copy(update={"home": Path(args.sluice_home)})
    if args.api_keys_file:
        settings = settings.model_copy(update={"api_keys_file": Path(args.api_keys_file)})
    if args.api_docs is not None:
        settings = settings.model_copy(update={"api_docs": args.api_docs})
    return settings


def _stores(args: StoreArgs, settings: SluiceSettings) -> Stores:
    keys = settings.keys_file
    return Stores(
        home=str(settings.home_dir),
        tracking_uri=args.tracking_uri or settings.effective_tracking_uri,
        registry_uri=args.registry_uri or settings.registry_uri,
        # Absolute, symlinks kept: a Kubernetes Secret volume swaps the file behind its
        # link on every update, and each request re-reads it when it changed.
        api_keys_file=str(keys.expanduser().absolute()),
        clock=settings.clock,
        online_store_url=args.online_store if isinstance(args, DecisionAppArgs) else None,
    )


def served_contract(args: DecisionAppArgs, stores: Stores) -> FeatureContract:
    """The contract the app validates requests against (see ``DecisionAppArgs.contract``)."""
    if args.contract is not None:
        return resolve_contract(args.contract)
    try:
        return Registry(stores.settings()).contract(args.models[0])
    except ModelNotFoundError:
        return PROPENSITY_V1


def build_app(args: DecisionAppArgs) -> Application:
    """One ``Decisions`` deployment: the API, scoring and the offer rules in-process (with
    ``model_deployment``, scoring in a ``Model`` deployment of its own)."""
    given: object = args
    if not isinstance(given, DecisionAppArgs):  # a plain mapping, from callers other than Serve
        args = DecisionAppArgs.model_validate(given)
    settings = _settings(args)
    stores = _stores(args, settings)
    options = DecisionOptions(
        tuple(args.models),
        args.predictor,
        CatalogSource.read(args.offers),
        served_contract(args, stores),
        settings.api_docs,
    )
    tuning = DecisionTuning(model_poll_interval_s=args.model_poll_interval_s).model_dump()
    # @serve.deployment turns the class into a Deployment; mypy sees only the class.
    model = cast(Any, ModelServer).bind(stores, args.predictor) if args.model_deployment else None
    app: Application = cast(Any, Decisions).bind(options, stores, tuning, model)
    return app


def build_backoffice_app(args: BackOfficeAppArgs) -> Application:
    """One ``BackOffice`` deployment (see :mod:`sluice.serve.backoffice_api`)."""
    given: object = args
    if not isinstance(given, BackOfficeAppArgs):
        args = BackOfficeAppArgs.model_validate(given)
    settings = _settings(args)
    app: Application = cast(Any, BackOffice).bind(_stores(args, settings), settings.api_docs)
    return app
