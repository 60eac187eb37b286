"""The camera worker on a real RTSP stream: the labelled clip served on loopback by
GStreamer's RTSP server (tests/rtsp_server.py), read live by the worker.

Checked against the same hand-made truth as the file test (tests/data/...truth.json):
each identified event's best shot lies on the face of the person it names. Then the
server is killed mid-stream and restarted: the worker reconnects and events resume.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from facegate.config import CameraSettings, Settings, StreamSettings
from facegate.events.model import EventKind, StreamEvent
from facegate.stream.capture import CaptureState
from facegate.stream.runner import CameraRun
from rtsp import HAMILTON_CLIP, RtspServer, require_gstreamer_rtsp
from stream_truth import check_identified, enroll_clip_people
from test_stream_clip import CollectingSink


@pytest.fixture(scope="module")
def rtsp_gallery(tmp_path_factory: pytest.TempPathFactory, data_root: Path):
    require_gstreamer_rtsp()
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("rtsp-gallery"),
        stream=StreamSettings(reconnect_min_s=0.2, reconnect_max_s=1.0),
    )
    return settings, enroll_clip_people(settings, data_root / "video")


def wait_for(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found


def names(events: list[StreamEvent], subject_truth: dict[str, str]) -> set[str]:
    return {
        subject_truth[e.subject_id]
        for e in events
        if e.kind is EventKind.IDENTIFIED and e.subject_id is not None
    }


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rtsp_stream_gives_the_events_of_the_file(
    rtsp_gallery: tuple[Settings, dict[str, str]], transport: str
) -> None:
    settings, subject_truth = rtsp_gallery
    with RtspServer(HAMILTON_CLIP) as server:
        camera = CameraSettings(name=f"rtsp-{transport}", source=server.url, transport=transport)
        sink = CollectingSink()
        run = CameraRun(settings, camera, extra_sinks=[sink]).start()
        try:
            # The server sends the clip once (9.2 s), then the stream ends; the worker
            # reconnects and would see it again, so stop once the first pass is over.
            wait_for(lambda: run.worker.counts.cuts >= 4 or not run.running, 40, "one pass")
        finally:
            run.close()
    checked = check_identified(sink.events, subject_truth)
    assert {"lin-manuel-miranda", "alex-lacamoire"} <= {who for who, _ in checked}
    assert run.worker.capture is not None and run.worker.capture.stats.decoded >= 250


def test_worker_reconnects_when_the_server_dies_and_events_resume(
    rtsp_gallery: tuple[Settings, dict[str, str]],
) -> None:
    settings, subject_truth = rtsp_gallery
    with RtspServer(HAMILTON_CLIP, loop=True) as server:
        camera = CameraSettings(name="rtsp-restart", source=server.url)
        sink = CollectingSink()
        run = CameraRun(settings, camera, extra_sinks=[sink]).start()
        try:
            wait_for(
                lambda: "lin-manuel-miranda" in names(sink.events, subject_truth),
                30,
                "Miranda before the server dies",
            )
            server.stop()  # killed mid-stream
            capture = run.worker.capture
            assert capture is not None
            wait_for(
                lambda: capture.stats.state is CaptureState.RECONNECTING, 15, "the worker to notice"
            )
            time.sleep(1.0)  # down for a while: the worker keeps retrying
            server.start()  # the same port
            restarted = time.monotonic()
            seen_before = len(sink.events)
            wait_for(lambda: capture.stats.state is CaptureState.STREAMING, 20, "a reconnect")
            after = lambda: sink.events[seen_before:]  # noqa: E731
            resumed = wait_for(
                lambda: "lin-manuel-miranda" in names(after(), subject_truth) and after(),
                30,
                "events after the reconnect",
            )
        finally:
            run.close()
    assert capture.stats.reconnects >= 1
    assert time.monotonic() - restarted < 60
    # Tracks of the old connection were ended, and the new ones are checked like the first.
    check_identified(resumed, subject_truth)
    started = {e.track_id for e in sink.events if e.kind is EventKind.TRACK_STARTED}
    ended = {e.track_id for e in sink.events if e.kind is EventKind.TRACK_ENDED}
    assert started == ended
    assert not any(t.name.startswith("capture rtsp") for t in threading.enumerate())
