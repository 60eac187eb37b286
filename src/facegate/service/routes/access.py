"""Access control: the policy document, and decisions at doors.

``GET /v1/access/policy`` (read) and ``PUT /v1/access/policy`` (admin) show and replace
the policy (doors, groups, schedules, rules; docs/access.md); ``?dry_run=true`` checks a
document without saving it. ``POST
/v1/access/{door}/decide`` (recognize, on the door's collection) identifies the largest
face of the image in the door's collection, decides with the policy at the state's clock,
publishes an ``access`` event (the database, webhooks, MQTT ``<prefix>/doors/<door>/
decisions``: on ``allowed`` it is the door's open command) and audits the decision.

An image without a face is refused (422 ``no-face``, like identify): no decision, no event.
"""

from __future__ import annotations

import math
import threading
from datetime import UTC
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, Path, Query, Request

from facegate.errors import EphemeralCollectionError, NoFaceError
from facegate.events.model import EventKind, StreamEvent
from facegate.gallery.applications import PolicyDocument
from facegate.gallery.keys import ApiKey
from facegate.policy.access import AccessPolicy
from facegate.policy.access_document import parse_access_policy
from facegate.policy.access_model import (
    NAME_PATTERN,
    AccessPolicyError,
    Door,
    Identity,
    StoredPresence,
)
from facegate.service.access_schemas import (
    POLICY_EXAMPLE,
    AccessDecisionPublic,
    AccessPolicyPublic,
    DecideParams,
)
from facegate.service.auditing import Outcome, audited
from facegate.service.auth import require_collection
from facegate.service.deps import GlobalAdminKey, ReadKey, RecognizeKey, StateDep
from facegate.service.images import ImageField, read_images
from facegate.service.liveness_gate import consume_liveness
from facegate.service.openapi import image_body
from facegate.service.problems import Problem
from facegate.service.routes.subjects import collector
from facegate.service.schemas import OperatingPointPublic
from facegate.service.state import ServiceState
from facegate.types import Verdict

router = APIRouter(prefix="/v1/access", tags=["access"])

ACCESS_DOCUMENT = "access"  # its name among the application documents
PROBE = (ImageField("image"),)
DoorName = Annotated[str, Path(description="The door's name.", pattern=NAME_PATTERN.pattern)]
# Anti-passback reads presence, then writes it: one decision at a time in this process.
_DECIDING = threading.Lock()


def _invalid(error: AccessPolicyError, status: int = 422) -> Problem:
    return Problem(
        status, "invalid-policy", str(error), title="Invalid policy", errors=list(error.problems)
    )


def _unrestricted(key: ApiKey) -> None:
    if key.collections is not None:
        raise Problem(
            403,
            "collection-forbidden",
            "the access policy spans collections: this needs a key not limited to some",
            title="Forbidden",
        )


def current_policy(state: ServiceState) -> AccessPolicy:
    """The stored policy (an empty one, which opens nothing, if none was ever set)."""
    stored = state.applications.get_document(ACCESS_DOCUMENT)
    if stored is None:
        return AccessPolicy()
    try:
        return parse_access_policy(stored.document)
    except AccessPolicyError as error:  # stored by hand, or by another version
        raise _invalid(error, 500) from None


def _public(
    stored: PolicyDocument | None, document: dict[str, Any] | None = None, dry_run: bool = False
) -> AccessPolicyPublic:
    """The answer about ``stored`` (None: never set); ``document``: show this policy in
    its place (a dry run's)."""
    if document is None:
        document = AccessPolicy().to_document() if stored is None else stored.document
    return AccessPolicyPublic(
        policy=document,
        version=0 if stored is None else stored.version,
        updated_at=None if stored is None else stored.updated_at,
        updated_by=None if stored is None else stored.updated_by,
        dry_run=dry_run,
    )


def checked_policy(state: ServiceState, document: Any) -> AccessPolicy:
    """``document`` as a policy, checked against this installation (collections that exist
    and are durable, cameras of the settings): what a save stores. Raises
    AccessPolicyError naming every problem."""
    collections = state.store.list_collections()
    policy = parse_access_policy(
        document,
        cameras={c.name: c.collection for c in state.settings.cameras},
        collections=[c.name for c in collections],
    )
    ephemeral = {c.name for c in collections if c.ephemeral}
    refused = [
        f"doors[{i}].collection: collection {d.collection!r} is ephemeral; access "
        "decisions need a durable collection"
        for i, d in enumerate(policy.doors)
        if d.collection in ephemeral
    ]
    if refused:
        raise AccessPolicyError(refused)
    return policy


@router.get(
    "/policy",
    response_model=AccessPolicyPublic,
    summary="The access policy in force (a key not limited to some collections).",
)
def get_policy(state: StateDep, key: ReadKey) -> AccessPolicyPublic:
    _unrestricted(key)
    return _public(state.applications.get_document(ACCESS_DOCUMENT))


@router.put(
    "/policy",
    response_model=AccessPolicyPublic,
    summary="Replace the access policy (an unrestricted admin key); 422 names every bad field. "
    "?dry_run=true checks without saving.",
)
def put_policy(
    state: StateDep,
    key: GlobalAdminKey,
    document: Annotated[
        Any,
        Body(
            description="doors, groups, schedules and rules; see docs/access.md.",
            examples=[POLICY_EXAMPLE],
        ),
    ],
    dry_run: Annotated[
        bool,
        Query(
            description="Check the document exactly as a save would and save nothing: 200 "
            "with the policy a save would store (the version in force, dry_run: true), or "
            "422 naming every problem. Not audited: nothing changes."
        ),
    ] = False,
) -> AccessPolicyPublic:
    if dry_run:
        try:
            policy = checked_policy(state, document)
        except AccessPolicyError as error:
            raise _invalid(error) from None
        current = state.applications.get_document(ACCESS_DOCUMENT)
        return _public(current, policy.to_document(), dry_run=True)

    def work(note: Outcome) -> AccessPolicyPublic:
        policy = checked_policy(state, document)
        stored = state.applications.put_document(
            ACCESS_DOCUMENT, policy.to_document(), collector(key), now=state.clock()
        )
        note.detail = {
            "version": stored.version,
            "doors": [d.name for d in policy.doors],
            "rules": len(policy.rules),
        }
        return _public(stored)

    try:
        return audited(state.audit, key, "access.policy.update", None, work)
    except AccessPolicyError as error:
        raise _invalid(error) from None


def _door(state: ServiceState, key: ApiKey, door: str) -> tuple[AccessPolicy, Door]:
    """The policy in force and its door ``door``; an unknown door is audited and 404."""
    policy = current_policy(state)
    found = policy.door(door)
    if found is None:
        state.audit.append("access.decide", "unknown_door", key_id=key.id, detail={"door": door})
        known = ", ".join(d.name for d in policy.doors) or "none"
        raise Problem(
            404,
            "unknown-door",
            f"no door named {door!r} in the access policy (doors: {known})",
            title="Unknown door",
            door=door,
        )
    return policy, found


@router.post(
    "/{door}/decide",
    response_model=AccessDecisionPublic,
    summary="May the person in the image pass this door now? Identifies the largest face "
    "in the door's collection, decides, publishes an access event.",
    openapi_extra=image_body(
        DecideParams, PROBE, {"image_base64": "/9j/4AAQ...", "liveness_session": None}
    ),
)
async def decide(
    door: DoorName, request: Request, state: StateDep, key: RecognizeKey
) -> AccessDecisionPublic:
    policy, found = await anyio.to_thread.run_sync(_door, state, key, door)
    require_collection(key, found.collection)
    params, images = await read_images(
        request, DecideParams, PROBE, state.settings.service.max_images
    )
    data = images["image"][0].data

    def work(note: Outcome) -> AccessDecisionPublic:
        note.detail = {"door": door}
        recognizer = state.recognizer(found.collection)  # 404 for an unknown collection
        if recognizer.gallery.ephemeral:
            raise EphemeralCollectionError(
                f"door {door!r}: collection {found.collection!r} is ephemeral; access "
                "decisions need a durable collection"
            )
        results = recognizer.identify(data, 1)
        if not results:
            raise NoFaceError("no face was found in the image")
        state.metrics.faces.labels("access").inc()
        result = results[0]  # faces come largest first
        score = result.decision.match.similarity
        similarity = score if math.isfinite(score) else None
        quality = result.face.quality.score if result.face.quality is not None else None
        identity: Identity | None = None
        name: str | None = None
        matched = result.decision.match.subject_id
        if result.decision.verdict is Verdict.MATCH and matched:
            subject = recognizer.gallery.store.get_subject(matched)
            if subject is not None:  # None: erased since the search
                identity = Identity(subject.id, subject.external_id)
                name = subject.display_name
        liveness = bool(
            found.liveness_required
            and params.liveness_session
            and consume_liveness(
                state,
                params.liveness_session,
                result.face.embedding,
                model_id=recognizer.model_id,
                collection=found.collection,
                subject_id=identity.subject_id if identity else None,
                key_id=key.id,
            )
        )
        with _DECIDING:
            decision = policy.decide(
                door,
                identity,
                state.clock(),
                quality=quality,
                liveness_passed=liveness,
                presence=StoredPresence(state.applications),
            )
        event = StreamEvent(
            kind=EventKind.ACCESS,
            at=decision.at.astimezone(UTC),
            camera="api",
            track_id=0,
            stream_time=0.0,
            collection_id=found.collection,
            subject_id=decision.subject_id,
            subject_name=name,
            similarity=similarity,
            quality=quality,
            reason=str(decision.reason),
            door=door,
            allowed=decision.allowed,
        )
        state.publisher.publish(event)
        note.outcome = str(decision.reason)
        note.subject_ids = [decision.subject_id] if decision.subject_id else []
        note.detail = {
            "door": door,
            "reason": str(decision.reason),
            "allowed": decision.allowed,
            "rule": decision.rule,
            "similarity": similarity,
            "event": event.id,
        }
        return AccessDecisionPublic(
            door=door,
            allowed=decision.allowed,
            reason=decision.reason,
            detail=decision.detail,
            subject_id=decision.subject_id,
            subject_name=name,
            similarity=similarity,
            quality=quality,
            rule=decision.rule,
            rule_id=decision.rule_id,
            at=decision.at,
            collection=found.collection,
            operating_point=OperatingPointPublic.of(recognizer.operating_point),
            event_id=event.id,
        )

    return await state.infer(audited, state.audit, key, "access.decide", found.collection, work)
