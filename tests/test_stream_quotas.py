"""Quotas claimed by a camera: the sample clip's camera claims two quotas for every track
it decides, as a dispenser's camera would.

- ``meal``, enrolled (1 per hour, collection ``default``): counted per identified subject
  in the database; strangers are denied ``unknown_person``.
- ``water``, anonymous (1 per 9 minutes): each track's best shot is remembered in the
  worker's memory for the window, never named and never written.

The clip is watched three times by one worker (one memory), with the worker's clock
injected: at T0 (15 fps), at T0 + 60 s analysing every frame (so the best shots are other
frames than the first time: the same people, different pictures), and at T0 + 600 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from facegate.config import CameraSettings, Settings
from facegate.events.database import DatabaseSink
from facegate.events.model import EventKind, StreamEvent
from facegate.events.publisher import Publisher
from facegate.gallery.applications import ApplicationStore
from facegate.gallery.audit import AuditLog
from facegate.recognition import FaceRecognizer
from facegate.stream.capture import CaptureOptions
from facegate.stream.worker import CameraWorker
from stream_truth import enroll_clip_people
from test_stream_clip import CollectingSink

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
MEAL = {
    "name": "meal",
    "limit": 1,
    "window_s": 3600,
    "mode": "enrolled",
    "collection": "default",
    "camera": "stage",
}
WATER = {"name": "water", "limit": 1, "window_s": 540, "mode": "anonymous", "camera": "stage"}
OTHER_CAMERA = MEAL | {"name": "elsewhere", "camera": "lobby"}


class Watch:
    """One worker over the clip, a clock to move, every event and every embedding the
    worker handed to its quotas."""

    def __init__(self, settings: Settings, clip: Path) -> None:
        self.recognizer = FaceRecognizer.open(settings, create=False)
        assert self.recognizer.durable is not None
        self.now = T0
        self.sink = CollectingSink()
        publisher = Publisher([self.sink, DatabaseSink(self.recognizer.durable)])
        camera = CameraSettings(name="stage", source=str(clip), realtime=False)
        self.worker = CameraWorker(camera, self.recognizer, publisher, clock=lambda: self.now)
        assert self.worker.quotas is not None
        self.quotas = self.worker.quotas
        self.embeddings: list[np.ndarray] = []
        claim = self.quotas.claim

        def spy(decision: StreamEvent, embedding: np.ndarray | None) -> list[StreamEvent]:
            if embedding is not None:
                self.embeddings.append(embedding.copy())
            return claim(decision, embedding)

        self.quotas.claim = spy  # type: ignore[method-assign]

    def run(self, seconds: float, fps: float) -> list[StreamEvent]:
        self.now = T0 + timedelta(seconds=seconds)
        self.sink.events.clear()
        self.worker.run(CaptureOptions(realtime=False, target_fps=fps))
        return list(self.sink.events)

    def close(self) -> None:
        self.worker.close()
        self.recognizer.close()


@pytest.fixture(scope="module")
def watch(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Iterator[Watch]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("camera-quotas"))
    enroll_clip_people(settings, data_root / "video")
    recognizer = FaceRecognizer.open(settings, create=False)
    assert recognizer.durable is not None
    ApplicationStore(recognizer.durable.engine).put_document(
        "quotas", {"quotas": [MEAL, WATER, OTHER_CAMERA]}, "tests"
    )
    recognizer.close()
    watching = Watch(settings, data_root / "video" / "short_hamilton_clip.mp4")
    yield watching
    watching.close()


def decided(events: list[StreamEvent]) -> dict[int, StreamEvent]:
    kinds = (EventKind.IDENTIFIED, EventKind.UNKNOWN)
    return {e.track_id: e for e in events if e.kind in kinds}


def claims(events: list[StreamEvent], quota: str) -> dict[int, StreamEvent]:
    found = [e for e in events if e.kind is EventKind.QUOTA and e.quota == quota]
    assert len(found) == len({e.track_id for e in found}), "one claim per track"
    return {e.track_id: e for e in found}


def test_a_camera_claims_its_quotas_once_per_decided_track(watch: Watch) -> None:
    first = watch.run(0, 15)
    tracks = decided(first)
    meal, water = claims(first, "meal"), claims(first, "water")
    assert not claims(first, "elsewhere")  # bound to another camera

    # Enrolled: every decided track claims; the first of each person is granted.
    assert meal.keys() == tracks.keys()
    seen: set[str] = set()
    for track_id in sorted(tracks, key=lambda t: tracks[t].stream_time):
        track, claim = tracks[track_id], meal[track_id]
        if track.subject_id is None:
            assert (claim.allowed, claim.reason, claim.subject_id) == (
                False,
                "unknown_person",
                None,
            )
        elif track.subject_id not in seen:
            assert (claim.allowed, claim.reason) == (True, "within_limit")
            assert claim.subject_id == track.subject_id
            seen.add(track.subject_id)
        else:  # the same person in a later shot of the clip: within the hour
            assert (claim.allowed, claim.reason, claim.retry_after_s) == (
                False,
                "limit_reached",
                3600,
            )
    assert len(seen) == 3  # Miranda, Lacamoire, Obama
    assert any(not c.allowed and c.reason == "limit_reached" for c in meal.values())

    # Anonymous: every track with an embedded best shot claims; the events name nobody.
    with_shot = {t for t, e in tracks.items() if e.similarity is not None}
    assert water.keys() == with_shot and len(water) >= 5
    for claim in water.values():
        assert (claim.subject_id, claim.subject_name, claim.similarity) == (None, None, None)
        assert claim.allowed or claim.reason == "limit_reached"
    granted = sum(1 for c in water.values() if c.allowed)
    assert granted >= 4  # different people are let through
    assert watch.quotas.counter.faces("water") == granted


def test_the_same_faces_inside_the_window_are_denied_and_after_it_granted(
    watch: Watch,
) -> None:
    # Every frame this time: the best shots are other pictures of the same people.
    again = watch.run(60, 30)
    water = claims(again, "water")
    assert len(water) >= 5
    for claim in water.values():
        assert (claim.allowed, claim.reason) == (False, "limit_reached")
        assert claim.retry_after_s is not None and 0 < claim.retry_after_s <= 540 - 60
    meal = claims(again, "meal")
    named = [c for c in meal.values() if c.reason != "unknown_person"]
    assert len(named) >= 3
    assert all(not c.allowed and c.retry_after_s == 3600 - 60 for c in named)

    later = watch.run(600, 15)  # the water window (540 s) is over, the meal one is not
    water = claims(later, "water")
    assert water and sum(c.allowed for c in water.values()) >= 4
    assert all(c.allowed or c.reason == "limit_reached" for c in water.values())
    named = [c for c in claims(later, "meal").values() if c.reason != "unknown_person"]
    assert named and all(not c.allowed and c.retry_after_s == 3000 for c in named)


def test_claims_are_recorded_and_audited_and_no_face_is_left_behind(watch: Watch) -> None:
    if not watch.embeddings:
        watch.run(0, 15)
    durable = watch.recognizer.durable
    assert durable is not None
    events = durable.list_events(kind="quota", limit=1000)
    water = durable.list_events(kind="quota", quota="water", limit=1000)
    assert water and all(e.subject_id is None and e.similarity is None for e in water)
    meal = durable.list_events(kind="quota", quota="meal", limit=1000)
    assert any(e.subject_id for e in meal)
    assert len(events) == len(water) + len(meal)

    audit = AuditLog(durable.engine)
    entries = audit.query(action="quota.claim", limit=1000)
    assert len(entries) == len(events)
    anonymous = [r for r in entries if r.detail.get("quota") == "water"]
    assert anonymous and all(not r.subject_ids for r in anonymous)
    assert all("similarity" not in r.detail for r in anonymous)
    assert audit.verify() is None

    # The worker stops: the remembered faces go; none was ever written to a file.
    watch.worker.close()
    assert watch.quotas.counter.faces() == 0
    data_dir = watch.recognizer.settings.data_dir
    files = {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}
    assert any(p.suffix == ".sqlite3" for p in files)
    assert len(watch.embeddings) >= 10
    for embedding in watch.embeddings:
        vector = embedding.astype(np.float32)
        raw = (vector / np.linalg.norm(vector)).astype(np.float32).tobytes()
        for needle in (raw, raw[64:96], embedding.astype(np.float32).tobytes()[64:96]):
            assert not any(needle in data for data in files.values())
