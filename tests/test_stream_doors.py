"""A door bound to the sample clip's camera: every decided track is an access decision,
published as an ``access`` event (in the database; on ``allowed`` the door's open command).

Lin-Manuel Miranda is the resident (a group member); Alex Lacamoire and Barack Obama are
enrolled but not residents; everyone else in the clip was never enrolled. The schedule is
open 08:00-20:00 in Europe/Berlin, and the worker's clock is injected.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

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

IN_SCHEDULE = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)  # 11:00 in Berlin
OUTSIDE = datetime(2026, 11, 26, 21, 30, tzinfo=UTC)  # 22:30 in Berlin


def door_policy(resident: str) -> dict[str, object]:
    return {
        "doors": [{"name": "stage-door", "collection": "default", "camera": "stage"}],
        "groups": [{"name": "residents", "members": [resident]}],
        "schedules": [
            {
                "name": "daytime",
                "timezone": "Europe/Berlin",
                "windows": [{"days": ["mon-sun"], "start": "08:00", "end": "20:00"}],
            }
        ],
        "rules": [
            {
                "id": "residents",
                "effect": "allow",
                "doors": ["stage-door"],
                "who": ["residents"],
                "schedule": "daytime",
            }
        ],
    }


@pytest.fixture(scope="module")
def door_gallery(tmp_path_factory: pytest.TempPathFactory, data_root: Path):
    settings = Settings(data_dir=tmp_path_factory.mktemp("doors"))
    truth = enroll_clip_people(settings, data_root / "video")
    by_name = {who: sid for sid, who in truth.items()}
    recognizer = FaceRecognizer.open(settings, create=False)
    assert recognizer.durable is not None
    ApplicationStore(recognizer.durable.engine).put_document(
        "access", door_policy(by_name["lin-manuel-miranda"]), "tests"
    )
    recognizer.close()
    return settings, by_name


def watch_clip(settings: Settings, clip: Path, at: datetime) -> list[StreamEvent]:
    recognizer = FaceRecognizer.open(settings, create=False)
    assert recognizer.durable is not None
    sink = CollectingSink()
    camera = CameraSettings(name="stage", source=str(clip), realtime=False)
    worker = CameraWorker(
        camera, recognizer, Publisher([sink, DatabaseSink(recognizer.durable)]), clock=lambda: at
    )
    try:
        worker.run(CaptureOptions(realtime=False, target_fps=camera.target_fps))
    finally:
        recognizer.close()
    return sink.events


def test_a_camera_door_admits_the_resident_in_schedule_only(
    door_gallery: tuple[Settings, dict[str, str]], data_root: Path
) -> None:
    settings, people = door_gallery
    clip = data_root / "video" / "short_hamilton_clip.mp4"

    daytime = watch_clip(settings, clip, IN_SCHEDULE)
    decided = [e for e in daytime if e.kind in (EventKind.IDENTIFIED, EventKind.UNKNOWN)]
    access = [e for e in daytime if e.kind is EventKind.ACCESS]
    assert len(access) == len(decided)  # one decision at the door per decided track
    by_track = {e.track_id: e for e in decided}
    for event in access:
        track = by_track[event.track_id]
        assert event.door == "stage-door"
        if track.subject_id == people["lin-manuel-miranda"]:
            assert (event.allowed, event.reason) == (True, "allowed")
        elif track.subject_id is not None:  # enrolled, not a resident
            assert (event.allowed, event.reason) == (False, "not_in_group")
        else:
            assert (event.allowed, event.reason) == (False, "unknown_person")
    reasons = {e.reason for e in access}
    assert {"allowed", "unknown_person"} <= reasons

    evening = watch_clip(settings, clip, OUTSIDE)
    late = [e for e in evening if e.kind is EventKind.ACCESS]
    miranda = [e for e in late if e.subject_id == people["lin-manuel-miranda"]]
    assert miranda and all(e.reason == "outside_schedule" and not e.allowed for e in miranda)
    assert not any(e.allowed for e in late)

    # Recorded with the door, so GET /v1/events?kind=access&door=... finds them.
    recognizer = FaceRecognizer.open(settings, create=False)
    try:
        assert recognizer.durable is not None
        stored = recognizer.durable.list_events(kind="access", door="stage-door", limit=1000)
    finally:
        recognizer.close()
    assert {e.id for e in stored} == {e.id for e in access + late}

    # Every decision is in the audit trail too, and the chain verifies.
    recognizer = FaceRecognizer.open(settings, create=False)
    try:
        assert recognizer.durable is not None
        audit = AuditLog(recognizer.durable.engine)
        decided_here = audit.query(action="access.decide", limit=1000)
        assert len(decided_here) == len(access) + len(late)
        assert {r.outcome for r in decided_here} >= {"allowed", "unknown_person"}
        assert audit.verify() is None
    finally:
        recognizer.close()
