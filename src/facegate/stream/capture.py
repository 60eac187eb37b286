"""Read a camera in its own thread and hand frames over through a bounded queue.

A live source (RTSP, webcam, or a file read at its own pace) never waits for the
analysis: when the queue is full the oldest frame is dropped and counted. A broken
stream is reopened with exponential backoff. Frames beyond the target rate are skipped
before they are queued (decoding them is unavoidable with H.264).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facegate.errors import VideoSourceError
from facegate.events.camera_status import mask_source, mask_urls
from facegate.stream.frames import VideoFrame

log = logging.getLogger("facegate.stream.capture")


class SourceKind(StrEnum):
    FILE = "file"
    STREAM = "stream"
    WEBCAM = "webcam"


def source_kind(source: str) -> SourceKind:
    if source.isdigit():
        return SourceKind.WEBCAM
    if "://" in source and not source.startswith("file://"):
        return SourceKind.STREAM
    return SourceKind.FILE


class CaptureState(StrEnum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    ENDED = "ended"  # a file was read to its end
    STOPPED = "stopped"
    FAILED = "failed"  # a file that cannot be read


@dataclass(frozen=True, slots=True)
class CaptureOptions:
    transport: str = "tcp"
    target_fps: float = 15.0
    queue_frames: int = 8
    realtime: bool = True  # files only: pace reading at the clip's own rate, and drop
    decode_threads: int = 1
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0


@dataclass
class CaptureStats:
    state: CaptureState = CaptureState.CONNECTING
    decoded: int = 0  # frames decoded
    queued: int = 0  # frames handed to the analysis
    skipped: int = 0  # above the target rate, never queued
    dropped: int = 0  # queued but replaced by a newer frame before analysis
    reconnects: int = 0
    last_error: str | None = None


_END = object()


class FrameCapture:
    """``start()``, then iterate ``frames()`` until the source ends or ``stop()``."""

    def __init__(
        self,
        source: str,
        options: CaptureOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._shown = mask_source(source)  # for logs and errors
        self.kind = source_kind(source)
        self.options = options or CaptureOptions()
        self.stats = CaptureStats()
        self._clock = clock
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.options.queue_frames)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"capture {self._shown}", daemon=True
        )
        self._lock = threading.Lock()
        if self.kind is SourceKind.FILE and not Path(source.removeprefix("file://")).is_file():
            raise VideoSourceError(f"no such video file: {source}")

    @property
    def live(self) -> bool:
        """Whether frames are dropped rather than waited for."""
        return self.kind is not SourceKind.FILE or self.options.realtime

    def start(self) -> FrameCapture:
        self._started = self._clock()
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def frames(self) -> Iterator[VideoFrame]:
        while True:
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set() and not self._thread.is_alive():
                    return
                continue
            if item is _END:
                return
            yield item

    # --- the capture thread ------------------------------------------------------------
    def _run(self) -> None:
        delay = self.options.reconnect_min_s
        try:
            while not self._stop.is_set():
                try:
                    got_frames = self._read_once()
                except Exception as error:  # any decoder or network failure: reopen
                    got_frames = False
                    self.stats.last_error = mask_urls(f"{type(error).__name__}: {error}")[:300]
                    if self.kind is SourceKind.FILE:
                        log.error("cannot read %s: %s", self._shown, self.stats.last_error)
                        self.stats.state = CaptureState.FAILED
                        return
                    log.warning("%s: %s", self._shown, self.stats.last_error)
                if self.kind is SourceKind.FILE or self._stop.is_set():
                    if self.stats.state is not CaptureState.FAILED:
                        self.stats.state = (
                            CaptureState.STOPPED if self._stop.is_set() else CaptureState.ENDED
                        )
                    return
                if got_frames:
                    delay = self.options.reconnect_min_s  # it worked for a while: start over
                self.stats.state = CaptureState.RECONNECTING
                self.stats.reconnects += 1
                log.info("reconnecting to %s in %.1f s", self._shown, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.options.reconnect_max_s)
            self.stats.state = CaptureState.STOPPED
        finally:
            self._put_end()

    def _read_once(self) -> bool:
        """Open the source and queue its frames until it ends, fails or we stop."""
        self.stats.state = CaptureState.CONNECTING
        reader = self._open_webcam() if self.kind is SourceKind.WEBCAM else self._open_av()
        got = False
        for frame in reader:
            if not got:
                self.stats.state = CaptureState.STREAMING
                got = True
            self._offer(frame)
            if self._stop.is_set():
                break
        return got

    def _open_av(self) -> Iterator[VideoFrame]:
        import av  # PyAV loads FFmpeg: only in processes that read video

        o = self.options
        options = {}
        if self.kind is SourceKind.STREAM:
            # Probe 0.2 s of stream rather than FFmpeg's 5: a camera connects in a quarter
            # of a second, and fewer probed frames arrive at once (measured: 8 instead of 29).
            options = {"analyzeduration": "200000"}
            if self.source.startswith("rtsp"):
                options["rtsp_transport"] = o.transport
        path = self.source.removeprefix("file://")
        container = av.open(path, options=options, timeout=(o.open_timeout_s, o.read_timeout_s))
        try:
            video = container.streams.video[0]
        except IndexError:
            container.close()
            raise VideoSourceError(f"{self._shown} has no video stream") from None
        video.codec_context.thread_count = o.decode_threads
        base = float(video.time_base) if video.time_base else 0.0
        first: int | None = None
        next_due = 0.0
        interval = 1.0 / o.target_fps
        frame_s = 1.0 / float(video.average_rate) if video.average_rate else 0.04
        previous = 0.0
        opened = self._clock()
        try:
            for index, decoded in enumerate(container.decode(video)):
                if decoded.pts is not None and base:
                    if first is None:  # frames before it had no timestamp: one frame each
                        first = decoded.pts - round(index * frame_s / base)
                    position = (decoded.pts - first) * base
                else:  # RTSP's first frame comes without a timestamp
                    position = previous + frame_s if index else 0.0
                previous = position
                if self.kind is SourceKind.FILE and o.realtime:
                    self._pace(opened + position)
                self.stats.decoded += 1
                # A 1 ms tolerance keeps 29.97 fps -> 10 fps at every third frame.
                if position + 1e-3 < next_due:
                    self.stats.skipped += 1
                    continue
                next_due = max(next_due + interval, position)
                when = position if self.kind is SourceKind.FILE and not o.realtime else None
                yield VideoFrame(
                    index,
                    position,
                    when if when is not None else self._clock() - self._started,
                    decoded=decoded,
                )
                if self._stop.is_set():
                    return
        finally:
            container.close()

    def _open_webcam(self) -> Iterator[VideoFrame]:
        capture = cv2.VideoCapture(int(self.source))
        if not capture.isOpened():
            raise VideoSourceError(f"cannot open webcam {self.source}")
        interval = 1.0 / self.options.target_fps
        next_due = 0.0
        opened = self._clock()
        try:
            index = 0
            while not self._stop.is_set():
                ok, image = capture.read()
                if not ok:
                    raise VideoSourceError(f"webcam {self.source} stopped delivering frames")
                position = self._clock() - opened
                self.stats.decoded += 1
                if position < next_due:
                    self.stats.skipped += 1
                    continue
                next_due = max(next_due + interval, position)
                frame = np.asarray(image, dtype=np.uint8)
                yield VideoFrame(index, position, self._clock() - self._started, array=frame)
                index += 1
        finally:
            capture.release()

    def _pace(self, due: float) -> None:
        wait = due - self._clock()
        if wait > 0:
            self._stop.wait(wait)

    def _offer(self, frame: VideoFrame) -> None:
        if not self.live:
            while not self._stop.is_set():  # a file read in full: wait for the analysis
                try:
                    self._queue.put(frame, timeout=0.2)
                    self.stats.queued += 1
                    return
                except queue.Full:
                    continue
            return
        with self._lock:
            while True:
                try:
                    self._queue.put_nowait(frame)
                    self.stats.queued += 1
                    return
                except queue.Full:
                    try:
                        self._queue.get_nowait()  # the oldest frame goes
                        self.stats.dropped += 1
                    except queue.Empty:
                        pass

    def _put_end(self) -> None:
        while True:
            try:
                self._queue.put(_END, timeout=0.2)
                return
            except queue.Full:
                if self.live or self._stop.is_set():
                    try:
                        self._queue.get_nowait()
                        self.stats.dropped += 1
                    except queue.Empty:
                        pass
