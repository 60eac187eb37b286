"""Active liveness: a random head-pose challenge, checked from face landmarks.

No packaged anti-spoofing model exists here, so liveness is not guessed from one frame.
The server draws a short random sequence of head moves (always both turns, left and
right, with one or two of up and down, in a random order, then back to the centre); the
client sends camera frames; the session passes only if, before its deadline:

1. every usable frame holds one face (a second face at least half as large as the first,
   or no face, gets that frame rejected; too many rejected frames fail the session);
2. the pose read from the landmarks (``facegate.vision.quality.pose_ratios``) goes
   through the challenge's steps in order, each held for ``hold_frames`` frames in a row;
   a pose that belongs to no step in progress (``right`` while ``up`` is due), held for
   ``wrong_hold_frames``, fails the session;
3. every frame shows the same face as the first (embedding similarity at a strict
   operating point): a face swap mid-session fails it;
4. frames are fresh: received after the session was created and before its deadline, and
   none byte-identical to an earlier one.

A passed session keeps one reference embedding (the final, frontal frame's) for a single
step-up use (``LivenessSessions.consume``) within ``use_within_s``; then, and whenever a
session fails or expires, its embeddings are dropped. Sessions live in memory only.

Why always both turns: across about 320 perspective warps of each of the three spoof
photos in ``../shared/data/spoof`` (tilted up to 75 degrees about any in-plane axis),
the detector's landmarks made a tilted photo read as turned to one side only, never to
both (docs/liveness.md). Pitch is easier to fake by tilting a photo, and yaw is the more
reliable axis, so no challenge is made of up and down alone.

Everything here is pure: the clock and the randomness are injected, frames arrive as
landmarks, embeddings and digests (``facegate.service.liveness_gate`` makes them).
"""

from __future__ import annotations

import random
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import pairwise

import numpy as np

from facegate.errors import FacegateError, PolicyError
from facegate.gallery.records import utc_now
from facegate.policy.thresholds import operating_point
from facegate.types import FloatArray
from facegate.vision.embed import ScoreSpace
from facegate.vision.quality import pose_ratios

Clock = Callable[[], datetime]
SESSION_PREFIX = "lv_"


# --- errors ------------------------------------------------------------------------------
class LivenessError(FacegateError):
    code = "liveness_error"


class UnknownLivenessSessionError(LivenessError):
    """No such session (never made, purged, or made by another key)."""

    code = "unknown_liveness_session"


class LivenessSessionClosedError(LivenessError):
    """Frames sent to a session that has already passed, failed, expired or been used."""

    code = "liveness_session_closed"

    def __init__(self, message: str, status: Status) -> None:
        super().__init__(message)
        self.status = status


class LivenessCapacityError(LivenessError):
    """Too many live sessions at once."""

    code = "liveness_capacity"


# --- poses -------------------------------------------------------------------------------
class Pose(StrEnum):
    """Head poses, in the subject's own frame: ``left`` is the subject turning to their
    left, which moves the nose towards the right of an unmirrored camera image."""

    LEFT = "left"
    RIGHT = "right"
    UP = "up"
    DOWN = "down"
    CENTRE = "centre"


TURNS = (Pose.LEFT, Pose.RIGHT)
NODS = (Pose.UP, Pose.DOWN)
INSTRUCTIONS: dict[Pose, str] = {
    Pose.LEFT: "Turn your head to your left.",
    Pose.RIGHT: "Turn your head to your right.",
    Pose.UP: "Look up.",
    Pose.DOWN: "Look down.",
    Pose.CENTRE: "Face the camera again.",
}


@dataclass(frozen=True, slots=True)
class PoseThresholds:
    """Thresholds on ``pose_ratios`` (yaw ratio: nose offset from the eye midpoint along
    the eye line, over the eye distance; pitch ratio: nose depth between the eye line and
    the mouth line, 0 at the eyes, 1 at the mouth).

    Measured on the 6,124 photos of ``../shared/data/faces`` (LFW, one central face each):
    yaw ratio percentiles 2/50/98 = -0.35/0.00/+0.28, pitch ratio 2/50/98 = 0.47/0.56/0.64.
    Photos with |yaw| >= 0.25 (about 9 % of LFW) are visibly turned, about 20-25 degrees or
    more; pitch <= 0.47 shows raised chins (and open mouths, which read the same), pitch
    >= 0.65 lowered heads. Between a pose and the centre lies a dead band where a frame
    counts as no pose at all, so noise near a threshold never flips a step.
    """

    yaw_turn: float = 0.25
    yaw_centre: float = 0.12
    pitch_up: float = 0.47
    pitch_down: float = 0.65
    pitch_centre_low: float = 0.50
    pitch_centre_high: float = 0.62

    def __post_init__(self) -> None:
        if not 0.0 < self.yaw_centre < self.yaw_turn < 1.0:
            raise PolicyError(
                "pose thresholds need 0 < yaw_centre < yaw_turn < 1, got "
                f"yaw_centre={self.yaw_centre}, yaw_turn={self.yaw_turn}"
            )
        order = (
            self.pitch_up,
            self.pitch_centre_low,
            self.pitch_centre_high,
            self.pitch_down,
        )
        if not all(a < b for a, b in pairwise(order)):
            raise PolicyError(
                "pose thresholds need pitch_up < pitch_centre_low < pitch_centre_high < "
                f"pitch_down, got {order}"
            )


def classify_ratios(yaw: float, pitch: float, t: PoseThresholds | None = None) -> Pose | None:
    """The pose of ``(yaw, pitch)`` ratios, or None in a dead band. Turns win over nods:
    yaw is the more reliable of the two."""
    t = t or PoseThresholds()
    if yaw >= t.yaw_turn:
        return Pose.LEFT
    if yaw <= -t.yaw_turn:
        return Pose.RIGHT
    if pitch <= t.pitch_up:
        return Pose.UP
    if pitch >= t.pitch_down:
        return Pose.DOWN
    if abs(yaw) <= t.yaw_centre and t.pitch_centre_low <= pitch <= t.pitch_centre_high:
        return Pose.CENTRE
    return None


def classify_pose(landmarks: FloatArray, t: PoseThresholds | None = None) -> Pose | None:
    """The head pose of a face from its five landmarks (right eye, left eye, nose, right
    and left mouth corners, as seen in an unmirrored image), or None between poses."""
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.shape != (5, 2):
        raise ValueError(f"landmarks must be (5, 2), got {landmarks.shape}")
    yaw, pitch = pose_ratios(landmarks)
    return classify_ratios(yaw, pitch, t)


def eye_distance(landmarks: FloatArray) -> float:
    return float(np.linalg.norm(np.asarray(landmarks[1]) - np.asarray(landmarks[0])))


# --- the policy and the challenge ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LivenessPolicy:
    """What a session demands. Defaults are what the service uses."""

    thresholds: PoseThresholds = field(default_factory=PoseThresholds)
    # Directional steps before the final centre: both turns plus one or two nods.
    step_counts: tuple[int, ...] = (3, 4)
    # Consecutive frames a pose must hold to complete a step, and to count as a wrong move
    # (longer: one or two frames of landmark noise must not fail a genuine user).
    hold_frames: int = 2
    wrong_hold_frames: int = 3
    # From creation to the last step; then from passing to the step-up use.
    deadline_s: float = 30.0
    use_within_s: float = 120.0
    max_frames: int = 150
    max_rejected: int = 20
    # Landmarks of smaller faces are too coarse to read a pose from.
    min_eye_distance_px: float = 20.0
    # Another face at least this fraction of the main face's eye distance: "several faces".
    other_face_ratio: float = 0.5
    # The operating point that keeps one face throughout (and matches it at step-up).
    same_face_fmr: float = 1e-4

    def __post_init__(self) -> None:
        if not self.step_counts or any(n not in (2, 3, 4) for n in self.step_counts):
            raise PolicyError(
                f"step_counts must be a non-empty choice among 2, 3 and 4, got {self.step_counts}"
            )
        if not 1 <= self.hold_frames <= self.wrong_hold_frames:
            raise PolicyError(
                "hold_frames must be at least 1 and at most wrong_hold_frames, got "
                f"{self.hold_frames} and {self.wrong_hold_frames}"
            )
        if self.deadline_s <= 0 or self.use_within_s <= 0:
            raise PolicyError(
                f"deadline_s and use_within_s must be positive, got {self.deadline_s} and "
                f"{self.use_within_s}"
            )
        if self.max_frames < 1 or self.max_rejected < 0:
            raise PolicyError(
                f"max_frames must be >= 1 and max_rejected >= 0, got {self.max_frames} and "
                f"{self.max_rejected}"
            )
        if not 0.0 < self.other_face_ratio <= 1.0:
            raise PolicyError(f"other_face_ratio must be in (0, 1], got {self.other_face_ratio}")


def new_challenge(policy: LivenessPolicy, rng: random.Random | None = None) -> tuple[Pose, ...]:
    """Both turns and ``n - 2`` nods in a random order, then ``centre``. With the default
    counts (3 or 4) there are 36 different challenges. ``rng`` defaults to the operating
    system's cryptographic source (``secrets``)."""
    rng = rng or secrets.SystemRandom()
    count = rng.choice(policy.step_counts)
    steps = [*TURNS, *rng.sample(NODS, count - 2)]
    rng.shuffle(steps)
    return (*steps, Pose.CENTRE)


# --- comparing faces ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SameFace:
    """Whether two embeddings of one model show the same face, at a threshold."""

    model_id: str
    threshold: float
    space: ScoreSpace = field(default_factory=ScoreSpace)

    @classmethod
    def at(cls, model_id: str, space: ScoreSpace, fmr: float) -> SameFace:
        """At a calibrated operating point (``facegate.policy.thresholds``)."""
        return cls(model_id, operating_point(model_id, fmr).threshold, space)

    def similarity(self, a: FloatArray, b: FloatArray) -> float:
        if a.shape != b.shape:
            return float("-inf")  # another model, or garbage: never the same face
        return float(self.space.score(a, b[None, :])[0])


# --- frames --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FaceSample:
    """One detected face of a frame: its landmarks and, for the main face, its embedding."""

    landmarks: FloatArray
    embedding: FloatArray | None = None

    def __post_init__(self) -> None:
        if self.landmarks.shape != (5, 2):
            raise ValueError(f"landmarks must be (5, 2), got {self.landmarks.shape}")
        if self.embedding is not None and self.embedding.ndim != 1:
            raise ValueError(f"embedding must be (D,), got {self.embedding.shape}")


@dataclass(frozen=True, slots=True)
class LivenessFrame:
    """One frame as the session sees it: when the server received it (not when the client
    says it was taken), a digest of its bytes, and the faces found in it, largest first."""

    received_at: datetime
    digest: str
    faces: tuple[FaceSample, ...]

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
        if not self.digest:
            raise ValueError("a frame needs the digest of its bytes")


@dataclass(frozen=True, slots=True)
class FrameVerdict:
    """What one frame did: accepted (with the pose it showed) or rejected, and why."""

    accepted: bool
    pose: Pose | None = None
    reason: str | None = None


class Status(StrEnum):
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"
    EXPIRED = "expired"
    USED = "used"


@dataclass(frozen=True, slots=True)
class StepUp:
    """The outcome of one step-up use of a session."""

    ok: bool
    reason: str
    similarity: float | None = None


_OPEN = (Status.PENDING, Status.PASSED)


# --- one session ---------------------------------------------------------------------------
class LivenessSession:
    """One challenge and the frames sent for it. Not thread-safe by itself: the registry
    serialises access."""

    def __init__(
        self,
        session_id: str,
        challenge: Sequence[Pose],
        created_at: datetime,
        policy: LivenessPolicy,
        same_face: SameFace,
        *,
        key_id: str | None = None,
        collection: str | None = None,
        subject_id: str | None = None,
    ) -> None:
        if not challenge or challenge[-1] is not Pose.CENTRE:
            raise ValueError(f"a challenge ends with centre, got {list(challenge)}")
        if created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
        self.id = session_id
        self.challenge = tuple(challenge)
        self.created_at = created_at
        self.deadline = created_at + timedelta(seconds=policy.deadline_s)
        self.policy = policy
        self.same_face = same_face
        self.key_id = key_id
        self.collection = collection
        self.subject_id = subject_id
        self.step = 0  # index of the step in progress
        self.frames = 0
        self.rejected = 0
        self.passed_at: datetime | None = None
        self.reason: str | None = None
        self._status = Status.PENDING
        self._digests: set[str] = set()
        self._anchor: FloatArray | None = None  # the first frame's face
        self._reference: FloatArray | None = None  # the final frontal frame's face
        self._run: tuple[Pose | None, int] = (None, 0)

    # --- state -----------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self.same_face.model_id

    @property
    def expires_at(self) -> datetime:
        """The challenge's deadline while pending; the step-up deadline once passed."""
        if self.passed_at is not None:
            return self.passed_at + timedelta(seconds=self.policy.use_within_s)
        return self.deadline

    def status(self, now: datetime) -> Status:
        """The status at ``now``: a pending or passed session past its time expires."""
        if self._status in _OPEN and now > self.expires_at:
            what = "completed" if self._status is Status.PENDING else "used"
            self._end(Status.EXPIRED, f"the session was not {what} in time")
        return self._status

    @property
    def holds_faces(self) -> bool:
        """Whether any embedding is still kept (only while pending, or passed and unused)."""
        return self._anchor is not None or self._reference is not None

    @property
    def next_step(self) -> Pose | None:
        return self.challenge[self.step] if self._status is Status.PENDING else None

    def _end(self, status: Status, reason: str | None) -> None:
        self._status = status
        self.reason = reason
        self._anchor = None  # faces are kept no longer than they are needed
        if status is not Status.PASSED:
            self._reference = None

    def _fail(self, reason: str) -> FrameVerdict:
        self._end(Status.FAILED, reason)
        return FrameVerdict(False, None, reason)

    # --- frames ----------------------------------------------------------------------------
    def reject(self, reason: str) -> FrameVerdict:
        """Count a frame as unusable; too many fail the session."""
        self.rejected += 1
        if self.rejected > self.policy.max_rejected:
            return self._fail(f"too many unusable frames ({self.rejected}); last: {reason}")
        return FrameVerdict(False, None, reason)

    def add(self, frame: LivenessFrame, *, seen_elsewhere: bool = False) -> FrameVerdict:
        """Consume one frame (in the order the client sent them). ``seen_elsewhere``: the
        same frame was sent to another session. Raises ``LivenessSessionClosedError``
        unless the session is pending at the frame's receipt time."""
        status = self.status(frame.received_at)
        if status is not Status.PENDING:
            raise LivenessSessionClosedError(
                f"the liveness session is {status.value}"
                + (f": {self.reason}" if self.reason else ""),
                status,
            )
        self.frames += 1
        if self.frames > self.policy.max_frames:
            return self._fail(f"more than {self.policy.max_frames} frames were sent")
        if frame.received_at < self.created_at:
            return self.reject("the frame was received before the session was created")
        if frame.digest in self._digests:
            return self.reject("the frame is identical to an earlier one")
        if seen_elsewhere:
            return self.reject("the frame was already sent to another session")
        self._digests.add(frame.digest)
        return self._look(frame)

    def _look(self, frame: LivenessFrame) -> FrameVerdict:
        p = self.policy
        if not frame.faces:
            return self.reject("no face in the frame")
        sizes = [eye_distance(f.landmarks) for f in frame.faces]
        main = int(np.argmax(sizes))
        others = sum(
            1 for i, s in enumerate(sizes) if i != main and s >= p.other_face_ratio * sizes[main]
        )
        if others:
            return self.reject(f"{others + 1} faces in the frame; only the person should be seen")
        if sizes[main] < p.min_eye_distance_px:
            return self.reject(
                f"the face is too small (eye distance {sizes[main]:.0f} px, at least "
                f"{p.min_eye_distance_px:.0f}): come closer"
            )
        face = frame.faces[main]
        if face.embedding is None:
            raise ValueError("the main face of a frame needs its embedding")
        if self._anchor is None:
            self._anchor = face.embedding
        else:
            score = self.same_face.similarity(self._anchor, face.embedding)
            if score < self.same_face.threshold:
                return self._fail(
                    f"the face changed during the session (similarity {score:.2f} to the "
                    f"first frame, below {self.same_face.threshold:.2f})"
                )
        pose = classify_pose(face.landmarks, p.thresholds)
        return self._advance(pose, face.embedding, frame.received_at)

    def _advance(self, pose: Pose | None, embedding: FloatArray, at: datetime) -> FrameVerdict:
        expected = self.challenge[self.step]
        previous = self.challenge[self.step - 1] if self.step else None
        last, count = self._run
        count = count + 1 if pose is last else 1
        self._run = (pose, count)
        if pose is expected:
            if count >= self.policy.hold_frames:
                self.step += 1
                self._run = (None, 0)
                if self.step == len(self.challenge):
                    self._reference = embedding
                    self.passed_at = at
                    self._end(Status.PASSED, None)
            return FrameVerdict(True, pose)
        if pose is None or pose is Pose.CENTRE or pose is previous:
            return FrameVerdict(True, pose)  # between poses, or still in the last one
        if count >= self.policy.wrong_hold_frames:
            return self._fail(f"wrong move: expected {expected.value}, saw {pose.value}")
        return FrameVerdict(True, pose)

    # --- step-up ---------------------------------------------------------------------------
    def use(
        self,
        embedding: FloatArray,
        now: datetime,
        *,
        model_id: str,
        collection: str | None = None,
        subject_id: str | None = None,
    ) -> StepUp:
        """One step-up use: only a passed, unexpired, unused session whose face matches
        ``embedding`` says yes. A passed session is used up by the attempt, whatever it
        answers."""
        status = self.status(now)
        if status is not Status.PASSED:
            why = {
                Status.PENDING: "the liveness challenge is not complete",
                Status.FAILED: f"the liveness session failed: {self.reason}",
                Status.EXPIRED: f"the liveness session expired: {self.reason}",
                Status.USED: "the liveness session was already used (single use)",
            }[status]
            return StepUp(False, why)
        reference = self._reference
        assert reference is not None, "a passed session keeps its reference face"
        self._end(Status.USED, "used for a step-up")
        if model_id != self.model_id:
            return StepUp(
                False,
                f"the liveness session was checked with model {self.model_id!r}, the face "
                f"with {model_id!r}",
            )
        if collection is not None and self.collection not in (None, collection):
            return StepUp(False, f"the liveness session is bound to collection {self.collection!r}")
        if subject_id is not None and self.subject_id not in (None, subject_id):
            return StepUp(False, "the liveness session is bound to another subject")
        score = self.same_face.similarity(reference, embedding)
        if score < self.same_face.threshold:
            return StepUp(
                False,
                f"the face is not the one that passed liveness (similarity {score:.2f}, "
                f"below {self.same_face.threshold:.2f})",
                score,
            )
        return StepUp(True, "a passed liveness session vouches for this face", score)


# --- the registry -----------------------------------------------------------------------------
class LivenessSessions:
    """The sessions of one service process, in memory only (they hold face embeddings and
    are never written anywhere). Bounded in number; ended sessions are kept ``keep_s``
    for status queries, without their faces, then forgotten.

    Frame digests are also remembered across sessions (the last ``max_digests``): a frame
    already sent to one session is rejected in another."""

    def __init__(
        self,
        policy: LivenessPolicy | None = None,
        *,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        max_sessions: int = 10_000,
        keep_s: float = 600.0,
        max_digests: int = 100_000,
    ) -> None:
        if max_sessions < 1 or keep_s < 0 or max_digests < 0:
            raise PolicyError(
                "max_sessions must be >= 1 and keep_s, max_digests >= 0, got "
                f"{max_sessions}, {keep_s}, {max_digests}"
            )
        self.policy = policy or LivenessPolicy()
        self.clock = clock
        self.rng = rng or secrets.SystemRandom()
        self.max_sessions = max_sessions
        self.keep = timedelta(seconds=keep_s)
        self.max_digests = max_digests
        self._sessions: dict[str, LivenessSession] = {}
        self._digests: OrderedDict[str, str] = OrderedDict()  # digest -> session id
        self._lock = threading.RLock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def create(
        self,
        same_face: SameFace,
        *,
        key_id: str | None = None,
        collection: str | None = None,
        subject_id: str | None = None,
    ) -> LivenessSession:
        """A new session with a fresh random challenge and an unguessable id."""
        now = self.clock()
        with self._lock:
            self._make_room(now)
            if len(self._sessions) >= self.max_sessions:
                raise LivenessCapacityError(
                    f"{len(self._sessions)} liveness sessions are open, the most allowed; "
                    "retry shortly"
                )
            session_id = SESSION_PREFIX + secrets.token_urlsafe(24)
            session = LivenessSession(
                session_id,
                new_challenge(self.policy, self.rng),
                now,
                self.policy,
                same_face,
                key_id=key_id,
                collection=collection,
                subject_id=subject_id,
            )
            self._sessions[session_id] = session
            return session

    def get(self, session_id: str, *, key_id: str | None = None) -> LivenessSession:
        """The session, its status brought up to date. A key that did not make it is told
        it does not exist (``key_id`` None: any key)."""
        with self._lock:
            found = self._sessions.get(session_id)
            if found is None or (key_id is not None and found.key_id != key_id):
                raise UnknownLivenessSessionError("no such liveness session")
            found.status(self.clock())
            return found

    def add_frames(
        self, session_id: str, frames: Sequence[LivenessFrame], *, key_id: str | None = None
    ) -> tuple[LivenessSession, list[FrameVerdict]]:
        """Feed frames in order; stops at the first that ends the session."""
        with self._lock:
            session = self.get(session_id, key_id=key_id)
            verdicts: list[FrameVerdict] = []
            for frame in frames:
                if verdicts and session.status(frame.received_at) is not Status.PENDING:
                    break
                elsewhere = self._digests.get(frame.digest, session_id) != session_id
                verdicts.append(session.add(frame, seen_elsewhere=elsewhere))
                self._remember(frame.digest, session_id)
            return session, verdicts

    def consume(
        self,
        session_id: str,
        embedding: FloatArray,
        *,
        model_id: str,
        collection: str | None = None,
        subject_id: str | None = None,
    ) -> StepUp:
        """One step-up use of a session (see ``LivenessSession.use``)."""
        with self._lock:
            found = self._sessions.get(session_id)
            if found is None:
                return StepUp(False, "no such liveness session (unknown, or long expired)")
            return found.use(
                embedding,
                self.clock(),
                model_id=model_id,
                collection=collection,
                subject_id=subject_id,
            )

    def purge(self, now: datetime | None = None) -> int:
        """Forget sessions more than ``keep_s`` past their expiry (ended ones are kept that
        long for status queries, without their faces). Returns how many."""
        now = now or self.clock()
        with self._lock:
            gone = [sid for sid, s in self._sessions.items() if now > s.expires_at + self.keep]
            for sid in gone:
                del self._sessions[sid]
            return len(gone)

    def _make_room(self, now: datetime) -> None:
        self.purge(now)
        if len(self._sessions) < self.max_sessions:
            return
        ended = sorted(
            (s for s in self._sessions.values() if s.status(now) not in _OPEN),
            key=lambda s: s.expires_at,
        )
        for s in ended[: len(self._sessions) - self.max_sessions + 1]:
            del self._sessions[s.id]

    def _remember(self, digest: str, session_id: str) -> None:
        if self.max_digests == 0:
            return
        self._digests[digest] = session_id
        self._digests.move_to_end(digest)
        while len(self._digests) > self.max_digests:
            self._digests.popitem(last=False)
