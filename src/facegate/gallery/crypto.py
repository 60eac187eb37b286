"""Encryption at rest: AES-256-GCM with the record's identity bound as associated data.

A *data key* has an id; every encrypted record carries the id of the key that sealed it,
so keys can be rotated record by record. Keys live outside the database: in a key file
(JSON, mode 0600) or in ``FACEGATE_ENCRYPTION__KEYS``. Associated data binds a ciphertext
to its template, subject and model: a blob copied onto another row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from facegate.errors import DataKeyError

KEY_FILE_FORMAT = "facegate-data-keys/1"
NONCE_BYTES = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# Sealed with each key and kept in the database: a wrong key with the right id is caught
# when the store opens, not when the first template fails to decrypt.
KEY_CHECK_PLAINTEXT = b"facegate data key check"


def new_key_id() -> str:
    return f"dk-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"


def template_aad(template_id: str, subject_id: str, model_id: str) -> bytes:
    return f"facegate/template/v1|{template_id}|{subject_id}|{model_id}".encode()


def image_aad(template_id: str, subject_id: str) -> bytes:
    return f"facegate/image/v1|{template_id}|{subject_id}".encode()


def snapshot_aad(event_id: str) -> bytes:
    return f"facegate/snapshot/v1|{event_id}".encode()


def key_check_aad(key_id: str) -> bytes:
    return f"facegate/key-check/v1|{key_id}".encode()


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where the keys come from: a file (rotatable by facegate) or the environment."""

    file: Path | None
    env_value: str | None = None

    def describe(self) -> str:
        return str(self.file) if self.env_value is None else "FACEGATE_ENCRYPTION__KEYS"


def _decode_key(key_id: str, text: str, where: str) -> bytes:
    if not _KEY_ID.match(key_id):
        raise DataKeyError(f"{where}: key id {key_id!r} must be 1-32 of A-Z a-z 0-9 _ -")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise DataKeyError(f"{where}: key {key_id!r} is not valid base64") from error
    if len(raw) != 32:
        raise DataKeyError(f"{where}: key {key_id!r} has {len(raw)} bytes; AES-256 needs 32")
    return raw


def parse_env_keys(value: str) -> tuple[str, dict[str, bytes]]:
    """``ID:BASE64[,ID:BASE64...]``: the first key is the active one."""
    keys: dict[str, bytes] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        key_id, sep, text = part.partition(":")
        if not sep:
            raise DataKeyError("FACEGATE_ENCRYPTION__KEYS: each key is written ID:BASE64")
        keys[key_id] = _decode_key(key_id, text, "FACEGATE_ENCRYPTION__KEYS")
    if not keys:
        raise DataKeyError("FACEGATE_ENCRYPTION__KEYS is set but holds no key")
    return next(iter(keys)), keys


def read_key_file(path: Path) -> tuple[str, dict[str, bytes]]:
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataKeyError(f"cannot read the data key file {path}: {error}") from error
    if not isinstance(document, dict) or document.get("format") != KEY_FILE_FORMAT:
        raise DataKeyError(f"{path} is not a facegate data key file ({KEY_FILE_FORMAT})")
    entries = document.get("keys")
    active = document.get("active")
    if not isinstance(entries, dict) or not isinstance(active, str) or active not in entries:
        raise DataKeyError(f"{path}: 'keys' must be an object that includes the 'active' key")
    keys = {}
    for key_id, entry in entries.items():
        text = entry.get("key") if isinstance(entry, dict) else None
        if not isinstance(text, str):
            raise DataKeyError(f"{path}: key {key_id!r} has no 'key' text")
        keys[key_id] = _decode_key(key_id, text, str(path))
    return active, keys


def write_key_file(path: Path, active: str, keys: dict[str, bytes]) -> None:
    """Replace the key file atomically, owner-only (0600), and make it durable."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    document = {
        "format": KEY_FILE_FORMAT,
        "active": active,
        "keys": {k: {"key": base64.b64encode(v).decode()} for k, v in keys.items()},
        "note": "facegate data keys: without them the encrypted templates cannot be read. "
        "Back this file up separately from the database.",
    }
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (json.dumps(document, indent=2) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class Keyring:
    """The data keys. Encrypts with the active key; decrypts with whichever key sealed the
    record, re-reading the key file once if a rotation elsewhere added a key."""

    def __init__(self, active: str, keys: dict[str, bytes], source: KeySource) -> None:
        if active not in keys:
            raise DataKeyError(f"the active key {active!r} is not among the keys")
        self.active = active
        self._keys = dict(keys)
        self.source = source
        self._lock = threading.Lock()
        self._file_stamp = self._stamp()

    @classmethod
    def load(cls, source: KeySource) -> Keyring:
        if source.env_value is not None:
            active, keys = parse_env_keys(source.env_value)
        else:
            assert source.file is not None
            active, keys = read_key_file(source.file)
        return cls(active, keys, source)

    @classmethod
    def create(cls, path: Path) -> Keyring:
        """A new key file with one fresh random key (refuses to overwrite one)."""
        if path.exists():
            raise DataKeyError(f"a data key file already exists at {path}")
        key_id = new_key_id()
        keys = {key_id: AESGCM.generate_key(bit_length=256)}
        write_key_file(path, key_id, keys)
        return cls(key_id, keys, KeySource(path))

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def _stamp(self) -> tuple[int, int] | None:
        if self.source.file is None or self.source.env_value is not None:
            return None
        try:
            info = self.source.file.stat()
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def refresh(self) -> None:
        """Re-read the key file if it changed (a rotation by another process): new records
        must be sealed with the key the rotation made active, not a retired one."""
        stamp = self._stamp()
        if stamp is None or stamp == self._file_stamp:
            return
        assert self.source.file is not None
        try:
            active, keys = read_key_file(self.source.file)
        except DataKeyError:
            return  # mid-replace or damaged: keep the keys we have
        with self._lock:
            self._keys.update(keys)
            self.active = active
            self._file_stamp = stamp

    def has(self, key_id: str) -> bool:
        if key_id not in self._keys:
            self.refresh()
        return key_id in self._keys

    def _aead(self, key_id: str) -> AESGCM:
        if not self.has(key_id):
            raise DataKeyError(
                f"a record is sealed with data key {key_id!r}, which is not in "
                f"{self.source.describe()}"
            )
        return AESGCM(self._keys[key_id])

    def seal(self, plaintext: bytes, aad: bytes, key_id: str | None = None) -> tuple[str, bytes]:
        """``(key id, nonce + ciphertext + tag)`` under the active key (or ``key_id``)."""
        if key_id is None:
            self.refresh()
            key_id = self.active
        nonce = os.urandom(NONCE_BYTES)
        return key_id, nonce + self._aead(key_id).encrypt(nonce, plaintext, aad)

    def open(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        try:
            return self._aead(key_id).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag as error:
            raise DataKeyError(
                f"a record sealed with data key {key_id!r} failed authentication: the key is "
                "wrong or the record was altered or moved"
            ) from error

    def key_check(self, key_id: str) -> bytes:
        return self.seal(KEY_CHECK_PLAINTEXT, key_check_aad(key_id), key_id)[1]

    def matches_check(self, key_id: str, check: bytes) -> bool:
        try:
            return self.open(key_id, check, key_check_aad(key_id)) == KEY_CHECK_PLAINTEXT
        except DataKeyError:
            return False

    @property
    def from_environment(self) -> bool:
        return self.source.env_value is not None

    def add_active(self, key_id: str, key: bytes) -> None:
        """Make a new key the active one, writing the key file first (resumable rotation)."""
        if self.source.file is None or self.from_environment:
            raise DataKeyError("keys from FACEGATE_ENCRYPTION__KEYS cannot be added by facegate")
        with self._lock:
            keys = {**self._keys, key_id: key}
            write_key_file(self.source.file, key_id, keys)
            self._keys, self.active = keys, key_id
            self._file_stamp = self._stamp()

    def retire(self, key_ids: set[str]) -> None:
        """Drop keys that no record uses any more from the key file."""
        if self.source.file is None or self.source.env_value is not None or not key_ids:
            return
        with self._lock:
            keys = {k: v for k, v in self._keys.items() if k not in key_ids or k == self.active}
            write_key_file(self.source.file, self.active, keys)
            self._keys = keys
            self._file_stamp = self._stamp()
