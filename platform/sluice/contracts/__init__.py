"""Every contract Sluice passes between stages, in one place.

Models are pydantic v2, immutable and strict (``extra="forbid"``). The feature
contract (:class:`FeatureContract`) is the single definition of model features that
training, batch scoring and online scoring share.
"""

from sluice.contracts._base import Contract, CustomerId, Slug
from sluice.contracts.arrow_validation import QUARANTINE_SCHEMA, ValidatedBatch
from sluice.contracts.clock import SYSTEM_CLOCK, Clock
from sluice.contracts.customer import (
    Channel,
    ChannelConsent,
    CustomerProfile,
    EngagementEvent,
    EngagementKind,
    Transaction,
)
from sluice.contracts.decisions import (
    Decision,
    DecisionContext,
    Exclusion,
    ExclusionRule,
    OfferCatalog,
    RankedOffer,
)
from sluice.contracts.delivery import DeliveryRecord, DeliveryState
from sluice.contracts.drafts import DraftSource, MessageDraft
from sluice.contracts.feature_contract import (
    Direction,
    FeatureContract,
    FeatureKind,
    FeatureSpec,
    NullPolicy,
)
from sluice.contracts.offers import FixedCopy, Offer
from sluice.contracts.propensity import COUNTRIES, PROPENSITY_V1
from sluice.contracts.scoring import Score
from sluice.contracts.verdicts import GateOutcome, GateVerdict

__all__ = [
    "COUNTRIES",
    "PROPENSITY_V1",
    "QUARANTINE_SCHEMA",
    "SYSTEM_CLOCK",
    "Channel",
    "ChannelConsent",
    "Clock",
    "Contract",
    "CustomerId",
    "CustomerProfile",
    "Decision",
    "DecisionContext",
    "DeliveryRecord",
    "DeliveryState",
    "Direction",
    "DraftSource",
    "EngagementEvent",
    "EngagementKind",
    "Exclusion",
    "ExclusionRule",
    "FeatureContract",
    "FeatureKind",
    "FeatureSpec",
    "FixedCopy",
    "GateOutcome",
    "GateVerdict",
    "MessageDraft",
    "NullPolicy",
    "Offer",
    "OfferCatalog",
    "RankedOffer",
    "Score",
    "Slug",
    "Transaction",
    "ValidatedBatch",
]
