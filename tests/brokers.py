"""Real services for the event-sink tests: a mosquitto broker and a webhook receiver."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import pytest

MOSQUITTO = Path("/usr/sbin/mosquitto")
MOSQUITTO_MISSING = "mosquitto is not installed (apt-get install mosquitto; .ci/run installs it)"
HOST = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Any, timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


class MosquittoBroker:
    """A mosquitto process on 127.0.0.1:``port`` that can be stopped and started again on
    the same port. Skips the test when mosquitto is not installed."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        executable = MOSQUITTO if MOSQUITTO.is_file() else shutil.which("mosquitto")
        if executable is None:
            if os.environ.get("CI"):  # .ci/run installs it: missing there is a failure
                pytest.fail(MOSQUITTO_MISSING)
            pytest.skip(MOSQUITTO_MISSING)
        self.executable = str(executable)
        self.host = HOST
        self.port = port or free_port()
        self.directory = directory
        self.log_path = directory / "mosquitto.log"
        self.config_path = directory / "mosquitto.conf"
        # Logs go to stderr, which we send to a file we opened: running as root, mosquitto
        # drops to the `mosquitto` user, which cannot write into pytest's private tmp dirs.
        self.config_path.write_text(
            f"listener {self.port} {HOST}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [self.executable, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.stop()
                raise RuntimeError(f"mosquitto exited at start:\n{self.log_text()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen within {timeout} s:\n{self.log_text()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def mosquitto(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A running broker for the ``with`` block; yields ``(host, port)``."""
    broker = MosquittoBroker(tmp_path)
    broker.start()
    try:
        yield broker.host, broker.port
    finally:
        broker.stop()


@dataclass(frozen=True)
class Received:
    """One request the webhook receiver got; header names are lower-case."""

    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival


class WebhookReceiver:
    """A local HTTP server that records each POST and answers ``statuses`` in turn, then
    ``default``. While ``gate`` is clear, answers wait for it (a slow receiver)."""

    def __init__(self, statuses: Iterable[int] = (), default: int = 200) -> None:
        self.requests: list[Received] = []
        self.gate = threading.Event()
        self.gate.set()
        self._statuses = list(statuses)
        self._default = default
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._record(Received(headers, body, time.monotonic()))
                receiver.gate.wait(10)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output clean

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://{HOST}:{self.port}/hook"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def _record(self, request: Received) -> int:
        with self._lock:
            self.requests.append(request)
            return self._statuses.pop(0) if self._statuses else self._default

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
