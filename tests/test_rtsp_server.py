"""The RTSP test server (tests/rtsp_server.py) against real clients: PyAV and OpenCV.

What these tests pin down for a stream reader built on PyAV (FFmpeg 8, libavformat 62):

- open options: {"rtsp_transport": "tcp"} or {"rtsp_transport": "udp"}, plus
  {"timeout": MICROSECONDS} (a string) for the socket I/O timeout. "stimeout" is gone from
  this FFmpeg: it is accepted silently and does nothing (a hung server then blocks forever).
- a server that goes away (process ends, connection closed) shows up as a plain end of
  stream, over TCP and over UDP alike: ``decode()`` just stops, with no exception, at once.
  A live reader must treat that end as a disconnect, not as the end of a file.
- a server that hangs (connection open, nothing sent) blocks the read until the timeout:
  with {"timeout": T} PyAV raises av.error.TimeoutError after about 2 T; with
  av.open(..., timeout=(open_s, read_s)) it raises av.error.ExitError after about 2 read_s.
  Opening a hung server fails with av.error.InvalidDataError after about T.
- opening takes about 1 s: FFmpeg probes the stream first (those frames are not lost, they
  come out of ``decode()`` first, at once).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import av
import av.error
import numpy as np
import pytest

from rtsp import CROWD_CLIP, HAMILTON_CLIP, RtspServer

TRANSPORTS = ("tcp", "udp")
TIMEOUT_US = "2000000"  # FFmpeg's RTSP "timeout" option is in microseconds


def open_stream(url: str, transport: str, timeout_us: str = TIMEOUT_US, **kwargs: Any) -> Any:
    return av.open(url, options={"rtsp_transport": transport, "timeout": timeout_us}, **kwargs)


@pytest.fixture(scope="module")
def clip_server() -> Iterator[RtspServer]:
    """One server for the module; every connection gets its own pass of the clip."""
    with RtspServer(HAMILTON_CLIP) as server:
        yield server


@pytest.fixture(scope="module")
def first_file_frame() -> np.ndarray:
    with av.open(str(HAMILTON_CLIP)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24")


def read_until_end(container: Any, guard_s: float = 15.0) -> tuple[str, int]:
    """Decode until the stream ends; ("EOF" | the exception's class name, frames read)."""
    count = 0
    start = time.monotonic()
    try:
        for _ in container.decode(video=0):
            count += 1
            assert time.monotonic() - start < guard_s, "the stream did not end"
    except av.error.FFmpegError as exc:
        return type(exc).__name__, count
    return "EOF", count


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_decodes_640x360_in_real_time_from_the_start(
    clip_server: RtspServer, first_file_frame: np.ndarray, transport: str
) -> None:
    start = time.monotonic()
    sizes = set()
    first = None
    with open_stream(clip_server.url, transport) as container:
        for count, frame in enumerate(container.decode(video=0), 1):
            sizes.add((frame.width, frame.height))
            if first is None:
                first = frame.to_ndarray(format="rgb24")
            if count == 60:
                break
    elapsed = time.monotonic() - start
    assert sizes == {(640, 360)}
    # 60 frames at 29.97 fps are 2.0 s of video: a server that does not pace sends them in
    # a few milliseconds.
    assert 1.5 <= elapsed < 8, f"60 frames took {elapsed:.2f} s"
    # Each connection starts at the clip's first frame (the bitstream is sent unchanged).
    assert first is not None
    assert np.abs(first.astype(np.int16) - first_file_frame).mean() < 1.0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_stopped_server_ends_the_stream_at_once(transport: str) -> None:
    with RtspServer(HAMILTON_CLIP) as server, open_stream(server.url, transport) as container:
        frames = container.decode(video=0)
        for _ in range(10):
            next(frames)
        assert server.stop() == 0  # SIGTERM: a clean exit
        stopped = time.monotonic()
        outcome, _ = read_until_end(container)
        took = time.monotonic() - stopped
    # FFmpeg reports a closed RTSP connection as the end of the stream, over UDP as well.
    assert outcome == "EOF", outcome
    assert took < 2.0, f"the reader noticed after {took:.2f} s"


@pytest.mark.parametrize(
    ("transport", "how", "expected"),
    [
        ("tcp", "options", "TimeoutError"),
        ("udp", "options", "TimeoutError"),
        ("tcp", "pyav", "ExitError"),
    ],
)
def test_a_hung_server_times_out(transport: str, how: str, expected: str) -> None:
    """SIGSTOP: the connection stays open and nothing arrives (a frozen camera)."""
    with RtspServer(HAMILTON_CLIP) as server:
        if how == "options":  # FFmpeg's own socket timeout, 0.5 s
            container = open_stream(server.url, transport, timeout_us="500000")
        else:  # PyAV's interrupt callback: (open timeout, read timeout) in seconds
            container = av.open(
                server.url, options={"rtsp_transport": transport}, timeout=(5.0, 0.5)
            )
        with container:
            frames = container.decode(video=0)
            for _ in range(10):
                next(frames)
            server.pause()
            paused = time.monotonic()
            outcome, _ = read_until_end(container)
            took = time.monotonic() - paused
    assert outcome == expected
    assert took < 3.0, f"the read failed after {took:.2f} s"  # about 2 x 0.5 s


def test_restart_on_the_same_port_serves_a_new_connection() -> None:
    with RtspServer(HAMILTON_CLIP) as server:
        url, port = server.url, server.port
        with open_stream(url, "tcp") as old:
            frames = old.decode(video=0)
            for _ in range(5):
                next(frames)
            began = time.monotonic()
            server.restart()  # the old connection is still open on our side
            assert time.monotonic() - began < 5
            assert (server.url, server.port) == (url, port)
            assert read_until_end(old)[0] == "EOF"
        with open_stream(url, "tcp") as new:
            sizes = []
            for count, frame in enumerate(new.decode(video=0), 1):
                sizes.append((frame.width, frame.height))
                if count == 10:
                    break
        assert sizes == [(640, 360)] * 10


def test_loop_repeats_the_clip_with_rising_timestamps() -> None:
    """The crowd clip (105 frames, 4.2 s, with B-frames) looped: 130 frames in a row whose
    timestamps go on rising one frame at a time across the seam."""
    with RtspServer(CROWD_CLIP, loop=True) as server, open_stream(server.url, "tcp") as container:
        stream = container.streams.video[0]
        stamps = []
        keyframes = 0
        start = time.monotonic()
        for packet in container.demux(stream):  # no decoding: only the timestamps matter
            keyframes += packet.is_keyframe
            if packet.pts is None:  # FFmpeg leaves the very first packet without one
                continue
            stamps.append(packet.pts)
            if len(stamps) == 130:
                break
        elapsed = time.monotonic() - start
    assert (stream.codec_context.width, stream.codec_context.height) == (1920, 1080)
    # B-frames arrive out of order: leave out the top few, whose neighbours may be in flight.
    steps = set(np.diff(sorted(stamps)[:120]).tolist())
    assert steps == {90000 // 25}, steps  # 25 fps at RTP's 90 kHz clock: no gap, no overlap
    assert keyframes >= 2  # the second pass starts with a keyframe
    assert elapsed >= 130 / 25 - 1.5, f"130 frames took {elapsed:.2f} s"


def test_opencv_ffmpeg_backend_reads_the_stream(
    clip_server: RtspServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cv2 = pytest.importorskip("cv2")
    # OpenCV passes FFmpeg options through this variable: "key;value|key;value".
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
    capture = cv2.VideoCapture(clip_server.url, cv2.CAP_FFMPEG, params)
    try:
        assert capture.isOpened()
        shapes = []
        for _ in range(30):
            ok, frame = capture.read()
            assert ok
            shapes.append(frame.shape)
    finally:
        capture.release()
    assert shapes == [(360, 640, 3)] * 30
