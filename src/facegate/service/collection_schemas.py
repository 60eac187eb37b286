"""Request schemas of the collection endpoints that change a collection after it exists.

A collection's model and whether it is ephemeral are fixed at creation (its templates and
index depend on them); its operating point, image keeping and retention limits may change.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from facegate.config import FMR_CHOICES
from facegate.service.schemas import Strict

# Fields that may be set to null (no limit); the others need a value when given.
NULLABLE = frozenset({"max_template_age_days", "max_idle_days"})


class CollectionUpdate(Strict):
    """Only the fields given change. ``null`` lifts a retention limit."""

    fmr: float | None = Field(
        None,
        description="The operating point identify and verify use by default: 0.01, 0.001 or "
        "0.0001 (a lower rate means a higher threshold). In force from the next request.",
    )
    store_images: bool | None = Field(
        None,
        description="Keep an encrypted face crop with each new template. Turning it off keeps "
        "no new crops; crops already stored stay until their templates are erased.",
    )
    max_template_age_days: float | None = Field(
        None, gt=0, le=36500, description="Erase templates older than this; null: no limit."
    )
    max_idle_days: float | None = Field(
        None,
        gt=0,
        le=36500,
        description="Erase subjects not matched for this long (BIPA: at most 3 years); "
        "null: no limit.",
    )

    @field_validator("fmr")
    @classmethod
    def _known_fmr(cls, value: float | None) -> float | None:
        if value is None:
            return None  # not given (or null, refused below)
        for choice in FMR_CHOICES:
            if abs(value - choice) <= choice * 1e-6:
                return choice  # store exactly the calibrated rate
        raise ValueError(f"fmr must be one of {', '.join(f'{c:g}' for c in FMR_CHOICES)}")

    @model_validator(mode="after")
    def _something_to_change(self) -> CollectionUpdate:
        if not self.model_fields_set:
            raise ValueError(f"give at least one of {', '.join(type(self).model_fields)}")
        for name in self.model_fields_set - NULLABLE:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the request gave, with their new values (None: no limit)."""
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}
