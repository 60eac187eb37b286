"""Request and response schemas of the liveness endpoints. None carries a face embedding
or an image; a pose label is all a frame's answer tells."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from facegate.policy.liveness import INSTRUCTIONS, FrameVerdict, LivenessSession, Pose

PoseName = Literal["left", "right", "up", "down", "centre"]
StatusName = Literal["pending", "passed", "failed", "expired", "used"]
HOW_TO = (
    "Start facing the camera, then follow the steps in order, holding each pose for a "
    "moment. Send unmirrored camera frames, about 10 per second, as images (several per "
    "request) or as a short video, before expires_at. The same face must stay in view, "
    "alone, throughout."
)


class SessionCreate(BaseModel):
    """Optional: bind the session to a collection (and a subject in it). A bound session
    vouches only for a verify (or door) in that collection (and for that subject)."""

    model_config = ConfigDict(extra="forbid")

    collection: str | None = Field(
        None, min_length=1, max_length=64, description="The collection to bind to."
    )
    subject_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="A subject id or external id in the collection to bind to.",
    )

    @model_validator(mode="after")
    def _subject_needs_collection(self) -> SessionCreate:
        if self.subject_id is not None and self.collection is None:
            raise ValueError("subject_id needs the collection it belongs to")
        return self


class FramesParams(BaseModel):
    """The frames request has no parameters besides its images or video."""

    model_config = ConfigDict(extra="forbid")


class SessionCreated(BaseModel):
    session_id: str = Field(..., description="Unguessable; send frames to it, then use it once.")
    challenge: list[PoseName] = Field(..., description="The poses to show, in this order.")
    instructions: list[str] = Field(..., description="One sentence per step, for the user.")
    how_to: str
    expires_at: datetime = Field(..., description="The challenge must be completed before this.")
    hold_frames: int = Field(..., description="Consecutive frames each pose must be held.")
    max_frames: int

    @classmethod
    def of(cls, session: LivenessSession) -> SessionCreated:
        return cls(
            session_id=session.id,
            challenge=[p.value for p in session.challenge],
            instructions=[INSTRUCTIONS[p] for p in session.challenge],
            how_to=HOW_TO,
            expires_at=session.expires_at,
            hold_frames=session.policy.hold_frames,
            max_frames=session.policy.max_frames,
        )


class SessionStatus(BaseModel):
    session_id: str
    status: StatusName = Field(
        ...,
        description="pending, passed (usable once for a step-up until expires_at), failed "
        "(see reason), expired, or used.",
    )
    reason: str | None
    challenge: list[PoseName]
    step_index: int = Field(..., description="Steps completed so far.")
    next_step: PoseName | None
    created_at: datetime
    expires_at: datetime
    frames_received: int
    frames_rejected: int
    collection: str | None
    subject_id: str | None

    @classmethod
    def of(cls, session: LivenessSession, now: datetime) -> SessionStatus:
        status = session.status(now)
        return cls(
            session_id=session.id,
            status=status.value,
            reason=session.reason,
            challenge=[p.value for p in session.challenge],
            step_index=session.step,
            next_step=session.next_step.value if session.next_step else None,
            created_at=session.created_at,
            expires_at=session.expires_at,
            frames_received=session.frames,
            frames_rejected=session.rejected,
            collection=session.collection,
            subject_id=session.subject_id,
        )


class FrameOutcome(BaseModel):
    index: int = Field(..., description="Position in this request (images first, then video).")
    accepted: bool
    pose: PoseName | None = Field(..., description="The pose read from the landmarks.")
    reason: str | None

    @classmethod
    def of(cls, index: int, verdict: FrameVerdict) -> FrameOutcome:
        pose: Pose | None = verdict.pose
        return cls(
            index=index,
            accepted=verdict.accepted,
            pose=pose.value if pose else None,
            reason=verdict.reason,
        )


class FramesResult(SessionStatus):
    frames: list[FrameOutcome] = Field(
        ...,
        description="What each frame of this request did; frames after one that ended "
        "the session are not looked at.",
    )
