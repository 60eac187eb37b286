"""Data key rotation: a new key, every sealed record re-encrypted under it, old keys retired.

Resumable: the new key is written to the key file before any record changes, and the
target is remembered in the database; records are re-encrypted in small transactions.
Run again after a crash (even ``kill -9``) and it carries on where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from facegate.errors import DataKeyError
from facegate.gallery.crypto import new_key_id
from facegate.gallery.sql_store import SqlStore

TARGET = "rotation_target"


@dataclass(frozen=True, slots=True)
class Rotation:
    key_id: str
    resumed: bool
    resealed: int
    retired: tuple[str, ...]


def rotate_data_key(
    store: SqlStore,
    *,
    batch_size: int = 200,
    progress: Callable[[int, int], None] | None = None,
) -> Rotation:
    """Rotate to a new data key (or finish an interrupted rotation); ``progress(done, total)``."""
    keyring = store.keyring
    if keyring is None:
        raise DataKeyError("encryption is off: there is no data key to rotate")
    target = store.get_meta(TARGET)
    resumed = target is not None and keyring.has(target)
    if keyring.from_environment:
        # The operator put the new key first in FACEGATE_ENCRYPTION__KEYS; re-seal under it.
        if store.count_not_sealed_with(keyring.active) == 0:
            raise DataKeyError(
                f"every record is already sealed with {keyring.active!r}, the first key in "
                "FACEGATE_ENCRYPTION__KEYS: put a new key (ID:BASE64) first there and run "
                "this again"
            )
        target, resumed = keyring.active, target == keyring.active
        store.set_meta(TARGET, target)
    elif not resumed:
        target = new_key_id()
        keyring.add_active(target, AESGCM.generate_key(bit_length=256))  # the file first
        store.set_meta(TARGET, target)
        store.check_keys()  # records the new key's check value
    assert target is not None
    if keyring.active != target:
        raise DataKeyError(
            f"an interrupted rotation targets key {target!r}, but the active key is "
            f"{keyring.active!r}; restore the key file written by that rotation"
        )
    total = store.count_not_sealed_with(target)
    done = 0
    while True:
        count = store.reseal_batch(target, batch_size)
        if count == 0:
            break
        done += count
        if progress:
            progress(done, total)
    # Keys no record uses any more; the database's list too, in case a crash came between
    # retiring a key from the file and forgetting it here.
    old = (set(keyring.key_ids) | store.known_key_ids()) - {target} - store.key_ids_in_use()
    keyring.retire(old)  # from the key file; keys in the environment are the operator's to drop
    store.forget_data_keys(old)
    store.compact()  # no superseded ciphertext left in the WAL
    store.set_meta(TARGET, None)
    return Rotation(target, resumed, done, tuple(sorted(old)))
