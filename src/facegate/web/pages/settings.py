"""Settings (an admin key not limited to collections): each collection's operating point,
image keeping and retention limits (changed with PATCH /v1/collections/{c}), the
service's retention settings (read-only: they come from facegate.toml), and API keys
(create, showing the secret once; revoke)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from facegate.config import FMR_CHOICES
from facegate.errors import ConfigError
from facegate.policy.thresholds import operating_point
from facegate.service.deps import StateDep
from facegate.service.routes.collections import list_collections
from facegate.service.routes.keys import list_keys
from facegate.service.schemas import CollectionPublic
from facegate.web.pages.policy import duration_text
from facegate.web.ui import UI_PATH, UiKey, render, require_page_unrestricted

router = APIRouter(prefix=UI_PATH, include_in_schema=False)

# The scopes a new key may get, with what each allows (docs/api.md, "Keys and scopes").
SCOPES = (
    ("read", "see collections, people, events and cameras"),
    ("recognize", "identify, verify, doors and quotas"),
    ("enroll", "add, change and erase people and their faces"),
    ("admin", "everything, including collections, keys and the audit trail"),
)


@dataclass(frozen=True, slots=True)
class FmrChoice:
    fmr: float
    threshold: float | None  # None: the model has no calibrated threshold at this rate

    @property
    def label(self) -> str:
        one_in = f"1 in {round(1 / self.fmr):,}"
        if self.threshold is None:
            return f"{self.fmr:g} ({one_in}): not calibrated for this model"
        return f"{self.fmr:g} ({one_in}): threshold {self.threshold:.3f}"


def fmr_choices(model_id: str) -> list[FmrChoice]:
    """Every rate a collection may use, with the similarity threshold it means here."""
    choices = []
    for fmr in FMR_CHOICES:
        try:
            threshold: float | None = operating_point(model_id, fmr).threshold
        except ConfigError:
            threshold = None
        choices.append(FmrChoice(fmr, threshold))
    return choices


def days_value(days: float | None) -> str:
    """A retention limit as an input's value: empty for no limit."""
    return "" if days is None else f"{days:g}"


def collection_row(collection: CollectionPublic) -> dict[str, Any]:
    return {
        "c": collection,
        "choices": fmr_choices(collection.model_id),
        "max_idle_days": days_value(collection.max_idle_days),
        "max_template_age_days": days_value(collection.max_template_age_days),
    }


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request, state: StateDep, key: UiKey) -> HTMLResponse:
    require_page_unrestricted(key)
    retention = state.settings.retention

    def gather() -> dict[str, Any]:
        return {
            "collections": [collection_row(c) for c in list_collections(state, key).items],
            "keys": list_keys(state, key).items,
            "scopes": SCOPES,
            "retention": retention,
            "sweep_every": (
                duration_text(retention.sweep_interval_s) if retention.sweep_interval_s else None
            ),
        }

    context = await anyio.to_thread.run_sync(gather)
    return render(request, state, key, "settings.html", context)
