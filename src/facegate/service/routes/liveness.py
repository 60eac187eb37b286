"""Active liveness sessions: a random head-pose challenge, frames, status.

Sessions live in this process's memory only (they hold face embeddings) and are never
written anywhere; a restart forgets them. The audit trail records a session's creation
and outcome and each step-up use, never a frame.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request

from facegate.gallery.keys import ApiKey
from facegate.policy.liveness import (
    LivenessCapacityError,
    LivenessFrame,
    LivenessSession,
    LivenessSessionClosedError,
    Status,
    UnknownLivenessSessionError,
)
from facegate.service.auditing import Outcome, audited
from facegate.service.auth import require_collection
from facegate.service.deps import RecognizeKey, StateDep
from facegate.service.images import (
    MULTIPART,
    ImageField,
    Upload,
    read_json,
    read_multipart,
)
from facegate.service.liveness_gate import (
    MAX_VIDEO_FRAMES,
    MAX_VIDEO_SECONDS,
    VIDEO_FPS,
    TooManyFramesError,
    decode_video,
    frame_digest,
    observe,
    same_face_for,
    session_ref,
)
from facegate.service.liveness_schemas import (
    FrameOutcome,
    FramesParams,
    FramesResult,
    SessionCreate,
    SessionCreated,
    SessionStatus,
)
from facegate.service.openapi import image_body
from facegate.service.problems import Problem
from facegate.service.state import ServiceState

router = APIRouter(prefix="/v1/liveness", tags=["liveness"])

FRAME_FIELDS = (ImageField("images", multiple=True, aliases=("image",)), ImageField("video"))
SessionId = Annotated[
    str, Path(description="The session id from POST /v1/liveness/sessions.", max_length=100)
]


def _unknown() -> Problem:
    return Problem(
        404,
        "unknown-liveness-session",
        "no such liveness session (unknown, made by another key, or long expired)",
        title="Unknown liveness session",
    )


def _owner(key: ApiKey) -> str | None:
    """Sessions are seen by the key that made them; an admin key sees every one."""
    return None if "admin" in key.scopes else key.id


def _session(state: ServiceState, session_id: str, key: ApiKey) -> LivenessSession:
    try:
        return state.liveness.get(session_id, key_id=_owner(key))
    except UnknownLivenessSessionError:
        raise _unknown() from None


def _closed(error: LivenessSessionClosedError) -> Problem:
    return Problem(
        409,
        "liveness-session-closed",
        str(error),
        title="Liveness session closed",
        status_now=error.status.value,
    )


@router.post(
    "/sessions",
    response_model=SessionCreated,
    status_code=201,
    summary="Start a liveness session: a random head-pose challenge with a deadline.",
)
def create_session(
    state: StateDep,
    key: RecognizeKey,
    body: Annotated[SessionCreate | None, Body()] = None,
) -> SessionCreated:
    request = body or SessionCreate()
    collection = request.collection
    if collection is not None:
        require_collection(key, collection)

    def work(note: Outcome) -> SessionCreated:
        subject_id: str | None = None
        if collection is not None:
            recognizer = state.recognizer(collection)  # 404 for an unknown collection
            pipeline = recognizer.pipeline
            if request.subject_id is not None:
                subject_id = recognizer.gallery.resolve(request.subject_id).id
                note.subject_ids = [subject_id]
        else:
            pipeline = state.matcher.pipeline
        try:
            session = state.liveness.create(
                same_face_for(pipeline, state.liveness.policy),
                key_id=key.id,
                collection=collection,
                subject_id=subject_id,
            )
        except LivenessCapacityError as error:
            raise Problem(
                503,
                "liveness-capacity",
                str(error),
                title="Too many liveness sessions",
                headers={"Retry-After": "5"},
            ) from None
        note.outcome = "created"
        note.detail = {"session": session_ref(session.id), "steps": len(session.challenge)}
        return SessionCreated.of(session)

    anonymous = collection is not None and state.is_ephemeral(collection)
    return audited(state.audit, key, "liveness.create", collection, work, anonymous)


@router.get(
    "/sessions/{session_id}",
    response_model=SessionStatus,
    summary="A liveness session's status: pending, passed, failed (with reason), expired, used.",
)
def get_session(session_id: SessionId, state: StateDep, key: RecognizeKey) -> SessionStatus:
    session = _session(state, session_id, key)
    return SessionStatus.of(session, state.liveness.clock())


async def _read_frames(request: Request, max_files: int) -> dict[str, list[Upload]]:
    """The request's images and video (multipart parts or base64 JSON), at least one."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == MULTIPART:
        _, found = await read_multipart(request, FramesParams, FRAME_FIELDS, max_files)
    elif media == "application/json" or media.endswith("+json"):
        _, found = await read_json(request, FramesParams, FRAME_FIELDS, max_files)
    else:
        raise Problem(
            415,
            "unsupported-media-type",
            f"send frames as {MULTIPART} or application/json with base64, "
            f"not {media or 'a body without a content type'}",
            title="Unsupported media type",
        )
    images, videos = found.get("images", []), found.get("video", [])
    if not images and not videos:
        raise Problem(
            422,
            "validation-error",
            "send frames: image parts 'images' (or JSON 'images_base64') and/or one video "
            "part 'video' (or JSON 'video_base64')",
            title="Request validation failed",
        )
    if len(videos) > 1:
        raise Problem(
            422,
            "validation-error",
            f"video: one video per request, got {len(videos)}",
            title="Request validation failed",
        )
    if len(images) + len(videos) > max_files:
        raise Problem(
            422,
            "too-many-images",
            f"at most {max_files} files may be sent in one request",
            title="Too many images",
            limit=max_files,
        )
    return found


def _frames_body() -> dict[str, Any]:
    """Images or a video, either one: neither part is required by itself."""
    body = image_body(FramesParams, FRAME_FIELDS, {"images_base64": ["/9j/4AAQ...", "/9j/..."]})
    for content in body["requestBody"]["content"].values():
        content["schema"]["required"] = []
        content["schema"]["minProperties"] = 1
    return body


@router.post(
    "/sessions/{session_id}/frames",
    response_model=FramesResult,
    summary="Frames for a session (images and/or a short video): the pose and status after.",
    description="Images (multipart parts `images`, or JSON `images_base64`) and/or one "
    "short video (`video` or `video_base64`: MP4/MOV, WebM/Matroska or AVI, at most "
    f"{MAX_VIDEO_SECONDS:g} s, sampled at {VIDEO_FPS:g} frames per second, at most "
    f"{MAX_VIDEO_FRAMES} frames), in the order they were taken: images first, then the "
    "video's frames. Every frame counts as received now: a video's own timestamps only "
    "order its frames. Frames after one that ends the session are not looked at.",
    openapi_extra=_frames_body(),
)
async def send_frames(
    session_id: SessionId, request: Request, state: StateDep, key: RecognizeKey
) -> FramesResult:
    _session(state, session_id, key)
    found = await _read_frames(request, state.settings.service.max_images)
    received_at = state.liveness.clock()  # freshness is judged on receipt, nothing else

    def work() -> FramesResult:
        session = _session(state, session_id, key)
        before = session.status(received_at)
        if before is not Status.PENDING:
            raise _closed(LivenessSessionClosedError(_closed_text(session, before), before))
        pipeline = state.pipeline(session.model_id)
        pictures = [
            (pipeline.decode(u.data), frame_digest(u.data)) for u in found.get("images", [])
        ]
        for upload in found.get("video", []):
            decoded = decode_video(upload.data, max_pixels=state.settings.vision.max_pixels)
            pictures += [(f.image, frame_digest(f.image.tobytes())) for f in decoded]
        room = session.policy.max_frames - session.frames
        if len(pictures) > room:
            raise TooManyFramesError(
                f"{len(pictures)} frames sent; this session takes {room} more (at most "
                f"{session.policy.max_frames} in all)"
            )
        frames: list[LivenessFrame] = [
            observe(pipeline, image, received_at, digest) for image, digest in pictures
        ]
        try:
            session, verdicts = state.liveness.add_frames(session_id, frames, key_id=_owner(key))
        except LivenessSessionClosedError as error:
            raise _closed(error) from None
        except UnknownLivenessSessionError:
            raise _unknown() from None
        after = session.status(received_at)
        if after is not before:
            _audit_outcome(state, key, session, after)
        base = SessionStatus.of(session, received_at)
        return FramesResult(
            **base.model_dump(),
            frames=[FrameOutcome.of(i, v) for i, v in enumerate(verdicts)],
        )

    return await state.infer(work)


def _closed_text(session: LivenessSession, status: Status) -> str:
    return f"the liveness session is {status.value}" + (
        f": {session.reason}" if session.reason else ""
    )


def _audit_outcome(
    state: ServiceState, key: ApiKey, session: LivenessSession, status: Status
) -> None:
    detail: dict[str, Any] = {
        "session": session_ref(session.id),
        "frames": session.frames,
        "rejected": session.rejected,
    }
    if session.reason:
        detail["reason"] = session.reason
    anonymous = session.collection is not None and state.is_ephemeral(session.collection)
    state.audit.append(
        "liveness.outcome",
        status.value,
        key_id=key.id,
        collection=session.collection,
        subject_ids=[] if anonymous or not session.subject_id else [session.subject_id],
        detail={"ephemeral": True} if anonymous else detail,
    )
