"""Follow faces across frames: a constant-velocity Kalman filter per track and
ByteTrack-style association (confident detections first, then the less confident ones
only to tracks that already exist), by box overlap.

Time steps are analysed frames, not seconds: the worker analyses frames at a steady
target rate, so a step is a fixed interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from facegate.config import TrackingSettings
from facegate.types import Face

Box = tuple[float, float, float, float]
# How much a box may drift per step relative to its size (ByteTrack's choices).
_POSITION_NOISE = 1.0 / 20
_VELOCITY_NOISE = 1.0 / 160
# A low-confidence detection must overlap a track this much to continue it.
_LOW_SCORE_IOU = 0.5


def iou(a: Box, b: Box) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class BoxFilter:
    """Kalman filter over (cx, cy, w, h) and their velocities, one step per frame."""

    _F = np.eye(8) + np.eye(8, k=4)  # position += velocity
    _H = np.eye(4, 8)

    def __init__(self, box: Box) -> None:
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        self.x = np.array([x1 + w / 2, y1 + h / 2, w, h, 0, 0, 0, 0], dtype=np.float64)
        size = max(w, h)
        std = [2 * _POSITION_NOISE * size] * 4 + [10 * _VELOCITY_NOISE * size] * 4
        self.p = np.diag(np.square(std))

    def _size(self) -> float:
        return float(max(self.x[2], self.x[3], 1.0))

    def predict(self) -> None:
        self.x = self._F @ self.x
        self.x[2:4] = np.maximum(self.x[2:4], 1.0)
        size = self._size()
        motion = np.square([_POSITION_NOISE * size] * 4 + [_VELOCITY_NOISE * size] * 4)
        self.p = self._F @ self.p @ self._F.T + np.diag(motion)

    def update(self, box: Box) -> None:
        x1, y1, x2, y2 = box
        z = np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
        measurement = np.diag(np.square([_POSITION_NOISE * self._size()] * 4))
        s = self._H @ self.p @ self._H.T + measurement
        gain = self.p @ self._H.T @ np.linalg.inv(s)
        self.x = self.x + gain @ (z - self._H @ self.x)
        self.p = (np.eye(8) - gain @ self._H) @ self.p

    @property
    def box(self) -> Box:
        cx, cy, w, h = (float(v) for v in self.x[:4])
        return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


@dataclass(eq=False)
class Track:
    """One face followed across frames. ``confirmed`` once seen in ``min_hits`` frames."""

    id: int
    face: Face
    started: float  # stream time (s) of the first detection
    last_seen: float
    filter: BoxFilter
    hits: int = 1
    missed: int = 0
    confirmed: bool = False
    frames: int = 1

    @property
    def box(self) -> Box:
        return self.filter.box


@dataclass
class TrackUpdate:
    """What one frame changed: tracks that were confirmed, that ended, and every track
    that has a face in this frame (with that face)."""

    started: list[Track] = field(default_factory=list)
    ended: list[Track] = field(default_factory=list)
    seen: list[tuple[Track, Face]] = field(default_factory=list)


def _greedy_pairs(
    tracks: Sequence[Track], faces: Sequence[Face], threshold: float
) -> list[tuple[int, int]]:
    """Pairs (track index, face index) by highest overlap first, each used once."""
    scored = [
        (iou(track.box, face.bbox), t, f)
        for t, track in enumerate(tracks)
        for f, face in enumerate(faces)
    ]
    scored = [s for s in scored if s[0] >= threshold]
    scored.sort(reverse=True)
    used_tracks: set[int] = set()
    used_faces: set[int] = set()
    pairs = []
    for _, t, f in scored:
        if t not in used_tracks and f not in used_faces:
            used_tracks.add(t)
            used_faces.add(f)
            pairs.append((t, f))
    return pairs


class FaceTracker:
    def __init__(self, settings: TrackingSettings | None = None) -> None:
        self.settings = settings or TrackingSettings()
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, faces: Sequence[Face], now: float) -> TrackUpdate:
        """Feed the faces of one analysed frame at stream time ``now`` (seconds)."""
        s = self.settings
        for track in self.tracks:
            track.filter.predict()
        high = [f for f in faces if f.score >= s.high_score]
        low = [f for f in faces if f.score < s.high_score]
        result = TrackUpdate()
        matched: set[int] = set()

        for t, f in _greedy_pairs(self.tracks, high, s.iou_threshold):
            self._hit(self.tracks[t], high[f], now, result)
            matched.add(t)
        rest = [i for i, tr in enumerate(self.tracks) if i not in matched and tr.confirmed]
        for t, f in _greedy_pairs([self.tracks[i] for i in rest], low, _LOW_SCORE_IOU):
            self._hit(self.tracks[rest[t]], low[f], now, result)
            matched.add(rest[t])
        used_high = {id(face) for _, face in result.seen}
        kept = []
        for i, track in enumerate(self.tracks):
            if i not in matched:
                track.missed += 1
                if not track.confirmed:
                    continue  # a one-frame blip never becomes a track
                if track.missed > s.max_missed:
                    result.ended.append(track)
                    continue
            kept.append(track)
        self.tracks = kept
        for face in high:
            if id(face) not in used_high:
                self._start(face, now, result)
        return result

    def _hit(self, track: Track, face: Face, now: float, result: TrackUpdate) -> None:
        track.filter.update(face.bbox)
        track.face = face
        track.last_seen = now
        track.hits += 1
        track.frames += 1 + track.missed
        track.missed = 0
        if not track.confirmed and track.hits >= self.settings.min_hits:
            track.confirmed = True
            result.started.append(track)
        result.seen.append((track, face))

    def _start(self, face: Face, now: float, result: TrackUpdate) -> None:
        track = Track(self._next_id, face, now, now, BoxFilter(face.bbox))
        self._next_id += 1
        self.tracks.append(track)
        if self.settings.min_hits <= 1:
            track.confirmed = True
            result.started.append(track)
        result.seen.append((track, face))

    def finish(self) -> list[Track]:
        """End every confirmed track (the stream is over)."""
        ended = [t for t in self.tracks if t.confirmed]
        self.tracks = []
        return ended
