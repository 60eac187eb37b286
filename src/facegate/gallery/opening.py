"""Open the embedded store with its data keys: created on first start, refused if missing."""

from __future__ import annotations

import logging

from facegate.config import Settings
from facegate.errors import DataKeyError
from facegate.gallery.crypto import Keyring, KeySource
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
    if settings.db_path.exists():
        try:
            SQLiteStore(settings.db_path).close()
        except DataKeyError as error:
            raise DataKeyError(
                f"{settings.db_path} is encrypted but its data key file {path} is missing: "
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


def open_store(settings: Settings) -> SQLiteStore:
    """The embedded SQLite store in ``settings.data_dir``, with encryption as configured."""
    return SQLiteStore(settings.db_path, load_keyring(settings))
