"""Small builders of hostile inputs, shared by the tests."""

from __future__ import annotations

import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from facegate.config import Settings
from facegate.gallery.records import ConsentGrant
from facegate.service.app import create_app
from facegate.service.problems import PROBLEM_BASE

# The consent the tests record for the LFW people they enroll (stand-ins for real subjects).
TEST_CONSENT = ConsentGrant("explicit_consent", "test-notice-1", "tests")
CONSENT_JSON = {"legal_basis": "explicit_consent", "notice_version": "test-notice-1"}
CONSENT_ARGS = ("--consent", "explicit_consent", "--notice-version", "test-notice-1")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", 0)
        + b"IEND"
        + struct.pack(">I", zlib.crc32(b"IEND"))
    )


@contextmanager
def running_server(settings: Settings, app: FastAPI | None = None) -> Iterator[str]:
    """uvicorn serving ``app`` (default: ``create_app(settings)``) in a thread, on a socket
    bound here."""
    sock = socket.socket(
        socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
    )  # TCP_NODELAY on accept
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app or create_app(settings), log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive(), "the server thread died while starting"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def lfw_photo(faces_root: Path, person: str, n: int) -> Path:
    """The n-th LFW photo of ``person`` (faces/<Person>/<Person>_000n.jpg)."""
    return faces_root / person / f"{person}_{n:04d}.jpg"


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """The RFC 9457 problem of ``response``, checked to have this status and type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_BASE + slug, body
    assert body["status"] == status and body["title"] and body["detail"]
    return body
