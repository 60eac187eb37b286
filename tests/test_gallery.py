"""Gallery mechanics: store and index stay in step. Vectors here are synthetic unit vectors:
these tests check bookkeeping, not recognition accuracy (real photos test that)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegate.errors import (
    AmbiguousSubjectError,
    DuplicateCollectionError,
    DuplicateSubjectError,
    UnknownCollectionError,
    UnknownSubjectError,
    UnknownTemplateError,
)
from facegate.gallery.gallery import Gallery
from facegate.gallery.records import Collection, Subject, Template, new_id
from facegate.gallery.sqlite_store import SQLiteStore
from facegate.vision.embed import ScoreSpace
from helpers import TEST_CONSENT

DIM = 8


def unit(*values: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(values)] = values
    return (v / np.linalg.norm(v)).astype(np.float32)


def subject_with(
    gallery: Gallery, name: str, *vectors: np.ndarray, external_id: str | None = None
) -> Subject:
    subject = Subject(
        id=new_id(),
        display_name=name,
        external_id=external_id,
        collection_id=gallery.collection_id,
    )
    templates = [Template(new_id(), subject.id, "m", v, 0.9) for v in vectors]
    gallery.add_subject(subject, templates, TEST_CONSENT.record(subject.id))
    return subject


@pytest.fixture()
def gallery(tmp_path: Path) -> Gallery:
    return Gallery.open(SQLiteStore(tmp_path / "g.sqlite3"), "site-a", create_with_model="m")


def test_search_ranks_subjects_by_their_best_template(gallery: Gallery) -> None:
    ann = subject_with(gallery, "Ann", unit(1, 0), unit(0, 1))
    bob = subject_with(gallery, "Bob", unit(1, 1))
    found = gallery.search("m", unit(0, 1), ScoreSpace(), k=5)
    assert [c.subject_id for c in found] == [ann.id, bob.id]
    assert found[0].similarity == pytest.approx(1.0, abs=1e-6)
    assert found[1].similarity == pytest.approx(np.sqrt(0.5), abs=1e-6)
    assert len(gallery.search("m", unit(0, 1), ScoreSpace(), k=1)) == 1


def test_score_space_weights_and_offset_apply(gallery: Gallery) -> None:
    subject_with(gallery, "Ann", unit(1, 0))
    space = ScoreSpace(weights=np.full(DIM, 2.0, dtype=np.float32), offset=-0.5)
    assert gallery.search("m", unit(1, 0), space, k=1)[0].similarity == pytest.approx(1.5)


def test_removal_reaches_the_index(gallery: Gallery) -> None:
    ann = subject_with(gallery, "Ann", unit(1, 0), unit(0, 1))
    gallery.search("m", unit(1, 0), ScoreSpace(), k=1)  # index now loaded
    first = gallery.store.subject_templates(ann.id)[0]
    gallery.remove_template(first.id)
    left = gallery.search("m", first.embedding, ScoreSpace(), k=1)
    assert left[0].similarity < 0.99
    gallery.erase_subject(ann.id)
    assert gallery.search("m", unit(1, 0), ScoreSpace(), k=3) == []
    with pytest.raises(UnknownSubjectError):
        gallery.erase_subject(ann.id)
    with pytest.raises(UnknownTemplateError):
        gallery.remove_template(first.id)


def test_a_refused_write_leaves_store_and_index_unchanged(gallery: Gallery) -> None:
    subject_with(gallery, "Ann", unit(1, 0), external_id="emp-1")
    gallery.search("m", unit(1, 0), ScoreSpace(), k=1)
    with pytest.raises(DuplicateSubjectError):
        subject_with(gallery, "Impostor", unit(0, 1), external_id="emp-1")
    assert gallery.store.count_subjects() == 1
    assert gallery.search("m", unit(0, 1), ScoreSpace(), k=5)[0].display_name == "Ann"
    assert len(gallery.search("m", unit(0, 1), ScoreSpace(), k=5)) == 1


def test_index_is_rebuilt_from_the_store(tmp_path: Path) -> None:
    first = Gallery.open(SQLiteStore(tmp_path / "g.sqlite3"), "site-a", create_with_model="m")
    ann = subject_with(first, "Ann", unit(1, 0))
    first.store.close()
    again = Gallery.open(SQLiteStore(tmp_path / "g.sqlite3"), "site-a")
    assert again.search("m", unit(1, 0), ScoreSpace(), k=1)[0].subject_id == ann.id
    assert again.search("other-model", unit(1, 0), ScoreSpace(), k=1) == []


def test_resolve_by_id_external_id_and_unique_name(gallery: Gallery) -> None:
    ann = subject_with(gallery, "Ann", unit(1, 0), external_id="emp-1")
    assert gallery.resolve(ann.id) == gallery.resolve("emp-1") == gallery.resolve("Ann")
    subject_with(gallery, "Bob", unit(0, 1))
    subject_with(gallery, "Bob", unit(1, 1))
    with pytest.raises(AmbiguousSubjectError):
        gallery.resolve("Bob")
    with pytest.raises(UnknownSubjectError):
        gallery.resolve("Carol")


@pytest.mark.parametrize(
    ("name", "embedding", "message"),
    [
        ("   ", unit(1), "display_name"),
        ("x" * 201, unit(1), "200"),
        ("Ann", np.zeros((2, DIM), dtype=np.float32), "(D,)"),
        ("Ann", np.zeros(DIM, dtype=np.float64), "float32"),
    ],
)
def test_records_validate_on_construction(name: str, embedding: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        subject = Subject(id=new_id(), display_name=name)
        Template(new_id(), subject.id, "m", embedding, 0.5)


def test_collections_keep_their_people_apart(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "g.sqlite3")
    site_a = Gallery.open(store, "site-a", create_with_model="m")
    site_b = Gallery.open(store, "site-b", create_with_model="m")
    ann = subject_with(site_a, "Ann", unit(1, 0), external_id="emp-1")
    bob = subject_with(site_b, "Bob", unit(1, 0), external_id="emp-1")  # same key, other site
    assert [c.subject_id for c in site_a.search("m", unit(1, 0), ScoreSpace(), k=5)] == [ann.id]
    assert [c.subject_id for c in site_b.search("m", unit(1, 0), ScoreSpace(), k=5)] == [bob.id]
    assert site_a.resolve("emp-1").id == ann.id
    with pytest.raises(UnknownSubjectError):
        site_a.resolve(bob.id)
    with pytest.raises(UnknownSubjectError):
        site_a.erase_subject(bob.id)
    with pytest.raises(UnknownTemplateError):
        site_a.remove_template(store.subject_templates(bob.id)[0].id)
    assert store.remove_collection("site-b") == 1
    assert store.get_subject(bob.id) is None and store.get_subject(ann.id) is not None


def test_collections_are_named_and_must_exist(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "g.sqlite3")
    with pytest.raises(UnknownCollectionError):
        Gallery.open(store, "nowhere")
    Gallery.open(store, "site-a", create_with_model="m")
    with pytest.raises(DuplicateCollectionError):
        store.add_collection(Collection("site-a", "m"))
    for bad in ("", "Has Space", "../etc", "x" * 65):
        with pytest.raises(ValueError):
            Collection(bad, "m")
    with pytest.raises(ValueError):
        Collection("ok", "m", fmr=0.5)


def test_a_removal_by_another_process_is_seen_at_once(tmp_path: Path) -> None:
    # Two gallery objects on one database stand for two processes (a service and a CLI).
    serving = Gallery.open(SQLiteStore(tmp_path / "g.sqlite3"), "site-a", create_with_model="m")
    ann = subject_with(serving, "Ann", unit(1, 0))
    assert serving.search("m", unit(1, 0), ScoreSpace(), k=1)[0].subject_id == ann.id
    other = Gallery.open(SQLiteStore(tmp_path / "g.sqlite3"), "site-a")
    other.erase_subject(ann.id)
    assert serving.search("m", unit(1, 0), ScoreSpace(), k=1) == []
    bob = subject_with(other, "Bob", unit(0, 1))
    assert serving.search("m", unit(0, 1), ScoreSpace(), k=1)[0].subject_id == bob.id


def test_top_k_reaches_past_a_subject_with_many_templates(gallery: Gallery) -> None:
    many = subject_with(gallery, "Many", *[unit(1, 0.01 * i) for i in range(60)])
    others = [subject_with(gallery, f"P{i}", unit(1, 1 + i)) for i in range(4)]
    found = gallery.search("m", unit(1, 0), ScoreSpace(), k=5)
    assert found[0].subject_id == many.id
    assert {c.subject_id for c in found[1:]} == {o.id for o in others}


def test_search_and_update_subjects(gallery: Gallery) -> None:
    ann = subject_with(gallery, "Ann Smith", unit(1, 0), external_id="e1")
    subject_with(gallery, "Bob_%Smith", unit(0, 1))
    subject_with(gallery, "Carol", unit(1, 1))
    found, total = gallery.search_subjects(name_contains="smith", limit=1)
    assert total == 2 and len(found) == 1
    assert gallery.search_subjects(name_contains="_%")[1] == 1  # LIKE wildcards are literal
    assert gallery.search_subjects(external_id="e1")[0] == [ann]
    renamed = gallery.update_subject(ann.id, display_name="Ann Jones", metadata={"desk": 4})
    assert (renamed.display_name, renamed.metadata, renamed.external_id) == (
        "Ann Jones",
        {"desk": 4},
        "e1",
    )
    assert gallery.search("m", unit(1, 0), ScoreSpace(), k=1)[0].display_name == "Ann Jones"
    with pytest.raises(DuplicateSubjectError):
        gallery.update_subject(
            gallery.search_subjects(name_contains="carol")[0][0].id, external_id="e1"
        )


@pytest.mark.parametrize(
    "change",
    [{"display_name": "  "}, {"external_id": "x" * 201}, {"metadata": {"bad": object()}}],
)
def test_updates_are_validated_like_new_subjects(
    gallery: Gallery, change: dict[str, object]
) -> None:
    from facegate.errors import InvalidSubjectError

    ann = subject_with(gallery, "Ann", unit(1, 0))
    with pytest.raises(InvalidSubjectError):
        gallery.update_subject(ann.id, **change)  # type: ignore[arg-type]
    assert gallery.store.get_subject(ann.id) == ann
