"""Webhook sink: POST each event as signed JSON, retrying with exponential backoff.

Every request carries ``X-Facegate-Timestamp`` and ``X-Facegate-Signature:
sha256=<hex>``, the HMAC-SHA256 of ``b"<timestamp>." + body`` under the shared secret.
Receivers check it with :func:`verify_signature`; the timestamp is part of the signed
message so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable

import httpx

from facegate.config import WebhookSettings
from facegate.events.model import StreamEvent
from facegate.events.queued import QueuedSink

log = logging.getLogger("facegate.events.webhook")

SIGNATURE_PREFIX = "sha256="


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Facegate-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(
    secret: bytes | str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: float = 300,
) -> bool:
    """True when the signature matches ``body`` and the timestamp is within
    ``tolerance_s`` seconds of ``now`` (stale or future requests are refused)."""
    if not timestamp_header or not signature_header:
        return False
    try:
        timestamp = int(timestamp_header.strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    key = secret.encode() if isinstance(secret, str) else secret
    expected = sign(key, timestamp, body).encode()
    # Bytes, not str: compare_digest refuses non-ASCII str, and the header is untrusted.
    return hmac.compare_digest(expected, signature_header.strip().encode("utf-8", "replace"))


def _safe_name(url: str) -> str:
    """``host:port`` of ``url``: its path and query may carry tokens, so they stay out."""
    parsed = httpx.URL(url)
    host = parsed.host
    if ":" in host:
        host = f"[{host}]"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"{host}:{port}"


class WebhookSink(QueuedSink):
    """Delivers events to one webhook receiver from a daemon thread.

    ``publish`` never blocks: when ``queue_size`` events are waiting, the event is dropped
    and counted. Failed attempts are retried after ``backoff_s * 2**n`` (at most
    ``max_backoff_s``) up to ``max_attempts`` in all; 4xx answers other than 408 and 429
    are permanent and go to the dead letters at once. ``sleep`` replaces the backoff wait
    (tests); by default the wait ends early when :meth:`close` gives up.
    """

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        sleep: Callable[[float], object] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name or f"webhook:{_safe_name(settings.url)}", settings.queue_size, log)
        self.settings = settings
        self._secret = settings.secret.get_secret_value().encode()
        self._sleep = sleep
        self._client = httpx.Client(timeout=settings.timeout_s, follow_redirects=False)
        self._thread.start()

    # -- worker thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            super()._run()
        finally:
            self._client.close()

    def _deliver(self, event: StreamEvent) -> None:
        body = event.to_json()
        settings = self.settings
        for attempt in range(1, settings.max_attempts + 1):
            error, permanent = self._attempt(event, body)
            if error is None:
                with self._lock:
                    self._delivered += 1
                    self._pending -= 1
                return
            with self._lock:
                self._last_error = error
            if permanent or attempt == settings.max_attempts:
                break
            delay = min(settings.backoff_s * 2 ** (attempt - 1), settings.max_backoff_s)
            if self._wait(delay):
                return  # closing: the event stays counted as pending
            with self._lock:
                self._retries += 1
        with self._lock:
            self._dead_letters += 1
            self._pending -= 1
        log.warning(
            "%s: gave up on event %s (%s) after %d attempt(s): %s",
            self.name,
            event.id,
            event.kind,
            attempt,
            error,
        )

    def _attempt(self, event: StreamEvent, body: bytes) -> tuple[str | None, bool]:
        """One POST; returns (error or None, whether the failure is permanent)."""
        timestamp = int(time.time())  # fresh per attempt: receivers refuse stale ones
        headers = {
            "Content-Type": "application/json",
            "X-Facegate-Event": str(event.kind),
            "X-Facegate-Delivery": event.id,
            "X-Facegate-Timestamp": str(timestamp),
            "X-Facegate-Signature": sign(self._secret, timestamp, body),
        }
        try:
            response = self._client.post(self.settings.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return self._describe(exc), False
        status = response.status_code
        if 200 <= status < 300:
            return None, False
        permanent = 400 <= status < 500 and status not in (408, 429)
        return f"HTTP {status}", permanent

    def _describe(self, exc: Exception) -> str:
        # httpx messages rarely quote the URL, but make sure its path/query never leaks.
        text = str(exc).replace(self.settings.url, self.name)
        return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__

    def _wait(self, delay: float) -> bool:
        """Wait ``delay`` seconds before a retry; True when the sink is shutting down."""
        if self._sleep is not None:
            self._sleep(delay)
            return self._stop.is_set()
        return self._stop.wait(delay)
