"""The gate chain a campaign spec asks for, in order."""

from __future__ import annotations

from sluice.contracts.campaign import CampaignSpec
from sluice.contracts.decisions import OfferCatalog
from sluice.gates.base import Gate, GateChain
from sluice.gates.brand_safety import BrandSafetyGate
from sluice.gates.channel_format import ChannelFormatGate
from sluice.gates.claims import ClaimsGate
from sluice.gates.compliance import (
    ConsentGate,
    FrequencyCapGate,
    QuietHoursGate,
    SchemaGate,
    SuppressionGate,
)
from sluice.gates.confidence import ConfidenceGate
from sluice.gates.injection import InjectionGate
from sluice.gates.pii import PIIGate
from sluice.gates.text import host_of


def content_gates(spec: CampaignSpec, catalog: OfferCatalog) -> list[Gate]:
    """The gates that judge a message's copy (no database, no clock): injection -> pii ->
    claims -> brand safety -> channel format, those the spec turns on."""
    g = spec.gates
    gates: list[Gate] = []
    if g.injection is not None:
        offer_hosts = {host_of(str(o.url)) for o in catalog.offers}
        gates.append(InjectionGate(sorted(offer_hosts | set(g.injection.allowed_domains))))
    if g.pii is not None:
        gates.append(PIIGate())
    if g.claims is not None:
        gates.append(ClaimsGate(catalog))
    if g.brand_safety is not None:
        b = g.brand_safety
        gates.append(
            BrandSafetyGate(
                b.banned_terms, b.competitors, b.banned_topics, b.topic_threshold, b.fuzzy
            )
        )
    if g.channel_format is not None:
        f = g.channel_format
        gates.append(
            ChannelFormatGate(
                f.sms_max_segments, f.sms_allow_ucs2, f.subject_max, f.preheader_max, f.push_max
            )
        )
    return gates


def build_chain(spec: CampaignSpec, catalog: OfferCatalog) -> GateChain:
    """schema -> consent -> suppression -> the content gates -> confidence -> quiet hours
    -> frequency cap: the cheap, final verdicts first; review before deferral; the cap,
    which counts sends, last."""
    g = spec.gates
    gates: list[Gate] = [
        SchemaGate({c.value for c in spec.channels}),
        ConsentGate(),
        SuppressionGate(),
        *content_gates(spec, catalog),
    ]
    if g.confidence is not None and (g.confidence.score_band or g.confidence.margin_band):
        gates.append(ConfidenceGate(g.confidence.score_band, g.confidence.margin_band))
    if g.quiet_hours is not None:
        gates.append(QuietHoursGate(g.quiet_hours.start, g.quiet_hours.end))
    if g.frequency_cap is not None:
        gates.append(FrequencyCapGate(g.frequency_cap.per_day))
    return GateChain(gates)
