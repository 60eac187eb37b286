"""Access & quotas: the stored access policy and quota definitions as tables, and (for an
admin key not limited to collections) a JSON editor per document that checks it with the
API's dry run before saving it (docs/access.md, docs/quotas.md)."""

from __future__ import annotations

import json
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from facegate.gallery.keys import ApiKey
from facegate.policy.access_document import parse_access_policy
from facegate.policy.access_model import AccessPolicyError
from facegate.policy.quota import QuotaDefinition
from facegate.service.deps import StateDep
from facegate.service.routes.access import get_policy
from facegate.service.routes.quotas import list_quotas
from facegate.web.ui import UI_PATH, UiKey, render, require_page_scope

router = APIRouter(prefix=UI_PATH, include_in_schema=False)

WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DOCUMENTS = ("policy", "quotas")  # what ?saved= may name after a save


def may_edit(key: ApiKey) -> bool:
    """The API's rule for both PUTs: admin, not limited to some collections."""
    return key.allows("admin") and key.collections is None


def day_span(days: list[str]) -> str:
    """["mon", "tue", "wed", "fri"] -> "mon-wed, fri": runs of three or more days joined."""
    chosen = [d for d in WEEK if d in days]
    runs: list[list[str]] = []
    for day in chosen:
        if runs and WEEK.index(day) == WEEK.index(runs[-1][-1]) + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = [f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(r) for r in runs]
    return ", ".join(parts)


def window_text(window: dict[str, Any]) -> str:
    hours = f"{window.get('start', '?')}-{window.get('end', '?')}"
    days = window.get("days")
    return f"{day_span(days)} {hours}" if days else hours


def exception_text(exception: dict[str, Any]) -> str:
    if exception.get("closed"):
        return f"{exception.get('date')}: closed"
    windows = ", ".join(window_text(w) for w in exception.get("windows", []))
    return f"{exception.get('date')}: {windows}"


def who_text(who: list[str]) -> str:
    return ", ".join("anyone identified" if w == "*" else w for w in who)


def doors_text(doors: list[str]) -> str:
    return "every door" if doors == ["*"] else ", ".join(doors)


def duration_text(seconds: float) -> str:
    """540 -> "9 min", 86400 -> "1 day": the largest unit that divides it evenly."""
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if unit == 'day' and count != 1 else ''}"
    return f"{seconds:g} s"


def quota_row(quota: QuotaDefinition) -> dict[str, Any]:
    return quota.model_dump() | {"window": duration_text(quota.window_s)}


def schedule_row(schedule: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": schedule.get("name"),
        "timezone": schedule.get("timezone"),
        "windows": [window_text(w) for w in schedule.get("windows", [])],
        "exceptions": [exception_text(e) for e in schedule.get("exceptions", [])],
    }


def rule_row(index: int, rule: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": index,
        "id": rule.get("id"),
        "effect": rule.get("effect"),
        "priority": rule.get("priority", 0),
        "doors": doors_text(rule.get("doors", [])),
        "who": who_text(rule.get("who", [])),
        "schedule": rule.get("schedule"),
    }


def door_row(door: dict[str, Any]) -> dict[str, Any]:
    quality = door.get("min_quality")
    return door | {"min_quality": "—" if quality is None else f"{quality:g}"}


def readable(document: dict[str, Any]) -> dict[str, Any]:
    """The stored policy (kept with sorted keys) in the library's field order, names first;
    as stored if it no longer parses (set by hand or by another version)."""
    try:
        return parse_access_policy(document).to_document()
    except AccessPolicyError:
        return document


def whole_numbers(definition: dict[str, Any]) -> dict[str, Any]:
    """540.0 -> 540: a window in seconds reads better without the float's ".0"."""
    return {
        k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in definition.items()
    }


def editor_text(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


@router.get("/policy", response_class=HTMLResponse)
async def policy_page(
    request: Request, state: StateDep, key: UiKey, saved: str | None = None
) -> HTMLResponse:
    require_page_scope(key, "read")

    def gather() -> dict[str, Any]:
        # The policy spans collections: the API shows it only to keys not limited to some.
        access = get_policy(state, key) if key.collections is None else None
        quotas = list_quotas(state, key)
        context: dict[str, Any] = {
            "access": access,
            "quotas": quotas,
            "quota_rows": [quota_row(q) for q in quotas.quotas],
            "editable": may_edit(key),
            "saved": saved if saved in DOCUMENTS else None,
            "quotas_text": editor_text(
                {"quotas": [whole_numbers(q.model_dump(exclude_none=True)) for q in quotas.quotas]}
            ),
        }
        if access is not None:
            policy = readable(access.policy)
            context |= {
                "doors": [door_row(d) for d in policy.get("doors", [])],
                "groups": policy.get("groups", []),
                "schedules": [schedule_row(s) for s in policy.get("schedules", [])],
                "rules": [rule_row(i, r) for i, r in enumerate(policy.get("rules", []))],
                "policy_text": editor_text(policy),
            }
        return context

    context = await anyio.to_thread.run_sync(gather)
    return render(request, state, key, "policy.html", context)
