"""Request and response schemas of the quota endpoints. A claim's answer never carries
an embedding; an anonymous one carries no subject either."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from facegate.policy.quota import QuotaAnswer, QuotaDefinition, QuotaMode, QuotaReason
from facegate.service.schemas import OperatingPointPublic
from facegate.types import OperatingPoint

DOCUMENT_EXAMPLE = {
    "quotas": [
        {
            "name": "snack",
            "limit": 1,
            "window_s": 540,
            "mode": "anonymous",
            "description": "1 item per person per 9 minutes",
        },
        {
            "name": "meals",
            "limit": 3,
            "window_s": 86400,
            "mode": "enrolled",
            "collection": "staff",
        },
    ]
}


class ClaimParams(BaseModel):
    """A claim takes no parameters besides its image."""

    model_config = ConfigDict(extra="forbid")


class QuotasPublic(BaseModel):
    """The quota definitions in force (those this key may use), and who last set them."""

    quotas: list[QuotaDefinition]
    version: int = Field(description="Goes up by one with every PUT; 0: never set.")
    updated_at: datetime | None = None
    updated_by: str | None = None
    dry_run: bool = Field(
        False,
        description="true: the answer of PUT ?dry_run=true: `quotas` are what a save would "
        "store, nothing was saved, and `version` is still the one in force.",
    )


class ClaimResponse(BaseModel):
    """Granted or denied. Denied is a normal answer (HTTP 200) with ``Retry-After`` when
    waiting helps; ``reason`` says why (``within_limit``, ``limit_reached``,
    ``unknown_person``)."""

    quota: str
    mode: QuotaMode
    granted: bool
    reason: QuotaReason
    remaining: int = Field(description="Claims left in the window after this one.")
    retry_after_s: float | None = Field(
        None, description="When denied for the limit: seconds until a claim would be granted."
    )
    limit: int
    window_s: float
    subject_id: str | None = Field(None, description="Enrolled quotas: who was identified.")
    similarity: float | None = Field(
        None,
        description="Enrolled: the identification score. Anonymous: the best score against a "
        "remembered face, only when one matched.",
    )
    operating_point: OperatingPointPublic | None = None

    @classmethod
    def of(
        cls,
        definition: QuotaDefinition,
        answer: QuotaAnswer,
        point: OperatingPoint | None,
        *,
        subject_id: str | None = None,
        similarity: float | None = None,
    ) -> ClaimResponse:
        return cls(
            quota=definition.name,
            mode=definition.mode,
            granted=answer.granted,
            reason=answer.reason,
            remaining=answer.remaining,
            retry_after_s=None if answer.retry_after_s is None else round(answer.retry_after_s, 3),
            limit=definition.limit,
            window_s=definition.window_s,
            subject_id=subject_id,
            similarity=similarity if similarity is not None else answer.similarity,
            operating_point=None if point is None else OperatingPointPublic.of(point),
        )
