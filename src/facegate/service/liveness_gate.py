"""The service side of active liveness (``facegate.policy.liveness`` holds the logic):
uploads (images or a short video) into frames, and the step-up gate.

``consume_liveness`` is what a verify or a door asks: may this liveness session vouch for
this face now? Yes only for a passed, unexpired, unused session whose reference face
matches the embedding; the session is then used up (single use), whatever the answer.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from facegate.errors import ImageError, VideoSourceError
from facegate.policy.liveness import (
    FaceSample,
    LivenessFrame,
    LivenessPolicy,
    SameFace,
    StepUp,
    eye_distance,
)
from facegate.recognition import FaceChoice, FaceMatcher, pick_face
from facegate.service.problems import Problem
from facegate.types import FloatArray
from facegate.vision.pipeline import FacePipeline

if TYPE_CHECKING:
    from datetime import datetime

    from facegate.service.state import ServiceState

log = logging.getLogger(__name__)

# A short video: sampled at this rate, at most this long and this many sampled frames.
VIDEO_FPS = 10.0
MAX_VIDEO_SECONDS = 12.0
MAX_VIDEO_FRAMES = 100
# Decoded frames (before sampling): a 60 fps clip of MAX_VIDEO_SECONDS, and some slack.
MAX_DECODED_FRAMES = int(MAX_VIDEO_SECONDS * 60) + 60
# Containers accepted, told by their first bytes; FFmpeg is never left to guess (its
# playlist and concat demuxers would open other files or URLs named inside the upload).
VIDEO_KINDS = "MP4/MOV, WebM/Matroska or AVI"


class TooManyFramesError(ImageError):
    """A video longer, or with more frames, than one request may carry."""

    code = "too_many_frames"


# --- frames from uploads ----------------------------------------------------------------
def frame_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def video_format(data: bytes) -> str | None:
    """The FFmpeg demuxer for a video container recognised by its first bytes, or None."""
    if len(data) >= 12 and data[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide"):
        return "mov"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "avi"
    return None


@dataclass(frozen=True, slots=True)
class VideoFrame:
    offset_s: float  # from the container's timestamps: used for ordering only
    image: NDArray[np.uint8]


def decode_video(
    data: bytes,
    *,
    max_pixels: int,
    fps: float = VIDEO_FPS,
    max_frames: int = MAX_VIDEO_FRAMES,
    max_seconds: float = MAX_VIDEO_SECONDS,
) -> list[VideoFrame]:
    """BGR frames of a short video, sampled at ``fps``, in timestamp order. Raises
    ``VideoSourceError`` (empty, not a supported container, undecodable, frames too large)
    or ``TooManyFramesError`` (longer than ``max_seconds`` or more than ``max_frames``)."""
    if not data:
        raise VideoSourceError("the video is empty (0 bytes)")
    kind = video_format(data)
    if kind is None:
        raise VideoSourceError(f"the video is not a supported container ({VIDEO_KINDS})")
    import av  # PyAV loads FFmpeg: only when a video arrives

    frames: list[VideoFrame] = []
    try:
        container = av.open(io.BytesIO(data), mode="r", format=kind, options={"enable_drefs": "0"})
    except (av.FFmpegError, ValueError, OSError) as error:
        raise VideoSourceError(f"the video cannot be opened: {error}") from None
    try:
        if not container.streams.video:
            raise VideoSourceError("the file has no video stream")
        stream = container.streams.video[0]
        declared = (stream.codec_context.width or 0) * (stream.codec_context.height or 0)
        if declared > max_pixels:  # refused from the header, before decoding anything
            raise VideoSourceError(
                f"video frames of {stream.codec_context.width}x{stream.codec_context.height} "
                f"exceed the {max_pixels:,}-pixel limit"
            )
        rate = float(stream.average_rate) if stream.average_rate else 30.0
        interval = 1.0 / fps
        next_due = 0.0
        first: float | None = None
        for index, decoded in enumerate(container.decode(stream)):
            if index >= MAX_DECODED_FRAMES:
                raise TooManyFramesError(
                    f"the video has more than {MAX_DECODED_FRAMES} frames; send at most "
                    f"{max_seconds:g} s"
                )
            if decoded.width * decoded.height > max_pixels:
                raise VideoSourceError(
                    f"video frames of {decoded.width}x{decoded.height} exceed the "
                    f"{max_pixels:,}-pixel limit"
                )
            when = decoded.time if decoded.time is not None else index / rate
            first = when if first is None else first
            position = when - first
            if position > max_seconds:
                raise TooManyFramesError(f"the video is longer than {max_seconds:g} s")
            if position + 1e-3 < next_due:
                continue
            next_due = max(next_due + interval, position)
            if len(frames) >= max_frames:
                raise TooManyFramesError(
                    f"the video has more than {max_frames} frames at {fps:g} frames per second"
                )
            picture = np.ascontiguousarray(decoded.to_ndarray(format="bgr24"), dtype=np.uint8)
            frames.append(VideoFrame(position, picture))
    except (av.FFmpegError, ValueError, OSError, EOFError) as error:
        raise VideoSourceError(f"the video cannot be decoded: {error}") from None
    finally:
        container.close()
    if not frames:
        raise VideoSourceError("the video has no decodable frame")
    frames.sort(key=lambda f: f.offset_s)
    return frames


def observe(
    pipeline: FacePipeline, image: NDArray[np.uint8], received_at: datetime, digest: str
) -> LivenessFrame:
    """One frame for a session: every face's landmarks, the main face's embedding."""
    faces = pipeline.detect(image)
    if not faces:
        return LivenessFrame(received_at, digest, ())
    main = max(range(len(faces)), key=lambda i: eye_distance(faces[i].landmarks))
    embedded = pipeline.embed(image, [faces[main]])[0]
    samples = [FaceSample(embedded.landmarks, embedded.embedding)]
    samples += [FaceSample(f.landmarks) for i, f in enumerate(faces) if i != main]
    return LivenessFrame(received_at, digest, tuple(samples))


def same_face_for(pipeline: FacePipeline, policy: LivenessPolicy) -> SameFace:
    return SameFace.at(pipeline.model_id, pipeline.embedder.space, policy.same_face_fmr)


def session_ref(session_id: str) -> str:
    """What the audit trail names a session by: never the id itself, which vouches."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:16]


# --- step-up -------------------------------------------------------------------------------
def probe_embedding(matcher: FaceMatcher, data: bytes, face: FaceChoice) -> FloatArray:
    """The embedding of the chosen face of a probe image (raises face and image errors)."""
    image = matcher.load(data)
    chosen = pick_face(matcher.pipeline.detect(image), face)
    embedded = matcher.pipeline.embed(image, [chosen])[0].embedding
    assert embedded is not None
    return embedded


def step_up(
    state: ServiceState,
    session_id: str | None,
    embedding: Any,
    *,
    model_id: str | None = None,
    collection: str | None = None,
    subject_id: str | None = None,
    key_id: str | None = None,
) -> StepUp:
    """Use the session for this face (see ``consume_liveness``), with the reason, and
    record the use in the audit trail (never the face)."""
    if not session_id:
        return StepUp(False, "no liveness session was given")
    if embedding is None:
        result = StepUp(False, "no face embedding to compare with the liveness session")
    else:
        if model_id is None:
            model_id = (
                state.recognizer(collection).model_id
                if collection is not None
                else state.matcher.model_id
            )
        result = state.liveness.consume(
            session_id,
            np.asarray(embedding, dtype=np.float32),
            model_id=model_id,
            collection=collection,
            subject_id=subject_id,
        )
    detail: dict[str, Any] = {"session": session_ref(session_id), "reason": result.reason}
    if result.similarity is not None:
        detail["similarity"] = round(result.similarity, 4)
    state.audit.append(
        "liveness.use",
        "ok" if result.ok else "refused",
        key_id=key_id,
        collection=collection,
        subject_ids=[subject_id] if subject_id else [],
        detail=detail,
    )
    return result


def require_step_up(
    state: ServiceState,
    session_id: str,
    embedding: FloatArray,
    *,
    model_id: str,
    collection: str,
    subject_id: str,
    key_id: str | None,
) -> None:
    """Raise 403 ``liveness-failed`` (with the reason) unless the session vouches."""
    result = step_up(
        state,
        session_id,
        embedding,
        model_id=model_id,
        collection=collection,
        subject_id=subject_id,
        key_id=key_id,
    )
    if not result.ok:
        raise Problem(
            403,
            "liveness-failed",
            f"step-up refused: {result.reason}",
            title="Liveness check failed",
            reason=result.reason,
        )


def consume_liveness(
    state: Any,
    session_id: str | None,
    embedding: Any,
    *,
    model_id: str | None = None,
    collection: str | None = None,
    subject_id: str | None = None,
    key_id: str | None = None,
) -> bool:
    """True when ``session_id`` names a passed, unexpired, unused liveness session whose
    face matches ``embedding``; the session is then used up (single use).

    ``model_id`` is the model that made ``embedding``: give it (or ``collection``, whose
    model is then assumed) whenever it may differ from the service's default model; a
    session checked with one model never vouches for another model's embedding.
    ``collection`` and ``subject_id`` also enforce a session's binding, if it has one."""
    return step_up(
        state,
        session_id,
        embedding,
        model_id=model_id,
        collection=collection,
        subject_id=subject_id,
        key_id=key_id,
    ).ok
