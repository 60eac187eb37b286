"""A built vector index on disk, so that a restart does not decrypt and index a large
gallery again.

The file holds every vector of the index, so it is sealed like the templates: AES-256-GCM
with the active data key, the collection and model bound as associated data, written
owner-only and atomically. An unreadable or stale file is never trusted: the caller
rebuilds from the store (and reconciles a readable one with it).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from zipfile import BadZipFile

from facegate.errors import DataKeyError
from facegate.gallery.crypto import Keyring
from facegate.gallery.index import Progress, VectorIndex

log = logging.getLogger(__name__)
MAGIC = b"facegate-index/1\n"
# AES-GCM through `cryptography` takes at most 2**31 - 1 bytes at once: seal in pieces.
CHUNK = 256 * 1024 * 1024


def index_path(directory: Path, collection: str, model_id: str) -> Path:
    return directory / f"{collection}.{model_id}.index"


def _aad(collection: str, model_id: str, chunk: int, chunks: int) -> bytes:
    return f"facegate/index/v1|{collection}|{model_id}|{chunk}/{chunks}".encode()


def save_index(
    path: Path, index: VectorIndex, keyring: Keyring | None, collection: str, model_id: str
) -> None:
    plain = index.to_bytes()
    pieces = [plain[i : i + CHUNK] for i in range(0, len(plain), CHUNK)] or [b""]
    key_id = keyring.active if keyring is not None else None
    if keyring is not None:
        pieces = [
            keyring.seal(piece, _aad(collection, model_id, i, len(pieces)), key_id)[1]
            for i, piece in enumerate(pieces)
        ]
    sizes = [len(piece) for piece in pieces]
    header = json.dumps({"key_id": key_id, "sizes": sizes}).encode() + b"\n"
    data = b"".join(pieces)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(MAGIC + header + data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def load_index(
    path: Path,
    keyring: Keyring | None,
    collection: str,
    model_id: str,
    progress: Progress | None = None,
) -> VectorIndex | None:
    """The saved index, or None if there is none or it cannot be trusted (logged)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        if not raw.startswith(MAGIC):
            raise ValueError("not a facegate index file")
        header, _, data = raw[len(MAGIC) :].partition(b"\n")
        described = json.loads(header)
        key_id, sizes = described["key_id"], described["sizes"]
        if sum(sizes) != len(data):
            raise ValueError("the index file is truncated")
        pieces, offset = [], 0
        for size in sizes:
            pieces.append(data[offset : offset + size])
            offset += size
        if key_id is not None:
            if keyring is None:
                raise DataKeyError("the index file is sealed and no data key was given")
            pieces = [
                keyring.open(key_id, piece, _aad(collection, model_id, i, len(pieces)))
                for i, piece in enumerate(pieces)
            ]
        return VectorIndex.from_bytes(b"".join(pieces), progress)
    except (ValueError, KeyError, OSError, EOFError, BadZipFile, DataKeyError) as error:
        log.warning("ignoring the saved index %s (%s); rebuilding it from the store", path, error)
        return None
