"""Identify: one photo against a collection (1:N). The page offers the collections the key
may use; ``identify.js`` sends the photo to ``POST /v1/collections/{c}/identify`` and
draws each face's box with the name, or "unknown", the similarity and operating point."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from facegate.service.deps import StateDep
from facegate.service.routes.collections import list_collections
from facegate.web.pages.people import own_collection
from facegate.web.ui import UI_PATH, UiKey, render, require_page_scope

router = APIRouter(prefix=UI_PATH, include_in_schema=False)


@router.get("/identify", response_class=HTMLResponse)
async def identify_page(
    request: Request,
    state: StateDep,
    key: UiKey,
    collection: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    require_page_scope(key, "recognize")

    def gather() -> dict[str, object]:
        collections = list_collections(state, key).items
        return {"collections": collections, "chosen": own_collection(key, collections, collection)}

    context = await anyio.to_thread.run_sync(gather)
    return render(request, state, key, "identify.html", context)
