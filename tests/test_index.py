"""The in-memory index: exact below a size, two stages above it (quantised scan, exact
re-scoring); erasure from both; a saved, sealed index that a restart loads (and brings up
to date) instead of rebuilding.

Vectors are synthetic unit vectors (random or clustered): the realistic recall figures
come from benchmarks/search_index.py on face-like embeddings (docs/scaling.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegate.gallery.crypto import Keyring
from facegate.gallery.gallery import Gallery, IndexOptions
from facegate.gallery.index import VectorIndex, _vectors
from facegate.gallery.index_files import index_path
from facegate.gallery.records import Subject, Template, new_id
from facegate.gallery.sqlite_store import SQLiteStore
from facegate.vision.embed import ScoreSpace
from helpers import TEST_CONSENT

DIM = 64


def vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def templates(vs: np.ndarray, prefix: str = "t") -> list[Template]:
    return [Template(f"{prefix}{i}", f"s{i}", "m", v, 0.9) for i, v in enumerate(vs)]


def test_the_index_turns_approximate_above_its_threshold_and_keeps_recall() -> None:
    data = vectors(4000)
    exact = VectorIndex(DIM, approximate_above=10_000)
    graph = VectorIndex(DIM, approximate_above=1000)
    exact.add(templates(data))
    graph.add(templates(data[:800]))
    assert not graph.approximate
    graph.add(templates(data)[800:])  # crossing the threshold builds the quantised copy
    assert graph.approximate and len(graph) == 4000
    queries = vectors(300, seed=1) * 0.3 + data[:300] * 0.7  # near a known template
    same = [
        graph.search(q / np.linalg.norm(q), 1)[0][0] == exact.search(q / np.linalg.norm(q), 1)[0][0]
        for q in queries
    ]
    assert np.mean(same) >= 0.99


def test_erasing_from_a_two_stage_index_removes_the_row_everywhere() -> None:
    data = vectors(2000)
    index = VectorIndex(DIM, approximate_above=500)
    index.add(templates(data))
    assert index.approximate
    assert index.remove(["t7"]) == 1 and index.remove(["t7"]) == 0
    assert all(row[0] != "t7" for row in index.search(data[7], 50))
    assert len(index) == 1999 and index._codes.ntotal == index._exact.ntotal == 1999
    # Rows after the erased one moved up in both stages: still found, with their own ids.
    assert index.search(data[1500], 1)[0][:2] == ("t1500", "s1500")
    assert not any(np.array_equal(v, data[7]) for v in _vectors(index._exact))
    index.remove([f"t{i}" for i in range(100, 1900)])  # small again: back to exact
    assert not index.approximate and index.search(data[1950], 1)[0][0] == "t1950"


def make_gallery(tmp_path: Path, directory: Path | None, keyring: Keyring) -> Gallery:
    store = SQLiteStore(tmp_path / "g.sqlite3", keyring)
    options = IndexOptions(directory=directory, approximate_above=300)
    return Gallery.open(store, "site", create_with_model="m", options=options)


def enroll(gallery: Gallery, vs: np.ndarray) -> list[Subject]:
    people = []
    for v in vs:
        subject = Subject(id=new_id(), display_name="p", collection_id="site")
        gallery.add_subject(
            subject, [Template(new_id(), subject.id, "m", v, 0.9)], TEST_CONSENT.record(subject.id)
        )
        people.append(subject)
    return people


def test_a_saved_index_is_loaded_sealed_and_brought_up_to_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring = Keyring.create(tmp_path / "keys.json")
    directory = tmp_path / "index"
    data = vectors(600)
    first = make_gallery(tmp_path, directory, keyring)
    people = enroll(first, data[:500])
    first.store.close()

    builder = make_gallery(tmp_path, directory, keyring)
    assert builder.load_index("m", DIM).approximate  # built from the store, then saved
    saved = index_path(directory, "site", "m")
    assert saved.exists() and saved.stat().st_mode & 0o777 == 0o600
    on_disk = saved.read_bytes()
    assert not any(v.tobytes()[:32] in on_disk for v in data[:50])  # sealed, not plaintext
    builder.store.close()

    # Another process enrolls more and erases one person meanwhile (the file is stale).
    writer = Gallery.open(SQLiteStore(tmp_path / "g.sqlite3", keyring), "site")
    newcomers = enroll(writer, data[500:])
    writer.store.close()

    restarted = make_gallery(tmp_path, directory, keyring)

    def no_rebuild(*args: object, **kwargs: object) -> None:
        raise AssertionError("the saved index should have been loaded, not rebuilt")

    monkeypatch.setattr(restarted.store, "iter_templates", no_rebuild)
    index = restarted.load_index("m", DIM)
    assert len(index) == 600
    found = restarted.search("m", data[550], ScoreSpace(), 1)
    assert found[0].subject_id == newcomers[50].id  # added since the save: reconciled
    monkeypatch.undo()

    restarted.erase_subject(people[3].id)
    assert not saved.exists()  # the erased vector must not survive in a saved file
    assert all(
        c.subject_id != people[3].id for c in restarted.search("m", data[3], ScoreSpace(), 5)
    )
    restarted.persist()
    assert saved.exists()
    reopened = make_gallery(tmp_path, directory, keyring)
    assert len(reopened.load_index("m", DIM)) == 599


def test_an_unreadable_saved_index_is_rebuilt(tmp_path: Path) -> None:
    keyring = Keyring.create(tmp_path / "keys.json")
    directory = tmp_path / "index"
    gallery = make_gallery(tmp_path, directory, keyring)
    enroll(gallery, vectors(400))
    gallery.store.close()
    path = index_path(directory, "site", "m")
    path.parent.mkdir(parents=True)
    path.write_bytes(b'facegate-index/1\n{"key_id": null, "sizes": [5]}\ngarbage')
    again = make_gallery(tmp_path, directory, keyring)
    assert len(again.load_index("m", DIM)) == 400
