"""The campaign spec: one YAML file says what a run scores, decides, writes and sends.

Validated by :class:`CampaignSpec` (pydantic, unknown fields refused); errors name the
file and the field. :func:`sluice.campaign.spec.load_spec` reads one from YAML and makes
its relative paths relative to the spec file. A spec holds no
secrets: the SMTP password and the webhook signing secret are read from the environment
variables the spec names, by the process that delivers (the run's coordinator), and the
SMTP host, port and user may be overridden there by ``SLUICE_SMTP_HOST``,
``SLUICE_SMTP_PORT`` and ``SLUICE_SMTP_USER`` (see
:func:`sluice.coordinator.transports.smtp_settings`). The stored spec, and so a run's
identity, never depends on them.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from croniter import CroniterBadDateError, CroniterError, croniter
from pydantic import Field, HttpUrl, field_validator, model_validator

from sluice.contracts._base import Contract, Slug
from sluice.contracts.briefs import BrandVoice
from sluice.contracts.customer import Channel


class AudienceSpec(Contract):
    features: Path
    """Feature rows to score (Parquet file or directory), as `sluice features build` writes."""
    customers: Path
    """Customer profiles (``customers.parquet``): consent, time zone, addresses, names."""
    limit: int | None = Field(default=None, ge=1)
    """Score at most this many rows (for trials)."""


HEADER_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""What a header value may not hold: a control character (Unicode category Cc) or a line
or paragraph separator."""


class SmtpChannel(Contract):
    transport: Literal["smtp"] = "smtp"
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    """Upgrade the connection with STARTTLS before authenticating."""
    ssl: bool = False
    """Connect with implicit TLS (port 465)."""
    username: str | None = None
    """User for SMTP AUTH (``SLUICE_SMTP_USER`` overrides it where the run delivers)."""
    password_env: str = Field(default="SLUICE_SMTP_PASSWORD", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Environment variable holding the SMTP AUTH password, read where the run delivers."""
    from_address: str = Field(default="offers@shop.example.com", pattern=r"^[^@\s]+@[^@\s]+$")
    from_name: str = "Sluice Outdoors"
    unsubscribe_url: HttpUrl = HttpUrl("https://shop.example.com/u")
    """Base of one-click unsubscribe links (``List-Unsubscribe`` and ``-Post``)."""
    reconcile_url: HttpUrl | None = None
    """The relay's message-status API (GET .../{message_id}); resolves ambiguous sends."""
    allow_hosts: tuple[str, ...] = ()
    """Hosts (names or IP literals) of ``host`` and ``reconcile_url`` allowed although not
    globally routable (a local mail sink, a cluster-internal relay); others are refused."""
    timeout_s: float = Field(default=30, gt=0)
    concurrency: int = Field(default=4, ge=1, le=64)

    @field_validator("from_address", "from_name")
    @classmethod
    def _one_header_line(cls, value: str) -> str:
        if HEADER_UNSAFE.search(value):
            raise ValueError("a header value cannot hold a line break or control character")
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError(
                "password: a spec holds no secrets; put the password in the environment "
                "variable that password_env names (default SLUICE_SMTP_PASSWORD)"
            )
        return data


class WebhookChannel(Contract):
    transport: Literal["webhook"] = "webhook"
    url: HttpUrl
    secret_env: str = "SLUICE_WEBHOOK_SECRET"
    """Environment variable holding the HMAC-SHA256 signing secret."""
    allow_hosts: tuple[str, ...] = ()
    """Hosts (names or IP literals) allowed as targets although not globally routable
    (private, loopback, link-local...); others are refused."""
    timeout_s: float = Field(default=10, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_s: float = Field(default=0.5, ge=0)
    concurrency: int = Field(default=8, ge=1, le=64)


class OutboxChannel(Contract):
    transport: Literal["outbox"] = "outbox"
    path: Path
    """Directory of the outbox; one file per run and channel."""
    format: Literal["jsonl", "parquet"] = "jsonl"
    concurrency: int = Field(default=8, ge=1, le=64)
    """Concurrent senders; their JSONL writes share fsyncs (group commit)."""


ChannelSpec = Annotated[
    SmtpChannel | WebhookChannel | OutboxChannel, Field(discriminator="transport")
]


class CopySpec(Contract):
    mode: Literal["fixed", "generate"] = "fixed"
    """``fixed``: the offers' approved copy; ``generate``: the LLM, with that copy as fallback."""
    template: str = "copy-v2"
    llm_url_env: str = "SLUICE_LLM_BASE_URL"
    """Environment variable with the LLM deployment's OpenAI base URL (generate mode)."""
    llm_url: str | None = None
    """The base URL itself, when not taken from the environment."""
    allow_hosts: tuple[str, ...] = ()
    """Hosts (names or IP literals) of the LLM URL allowed although not globally routable
    (a cluster-internal Serve service, a local deployment); others are refused."""
    api_key_env: str = "SLUICE_LLM_API_KEY"
    """Environment variable with the API key (``llm`` scope) for an LLM app that requires
    one; read where copy is generated (a Ray worker), never carried in the spec."""
    model_id: str = "smollm2-135m-instruct"
    variants: tuple[Slug, ...] = Field(default=("a",), min_length=1)
    """Copy variants, assigned to recipients by hash (at least one)."""
    max_prompts: int | None = Field(default=None, ge=0)
    """LLM budget: generate only the most frequent prompt keys; the rest get approved copy."""
    max_in_flight: int = Field(default=4, ge=1, le=256)
    deadline_s: float = Field(default=60, gt=0)
    processor_config: Path | None = None
    """A Serve LLM config (``deployments/llm-gpu.yaml``...) whose model and engine run a
    ``ray.data.llm`` processor in the campaign's batch job when it has at least
    ``processor_min_prompts`` prompts to generate; None: the Serve app generates all."""
    processor_min_prompts: int = Field(default=64, ge=1)
    voice: BrandVoice = BrandVoice()

    @model_validator(mode="after")
    def _generate_needs_a_url(self) -> Self:
        if self.mode == "generate" and not (self.llm_url or self.llm_url_env):
            raise ValueError(
                "generate mode needs an LLM URL (llm_url) or the variable holding it (llm_url_env)"
            )
        return self

    def base_url(self) -> str | None:
        return os.environ.get(self.llm_url_env) or self.llm_url


class FrequencyCap(Contract):
    per_day: int = Field(default=1, ge=1, le=100)
    """Messages per recipient-local calendar day, across all campaigns and channels."""


class QuietHours(Contract):
    start: time = time(21, 0)
    end: time = time(8, 0)
    """Recipient-local window in which nothing is sent; a send is deferred to its end."""


class ClaimsSpec(Contract):
    """Prices, percentages, dates and URLs in the copy must be the offer's (no settings)."""


class BrandSafety(Contract):
    banned_terms: tuple[str, ...] = ()
    competitors: tuple[str, ...] = ()
    banned_topics: tuple[str, ...] = ()
    """Descriptions of topics the brand stays away from, compared by meaning (MiniLM)."""
    topic_threshold: float = Field(default=0.4, gt=0, le=1)
    fuzzy: float = Field(default=0.86, gt=0.5, le=1)
    """Similarity from which a word window counts as a banned term (1: exact only)."""


class PIISpec(Contract):
    """No email address, phone, card number or customer id in the copy (no settings)."""


class InjectionSpec(Contract):
    allowed_domains: tuple[str, ...] = ()
    """Link domains besides the catalog's offer pages (which are always allowed)."""


class ChannelFormat(Contract):
    sms_max_segments: int = Field(default=2, ge=1, le=10)
    sms_allow_ucs2: bool = True
    subject_max: int = Field(default=78, ge=10, le=200)
    preheader_max: int = Field(default=140, ge=10, le=300)
    push_max: int = Field(default=178, ge=10, le=1000)


Band = tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]]


class Confidence(Contract):
    score_band: Band | None = None
    """Propensity scores from..to that go to review instead of out."""
    margin_band: Band | None = None
    """Expected offer values from..to that go to review."""

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        for name in ("score_band", "margin_band"):
            band = getattr(self, name)
            if band is not None and band[0] > band[1]:
                raise ValueError(f"{name}: low end {band[0]} is above high end {band[1]}")
        return self


class GatesSpec(Contract):
    """Each gate's settings; ``null`` turns a gate off (schema, consent and suppression
    cannot be turned off)."""

    injection: InjectionSpec | None = InjectionSpec()
    pii: PIISpec | None = PIISpec()
    claims: ClaimsSpec | None = ClaimsSpec()
    brand_safety: BrandSafety | None = BrandSafety()
    channel_format: ChannelFormat | None = ChannelFormat()
    confidence: Confidence | None = Confidence()
    frequency_cap: FrequencyCap | None = FrequencyCap()
    quiet_hours: QuietHours | None = QuietHours()


class Guardrail(Contract):
    """A check of the canary arm against main or the holdout; when it fires (with
    significance), the canary arm is paused, its model alias rolled back, and an
    incident opened for a person to resolve."""

    name: Slug
    metric: Literal[
        "conversion_rate", "revenue_per_recipient", "unsubscribe_rate", "complaint_rate"
    ]
    versus: Literal["main", "holdout"] = "main"
    max_ratio: float | None = Field(default=None, gt=0)
    """Fires when canary's metric is above ``max_ratio`` x the other arm's (one-sided test)."""
    min_lift: float | None = None
    """Fires when canary's metric minus the other arm's is below ``min_lift`` (one-sided)."""
    p_value: float = Field(default=0.05, gt=0, lt=0.5)
    """Significance the evidence must reach."""
    min_sent: int = Field(default=200, ge=1)
    """Canary messages sent before the guardrail may fire."""

    @model_validator(mode="after")
    def _one_test(self) -> Self:
        if (self.max_ratio is None) == (self.min_lift is None):
            raise ValueError(f"guardrail {self.name}: set exactly one of max_ratio or min_lift")
        return self


class CanarySpec(Contract):
    share_pct: float = Field(gt=0, le=50)
    """Share of the audience that gets the canary treatment."""
    model: str = "sluice-propensity@challenger"
    """The model the canary arm is scored with (same feature contract as ``model``)."""
    guardrails: tuple[Guardrail, ...] = ()


_CRON_CHANCE = re.compile(r"(?:^|,)[HhRr](?:$|[(/,])")
"""A random (``R``) or hashed (``H``) item of a cron field (croniter's extensions)."""

_CRON_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class CampaignSchedule(Contract):
    """When the orchestrator starts a run of the campaign on its own."""

    cron: str
    """Five-field cron expression (minute hour day-of-month month day-of-week), in UTC:
    ``0 6 * * 1`` is Mondays at 06:00 UTC."""
    missed: Literal["skip", "run_once"] = "run_once"
    """Times missed while the orchestrator was down: ``run_once``: one run for all of them
    when it is back; ``skip``: wait for the next time."""

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5:
            raise ValueError(
                f"{value!r} is not a five-field cron expression "
                f"(minute hour day-of-month month day-of-week), it has {len(fields)} fields"
            )
        if any(_CRON_CHANCE.search(field) for field in fields):
            raise ValueError(
                f"{value!r}: random (R) and hashed (H) values are not allowed; a schedule "
                "names the same times wherever it is read"
            )
        try:
            croniter(value, _CRON_EPOCH).get_next(datetime)
        except CroniterBadDateError as exc:
            raise ValueError(f"{value!r} names no time that ever comes") from exc
        except (CroniterError, ValueError, KeyError) as exc:
            raise ValueError(f"{value!r} is not a valid cron expression: {exc}") from exc
        return " ".join(fields)


class CampaignSpec(Contract):
    """One campaign."""

    campaign_id: Slug
    name: str = Field(min_length=1, max_length=200)
    brand: Slug = "sluice-outdoors"
    """Brand for per-brand suppressions."""
    audience: AudienceSpec
    model: str = "sluice-propensity@champion"
    offers: str = "builtin:default"
    channels: dict[Channel, ChannelSpec] = Field(min_length=1)
    """Channels this campaign may use, and how each is delivered."""
    copy_: CopySpec = Field(default_factory=CopySpec, alias="copy")
    gates: GatesSpec = GatesSpec()
    holdout_pct: float = Field(default=10.0, ge=0, le=100)
    """Share of the audience held out as the control group (no message)."""
    canary: CanarySpec | None = None
    """A challenger model tried on a share of the audience, watched by guardrails."""
    salt: str | None = Field(default=None, min_length=1, max_length=64)
    """Salt of the arm and variant hashes (default: the campaign id); a new salt reshuffles."""
    attribution_days: int = Field(default=7, ge=1, le=90)
    """Outcome events this many days after a run's start count towards its KPIs."""
    decision_date: date | None = None
    """Business date for offer validity; default: today (UTC)."""
    dry_run: bool = False
    batch_size: int = Field(default=5_000, ge=10, le=200_000)
    dry_run_sample: int = Field(default=100, ge=0)
    """How many would-be messages a dry run writes out."""
    review_hours: float = Field(default=72, gt=0, le=24 * 90)
    """Review window: a message waiting for a person expires this long after it was
    gated (and never after its offer's last day)."""
    schedule: CampaignSchedule | None = None
    """When the orchestrator runs the campaign on its own (none: only when started)."""

    @model_validator(mode="after")
    def _arms_fit(self) -> Self:
        if self.canary and self.holdout_pct + self.canary.share_pct > 100:
            raise ValueError("canary.share_pct: holdout and canary shares exceed 100%")
        return self

    @property
    def arm_salt(self) -> str:
        return self.salt or self.campaign_id

    def channels_transport(self, channel: str) -> str:
        """The transport (smtp, webhook, outbox) configured for ``channel``."""
        return str(self.channels[Channel(channel)].transport)

    def public(self) -> dict[str, Any]:
        """The spec as stored with the run (secrets masked)."""
        return self.model_dump(mode="json", by_alias=True)
