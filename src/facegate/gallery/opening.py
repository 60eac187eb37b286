"""Open the configured store with its data keys: created on first start, refused if missing."""

from __future__ import annotations

import logging
from collections.abc import Callable

from facegate.config import Settings
from facegate.errors import DataKeyError
from facegate.gallery.crypto import Keyring, KeySource
from facegate.gallery.gallery import IndexOptions
from facegate.gallery.sql_store import SqlStore
from facegate.gallery.sqlite_store import SQLiteStore

log = logging.getLogger(__name__)


def load_keyring(settings: Settings) -> Keyring | None:
    """The configured data keys; on first start (no key file, no encrypted database) a
    new key file is made, and where it is gets logged. None: encryption is off."""
    encryption = settings.encryption
    if not encryption.enabled:
        return None
    if encryption.keys is not None:
        return Keyring.load(KeySource(None, encryption.keys.get_secret_value()))
    path = settings.data_key_path
    if path.exists():
        return Keyring.load(KeySource(path))
    if settings.database_url is not None or settings.db_path.exists():
        try:
            store_without_keys(settings).close()
        except DataKeyError as error:
            raise DataKeyError(
                f"{describe(settings)} is encrypted but its data key file {path} is missing: "
                "restore the key file (or point FACEGATE_ENCRYPTION__KEY_FILE at it, or set "
                "FACEGATE_ENCRYPTION__KEYS). Without the key the templates cannot be read."
            ) from error
    keyring = Keyring.create(path)
    log.warning(
        "created data key %s in %s (mode 0600): it encrypts every template. Back it up "
        "apart from the database; without it the gallery cannot be read.",
        keyring.active,
        path,
    )
    return keyring


def describe(settings: Settings) -> str:
    if settings.database_url is None:
        return str(settings.db_path)
    return "the PostgreSQL database"


def store_without_keys(settings: Settings) -> SqlStore:
    return _open(settings, None)


def _open(settings: Settings, keyring: Keyring | None) -> SqlStore:
    if settings.database_url is not None:
        from facegate.gallery.postgres_store import PostgresStore  # psycopg only when asked

        return PostgresStore(
            settings.database_url.get_secret_value(),
            keyring,
            search_in_database=settings.database_search,
        )
    return SQLiteStore(settings.db_path, keyring)


def open_store(settings: Settings) -> SqlStore:
    """The configured store, with encryption as configured: PostgreSQL when
    ``database_url`` is set, else the embedded SQLite file in ``settings.data_dir``."""
    return _open(settings, load_keyring(settings))


def index_options(settings: Settings, collection: str = "") -> IndexOptions:
    """Where and how galleries keep their in-memory index (``<data_dir>/index``)."""
    return IndexOptions(
        directory=settings.data_dir / "index",
        approximate_above=settings.gallery.approximate_above,
        progress=_build_progress(collection),
    )


def _build_progress(collection: str) -> Callable[[int, int], None]:
    """Logs an index build every tenth of the way."""
    told = {"tenth": -1}

    def report(done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth != told["tenth"]:
            told["tenth"] = tenth
            log.warning(
                "building the search index%s: %d of %d templates (%d%%)",
                f" of {collection}" if collection else "",
                done,
                total,
                done * 100 // max(total, 1),
            )

    return report
