"""Request and response schemas of the access endpoints. A decision never carries an
embedding or an image."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from facegate.policy.access_model import AccessReason
from facegate.service.schemas import OperatingPointPublic

POLICY_EXAMPLE: dict[str, Any] = {
    "doors": [
        {
            "name": "main-in",
            "collection": "staff",
            "zone": "building",
            "direction": "in",
            "anti_passback": True,
            "min_quality": 0.3,
        },
        {"name": "main-out", "collection": "staff", "zone": "building", "direction": "out"},
    ],
    "groups": [{"name": "residents", "members": ["emp-1815", "emp-1906"]}],
    "schedules": [
        {
            "name": "office-hours",
            "timezone": "Europe/Berlin",
            "windows": [{"days": ["mon-fri"], "start": "07:00", "end": "22:00"}],
            "exceptions": [{"date": "2026-12-25", "closed": True}],
        }
    ],
    "rules": [
        {"id": "residents", "effect": "allow", "doors": ["*"], "who": ["residents"]},
        {"effect": "allow", "doors": ["main-out"], "who": ["*"]},
    ],
}


class AccessPolicyPublic(BaseModel):
    """The access policy in force, as stored (normalised), and who last set it."""

    policy: dict[str, Any] = Field(
        ..., description="doors, groups, schedules and rules; see docs/access.md."
    )
    version: int = Field(..., description="Goes up by one with every PUT; 0: never set.")
    updated_at: datetime | None = None
    updated_by: str | None = None
    dry_run: bool = Field(
        False,
        description="true: the answer of PUT ?dry_run=true: `policy` is what a save would "
        "store, nothing was saved, and `version` is still the one in force.",
    )


class DecideParams(BaseModel):
    """Besides the image: the liveness session that vouches for this face, if any."""

    model_config = ConfigDict(extra="forbid")

    liveness_session: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="A passed liveness session (single use), for doors that require one.",
    )


class AccessDecisionPublic(BaseModel):
    """One access decision. Denied is a normal answer (HTTP 200): ``reason`` says why."""

    door: str
    allowed: bool
    reason: AccessReason = Field(
        ...,
        description="allowed, unknown_person, not_in_group, outside_schedule, "
        "denied_by_rule, anti_passback, liveness_required or low_quality.",
    )
    detail: str = Field(..., description="One sentence for operators.")
    subject_id: str | None = Field(None, description="Who was identified (even if denied).")
    subject_name: str | None = None
    similarity: float | None = Field(None, description="Score of the best candidate, if any.")
    quality: float | None = Field(None, description="The probe face's quality, 0..1.")
    rule: int | None = Field(
        None,
        description="Index (in the policy's rules) of the rule behind allowed, "
        "denied_by_rule or outside_schedule.",
    )
    rule_id: str | None = Field(None, description="That rule's id, if it has one.")
    at: datetime
    collection: str
    operating_point: OperatingPointPublic
    event_id: str = Field(..., description="The access event published for this decision.")
