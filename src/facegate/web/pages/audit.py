"""The audit trail (unrestricted admins): whether its hash chain is intact, first and
large, then the entries, newest first, filtered and paged."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import urlencode

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from facegate.service.deps import StateDep
from facegate.service.routes.audit import query, verify_chain
from facegate.service.schemas import AuditRecordPublic
from facegate.web.pages.events import parse_time
from facegate.web.ui import UI_PATH, UiKey, render, require_page_unrestricted

router = APIRouter(prefix=UI_PATH, include_in_schema=False)

PAGE_SIZE = 50
RECENT = 500  # entries read for the list of actions to pick from
FilterText = Annotated[str, Query(max_length=64)]


def detail_text(record: AuditRecordPublic) -> str:
    return (
        json.dumps(record.detail, sort_keys=True, separators=(", ", ": ")) if record.detail else ""
    )


def page_link(filters: dict[str, str], offset: int) -> str:
    wanted = {k: v for k, v in filters.items() if v} | ({"offset": str(offset)} if offset else {})
    return "/ui/audit" + (f"?{urlencode(wanted)}" if wanted else "")


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(
    request: Request,
    state: StateDep,
    key: UiKey,
    action: FilterText = "",
    collection: FilterText = "",
    key_id: Annotated[str, Query(max_length=16)] = "",
    since: FilterText = "",
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> HTMLResponse:
    require_page_unrestricted(key)
    problems: list[str] = []
    start = parse_time(since, "since", problems)
    filters = {"action": action, "collection": collection, "key_id": key_id, "since": since}

    def gather() -> dict[str, object]:
        # One more than a page: whether there is an older page.
        found = query(
            state,
            key,
            action=action.strip() or None,
            collection=collection.strip() or None,
            key_id=key_id.strip() or None,
            since=start,
            limit=PAGE_SIZE + 1,
            offset=offset,
        ).items
        recent = query(state, key, limit=RECENT).items
        verification = verify_chain(state, key)
        newest = recent[0].seq if recent else 0
        broken = verification.first_broken_seq
        return {
            "records": found[:PAGE_SIZE],
            "verification": verification,
            "newest_seq": newest,
            # Sequence numbers count down the unfiltered list: the page that holds it.
            "broken_link": None if broken is None else page_link({}, max(0, newest - broken)),
            "actions": sorted({r.action for r in recent}),
            "older": page_link(filters, offset + PAGE_SIZE) if len(found) > PAGE_SIZE else None,
            "newer": page_link(filters, max(0, offset - PAGE_SIZE)) if offset else None,
        }

    context = await anyio.to_thread.run_sync(gather)
    context |= {
        "filters": filters,
        "problems": problems,
        "offset": offset,
        "page_size": PAGE_SIZE,
        "detail_text": detail_text,
    }
    return render(request, state, key, "audit.html", context)
