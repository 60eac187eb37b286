"""FrameCapture and VideoFrame on the real clips of ../shared/data/video (PyAV, OpenCV).

short_hamilton_clip.mp4: 275 frames, 29.97 fps, 640x360 (9.2 s).
crowd_walking_1080p.mp4: 105 frames, 25 fps, 1920x1080 (4.2 s).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import cast

import av
import cv2
import numpy as np
import pytest

from facegate.errors import VideoSourceError
from facegate.stream.capture import (
    CaptureOptions,
    CaptureState,
    FrameCapture,
    SourceKind,
    mask_source,
    source_kind,
)
from facegate.stream.frames import VideoFrame

HAMILTON_FRAMES = 275
CROWD_FRAMES = 105
CROWD_SECONDS = CROWD_FRAMES / 25


@pytest.fixture(scope="module")
def hamilton(data_root: Path) -> Path:
    return data_root / "video" / "short_hamilton_clip.mp4"


@pytest.fixture(scope="module")
def crowd(data_root: Path) -> Path:
    return data_root / "video" / "crowd_walking_1080p.mp4"


@pytest.fixture()
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[threading.ExceptHookArgs]:
    """Exceptions that escape any thread during the test."""
    errors: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", errors.append)
    return errors


def free_port() -> int:
    """A loopback port nobody listens on (bound, read and closed again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def read_all(source: str | Path, **options: object) -> tuple[FrameCapture, list[VideoFrame]]:
    capture = FrameCapture(str(source), CaptureOptions(**options)).start()  # type: ignore[arg-type]
    try:
        return capture, list(capture.frames())
    finally:
        capture.stop()


def decode_first(path: Path) -> av.VideoFrame:
    """The clip's first frame as PyAV decoded it (not converted to BGR)."""
    with av.open(str(path)) as container:
        return next(container.decode(video=0))


def first_decoded(path: Path) -> VideoFrame:
    return VideoFrame(0, 0.0, 0.0, decoded=decode_first(path))


# --- reading a file in full -------------------------------------------------------------
@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file:// URL"])
def test_a_file_at_10_fps_yields_every_third_frame(hamilton: Path, as_url: bool) -> None:
    source = f"file://{hamilton}" if as_url else hamilton
    capture, frames = read_all(source, realtime=False, target_fps=10)

    stats = capture.stats
    assert [f.index for f in frames] == list(range(0, HAMILTON_FRAMES, 3))
    assert stats.decoded == HAMILTON_FRAMES
    assert stats.queued == len(frames) == 92
    assert stats.queued + stats.skipped == HAMILTON_FRAMES
    assert stats.dropped == 0 and stats.reconnects == 0 and stats.last_error is None
    assert stats.state is CaptureState.ENDED
    positions = [f.position for f in frames]
    assert positions == sorted(set(positions))  # strictly increasing
    assert positions[1] == pytest.approx(3 / 29.97, abs=1e-3)
    assert [f.time for f in frames] == positions  # a file read in full runs on clip time
    assert (frames[0].width, frames[0].height) == (640, 360)


@pytest.mark.parametrize("fps", [30.0, 60.0, 1000.0])
def test_a_file_at_30_fps_or_more_yields_every_frame(hamilton: Path, fps: float) -> None:
    capture, frames = read_all(hamilton, realtime=False, target_fps=fps)

    assert [f.index for f in frames] == list(range(HAMILTON_FRAMES))
    assert (capture.stats.decoded, capture.stats.skipped, capture.stats.dropped) == (275, 0, 0)
    assert capture.stats.state is CaptureState.ENDED


def test_a_realtime_file_with_a_slow_consumer_drops_frames(crowd: Path) -> None:
    """Read at the clip's own pace (25 fps) by a consumer that takes 50 ms per frame: the
    reader never waits, so frames are dropped, and at most queue_frames ever wait."""
    queue_frames = 2
    capture = FrameCapture(
        str(crowd), CaptureOptions(realtime=True, target_fps=30, queue_frames=queue_frames)
    )
    began = time.monotonic()
    capture.start()
    consumed, waiting = 0, []
    for _frame in capture.frames():
        consumed += 1
        waiting.append(capture.stats.queued - capture.stats.dropped - consumed)
        time.sleep(0.05)
    wall = time.monotonic() - began
    capture.stop()

    stats = capture.stats
    assert stats.state is CaptureState.ENDED
    assert stats.decoded == CROWD_FRAMES and stats.skipped == 0
    assert stats.dropped > 0
    assert stats.queued == consumed + stats.dropped  # every frame analysed or dropped
    assert max(waiting) <= queue_frames
    assert CROWD_SECONDS - 0.1 <= wall <= CROWD_SECONDS + 2.0


# --- sources that cannot be read --------------------------------------------------------
@pytest.mark.parametrize("source", ["/no/such/clip.mp4", "file:///no/such/clip.mp4"])
def test_a_missing_file_is_refused_at_construction(source: str) -> None:
    with pytest.raises(VideoSourceError, match="no such video file"):
        FrameCapture(source)


BAD_FILES = {
    "random bytes": os.urandom(4096),
    "text": b"this is not a video\n" * 50,
    "empty": b"",
}


@pytest.mark.parametrize("content", BAD_FILES.values(), ids=BAD_FILES.keys())
@pytest.mark.parametrize("realtime", [False, True])
def test_a_file_that_is_not_a_video_fails_quietly(
    tmp_path: Path, thread_errors: list, content: bytes, realtime: bool
) -> None:
    path = tmp_path / "x.mp4"
    path.write_bytes(content)
    capture = FrameCapture(str(path), CaptureOptions(realtime=realtime)).start()

    assert list(capture.frames()) == []  # ends instead of waiting forever
    capture.stop(timeout=2.0)
    assert capture.stats.state is CaptureState.FAILED
    assert capture.stats.last_error and "InvalidDataError" in capture.stats.last_error
    assert capture.stats.decoded == 0
    assert thread_errors == []


# --- live streams -----------------------------------------------------------------------
def test_a_stream_that_refuses_connections_is_retried_with_growing_delays(
    caplog: pytest.LogCaptureFixture, thread_errors: list
) -> None:
    caplog.set_level(logging.INFO, logger="facegate.stream.capture")
    capture = FrameCapture(
        f"rtsp://127.0.0.1:{free_port()}/live",
        CaptureOptions(reconnect_min_s=0.05, reconnect_max_s=0.2, open_timeout_s=1.0),
    ).start()
    states: set[CaptureState] = set()
    when: dict[int, float] = {}
    deadline = time.monotonic() + 5.0
    while capture.stats.reconnects < 5 and time.monotonic() < deadline:
        states.add(capture.stats.state)
        when.setdefault(capture.stats.reconnects, time.monotonic())
        time.sleep(0.002)

    stopping = time.monotonic()
    capture.stop()
    assert time.monotonic() - stopping < 2.0
    assert capture.stats.state is CaptureState.STOPPED
    assert list(capture.frames()) == []
    assert thread_errors == []

    assert CaptureState.RECONNECTING in states
    assert capture.stats.reconnects >= 5
    assert capture.stats.decoded == 0 and capture.stats.last_error
    delays = [
        cast(tuple[str, float], r.args)[1]
        for r in caplog.records
        if r.name == "facegate.stream.capture" and r.msg.startswith("reconnecting")
    ]
    assert delays[:5] == pytest.approx([0.05, 0.1, 0.2, 0.2, 0.2])
    # ... and the waits really happened: the 4th try came ~0.2 s after the 3rd.
    assert when[4] - when[3] >= 0.15
    assert when[2] - when[1] < when[4] - when[3]


def test_stop_interrupts_a_long_reconnect_wait() -> None:
    capture = FrameCapture(
        f"rtsp://127.0.0.1:{free_port()}/live",
        CaptureOptions(reconnect_min_s=30.0, reconnect_max_s=60.0, open_timeout_s=1.0),
    ).start()
    deadline = time.monotonic() + 5.0
    while capture.stats.state is not CaptureState.RECONNECTING:
        assert time.monotonic() < deadline, capture.stats
        time.sleep(0.005)

    stopping = time.monotonic()
    capture.stop()
    assert time.monotonic() - stopping < 2.0
    assert capture.stats.state is CaptureState.STOPPED
    assert capture.stats.reconnects == 1


def test_the_password_of_a_failing_stream_is_not_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="facegate.stream.capture")
    capture = FrameCapture(
        f"rtsp://admin:secret@127.0.0.1:{free_port()}/live",
        CaptureOptions(reconnect_min_s=0.05, reconnect_max_s=0.05, open_timeout_s=1.0),
    ).start()
    deadline = time.monotonic() + 5.0
    while capture.stats.last_error is None and time.monotonic() < deadline:
        time.sleep(0.005)
    capture.stop()

    assert capture.stats.last_error is not None
    assert "secret" not in capture.stats.last_error
    assert not [r for r in caplog.records if "secret" in r.getMessage()]


# --- sources ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "masked"),
    [
        ("rtsp://admin:secret@10.0.0.1/x", "rtsp://admin:***@10.0.0.1/x"),
        ("rtsp://admin:secret@10.0.0.1:554/x?ch=1", "rtsp://admin:***@10.0.0.1:554/x?ch=1"),
        ("rtsp://admin:pa:ss@10.0.0.1/x", "rtsp://admin:***@10.0.0.1/x"),
        ("rtsp://admin:p@ss@10.0.0.1/x", "rtsp://admin:***@10.0.0.1/x"),
        ("rtsp://admin:pa/ss@10.0.0.1/x", "rtsp://admin:***@10.0.0.1/x"),
        ("rtsp://admin:@10.0.0.1/x", "rtsp://admin:***@10.0.0.1/x"),
        ("http://user:pw@cam.local/video.mjpg", "http://user:***@cam.local/video.mjpg"),
        ("rtsp://admin@10.0.0.1/x", "rtsp://***@10.0.0.1/x"),  # a user alone: masked whole
        ("rtsp://10.0.0.1:554/x", "rtsp://10.0.0.1:554/x"),
        ("rtsp://10.0.0.1/live?user=ops@example.com", "rtsp://10.0.0.1/live?user=ops@example.com"),
        ("/videos/door@2.mp4", "/videos/door@2.mp4"),
        ("0", "0"),
    ],
)
def test_mask_source_hides_passwords(source: str, masked: str) -> None:
    assert mask_source(source) == masked


def test_mask_source_leaves_a_url_without_credentials_alone() -> None:
    source = "rtsp://10.0.0.1:554/live?user=ops@example.com"
    assert mask_source(source) == source


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("0", SourceKind.WEBCAM),
        ("2", SourceKind.WEBCAM),
        ("rtsp://admin:secret@10.0.0.1/x", SourceKind.STREAM),
        ("rtsps://10.0.0.1/x", SourceKind.STREAM),
        ("http://cam.local/video.mjpg", SourceKind.STREAM),
        ("/a/b.mp4", SourceKind.FILE),
        ("clips/b.mp4", SourceKind.FILE),
        ("file:///a.mp4", SourceKind.FILE),
    ],
)
def test_source_kind(source: str, kind: SourceKind) -> None:
    assert source_kind(source) is kind


# --- VideoFrame -------------------------------------------------------------------------
def test_a_decoded_1080p_frame_scales_to_640_in_one_pass(crowd: Path) -> None:
    frame = first_decoded(crowd)
    small, scale = frame.scaled(640)

    assert (small.shape, small.dtype) == ((360, 640, 3), np.uint8)
    assert scale == pytest.approx(1 / 3)
    full = frame.full()
    assert (full.shape, full.dtype) == ((1080, 1920, 3), np.uint8)
    assert frame.full() is full  # converted once
    # Same picture, same channel order (BGR) as OpenCV's own downscale of the full frame.
    reference = cv2.resize(full, (640, 360), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - reference.astype(int)).mean() < 3.0


def test_a_1080p_array_frame_scales_to_640() -> None:
    array = np.full((1080, 1920, 3), 128, np.uint8)
    frame = VideoFrame(0, 0.0, 0.0, array=array)

    small, scale = frame.scaled(640)
    assert (small.shape, small.dtype, scale) == ((360, 640, 3), np.uint8, pytest.approx(1 / 3))
    assert frame.full() is array


def test_a_frame_already_small_enough_is_returned_as_is(hamilton: Path) -> None:
    decoded = first_decoded(hamilton)
    assert (decoded.width, decoded.height) == (640, 360)
    image, scale = decoded.scaled(640)
    assert scale == 1.0 and image is decoded.full()

    array = np.zeros((360, 640, 3), np.uint8)
    image, scale = VideoFrame(0, 0.0, 0.0, array=array).scaled(640)
    assert scale == 1.0 and image is array


def test_a_video_frame_needs_exactly_one_picture(crowd: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        VideoFrame(0, 0.0, 0.0)
    decoded = decode_first(crowd)
    with pytest.raises(ValueError, match="not both"):
        VideoFrame(0, 0.0, 0.0, decoded=decoded, array=np.zeros((2, 2, 3), np.uint8))
