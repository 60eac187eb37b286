"""The embedded default: one SQLite file (WAL), owner-only, deleted bytes zeroed."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event

from facegate.gallery.crypto import Keyring
from facegate.gallery.sql_store import SqlStore

log = logging.getLogger(__name__)


def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    # Deleted rows are overwritten with zeros, so an erased template leaves no bytes behind.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


class SQLiteStore(SqlStore):
    def __init__(self, path: Path, keyring: Keyring | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            # Owner-only from the start: names and metadata are personal data too. SQLite
            # gives the WAL and shared-memory files the database file's permissions.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self.path = path
        engine = create_engine(f"sqlite:///{path}")
        event.listen(engine, "connect", _set_pragmas)
        super().__init__(engine, keyring, str(path))

    def compact(self, attempts: int = 5) -> bool:
        """Copy the WAL into the database and truncate it, so deleted (zeroed) pages leave
        no older copy in the WAL. A reader in the middle of a query can keep it from
        finishing: retried, then logged."""
        for attempt in range(attempts):
            with self.engine.connect() as conn:
                busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
            if busy is not None and busy[0] == 0:
                return True
            time.sleep(0.1 * (attempt + 1))
        log.warning(
            "could not truncate the WAL of %s: a reader kept it busy; erased records may "
            "stay in the WAL file until a later erasure truncates it",
            self.path,
        )
        return False
