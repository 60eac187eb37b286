"""The camera worker on the labelled clip (../shared/data/video), read as a file.

With the three enrolment photos enrolled, every event is checked against the
hand-made truth (tests/data/hamilton_clip_truth.json): an identified event's best shot
must lie on the face of the person it names, at that frame, and on nobody else's.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from facegate.config import CameraSettings, Settings
from facegate.events.database import DatabaseSink
from facegate.events.model import EventKind, SinkStats, StreamEvent
from facegate.events.publisher import Publisher
from facegate.gallery.records import new_id
from facegate.recognition import FaceRecognizer
from facegate.stream.capture import CaptureOptions
from facegate.stream.worker import CameraWorker
from stream_truth import check_identified, enroll_clip_people, unknown_on


class CollectingSink:
    name = "collect"

    def __init__(self) -> None:
        self.events: list[StreamEvent] = []
        self._lock = threading.Lock()

    def publish(self, event: StreamEvent) -> None:
        with self._lock:
            self.events.append(event)

    def stats(self) -> SinkStats:
        return SinkStats(self.name, delivered=len(self.events))

    def close(self, timeout: float = 5.0) -> None:
        pass


@pytest.fixture(scope="module")
def clip_gallery(tmp_path_factory: pytest.TempPathFactory, data_root: Path):
    settings = Settings(data_dir=tmp_path_factory.mktemp("clip-gallery"))
    return settings, enroll_clip_people(settings, data_root / "video")


def run_clip(settings: Settings, clip: Path, **camera: object) -> tuple[list[StreamEvent], object]:
    recognizer = FaceRecognizer.open(settings, create=False)
    sink = CollectingSink()
    assert recognizer.durable is not None
    publisher = Publisher([sink, DatabaseSink(recognizer.durable)])
    name = f"stage-{new_id()[:8]}"  # one camera name per run: its events apart
    config = CameraSettings(name=name, source=str(clip), realtime=False, **camera)  # type: ignore[arg-type]
    worker = CameraWorker(config, recognizer, publisher, snapshots=True)
    try:
        worker.run(CaptureOptions(realtime=False, target_fps=config.target_fps))
        stored = recognizer.durable.list_events(limit=1000, camera=name)
    finally:
        recognizer.close()
    return sink.events, (worker, stored)


@pytest.mark.parametrize("fps", [15.0, 30.0], ids=["default-15fps", "every-frame"])
def test_clip_names_the_enrolled_and_nobody_wrongly(
    clip_gallery: tuple[Settings, dict[str, str]], data_root: Path, fps: float
) -> None:
    settings, subject_truth = clip_gallery
    events, (worker, stored) = run_clip(
        settings, data_root / "video" / "short_hamilton_clip.mp4", target_fps=fps
    )
    checked = check_identified(events, subject_truth)  # fails on any wrong name
    named = {who for who, _ in checked}
    assert {"lin-manuel-miranda", "alex-lacamoire"} <= named, named
    # The check can fail: with two people's labels swapped it must object.
    swapped = {
        sid: {"lin-manuel-miranda": "alex-lacamoire", "alex-lacamoire": "lin-manuel-miranda"}.get(
            who, who
        )
        for sid, who in subject_truth.items()
    }
    with pytest.raises(AssertionError, match="was identified as"):
        check_identified(events, swapped)
    # Faces not enrolled are reported unknown (Michelle Obama is on screen for 2 s).
    michelle = unknown_on(events, "michelle-obama")
    assert michelle, "Michelle Obama's track was not reported unknown"
    assert all(e.subject_id is None for e in michelle)

    # One decision per track, after it started and before it ended.
    by_track: dict[int, list[EventKind]] = {}
    for event in events:
        by_track.setdefault(event.track_id, []).append(event.kind)
    for track_id, kinds in by_track.items():
        assert kinds[0] is EventKind.TRACK_STARTED, (track_id, kinds)
        assert kinds[-1] is EventKind.TRACK_ENDED, (track_id, kinds)
        decisions = [k for k in kinds if k in (EventKind.IDENTIFIED, EventKind.UNKNOWN)]
        assert len(decisions) == 1, (track_id, kinds)

    # The worker embedded only a few shots, not every face it saw.
    assert worker.counts.embedded < worker.counts.faces / 2  # type: ignore[attr-defined]
    # The database has every event, snapshots sealed and readable for decisions.
    assert {e.id for e in stored} == {e.id for e in events}
    decided = [e for e in stored if e.kind in ("identified", "unknown") and e.snapshot]
    assert decided and all(e.snapshot[:2] == b"\xff\xd8" for e in decided)  # JPEG


def test_a_scene_cut_ends_tracks(
    clip_gallery: tuple[Settings, dict[str, str]], data_root: Path
) -> None:
    """Without cut detection, the track of Miranda (frames 82-210) would carry on to
    Barack Obama's face at the same place after the cut at frame 211."""
    settings, _ = clip_gallery
    events, (worker, _) = run_clip(settings, data_root / "video" / "short_hamilton_clip.mp4")
    assert worker.counts.cuts == 3  # type: ignore[attr-defined]  # frames 20, 82, 211
    ended = {e.track_id for e in events if e.kind is EventKind.TRACK_ENDED}
    started = {e.track_id for e in events if e.kind is EventKind.TRACK_STARTED}
    assert ended == started


def test_region_of_interest_and_minimum_face_size(
    clip_gallery: tuple[Settings, dict[str, str]], data_root: Path
) -> None:
    """Faces centred outside the region, or narrower than the minimum, are never tracked."""
    settings, _ = clip_gallery
    clip = data_root / "video" / "short_hamilton_clip.mp4"
    left_half, _ = run_clip(settings, clip, roi=(0.0, 0.0, 0.5, 1.0))
    assert left_half
    for event in left_half:
        assert event.bbox is not None
        assert (event.bbox[0] + event.bbox[2]) / 2 <= 320, event
    large, _ = run_clip(settings, clip, min_face_size=60)
    assert large
    assert all(e.bbox is not None and e.bbox[2] - e.bbox[0] >= 60 for e in large)
    # Lacamoire at the piano is 25 px wide: with a 60 px minimum he is never seen.
    everyone, _ = run_clip(settings, clip)
    small = [e for e in everyone if e.bbox is not None and e.bbox[2] - e.bbox[0] < 60]
    assert small, "the control run must see the small faces the minimum leaves out"
