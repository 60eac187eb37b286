"""``python -m facegate serve`` in a child process on loopback, for the benchmarks that
measure the service over HTTP (:mod:`facegate.bench.load`, :mod:`facegate.bench.memory`):
a free port, start and wait until ``/ready`` answers, stop."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from facegate.errors import BenchmarkError

HOST = "127.0.0.1"
READY_TIMEOUT_S = 180.0


class ServeError(BenchmarkError, RuntimeError):
    """``facegate serve`` exited while starting or was not ready in time (a RuntimeError
    too, as the memory benchmark documents)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def base_url(port: int) -> str:
    return f"http://{HOST}:{port}"


def start_server(
    data_dir: Path,
    port: int,
    env: dict[str, str],
    log_path: Path,
    *,
    cwd: Path | None = None,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> subprocess.Popen[bytes]:
    """Start ``facegate serve`` (its output to ``log_path``) and return once ``/ready``
    answers 200; a server that exits first or is not ready in ``ready_timeout_s`` is
    stopped and ServeError raised."""
    command = [sys.executable, "-m", "facegate", "serve", "--host", HOST]
    command += ["--port", str(port), "--data-dir", str(data_dir)]
    with log_path.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if process.poll() is not None:
                raise ServeError(
                    f"facegate serve exited ({process.returncode}) while starting; see {log_path}"
                )
            try:
                if httpx.get(f"{base_url(port)}/ready", timeout=5).status_code == 200:
                    return process
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise ServeError(
                    f"facegate serve was not ready in {ready_timeout_s:.0f} s; see {log_path}"
                )
            time.sleep(0.2)
    except BaseException:
        stop_server(process)
        raise


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGINT (a clean shutdown), killed if still running after 60 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def serving(
    data_dir: Path, env: dict[str, str], log_path: Path, *, cwd: Path | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``facegate serve`` on a free loopback port, ready, until the block ends: yields the
    process and its base URL."""
    port = free_port()
    process = start_server(data_dir, port, env, log_path, cwd=cwd)
    try:
        yield process, base_url(port)
    finally:
        stop_server(process)
