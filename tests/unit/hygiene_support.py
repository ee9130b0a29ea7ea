"""What the secrets and hygiene tests share: keys of full strength, file modes, and a
campaign spec and candidates for a coordinator that delivers to the outbox."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pyarrow as pa

from sluice.channels.unsubscribe import Unsubscribe
from sluice.contracts.campaign import CampaignSpec

HEX_KEY = "0123456789abcdef" * 4
OTHER_KEY = "fedcba9876543210" * 4
U = Unsubscribe("c1", "outdoors", "email", "run-1")
NO_ENV: dict[str, str] = {}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def spec_for(outbox: Path) -> CampaignSpec:
    off = ("injection", "pii", "claims", "brand_safety", "channel_format", "confidence")
    return CampaignSpec.model_validate(
        {
            "campaign_id": "camp",
            "name": "camp",
            "brand": "outdoors",
            "audience": {"features": str(outbox), "customers": str(outbox)},
            "channels": {"email": {"transport": "outbox", "path": str(outbox)}},
            "gates": {
                **dict.fromkeys(off),
                "frequency_cap": None,
                "quiet_hours": None,
            },
        }
    )


def candidates(run: str, people: list[tuple[str, str, str]]) -> pa.Table:
    """(customer id, email, subject) per candidate."""
    rows: list[dict[str, Any]] = [
        {
            "customer_id": cid,
            "decision_id": f"dec_{cid}",
            "arm": "main",
            "score": 0.5,
            "offer_id": "spring-boots-20",
            "channel": "email",
            "offer_url": "https://shop.example.com/x",
            "time_zone": "Europe/Berlin",
            "email": email,
            "consent_email": True,
            "subject": subject,
            "preheader": "P",
            "body": "B",
            "cta": "C",
            "text": None,
        }
        for cid, email, subject in people
    ]
    return pa.Table.from_pylist(rows)
