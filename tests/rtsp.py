"""A real RTSP server on loopback for the stream tests: tests/rtsp_server.py, run under the
system interpreter, which has GStreamer's Python bindings (the project venv does not).

Debian packages it strictly needs (bookworm, GStreamer 1.22), found by asking GStreamer which
plugin provides each element the server's pipelines create (Gst.ElementFactory.find(name)
.get_plugin().get_filename(), then dpkg -S):

    apt-get install --no-install-recommends python3-gi gir1.2-gst-rtsp-server-1.0

  python3-gi                  the `gi` module for /usr/bin/python3
  gir1.2-gst-rtsp-server-1.0  GstRtspServer; depends on libgstrtspserver-1.0-0,
                              gir1.2-gstreamer-1.0 and gir1.2-gst-plugins-base-1.0 (the Gst,
                              GstApp and GstRtsp typelibs). libgstrtspserver-1.0-0 in turn
                              depends on the three plugin packages below.
  libgstreamer1.0-0           filesrc, capsfilter, tee, funnel (coreelements)
  gstreamer1.0-plugins-base   appsrc, appsink (app)
  gstreamer1.0-plugins-good   qtdemux (isomp4), rtph264pay, rtpstorage (rtp), rtpbin,
                              rtpsession, rtpssrcdemux (rtpmanager), udpsrc, multiudpsink (udp)
  gstreamer1.0-plugins-bad    h264parse (videoparsersbad)

Not needed: gstreamer1.0-rtsp (it only holds rtspclientsink, the RTSP *client* sink),
gstreamer1.0-plugins-ugly and gstreamer1.0-libav (nothing is decoded or encoded).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from functools import cache
from pathlib import Path
from typing import IO

import pytest

# The clips live in ../shared/data/video, a sibling of the checkout; never copy them in.
VIDEO_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video"
HAMILTON_CLIP = VIDEO_ROOT / "short_hamilton_clip.mp4"  # H.264 640x360, 29.97 fps, 275 frames
CROWD_CLIP = VIDEO_ROOT / "crowd_walking_1080p.mp4"  # H.264 1920x1080, 25 fps, 105 frames
SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).resolve().with_name("rtsp_server.py")
HOST = "127.0.0.1"
GSTREAMER_MISSING = (
    "GStreamer RTSP server is not installed (apt-get install python3-gi "
    "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad; "
    "./run test installs it as root)"
)
# Every element the server's pipelines create (the RTSP server adds the rtp*, udp*, tee,
# funnel and appsink ones itself).
ELEMENTS = (
    "filesrc qtdemux h264parse capsfilter appsrc appsink rtph264pay rtpbin rtpsession "
    "rtpssrcdemux rtpstorage tee funnel udpsrc multiudpsink"
)
_PROBE = f"""
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstApp, GstRtsp, GstRtspServer
Gst.init(None)
missing = [n for n in {ELEMENTS!r}.split() if Gst.ElementFactory.find(n) is None]
assert not missing, "missing GStreamer elements: " + " ".join(missing)
"""


@cache
def gstreamer_rtsp_problem() -> str | None:
    """Why the RTSP server cannot run here, or None when it can."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is missing"
    try:
        probe = subprocess.run(
            [SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if probe.returncode != 0:
        return probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "failed"
    return None


def require_gstreamer_rtsp() -> None:
    """Skip the calling test when the GStreamer RTSP server is not installed."""
    if gstreamer_rtsp_problem() is not None:
        if os.environ.get("CI"):  # .ci/run installs it: missing there is a failure
            pytest.fail(f"{GSTREAMER_MISSING}: {gstreamer_rtsp_problem()}")
        pytest.skip(GSTREAMER_MISSING)


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class RtspServer:
    """tests/rtsp_server.py serving ``file`` at rtsp://127.0.0.1:PORT``path``, in real time,
    over RTP/TCP and RTP/UDP; each client gets the clip from its start. ``loop`` repeats the
    clip without end (a camera); without it the stream ends after one pass.

    ``stop()`` and ``start()`` again (or ``restart()``) keep the port, for reconnect tests;
    ``pause()`` freezes the process (SIGSTOP: connections stay open, nothing is sent, like a
    hung camera) until ``resume()``. Skips the test when GStreamer is not installed.
    """

    def __init__(
        self,
        file: Path | str,
        *,
        port: int | None = None,
        path: str = "/clip",
        loop: bool = False,
        ready_timeout: float = 10.0,
    ) -> None:
        require_gstreamer_rtsp()
        self.file = Path(file)
        if not self.file.is_file():
            pytest.skip(f"the clip is not at {self.file} (expected ../shared/data/video)")
        self.port = port or free_port()
        self.path = path if path.startswith("/") else "/" + path
        self.loop = loop
        self.ready_timeout = ready_timeout
        self.url = f"rtsp://{HOST}:{self.port}{self.path}"
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self._paused = False

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> RtspServer:
        """Start the server and wait (at most ``ready_timeout`` s) until it listens."""
        if self.running:
            return self
        command = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port)]
        command += ["--path", self.path, "--file", str(self.file)]
        if self.loop:
            command.append("--loop")
        # Kept open while the server runs; stop() closes it.
        self._stderr = tempfile.TemporaryFile("w+", prefix="rtsp-server-")  # noqa: SIM115
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._paused = False
        ready = threading.Event()
        process = self._process

        def watch_stdout() -> None:  # also keeps the pipe drained while the server runs
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith("READY "):
                    ready.set()

        threading.Thread(target=watch_stdout, daemon=True).start()
        deadline = time.monotonic() + self.ready_timeout
        while not ready.wait(0.02):
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is not None:
                    why = f"exited with status {process.returncode} before it was ready"
                else:
                    why = f"was not ready within {self.ready_timeout} s"
                log = self.stderr_text()
                self.stop()
                raise RuntimeError(f"the RTSP server on port {self.port} {why}:\n{log}")
        return self

    def stop(self, timeout: float = 5.0) -> int | None:
        """Terminate the server (SIGTERM, then SIGKILL after ``timeout`` s); its exit status."""
        process, self._process = self._process, None
        status = None
        if process is not None:
            if process.poll() is None:
                if self._paused:
                    process.send_signal(signal.SIGCONT)  # a stopped process ignores SIGTERM
                process.terminate()
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=timeout)
            status = process.returncode
            if process.stdout is not None:
                process.stdout.close()
        self._paused = False
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return status

    def restart(self) -> RtspServer:
        """Stop and start again on the same port (the server binds it with SO_REUSEADDR)."""
        self.stop()
        return self.start()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): clients stay connected but receive nothing."""
        if self.running and self._process is not None:
            self._process.send_signal(signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        if self.running and self._process is not None:
            self._process.send_signal(signal.SIGCONT)
            self._paused = False

    def stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        # The server shares this file's offset: read from the start, then leave it at the end.
        self._stderr.flush()
        self._stderr.seek(0)
        text = self._stderr.read()
        self._stderr.seek(0, os.SEEK_END)
        return text

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
