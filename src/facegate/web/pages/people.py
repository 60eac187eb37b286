"""People: the list (search by name part or external id, paginated), one person's page
(templates, consent, access groups, quota use; edit, record or withdraw consent, add
photos, export and erase) and enrollment (consent, then photos checked for quality before
they are sent).

Pages only read; enrolling, editing, consent, adding or deleting a template, exporting and
erasing are calls to the REST API from ``people.js``, ``enroll.js`` and ``photos.js``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from facegate.errors import UnknownCollectionError, UnknownSubjectError
from facegate.gallery.keys import ApiKey
from facegate.gallery.records import Consent
from facegate.policy.quota import QuotaDefinition
from facegate.service.deps import Access, StateDep
from facegate.service.routes.access import current_policy
from facegate.service.routes.collections import list_collections
from facegate.service.routes.quotas import list_quotas
from facegate.service.routes.subjects import list_subjects, read_subject
from facegate.service.schemas import CollectionPublic, ConsentPublic, SubjectPublic
from facegate.service.state import ServiceState
from facegate.web.ui import UI_PATH, PageForbidden, UiKey, render, require_page_scope

router = APIRouter(prefix=UI_PATH, include_in_schema=False)

PAGE_SIZE = 25
DEFAULT_COLLECTION = "default"  # what a fresh install's first collection is called
# The legal bases the API accepts (schemas.LegalBasis), as the enrollment form offers them.
LEGAL_BASES = {
    "explicit_consent": "Explicit consent (GDPR Art. 9(2)(a))",
    "written_release": "Written release (BIPA 15(b))",
    "employment": "Employment law (GDPR Art. 9(2)(b))",
}
QueryText = Annotated[str, Query(max_length=200)]


# --- what the pages show ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConsentRow:
    record: ConsentPublic
    status: str  # active, expired or withdrawn


@dataclass(frozen=True, slots=True)
class QuotaUse:
    """One quota the person claimed, or may claim: use in the current window."""

    name: str
    in_window: int
    limit: int | None  # None: the quota is no longer defined (its claims await the sweep)
    window_s: float | None
    last_claim: datetime | None


def consent_status(consent: Consent, now: datetime) -> str:
    if consent.withdrawn_at is not None:
        return "withdrawn"
    return "active" if consent.active(now) else "expired"


def quota_use(
    definitions: list[QuotaDefinition],
    claims: list[dict[str, Any]],
    collection: str,
    now: datetime,
) -> list[QuotaUse]:
    """Claims per quota: those the current window still counts, against the limit.
    Enrolled quotas of this collection are listed even when never claimed."""
    times: dict[str, list[datetime]] = {}
    for claim in claims:
        times.setdefault(claim["quota"], []).append(datetime.fromisoformat(claim["at"]))
    defined = {d.name: d for d in definitions}
    names = [d.name for d in definitions if d.mode == "enrolled" and d.collection == collection]
    names += sorted(set(times) - set(names))
    rows = []
    for name in names:
        at = times.get(name, [])
        definition = defined.get(name)
        window = definition.window_s if definition else None
        since = now - timedelta(seconds=window) if window is not None else None
        rows.append(
            QuotaUse(
                name=name,
                in_window=sum(1 for t in at if since is None or t >= since),
                limit=definition.limit if definition else None,
                window_s=window,
                last_claim=max(at, default=None),
            )
        )
    return rows


def span(seconds: float) -> str:
    """A window length as people say it: 9 min, 24 h, 7 days."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {'day' if unit == 'days' and count == 1 else unit}"
    return f"{seconds:g} s"


def access_groups(state: ServiceState, key: ApiKey, subject: SubjectPublic) -> list[str] | None:
    """Names of the access groups listing the person (by subject id or external id).
    None when the key is limited to collections: the policy spans collections, and the
    API shows it only to keys that are not (GET /v1/access/policy)."""
    if key.collections is not None:
        return None
    refs = {subject.id} | ({subject.external_id} if subject.external_id else set())
    return [g.name for g in current_policy(state).groups if refs & set(g.members)]


def own_collection(
    key: ApiKey, collections: list[CollectionPublic], wanted: str | None
) -> CollectionPublic | None:
    """The collection asked for (it must be one the key may use), or the first one."""
    if not wanted:
        return collections[0] if collections else None
    for collection in collections:
        if collection.name == wanted:
            return collection
    raise PageForbidden(f"There is no collection {wanted!r} that this key may use.")


def not_found(request: Request, state: ServiceState, key: ApiKey, error: Exception) -> HTMLResponse:
    return render(
        request, state, key, "error.html", {"title": "Not found", "message": str(error)}, 404
    )


# --- pages -----------------------------------------------------------------------------------
@router.get("/people", response_class=HTMLResponse)
async def people(
    request: Request,
    state: StateDep,
    key: UiKey,
    collection: QueryText = "",
    name: QueryText = "",
    external_id: QueryText = "",
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> HTMLResponse:
    require_page_scope(key, "read")

    def gather() -> dict[str, object]:
        collections = list_collections(state, key).items
        chosen = own_collection(key, collections, collection)
        page = None
        if chosen is not None:
            page = list_subjects(
                state,
                Access(key, chosen.name),
                name=name.strip() or None,
                external_id=external_id.strip() or None,
                limit=PAGE_SIZE,
                offset=offset,
            )
        return {
            "collections": collections,
            "chosen": chosen,
            "page": page,
            "name": name,
            "external_id": external_id,
            "searching": bool(name.strip() or external_id.strip()),
            "may_enroll": key.allows("enroll"),
        }

    context = await anyio.to_thread.run_sync(gather)
    return render(request, state, key, "people.html", context)


@router.get("/people/new", response_class=HTMLResponse)
async def enroll_page(
    request: Request, state: StateDep, key: UiKey, collection: QueryText = ""
) -> HTMLResponse:
    require_page_scope(key, "enroll")

    def gather() -> dict[str, object]:
        collections = list_collections(state, key).items
        return {
            "collections": collections,
            "chosen": own_collection(key, collections, collection),
            "may_create_collection": key.allows("admin") and key.collections is None,
            "default_collection": DEFAULT_COLLECTION,
            "legal_bases": LEGAL_BASES,
            "min_quality": state.settings.gallery.min_enroll_quality,
        }

    context = await anyio.to_thread.run_sync(gather)
    return render(request, state, key, "enroll.html", context)


@router.get("/people/{collection}/{subject_id}", response_class=HTMLResponse)
async def person(
    request: Request, state: StateDep, key: UiKey, collection: str, subject_id: str
) -> HTMLResponse:
    require_page_scope(key, "read")
    if not key.may_use(collection):
        raise PageForbidden(f"This key may not use collection {collection!r}.")
    access = Access(key, collection)

    def gather() -> dict[str, object]:
        subject = read_subject(state, access, subject_id)
        gallery = state.recognizer(collection).gallery
        now = state.clock()
        consents = [] if gallery.ephemeral else gallery.consents(subject.id)
        rows = [ConsentRow(ConsentPublic.of(c), consent_status(c, now)) for c in consents]
        claims = state.applications.about_subject(subject.id)["quota_claims"]
        return {
            "subject": subject,
            "collection": collection,
            "ephemeral": gallery.ephemeral,
            "consents": rows,
            "consent_active": any(row.status == "active" for row in rows),
            "groups": access_groups(state, key, subject),
            "quotas": quota_use(list_quotas(state, key).quotas, claims, collection, now),
            "span": span,
            "may_change": key.allows("enroll"),
            "may_export": key.allows("admin"),
            "legal_bases": LEGAL_BASES,
            "min_quality": state.settings.gallery.min_enroll_quality,
        }

    try:
        context = await anyio.to_thread.run_sync(gather)
    except (UnknownSubjectError, UnknownCollectionError) as error:
        return not_found(request, state, key, error)
    return render(request, state, key, "person.html", context)
