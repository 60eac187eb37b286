"""FaceTracker on synthetic boxes: when tracks start, continue and end.

Faces are 80 px squares; one update is one analysed frame (0.1 s apart). Speeds are
given in pixels per frame and, where it matters, in box widths per frame.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from facegate.config import TrackingSettings
from facegate.stream.tracker import FaceTracker, Track, TrackUpdate, iou
from facegate.types import Face

W = 80.0  # box side
Y = 100.0
# Five landmarks in the usual places of a face, as fractions of its box.
_LANDMARKS = np.array(
    [[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]], dtype=np.float32
)


def face(x: float, y: float = Y, *, score: float = 0.95, w: float = W) -> Face:
    landmarks = np.zeros((5, 2), np.float32) + _LANDMARKS * w + np.array([x, y], np.float32)
    return Face((x, y, x + w, y + w), landmarks, score)


def feed(
    tracker: FaceTracker, frames: Sequence[Sequence[Face]], first: int = 0
) -> list[TrackUpdate]:
    """Frame ``first + i`` (at ``(first + i) / 10`` s) has the faces ``frames[i]``."""
    return [tracker.update(faces, (first + i) / 10) for i, faces in enumerate(frames)]


def ids(tracks: Sequence[Track]) -> list[int]:
    return [t.id for t in tracks]


def seen_ids(update: TrackUpdate) -> list[int]:
    return [t.id for t, _ in update.seen]


def moving(steps: Sequence[float], x0: float = 100.0) -> list[list[Face]]:
    """One face moving right by ``steps[i]`` pixels before frame i (none before frame 0)."""
    x, frames = x0, []
    for i, step in enumerate(steps):
        x += step if i else 0.0
        frames.append([face(x)])
    return frames


def settings(**changes: object) -> TrackingSettings:
    return TrackingSettings(**changes)


# --- iou --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param((0, 0, 10, 10), (0, 0, 10, 10), 1.0, id="identical"),
        pytest.param((0, 0, 10, 10), (20, 20, 30, 30), 0.0, id="disjoint"),
        pytest.param((0, 0, 10, 10), (10, 0, 20, 10), 0.0, id="touching edge"),
        pytest.param((0, 0, 10, 10), (5, 0, 15, 10), 1 / 3, id="half overlap"),
        pytest.param((0, 0, 10, 10), (0, 5, 10, 15), 1 / 3, id="half overlap vertical"),
        pytest.param((0, 0, 10, 10), (2, 2, 7, 7), 0.25, id="contained"),
        pytest.param((0, 0, 10, 10), (5, 5, 15, 15), 25 / 175, id="corner overlap"),
        pytest.param((0, 0, 0, 0), (0, 0, 0, 0), 0.0, id="empty boxes"),
    ],
)
def test_iou_known_values(a: tuple, b: tuple, expected: float) -> None:
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)


# --- starting ---------------------------------------------------------------------------
@pytest.mark.parametrize("min_hits", [1, 2, 3, 5])
def test_a_steady_face_starts_one_track_at_the_min_hits_th_frame(min_hits: int) -> None:
    tracker = FaceTracker(settings(min_hits=min_hits))
    updates = feed(tracker, [[face(200)]] * (min_hits + 4))

    started_at = [i for i, u in enumerate(updates) if u.started]
    assert started_at == [min_hits - 1]
    (track,) = updates[min_hits - 1].started
    assert track.id == 1 and track.confirmed
    assert track.started == 0.0  # the time of its first detection
    assert all(seen_ids(u) == [1] for u in updates)  # the tentative track has the same id
    assert not any(u.ended for u in updates)
    assert ids(tracker.tracks) == [1]


@pytest.mark.parametrize("blip", [1, 2])
def test_a_short_blip_never_starts_a_track_nor_ends_one(blip: int) -> None:
    s = settings(min_hits=3, max_missed=4)
    tracker = FaceTracker(s)
    updates = feed(tracker, [[face(200)]] * blip + [[]] * (s.max_missed + 3))

    assert not any(u.started for u in updates)
    assert not any(u.ended for u in updates)
    assert tracker.tracks == []
    assert tracker.finish() == []


# --- motion -----------------------------------------------------------------------------
FOLLOWED = {
    "steady 8 px/frame": [8.0] * 30,
    "steady 0.5 widths/frame": [40.0] * 30,
    # Raw boxes of consecutive frames overlap by 0.25 (< iou_threshold 0.3) at 48 px and by
    # 0.11 at 64 px: only the Kalman prediction carries these.
    "0.5 then 0.6 widths/frame": [40.0] * 5 + [48.0] * 25,
    "0.5 then 0.8 widths/frame": [40.0] * 5 + [64.0] * 25,
    "accelerating 8 px/frame per frame to 0.8 widths/frame": [8.0 * k for k in range(1, 9)]
    + [64.0] * 22,
}


@pytest.mark.parametrize("steps", FOLLOWED.values(), ids=FOLLOWED.keys())
def test_a_moving_face_keeps_one_id(steps: list[float]) -> None:
    tracker = FaceTracker(settings())
    updates = feed(tracker, moving(steps))

    assert [ids(u.started) for u in updates if u.started] == [[1]]
    assert all(seen_ids(u) == [1] for u in updates)
    assert not any(u.ended for u in updates)


def test_the_prediction_carries_a_face_whose_raw_boxes_barely_overlap() -> None:
    """Documents why the fast cases above are meaningful: consecutive raw boxes there
    overlap less than iou_threshold, so frame-to-frame matching alone would lose them."""
    s = settings()
    frames = moving([40.0] * 5 + [64.0] * 25)
    raw = [iou(a[0].bbox, b[0].bbox) for a, b in itertools.pairwise(frames)]
    assert min(raw) < 0.12 < s.iou_threshold


def test_a_face_moving_0_6_widths_per_frame_from_its_first_frame_is_never_tracked() -> None:
    """A limit of the design: a new track has no velocity, so its second detection must
    overlap the first by iou_threshold; at 0.6 box widths per frame (overlap 0.25) every
    detection starts a new tentative track that is dropped the next frame."""
    tracker = FaceTracker(settings())
    updates = feed(tracker, moving([48.0] * 30))

    assert not any(u.started for u in updates)
    assert not any(u.ended for u in updates)
    assert len({i for u in updates for i in seen_ids(u)}) == 30  # a new id every frame
    assert tracker.finish() == []


def test_a_sudden_jump_to_0_7_widths_per_frame_loses_the_track() -> None:
    """Another limit: the filter learnt 8 px/frame, so a face that suddenly moves 56 px
    per frame is missed. The old track ends after max_missed frames; no new one starts."""
    s = settings()
    tracker = FaceTracker(s)
    updates = feed(tracker, moving([8.0] * 5 + [56.0] * 25))

    assert [(i, ids(u.started)) for i, u in enumerate(updates) if u.started] == [
        (s.min_hits - 1, [1])
    ]
    assert [(i, ids(u.ended)) for i, u in enumerate(updates) if u.ended] == [
        (5 + s.max_missed, [1])
    ]


CROSSING = [(4.0, 10.0), (8.0, 10.0), (16.0, 10.0), (8.0, 30.0), (24.0, 30.0)]


@pytest.mark.parametrize(("speed", "dy"), CROSSING)
def test_two_faces_crossing_keep_their_ids(speed: float, dy: float) -> None:
    """A moves right, B moves left ``dy`` px lower; they pass through each other."""
    tracker = FaceTracker(settings())
    owner: dict[int, set[str]] = {}
    for i in range(40):
        a, b = face(100 + speed * i), face(100 + speed * (40 - i), Y + dy)
        for track, f in tracker.update([a, b], i / 10).seen:
            owner.setdefault(track.id, set()).add("A" if f is a else "B")

    assert owner == {1: {"A"}, 2: {"B"}}


@pytest.mark.parametrize("speed", [4.0, 8.0, 16.0])
def test_two_faces_crossing_on_the_same_line_are_told_apart_again(speed: float) -> None:
    """At frame 20 both boxes are identical and nothing can tell them apart (the tracker
    may give either id either face then); on every other frame each id keeps its face."""
    tracker = FaceTracker(settings())
    wrong = []
    for i in range(40):
        a, b = face(100 + speed * i), face(100 + speed * (40 - i))
        for track, f in tracker.update([a, b], i / 10).seen:
            if (track.id == 1) != (f is a):
                wrong.append(i)

    assert set(wrong) <= {20}
    assert ids(tracker.tracks) == [1, 2]


# --- missing and ending -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("max_missed", "gap"),
    [(0, 0), (3, 1), (3, 3), (8, 1), (8, 4), (8, 8)],
)
def test_a_track_missing_up_to_max_missed_frames_continues(max_missed: int, gap: int) -> None:
    s = settings(max_missed=max_missed)
    tracker = FaceTracker(s)
    updates = feed(tracker, [[face(200)]] * 4 + [[]] * gap + [[face(200)]] * 4)

    assert [ids(u.started) for u in updates if u.started] == [[1]]
    assert not any(u.ended for u in updates)
    assert seen_ids(updates[-1]) == [1]
    (track,) = tracker.tracks
    assert track.frames == 8 + gap and track.hits == 8 and track.missed == 0


@pytest.mark.parametrize("max_missed", [0, 3, 8])
def test_a_track_missing_max_missed_plus_one_frames_ends_once(max_missed: int) -> None:
    s = settings(max_missed=max_missed)
    tracker = FaceTracker(s)
    updates = feed(tracker, [[face(200)]] * 4 + [[]] * (max_missed + 5))

    ended = [(i, ids(u.ended)) for i, u in enumerate(updates) if u.ended]
    assert ended == [(4 + max_missed, [1])]
    assert updates[4 + max_missed].ended[0].last_seen == pytest.approx(0.3)
    assert tracker.tracks == []

    # The face comes back: a new track, with a new id, after min_hits frames again.
    again = feed(tracker, [[face(200)]] * s.min_hits, first=len(updates))
    assert [ids(u.started) for u in again] == [[]] * (s.min_hits - 1) + [[2]]


# --- confidence -------------------------------------------------------------------------
@pytest.mark.parametrize("score", [0.01, 0.5, 0.79])
def test_low_score_detections_never_start_a_track(score: float) -> None:
    tracker = FaceTracker(settings(high_score=0.8))
    updates = feed(tracker, [[face(200, score=score)]] * 10)

    assert not any(u.started or u.ended or u.seen for u in updates)
    assert tracker.tracks == []


def test_a_detection_at_exactly_high_score_starts_a_track() -> None:
    tracker = FaceTracker(settings(high_score=0.8, min_hits=2))
    updates = feed(tracker, [[face(200, score=0.8)]] * 2)
    assert ids(updates[1].started) == [1]


@pytest.mark.parametrize("score", [0.01, 0.5, 0.79])
def test_low_score_detections_continue_a_confirmed_track(score: float) -> None:
    s = settings(high_score=0.8, max_missed=2)
    tracker = FaceTracker(s)
    feed(tracker, [[face(200)]] * 3)
    lows = [[face(200 + k, score=score)] for k in range(10)]  # longer than max_missed
    updates = feed(tracker, lows)

    assert all(seen_ids(u) == [1] for u in updates)
    assert all(u.seen[0][1] is frame[0] for u, frame in zip(updates, lows, strict=True))
    assert not any(u.started or u.ended for u in updates)


@pytest.mark.parametrize(
    ("score", "shift", "continued"),
    [
        (0.95, 32.0, True),  # overlap 0.43: enough for a confident detection (0.3)
        (0.5, 32.0, False),  # but a less confident one must overlap 0.5
        (0.5, 16.0, True),  # overlap 0.67
    ],
)
def test_low_score_detections_need_more_overlap(
    score: float, shift: float, continued: bool
) -> None:
    tracker = FaceTracker(settings(high_score=0.8))
    feed(tracker, [[face(200)]] * 5)
    (update,) = feed(tracker, [[face(200 + shift, score=score)]])
    assert (seen_ids(update) == [1]) is continued


def test_low_score_detections_do_not_confirm_a_tentative_track() -> None:
    tracker = FaceTracker(settings(min_hits=3))
    updates = feed(tracker, [[face(200)]] * 2 + [[face(200, score=0.5)]] * 5)

    assert not any(u.started for u in updates)
    assert tracker.tracks == []
    assert tracker.finish() == []


# --- finishing --------------------------------------------------------------------------
def test_finish_ends_only_confirmed_tracks() -> None:
    tracker = FaceTracker(settings(min_hits=3))
    feed(tracker, [[face(100)]] * 3)  # confirmed (id 1)
    feed(tracker, [[face(100), face(400)]])  # a tentative one appears (id 2)
    assert ids(tracker.tracks) == [1, 2]

    assert ids(tracker.finish()) == [1]
    assert tracker.tracks == []
    assert tracker.finish() == []


def test_track_ids_are_never_reused() -> None:
    tracker = FaceTracker(settings(min_hits=1, max_missed=0))
    started = []
    for x in (100, 300, 500):
        updates = feed(tracker, [[face(x)], []])
        started += [t.id for u in updates for t in u.started]
    assert started == [1, 2, 3]
