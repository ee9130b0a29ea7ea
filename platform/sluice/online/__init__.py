"""The online feature store: Sluice's feature contracts as Feast feature views, in Feast's
SQLite online store (embedded, under ``SLUICE_HOME``) or its Redis online store.

``materialize`` writes a feature table; :class:`OnlineFeatures` looks customers up by id
for the decision service and journeys, so batch scoring, online decisions and journeys
score the same rows.
"""

from sluice.online.config import OnlineStoreConfig
from sluice.online.lookup import Fetched, OnlineFeatures, Wanted
from sluice.online.materialize import TIMESTAMP_COLUMN, MaterializeReport, materialize
from sluice.online.store import OnlineStore
from sluice.online.view import feast_objects, view_name

__all__ = [
    "TIMESTAMP_COLUMN",
    "Fetched",
    "MaterializeReport",
    "OnlineFeatures",
    "OnlineStore",
    "OnlineStoreConfig",
    "Wanted",
    "feast_objects",
    "materialize",
    "view_name",
]
