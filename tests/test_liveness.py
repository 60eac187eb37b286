"""Active liveness, the pure logic: pose classification, challenges, the session state
machine (order, holding, timing, deadline, expiry, face swap, duplicate frames, several
faces) and the in-memory registry. Landmarks are built to give exact pose ratios;
embeddings are random unit vectors (the same person: a little noise around one)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from facegate.errors import PolicyError
from facegate.policy.liveness import (
    FaceSample,
    LivenessCapacityError,
    LivenessFrame,
    LivenessPolicy,
    LivenessSession,
    LivenessSessionClosedError,
    LivenessSessions,
    Pose,
    PoseThresholds,
    SameFace,
    Status,
    UnknownLivenessSessionError,
    classify_pose,
    classify_ratios,
    new_challenge,
)
from facegate.vision.quality import pose_ratios

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SAME = SameFace("sface", 0.4156)  # cosine, at sface's FMR 1e-4 operating point
L, R, U, D, C = Pose.LEFT, Pose.RIGHT, Pose.UP, Pose.DOWN, Pose.CENTRE
RATIOS = {L: (0.35, 0.56), R: (-0.35, 0.56), U: (0.0, 0.40), D: (0.0, 0.72), C: (0.0, 0.56)}
BETWEEN = (0.18, 0.56)  # in the dead band between centre and a turn


def landmarks(
    yaw: float,
    pitch: float,
    *,
    iod: float = 40.0,
    roll: float = 0.0,
    at: tuple[float, float] = (120.0, 100.0),
) -> np.ndarray:
    """Five landmarks whose pose ratios are exactly (yaw, pitch), rolled and placed."""
    height = 1.1 * iod
    points = np.array(
        [
            [-iod / 2, 0.0],  # right eye (image left)
            [iod / 2, 0.0],  # left eye
            [yaw * iod, pitch * height],  # nose
            [-0.4 * iod, height],  # right mouth corner
            [0.4 * iod, height],  # left mouth corner
        ]
    )
    a = np.radians(roll)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (points @ rotation.T + np.array(at)).astype(np.float32)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


class People:
    """Random faces: ``face(name)`` is a fresh noisy view of that person's embedding."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.base: dict[str, np.ndarray] = {}

    def face(self, name: str = "ada") -> np.ndarray:
        if name not in self.base:
            self.base[name] = unit(self.rng.normal(size=128))
        return unit(self.base[name] + 0.04 * self.rng.normal(size=128))


class Feeder:
    """Frames 0.1 s apart into one session; each with a new digest unless told."""

    def __init__(self, session: LivenessSession, people: People) -> None:
        self.session = session
        self.people = people
        self.t = 0.0
        self.n = 0

    def frame(
        self,
        pose: Pose | tuple[float, float] | None,
        *,
        who: str = "ada",
        digest: str | None = None,
        extra_faces: tuple[float, ...] = (),
        iod: float = 40.0,
        dt: float = 0.1,
    ) -> LivenessFrame:
        self.t += dt
        self.n += 1
        faces: tuple[FaceSample, ...] = ()
        if pose is not None:
            yaw, pitch = RATIOS[pose] if isinstance(pose, Pose) else pose
            main = FaceSample(landmarks(yaw, pitch, iod=iod), self.people.face(who))
            others = tuple(
                FaceSample(landmarks(0.0, 0.56, iod=size, at=(400.0, 300.0)))
                for size in extra_faces
            )
            faces = (main, *others)
        at = self.session.created_at + timedelta(seconds=self.t)
        return LivenessFrame(at, digest or f"d{self.n}", faces)

    def send(self, *poses: Pose | tuple[float, float] | None, **kw: object) -> list[bool]:
        return [self.session.add(self.frame(p, **kw)).accepted for p in poses]  # type: ignore[arg-type]

    def perform(self, challenge: tuple[Pose, ...], hold: int = 2) -> None:
        self.send(C, C)
        for pose in challenge:
            self.send(*([pose] * hold))


def session(
    challenge: tuple[Pose, ...] = (L, U, R, C), policy: LivenessPolicy | None = None
) -> LivenessSession:
    return LivenessSession("lv_test", challenge, T0, policy or LivenessPolicy(), SAME)


@pytest.fixture()
def people() -> People:
    return People()


# --- pose classification -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("yaw", "pitch", "expected"),
    [
        (0.0, 0.56, C),
        (0.12, 0.50, C),  # edges of the centre band are centre
        (-0.12, 0.62, C),
        (0.25, 0.56, L),  # subject's left: the nose towards the image's right
        (0.60, 0.56, L),
        (-0.25, 0.56, R),
        (-0.45, 0.40, R),  # a turn wins over a nod
        (0.0, 0.47, U),
        (0.2, 0.35, U),
        (0.0, 0.65, D),
        (-0.1, 0.80, D),
        (0.18, 0.56, None),  # dead band between centre and a turn
        (-0.2, 0.56, None),
        (0.0, 0.485, None),  # between centre and up
        (0.0, 0.635, None),  # between centre and down
        (0.15, 0.49, None),
    ],
)
def test_pose_table(yaw: float, pitch: float, expected: Pose | None) -> None:
    assert classify_ratios(yaw, pitch) is expected


@pytest.mark.parametrize(("roll", "iod"), [(0.0, 40.0), (25.0, 40.0), (-40.0, 12.0), (10, 300)])
@pytest.mark.parametrize("pose", [L, R, U, D, C])
def test_pose_from_landmarks_ignores_roll_and_scale(pose: Pose, roll: float, iod: float) -> None:
    points = landmarks(*RATIOS[pose], iod=iod, roll=roll)
    assert np.allclose(pose_ratios(points), RATIOS[pose], atol=1e-4)
    assert classify_pose(points) is pose


def test_pose_needs_five_landmarks() -> None:
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        classify_pose(np.zeros((4, 2), np.float32))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"yaw_centre": 0.3, "yaw_turn": 0.25},
        {"yaw_turn": 1.2},
        {"pitch_up": 0.52},
        {"pitch_centre_high": 0.7},
        {"pitch_centre_low": 0.63},
    ],
)
def test_inconsistent_thresholds_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(PolicyError, match="pose thresholds need"):
        PoseThresholds(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"step_counts": (5,)}, "step_counts"),
        ({"step_counts": ()}, "step_counts"),
        ({"hold_frames": 0}, "hold_frames"),
        ({"hold_frames": 4, "wrong_hold_frames": 3}, "hold_frames"),
        ({"deadline_s": 0}, "deadline_s"),
        ({"max_frames": 0}, "max_frames"),
        ({"other_face_ratio": 0.0}, "other_face_ratio"),
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        LivenessPolicy(**kwargs)  # type: ignore[arg-type]


def test_thresholds_separate_lfw_turned_photos(faces_root: Path) -> None:
    """Measured on real photos: a visibly turned face, a frontal one, a raised chin."""
    from facegate.vision.pipeline import FacePipeline

    pipeline = FacePipeline("sface")
    table = [
        ("Tony_Blair", 140, C),
        ("Tony_Blair", 54, L),
        ("Tony_Blair", 4, R),
        ("Hugo_Chavez", 39, U),
        ("Tony_Blair", 75, D),
    ]
    for person, number, expected in table:
        image = pipeline.load(faces_root / person / f"{person}_{number:04d}.jpg")
        face = pipeline.detect(image)[0]
        assert classify_pose(face.landmarks) is expected, (person, number)


# --- challenges ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(12))
def test_a_challenge_has_both_turns_some_nods_then_centre(seed: int) -> None:
    challenge = new_challenge(LivenessPolicy(), random.Random(seed))
    *steps, last = challenge
    assert last is C
    assert {L, R} <= set(steps) and set(steps) <= {L, R, U, D}
    assert len(steps) in (3, 4) and len(set(steps)) == len(steps)


def test_challenges_cover_every_order() -> None:
    rng = random.Random(1)
    seen = Counter(new_challenge(LivenessPolicy(), rng) for _ in range(4000))
    assert len(seen) == 36  # 12 three-step and 24 four-step orders
    assert min(seen.values()) > 40


def test_challenges_default_to_the_system_random_source() -> None:
    made = {new_challenge(LivenessPolicy()) for _ in range(200)}
    assert len(made) > 10


def test_two_step_policy_is_turns_only() -> None:
    policy = LivenessPolicy(step_counts=(2,))
    assert set(new_challenge(policy, random.Random(0))) == {L, R, C}


# --- the session: order, holding, swap, duplicates, faces -----------------------------------------
@pytest.mark.parametrize(
    ("challenge", "script", "status", "reason"),
    [
        # the challenge, held two frames per step: passes
        ((L, U, R, C), [C, C, L, L, C, U, U, R, R, C, C], Status.PASSED, None),
        ((R, D, L, U, C), [C, R, R, D, D, L, L, U, U, C, C], Status.PASSED, None),
        # between poses (dead band) and lingering in the previous pose are fine
        (
            (L, R, U, C),
            [C, L, L, L, L, BETWEEN, C, R, R, R, U, U, BETWEEN, C, C],
            Status.PASSED,
            None,
        ),
        # a pose held one frame does not count: the step is still due
        ((L, U, R, C), [C, L, C, L, C, L, C], Status.PENDING, None),
        # the wrong turn, held: fails; one or two frames of it (noise) do not
        ((L, U, R, C), [C, R, R, R], Status.FAILED, "wrong move: expected left, saw right"),
        ((L, U, R, C), [C, R, R, L, L, U, U, R, R, C, C], Status.PASSED, None),
        # steps out of order: up before left
        ((L, U, R, C), [C, U, U, U], Status.FAILED, "expected left, saw up"),
        # a skipped step: right (the next but one) while up is due
        ((L, U, R, C), [C, L, L, R, R, R], Status.FAILED, "expected up, saw right"),
        # a nod that is not in the challenge at all
        ((L, U, R, C), [C, L, L, D, D, D], Status.FAILED, "expected up, saw down"),
        # stopping short of the final centre
        ((L, U, R, C), [C, L, L, U, U, R, R], Status.PENDING, None),
    ],
)
def test_session_order_table(
    people: People,
    challenge: tuple[Pose, ...],
    script: list[Pose | tuple[float, float]],
    status: Status,
    reason: str | None,
) -> None:
    s = session(challenge)
    feeder = Feeder(s, people)
    for item in script:
        if s.status(T0) is not Status.PENDING:
            break
        feeder.send(item)
    assert s.status(T0 + timedelta(seconds=feeder.t)) is status
    assert (s.reason is None) if reason is None else (reason in (s.reason or ""))


@pytest.mark.parametrize(
    ("kwargs", "accepted", "reason"),
    [
        ({}, True, None),
        ({"extra_faces": (10.0,)}, True, None),  # a small face far behind: ignored
        ({"extra_faces": (30.0,)}, False, "2 faces in the frame"),
        ({"extra_faces": (40.0, 35.0)}, False, "3 faces in the frame"),
        ({"iod": 12.0}, False, "too small"),
    ],
)
def test_frames_with_several_or_small_faces(
    people: People, kwargs: dict[str, object], accepted: bool, reason: str | None
) -> None:
    s = session()
    verdict = s.add(Feeder(s, people).frame(C, **kwargs))  # type: ignore[arg-type]
    assert verdict.accepted is accepted
    assert verdict.reason is None if reason is None else reason in (verdict.reason or "")
    assert s.status(T0) is Status.PENDING  # a rejected frame does not end the session


def test_a_frame_without_a_face_is_rejected_and_too_many_fail(people: People) -> None:
    s = session(policy=LivenessPolicy(max_rejected=3))
    feeder = Feeder(s, people)
    assert feeder.send(None, None, None) == [False, False, False]
    assert s.status(T0) is Status.PENDING and s.rejected == 3
    feeder.send(None)
    assert s.status(T0) is Status.FAILED
    assert "too many unusable frames" in (s.reason or "")


def test_duplicate_frames_are_rejected(people: People) -> None:
    s = session((L, U, R, C))
    feeder = Feeder(s, people)
    assert feeder.send(C, digest="same") == [True]
    assert feeder.send(C, digest="same") == [False]
    assert s.rejected == 1
    # a replayed pair of identical frames cannot complete a step
    feeder.send(L, digest="left")
    feeder.send(L, digest="left")
    assert s.step == 0


@pytest.mark.parametrize("swap_at", [0, 2, 4, 8])  # 8: the frame that would pass it
def test_a_face_swap_mid_session_fails_it(people: People, swap_at: int) -> None:
    script = [C, L, L, U, U, R, R, C, C, C]
    s = session((L, U, R, C))
    feeder = Feeder(s, people)
    feeder.send(C)  # the first frame's face is the one that must stay
    for i, pose in enumerate(script):
        if s.status(T0) is not Status.PENDING:
            break
        feeder.send(pose, who="eve" if i == swap_at else "ada")
    assert s.status(T0) is Status.FAILED
    assert "the face changed" in (s.reason or "")
    assert not s.holds_faces  # a failed session keeps no embedding


def test_same_person_with_noise_is_not_a_swap(people: People) -> None:
    s = session((L, U, R, C))
    Feeder(s, people).perform((L, U, R, C))
    assert s.status(T0) is Status.PASSED


# --- timing ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("offset_s", "accepted", "status"),
    [
        (-1.0, False, Status.PENDING),  # received before the session existed
        (0.5, True, Status.PENDING),
        (29.9, True, Status.PENDING),
    ],
)
def test_frame_receipt_times(
    people: People, offset_s: float, accepted: bool, status: Status
) -> None:
    s = session()
    feeder = Feeder(s, people)
    frame = feeder.frame(C, dt=offset_s)
    assert s.add(frame).accepted is accepted
    assert s.status(frame.received_at) is status


def test_a_frame_after_the_deadline_finds_the_session_expired(people: People) -> None:
    s = session()
    feeder = Feeder(s, people)
    feeder.send(C, L, L)
    late = feeder.frame(U, dt=40.0)
    with pytest.raises(LivenessSessionClosedError, match="expired") as caught:
        s.add(late)
    assert caught.value.status is Status.EXPIRED
    assert not s.holds_faces


def test_the_whole_challenge_must_fit_before_the_deadline(people: People) -> None:
    s = session((L, R, C), LivenessPolicy(step_counts=(2,), deadline_s=1.0))
    feeder = Feeder(s, people)
    feeder.send(C, L, L, R, R)  # 0.5 s
    with pytest.raises(LivenessSessionClosedError):
        feeder.send(C, C, dt=0.3)  # the second centre frame arrives at 1.1 s
    assert s.status(T0 + timedelta(seconds=2)) is Status.EXPIRED


def test_too_many_frames_fail(people: People) -> None:
    s = session(policy=LivenessPolicy(max_frames=5))
    Feeder(s, people).send(C, BETWEEN, C, BETWEEN, C, BETWEEN)
    assert s.status(T0) is Status.FAILED
    assert "more than 5 frames" in (s.reason or "")


def test_closed_sessions_take_no_frames(people: People) -> None:
    s = session((L, U, R, C))
    feeder = Feeder(s, people)
    feeder.perform((L, U, R, C))
    with pytest.raises(LivenessSessionClosedError, match="passed"):
        feeder.send(C)


# --- step-up use ---------------------------------------------------------------------------------
def passed(people: People) -> LivenessSession:
    s = session((L, U, R, C))
    Feeder(s, people).perform((L, U, R, C))
    assert s.status(T0) is Status.PASSED and s.holds_faces
    return s


@pytest.mark.parametrize(
    ("who", "after_s", "kwargs", "ok", "reason"),
    [
        ("ada", 10.0, {}, True, "vouches"),
        ("eve", 10.0, {}, False, "not the one that passed"),
        ("ada", 200.0, {}, False, "expired"),
        ("ada", 10.0, {"model_id": "dlib"}, False, "model"),
        ("ada", 10.0, {"collection": "b", "bound": "a"}, False, "bound to collection 'a'"),
        ("ada", 10.0, {"collection": "a", "bound": "a"}, True, "vouches"),
        ("ada", 10.0, {"subject_id": "s2", "subject": "s1"}, False, "another subject"),
        ("ada", 10.0, {"collection": "any"}, True, "vouches"),  # an unbound session
    ],
)
def test_step_up_table(
    people: People,
    who: str,
    after_s: float,
    kwargs: dict[str, str],
    ok: bool,
    reason: str,
) -> None:
    s = passed(people)
    s.collection = kwargs.pop("bound", None)
    s.subject_id = kwargs.pop("subject", None)
    assert s.passed_at is not None
    result = s.use(
        people.face(who),
        s.passed_at + timedelta(seconds=after_s),
        model_id=kwargs.pop("model_id", "sface"),
        **kwargs,
    )
    assert result.ok is ok and reason in result.reason
    # single use, whatever the answer
    again = s.use(people.face("ada"), s.passed_at, model_id="sface")
    assert not again.ok
    assert not s.holds_faces


def test_a_used_session_is_refused_as_replayed(people: People) -> None:
    s = passed(people)
    assert s.use(people.face(), T0 + timedelta(seconds=5), model_id="sface").ok
    second = s.use(people.face(), T0 + timedelta(seconds=6), model_id="sface")
    assert not second.ok and "already used" in second.reason
    assert s.status(T0) is Status.USED


@pytest.mark.parametrize(
    ("script", "reason"),
    [([], "not complete"), ([Pose.RIGHT] * 3, "failed: wrong move")],
)
def test_unfinished_or_failed_sessions_do_not_vouch(
    people: People, script: list[Pose], reason: str
) -> None:
    s = session((L, U, R, C))
    Feeder(s, people).send(C, *script)
    result = s.use(people.face(), T0 + timedelta(seconds=5), model_id="sface")
    assert not result.ok and reason in result.reason


# --- the registry ------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_registry_ids_are_unguessable_and_private_to_their_key() -> None:
    sessions = LivenessSessions(clock=Clock())
    made = [sessions.create(SAME, key_id="k1") for _ in range(50)]
    ids = {s.id for s in made}
    assert len(ids) == 50 and all(i.startswith("lv_") and len(i) >= 35 for i in ids)
    assert sessions.get(made[0].id, key_id="k1") is made[0]
    assert sessions.get(made[0].id) is made[0]  # no key filter: an admin
    with pytest.raises(UnknownLivenessSessionError):
        sessions.get(made[0].id, key_id="k2")
    with pytest.raises(UnknownLivenessSessionError):
        sessions.get("lv_nope")


def test_registry_is_bounded_and_forgets_ended_sessions() -> None:
    clock = Clock()
    sessions = LivenessSessions(clock=clock, max_sessions=3, keep_s=60)
    first = [sessions.create(SAME) for _ in range(3)]
    with pytest.raises(LivenessCapacityError):
        sessions.create(SAME)
    clock.now += timedelta(seconds=31)  # all three expired, kept for status queries
    assert sessions.get(first[0].id).status(clock.now) is Status.EXPIRED
    sessions.create(SAME)  # room is made by dropping ended sessions
    clock.now += timedelta(seconds=120)
    assert sessions.purge() >= 1
    with pytest.raises(UnknownLivenessSessionError):
        sessions.get(first[0].id)


def test_registry_consume_is_single_use_and_expires(people: People) -> None:
    clock = Clock()
    sessions = LivenessSessions(clock=clock)
    s = sessions.create(SAME, key_id="k")
    feeder = Feeder(s, people)
    frames = [feeder.frame(p) for p in (C, C, *[q for p in s.challenge for q in (p, p)])]
    clock.now = frames[-1].received_at
    got, verdicts = sessions.add_frames(s.id, frames, key_id="k")
    assert got.status(clock.now) is Status.PASSED and all(v.accepted for v in verdicts)
    assert sessions.consume(s.id, people.face(), model_id="sface").ok
    assert not sessions.consume(s.id, people.face(), model_id="sface").ok
    assert "no such" in sessions.consume("lv_unknown", people.face(), model_id="sface").reason

    late = sessions.create(SAME)
    feeder = Feeder(late, people)
    frames = [feeder.frame(p) for p in (C, C, *[q for p in late.challenge for q in (p, p)])]
    sessions.add_frames(late.id, frames)
    clock.now = frames[-1].received_at + timedelta(seconds=121)
    result = sessions.consume(late.id, people.face(), model_id="sface")
    assert not result.ok and "expired" in result.reason


def test_a_frame_sent_to_another_session_is_rejected(people: People) -> None:
    sessions = LivenessSessions(clock=Clock())
    a, b = sessions.create(SAME), sessions.create(SAME)
    frame = Feeder(a, people).frame(C, digest="shared")
    _, first = sessions.add_frames(a.id, [frame])
    _, second = sessions.add_frames(b.id, [frame])
    assert first[0].accepted and not second[0].accepted
    assert "another session" in (second[0].reason or "")


def test_frames_after_the_one_that_ends_a_session_are_not_looked_at(people: People) -> None:
    sessions = LivenessSessions(clock=Clock())
    s = sessions.create(SAME)
    feeder = Feeder(s, people)
    wrong = next(p for p in (L, R) if p is not s.challenge[0])
    frames = [feeder.frame(p) for p in (C, wrong, wrong, wrong, C, C)]
    got, verdicts = sessions.add_frames(s.id, frames)
    assert got.status(T0) is Status.FAILED and len(verdicts) == 4


def test_registry_settings_are_checked() -> None:
    with pytest.raises(PolicyError):
        LivenessSessions(max_sessions=0)
