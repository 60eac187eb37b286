"""Request limits enforced below the framework: the body size (counted while the body
streams in) and the per-key token bucket."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facegate.service.problems import Problem


class BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` once a request body passes the limit. An HTTP exception, so
    that FastAPI's own body reading lets it through to the 413 handler unchanged."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds the limit of {limit} bytes")


def too_large_problem(limit: int) -> Problem:
    return Problem(
        413,
        "payload-too-large",
        f"the request body exceeds the limit of {limit} bytes",
        title="Content too large",
        limit=limit,
    )


class BodySizeLimitMiddleware:
    """Pure ASGI: refuse a declared ``Content-Length`` over the limit before reading
    anything, and count the bytes of every body as it streams, aborting with 413 as soon
    as the count passes the limit (chunked uploads included)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = too_large_problem(self.max_bytes)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await problem.response(scope.get("path"))(scope, receive, send)
                    return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await problem.response(scope.get("path"))(scope, receive, send)


class TokenBucket:
    """Per-key token buckets: ``rate`` tokens a second up to ``burst``. In memory, so a
    restart forgets them (a limit against runaway clients, not an accounting tool)."""

    def __init__(self, rate: float, burst: int, now: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._now = now
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0.0 if a request may go now, else the seconds until one may (Retry-After)."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._now()
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def forget(self, key: str) -> None:
        with self._lock:
            self._buckets.pop(key, None)


def retry_after_header(wait: float) -> str:
    return str(max(1, math.ceil(wait)))
