"""What one running service holds: the store, keys, audit log, the loaded models and one
recognizer per collection (so each collection's vector index stays in step with every
write across requests)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import text

from facegate.config import Settings
from facegate.events.publisher import Publisher
from facegate.events.sinks import build_sinks
from facegate.gallery.applications import ApplicationStore
from facegate.gallery.audit import AuditLog
from facegate.gallery.gallery import Gallery
from facegate.gallery.keys import KeyStore
from facegate.gallery.memory_store import MemoryStore
from facegate.gallery.opening import index_options, open_store
from facegate.gallery.records import utc_now
from facegate.gallery.retention import RetentionSweeper, SweepReport
from facegate.gallery.sessions import SessionStore
from facegate.policy.liveness import LivenessSessions
from facegate.policy.quota import QuotaCounter
from facegate.recognition import FaceMatcher, FaceRecognizer
from facegate.service.limits import TokenBucket
from facegate.service.metrics import Metrics
from facegate.service.problems import Problem
from facegate.vision.pipeline import FacePipeline

log = logging.getLogger(__name__)

BOOTSTRAP_KEY_FILE = "bootstrap-admin-key"
T = TypeVar("T")


def write_secret_file(path: Path, secret: str) -> None:
    """Write ``secret`` readable by the owner only (0600), replacing any older file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (secret + "\n").encode())
    finally:
        os.close(fd)


class ServiceState:
    """Everything the routes share. Built by the app's lifespan, closed at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = open_store(settings)
        self.keys = KeyStore(self.store.engine)
        self.sessions = SessionStore(self.store.engine)  # web UI sign-ins
        self.audit = AuditLog(self.store.engine)
        self.metrics = Metrics()
        self.rate = TokenBucket(settings.service.rate_limit, settings.service.rate_burst)
        self.inference: anyio.CapacityLimiter | None = None  # made inside the event loop
        self.bootstrap_secret: str | None = None
        self._pipelines: dict[str, FacePipeline] = {}
        self._recognizers: dict[str, FaceRecognizer] = {}
        # The store generation at which each recognizer's collection settings were read.
        self._settings_read_at: dict[str, int] = {}
        self._lock = threading.RLock()
        self.sweeper = RetentionSweeper(self.store, self.audit, settings.retention)
        self.applications = ApplicationStore(self.store.engine)
        # The time of access decisions (GET/PUT /v1/access...); tests set it to move time.
        self.clock: Callable[[], datetime] = utc_now
        # Quota claims: enrolled ones go to the database; anonymous faces stay in here only.
        self.quota_counter = QuotaCounter()
        # Door actions and other application events go where camera events go.
        self.publisher = Publisher(build_sinks(settings.events, self.store))
        # Liveness sessions: in memory only, never persisted (they hold face embeddings).
        self.liveness = LivenessSessions()
        self._stop_sweeping = threading.Event()
        self._sweeping: threading.Thread | None = None
        self.ready = False

    # --- start and stop ----------------------------------------------------------------
    def start(self) -> None:
        """Load the models and every collection's index once; make a first admin key."""
        self.matcher = FaceMatcher(self.settings, self.pipeline(self.settings.model))
        for collection in self.store.list_collections():
            self.recognizer(collection.name)
        self.bootstrap_secret = self.ensure_admin_key()
        if self.settings.retention.sweep_interval_s > 0:
            self._sweeping = threading.Thread(
                target=self._sweep_forever, name="facegate-retention", daemon=True
            )
            self._sweeping.start()
        self.ready = True

    def close(self) -> None:
        self.ready = False
        self._stop_sweeping.set()
        if self._sweeping is not None:
            self._sweeping.join(timeout=30)
        with self._lock:
            for recognizer in self._recognizers.values():
                if recognizer.gallery.ephemeral:
                    recognizer.gallery.store.close()  # ephemeral faces go with the process
                else:
                    recognizer.gallery.persist()  # large indexes load at the next start
            self._recognizers.clear()
        self.quota_counter.close()  # anonymous quota faces go with the process
        self.publisher.close()
        self.store.close()

    # --- retention -----------------------------------------------------------------------
    def sweep(self) -> SweepReport:
        """One retention pass: durable collections by the sweeper, ephemeral ones by TTL."""
        report = self.sweeper.sweep()
        with self._lock:
            ephemeral = [r.gallery.store for r in self._recognizers.values() if r.gallery.ephemeral]
        for store in ephemeral:
            if isinstance(store, MemoryStore):
                report.erasure += store.purge()
        return report

    def _sweep_forever(self) -> None:
        interval = self.settings.retention.sweep_interval_s
        while not self._stop_sweeping.wait(interval):
            try:
                report = self.sweep()
                log.info("retention sweep: %s", report.as_dict())
            except Exception:  # a failed sweep must not stop the next one
                log.exception("the retention sweep failed; retrying in %.0f s", interval)

    def is_ephemeral(self, collection: str) -> bool:
        """Asked on every request: answered from the loaded recognizer, no query."""
        with self._lock:
            loaded = self._recognizers.get(collection)
        if loaded is not None:
            return loaded.gallery.ephemeral
        found = self.store.get_collection(collection)
        return found is not None and found.ephemeral

    @property
    def bootstrap_key_path(self) -> Path:
        return self.settings.data_dir / BOOTSTRAP_KEY_FILE

    def ensure_admin_key(self) -> str | None:
        """With no active admin key, create one, log it once and write it (0600) to
        ``<data_dir>/bootstrap-admin-key``. Returns the new secret, or None."""
        if self.keys.has_active_admin():
            return None
        key, secret = self.keys.create("bootstrap-admin", ["admin"])
        write_secret_file(self.bootstrap_key_path, secret)
        self.audit.append(
            "key.create", "ok", subject_ids=(), detail={"key": key.id, "via": "bootstrap"}
        )
        log.warning(
            "no active admin key: created bootstrap admin key %s; secret (shown once, "
            "also in %s): %s",
            key.id,
            self.bootstrap_key_path,
            secret,
        )
        return secret

    def store_reachable(self) -> bool:
        try:
            with self.store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # any driver error means "not ready", reported by /ready
            log.exception("the store is not reachable")
            return False
        return True

    # --- models and recognizers ----------------------------------------------------------
    def pipeline(self, model_id: str) -> FacePipeline:
        with self._lock:
            found = self._pipelines.get(model_id)
            if found is None:
                found = FacePipeline(model_id, self.settings.vision)
                self._pipelines[model_id] = found
            return found

    @property
    def loaded_models(self) -> list[str]:
        with self._lock:
            return sorted(self._pipelines)

    def recognizer(self, collection: str) -> FaceRecognizer:
        """The one recognizer of ``collection`` (raises UnknownCollectionError), with the
        collection's settings as stored now: a change (PATCH /v1/collections/{c}, through
        any replica) bumps the store's generation, and is read here at the next request."""
        generation = self.store.generation()  # read first: a later write is seen next time
        with self._lock:
            found = self._recognizers.get(collection)
            if found is None:
                gallery = Gallery.open(
                    self.store, collection, options=index_options(self.settings, collection)
                )
                pipeline = self.pipeline(gallery.collection.model_id)
                found = FaceRecognizer(self.settings, gallery, pipeline)
                self._recognizers[collection] = found
            elif self._settings_read_at.get(collection) != generation:
                self._follow_settings(found)
            self._settings_read_at[collection] = generation
            return found

    def _follow_settings(self, recognizer: FaceRecognizer) -> None:
        """Take the collection's stored operating point, image keeping and retention
        limits; its model and index stay (neither can change)."""
        stored = self.store.get_collection(recognizer.gallery.collection_id)
        if stored is None or stored == recognizer.gallery.collection:
            return  # unchanged, or deleted by another process: nothing to follow
        recognizer.gallery.collection = stored
        recognizer.fmr = stored.fmr

    def forget(self, collection: str) -> None:
        """Drop a durable collection's recognizer (rebuilt, with a fresh index, on next use).
        An ephemeral one is kept unless its collection is gone: its faces live only there."""
        with self._lock:
            found = self._recognizers.get(collection)
            if found is None:
                return
            if found.gallery.ephemeral and self.store.get_collection(collection) is not None:
                return
            del self._recognizers[collection]
            self._settings_read_at.pop(collection, None)
            if found.gallery.ephemeral:
                found.gallery.store.close()

    # --- threads -------------------------------------------------------------------------
    async def infer(self, func: Callable[..., T], *args: Any) -> T:
        """Run model work in the bounded inference pool, off the event loop."""
        if self.inference is None:
            self.inference = anyio.CapacityLimiter(self.settings.service.workers)
        stats = self.inference.statistics()
        busy = stats.borrowed_tokens >= stats.total_tokens
        if busy and stats.tasks_waiting >= self.settings.service.max_queue:
            # Shed load rather than let the queue, and every client's latency, grow unbounded.
            raise Problem(
                503,
                "overloaded",
                f"all {stats.total_tokens} inference threads are busy and "
                f"{stats.tasks_waiting} requests are waiting; retry shortly",
                title="Overloaded",
                headers={"Retry-After": "1"},
            )
        return await anyio.to_thread.run_sync(func, *args, limiter=self.inference)
