"""Quotas without the service: definitions and their errors, the sliding window, the
anonymous face memory (synthetic unit vectors, an injected clock) and enrolled claims in a
real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facegate.errors import ModelMismatchError, PolicyError
from facegate.gallery.applications import ApplicationStore
from facegate.gallery.postgres_store import PostgresStore
from facegate.gallery.records import Collection, Subject, new_id
from facegate.gallery.sql_store import SqlStore
from facegate.gallery.sqlite_store import SQLiteStore
from facegate.policy.quota import (
    DEFAULT_ANONYMOUS_FMR,
    QUOTAS_DOCUMENT,
    InvalidQuotaError,
    QuotaCounter,
    QuotaDefinition,
    QuotaMemoryFullError,
    QuotaSet,
    check_collections,
    load_quotas,
    parse_quotas,
    quotas_from_document,
    unknown_person,
    window_answer,
)
from facegate.policy.thresholds import operating_point
from facegate.types import OperatingPoint
from helpers import TEST_CONSENT

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
POINT = operating_point("sface", 1e-4)  # threshold about 0.416


def quota(**fields: Any) -> QuotaDefinition:
    base: dict[str, Any] = {"name": "snack", "limit": 1, "window_s": 540, "mode": "anonymous"}
    return QuotaDefinition.model_validate(base | fields)


class Clock:
    """A settable clock: ``clock.at(seconds)`` moves it to T0 + seconds."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = T0 + timedelta(seconds=seconds)


# --- definitions ------------------------------------------------------------------------------
def test_definitions_parse_and_round_trip() -> None:
    data = [
        {"name": "snack", "limit": 1, "window_s": 540, "mode": "anonymous"},
        {
            "name": "meals",
            "limit": 3,
            "window_s": 86400,
            "mode": "enrolled",
            "collection": "staff",
            "fmr": 0.001,
            "description": "3 meals per day",
        },
    ]
    quotas = parse_quotas(data)
    assert quotas.names == ["snack", "meals"] and len(quotas) == 2 and "meals" in quotas
    snack, meals = quotas.get("snack"), quotas.get("meals")
    assert snack is not None and meals is not None and quotas.get("nope") is None
    assert snack.matching_fmr == DEFAULT_ANONYMOUS_FMR == 1e-4  # strict by default
    assert meals.matching_fmr == 1e-3 and meals.window == timedelta(days=1)
    assert quotas_from_document(quotas.as_document()) == quotas
    assert quotas.as_document()[QUOTAS_DOCUMENT][0] == {
        "name": "snack",
        "limit": 1,
        "window_s": 540.0,
        "mode": "anonymous",
    }
    assert quota(mode="enrolled", collection="staff").matching_fmr is None  # the collection's
    assert quotas_from_document(None) == QuotaSet() and parse_quotas([]) == QuotaSet()


GOOD: dict[str, Any] = {"name": "snack", "limit": 1, "window_s": 540, "mode": "anonymous"}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([GOOD | {"limit": 0}], ["quotas[0].limit", "greater than or equal to 1", "got 0"]),
        ([GOOD | {"limit": -3}], ["quotas[0].limit"]),
        ([GOOD | {"limit": 1.5}], ["quotas[0].limit", "integer"]),
        ([GOOD | {"limit": True}], ["quotas[0].limit", "integer"]),
        ([GOOD | {"window_s": 0}], ["quotas[0].window_s", "greater than 0"]),
        ([GOOD | {"window_s": -60}], ["quotas[0].window_s"]),
        ([GOOD | {"window_s": float("inf")}], ["quotas[0].window_s", "finite"]),
        ([GOOD | {"window_s": 8 * 86400}], ["quotas[0].window_s", "7 days"]),
        ([GOOD | {"fmr": 0.05}], ["quotas[0].fmr", "0.01, 0.001, 0.0001", "0.05"]),
        ([GOOD | {"fmr": 1e-5}], ["quotas[0].fmr"]),
        ([GOOD | {"mode": "guess"}], ["quotas[0].mode", "'enrolled' or 'anonymous'"]),
        ([GOOD | {"name": "Snack Bar"}], ["quotas[0].name", "pattern"]),
        ([GOOD | {"name": "x" * 65}], ["quotas[0].name"]),
        ([GOOD | {"colour": "red"}], ["quotas[0].colour: unknown field"]),
        ([{k: v for k, v in GOOD.items() if k != "mode"}], ["quotas[0].mode: required"]),
        ([GOOD | {"mode": "enrolled"}], ["quotas[0].collection", "enrolled quota needs"]),
        ([GOOD | {"collection": "Not A Name"}], ["quotas[0].collection"]),
        ([GOOD | {"description": "x" * 501}], ["quotas[0].description"]),
        ([GOOD, GOOD], ["quotas[1].name", "duplicate quota name 'snack'", "quotas[0]"]),
        ([GOOD, "snack"], ["quotas[1]: expected an object"]),
        ({"quotas": [GOOD]}, ["quotas: expected a list"]),
        # every bad field is named at once, across definitions
        (
            [GOOD | {"limit": 0}, GOOD | {"name": "b", "window_s": 0, "fmr": 2}],
            ["quotas[0].limit", "quotas[1].window_s", "quotas[1].fmr"],
        ),
    ],
)
def test_bad_definitions_are_named(data: Any, expected: list[str]) -> None:
    with pytest.raises(InvalidQuotaError) as caught:
        parse_quotas(data)
    error = caught.value
    assert isinstance(error, PolicyError) and error.code == "invalid_policy"
    for fragment in expected:
        assert fragment in str(error), (fragment, str(error))
    assert error.errors and all(e.startswith("quotas") for e in error.errors)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([GOOD], "must be an object"),
        ({"quota": [GOOD]}, "quota: unknown field"),
        ({}, "quotas: required"),
        ({"quotas": [GOOD | {"limit": 0}]}, "quotas[0].limit"),
    ],
)
def test_bad_documents_are_named(document: Any, expected: str) -> None:
    with pytest.raises(InvalidQuotaError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        quotas_from_document(document)


def test_enrolled_quotas_need_a_durable_collection() -> None:
    quotas = parse_quotas(
        [
            GOOD | {"name": "a", "mode": "enrolled", "collection": "staff"},
            GOOD | {"name": "b", "mode": "enrolled", "collection": "missing"},
            GOOD | {"name": "c", "mode": "enrolled", "collection": "visit"},
            GOOD | {"name": "d", "collection": "visit"},  # anonymous: a label for keys only
        ]
    )
    collections = [
        Collection("staff", "sface"),
        Collection("visit", "sface", ephemeral=True, ttl_seconds=600),
    ]
    with pytest.raises(InvalidQuotaError) as caught:
        check_collections(quotas, collections)
    assert caught.value.errors == (
        "quotas[1].collection: no collection named 'missing'",
        "quotas[2].collection: 'visit' is ephemeral; an enrolled quota needs a durable "
        "collection (use mode 'anonymous' for passing faces)",
    )
    check_collections(parse_quotas([GOOD]), [])


# --- the sliding window -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("limit", "window_s", "claims", "now", "granted", "remaining", "retry_after_s"),
    [
        (1, 540, [], 0, True, 0, None),
        (3, 540, [], 0, True, 2, None),
        (1, 540, [0], 100, False, 0, 440.0),  # the oldest claim frees the slot
        (1, 540, [0], 539.5, False, 0, 0.5),
        (1, 540, [0], 540, True, 0, None),  # a claim counts until window_s later, exclusive
        (1, 540, [-2000], 0, True, 0, None),  # long gone
        (3, 1000, [0, 100], 300, True, 0, None),
        (3, 1000, [0, 100, 200], 300, False, 0, 700.0),
        (3, 1000, [200, 0, 100], 300, False, 0, 700.0),  # any order
        (3, 1000, [-900, 100, 200], 300, True, 0, None),  # -900 left at 100
        # more claims than the limit (it was lowered): wait until only limit - 1 remain
        (2, 1000, [0, 100, 200], 300, False, 0, 800.0),
        (1, 60, [0], 0, False, 0, 60.0),  # the same instant
    ],
)
def test_sliding_window(
    limit: int,
    window_s: float,
    claims: list[float],
    now: float,
    granted: bool,
    remaining: int,
    retry_after_s: float | None,
) -> None:
    definition = quota(limit=limit, window_s=window_s)
    answer = window_answer(
        definition, [T0 + timedelta(seconds=c) for c in claims], T0 + timedelta(seconds=now)
    )
    assert (answer.granted, answer.remaining, answer.retry_after_s) == (
        granted,
        remaining,
        retry_after_s,
    )
    assert answer.reason == ("within_limit" if granted else "limit_reached")
    assert answer.quota == "snack" and answer.at == T0 + timedelta(seconds=now)


def test_an_unknown_person_is_denied_without_a_wait() -> None:
    answer = unknown_person(quota(), T0)
    assert (answer.granted, answer.reason, answer.retry_after_s) == (False, "unknown_person", None)


# --- anonymous memory ---------------------------------------------------------------------------
def unit(seed: int, dim: int = 128) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def near(v: np.ndarray, cosine: float, seed: int = 99) -> np.ndarray:
    """A unit vector whose cosine with ``v`` is ``cosine``."""
    other = unit(seed, v.shape[0])
    other = other - (other @ v) * v
    other /= np.linalg.norm(other)
    out = cosine * v + np.sqrt(1 - cosine**2) * other
    return (out / np.linalg.norm(out)).astype(np.float32)


ALICE, BOB = unit(1), unit(2)


@dataclass(frozen=True)
class Step:
    at: float  # seconds after T0
    face: np.ndarray
    granted: bool
    remaining: int = 0
    retry_after_s: float | None = None


# Same person = cosine at or above the 1e-4 threshold (about 0.416) with a remembered face.
ANONYMOUS_SCENARIOS: dict[str, tuple[int, float, list[Step]]] = {
    "one per window": (
        1,
        540,
        [
            Step(0, ALICE, True),
            Step(60, near(ALICE, 0.7), False, 0, 480.0),  # another photo of her
            Step(61, BOB, True),  # a stranger (cosine about 0)
            Step(120, ALICE, False, 0, 420.0),  # denied claims are not remembered
            Step(540, near(ALICE, 0.8), True),  # her first claim left the window
            Step(541, BOB, False, 0, 60.0),  # his claim at 61 still counts
        ],
    ),
    "threshold is inclusive": (
        1,
        540,
        [
            Step(0, ALICE, True),
            Step(1, near(ALICE, POINT.threshold + 1e-4), False, 0, 539.0),
            Step(2, near(ALICE, POINT.threshold - 0.01), True),  # below: someone else
        ],
    ),
    "three a day": (
        3,
        86400,
        [
            Step(0, ALICE, True, 2),
            Step(3600, near(ALICE, 0.75), True, 1),
            Step(7200, BOB, True, 2),
            Step(7201, near(ALICE, 0.9, 5), True, 0),
            Step(7202, ALICE, False, 0, 86400 - 7202.0),
            Step(86400, ALICE, True, 0),  # the first left; two remain, this one is the third
            Step(86401, ALICE, False, 0, 3600 + 86400 - 86401.0),
        ],
    ),
}


@pytest.mark.parametrize("scenario", sorted(ANONYMOUS_SCENARIOS))
def test_anonymous_claims(scenario: str) -> None:
    limit, window_s, steps = ANONYMOUS_SCENARIOS[scenario]
    clock = Clock()
    counter = QuotaCounter(clock)
    definition = quota(limit=limit, window_s=window_s)
    try:
        for i, step in enumerate(steps):
            clock.at(step.at)
            answer = counter.claim_anonymous(definition, step.face, POINT)
            got = (answer.granted, answer.remaining, answer.retry_after_s)
            assert got == (step.granted, step.remaining, step.retry_after_s), (i, answer)
            if answer.granted and answer.similarity is None:
                assert answer.reason == "within_limit"
            if not answer.granted:
                assert answer.similarity is not None and answer.similarity >= POINT.threshold
    finally:
        counter.close()


def test_anonymous_faces_are_gone_after_the_window() -> None:
    clock = Clock()
    counter = QuotaCounter(clock)
    snack, meals = quota(window_s=60), quota(name="meals", limit=3, window_s=600)
    counter.claim_anonymous(snack, ALICE, POINT)
    counter.claim_anonymous(meals, ALICE, POINT)
    clock.at(30)
    counter.claim_anonymous(snack, BOB, POINT)
    assert (counter.faces(), counter.faces("snack"), counter.faces("meals")) == (3, 2, 1)
    clock.at(60)
    assert counter.faces("snack") == 1  # ALICE's left, BOB's stays until 90
    clock.at(90)
    assert (counter.faces("snack"), counter.faces()) == (0, 1)
    clock.at(600)
    assert counter.faces() == 0 and counter.purge() == 0
    assert not counter._memories  # nothing kept, not even an empty memory
    counter.close()


def test_new_definitions_forget_the_faces_of_quotas_that_went() -> None:
    counter = QuotaCounter(Clock())
    counter.claim_anonymous(quota(), ALICE, POINT)
    counter.claim_anonymous(quota(name="other"), ALICE, POINT)
    counter.claim_anonymous(quota(name="turned"), ALICE, POINT)
    kept = QuotaSet((quota(), quota(name="turned", mode="enrolled", collection="staff")))
    assert counter.apply(kept) == 2
    assert (counter.faces("snack"), counter.faces("other"), counter.faces("turned")) == (1, 0, 0)
    # A shorter window applies to faces already remembered.
    counter.clock = lambda: T0 + timedelta(seconds=100)
    assert counter.apply(QuotaSet((quota(window_s=90),))) == 1
    assert counter.faces() == 0
    counter.close()


def test_a_full_memory_refuses_rather_than_grants() -> None:
    counter = QuotaCounter(Clock(), max_faces=2)
    definition = quota()
    counter.claim_anonymous(definition, unit(10), POINT)
    counter.claim_anonymous(definition, unit(11), POINT)
    assert not counter.claim_anonymous(definition, unit(10), POINT).granted  # still matched
    with pytest.raises(QuotaMemoryFullError):
        counter.claim_anonymous(definition, unit(12), POINT)
    assert counter.faces() == 2
    counter.close()


def test_the_memory_grows_past_its_first_block() -> None:
    counter = QuotaCounter(Clock())
    definition = quota()
    faces = [unit(100 + i) for i in range(40)]
    assert all(counter.claim_anonymous(definition, f, POINT).granted for f in faces)
    assert not any(counter.claim_anonymous(definition, f, POINT).granted for f in faces)
    assert counter.faces() == 40
    counter.close()


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: (quota(mode="enrolled", collection="staff"), ALICE, POINT), PolicyError),
        (lambda: (quota(), np.zeros(128, np.float32), POINT), ValueError),
        (lambda: (quota(), np.full(128, np.nan, np.float32), POINT), ValueError),
        (lambda: (quota(), unit(3, 64), POINT), ValueError),  # after a 128-d face
        (lambda: (quota(), ALICE, OperatingPoint("dlib", 1e-4, 0.94)), ModelMismatchError),
    ],
)
def test_anonymous_claims_refuse_what_cannot_be_compared(
    make: Callable[[], tuple[QuotaDefinition, np.ndarray, OperatingPoint]], error: type[Exception]
) -> None:
    counter = QuotaCounter(Clock())
    counter.claim_anonymous(quota(), BOB, POINT)
    with pytest.raises(error):
        counter.claim_anonymous(*make())
    assert counter.faces() == 1
    counter.close()


def test_the_expiry_thread_drops_faces_without_being_asked() -> None:
    counter = QuotaCounter()  # the real clock
    counter.claim_anonymous(quota(window_s=0.3), ALICE, POINT)
    memory = counter._memories["snack"]
    vectors = memory.vectors
    assert counter._expirer is not None and counter._expirer.is_alive()
    deadline = time.monotonic() + 10
    while counter._memories and time.monotonic() < deadline:
        time.sleep(0.02)  # read only: faces() would purge by itself
    assert not counter._memories
    assert not vectors.any()  # the rows were zeroed, not just dropped
    deadline = time.monotonic() + 5
    while counter._expirer is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert counter._expirer is None  # nothing left to expire: the thread ended
    counter.close()


def test_close_forgets_everything_and_refuses_new_claims() -> None:
    counter = QuotaCounter(Clock())
    counter.claim_anonymous(quota(), ALICE, POINT)
    counter.close()
    assert counter.faces() == 0
    with pytest.raises(PolicyError, match="closed"):
        counter.claim_anonymous(quota(), ALICE, POINT)


# --- enrolled claims in the database -----------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], SqlStore]]:
    """Opens the same database again and again, as a restarted service would."""
    opened: list[SqlStore] = []
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")

    def open_again() -> SqlStore:
        if url is None:
            store: SqlStore = SQLiteStore(tmp_path / "gallery.sqlite3", None)
        else:
            store = PostgresStore(url, None)
        opened.append(store)
        return store

    yield open_again
    for store in opened:
        store.close()


def enrolled_subject(store: SqlStore, name: str) -> str:
    if store.get_collection("staff") is None:
        store.add_collection(Collection("staff", "sface"))
    subject = Subject(id=new_id(), display_name=name, collection_id="staff")
    store.add_subject(subject, [], TEST_CONSENT.record(subject.id))
    return subject.id


def test_enrolled_claims_are_counted_per_subject_and_survive_a_restart(
    database: Callable[[], SqlStore],
) -> None:
    store = database()
    ada, bob = enrolled_subject(store, "Ada"), enrolled_subject(store, "Bob")
    meals = quota(name="meals", limit=2, window_s=3600, mode="enrolled", collection="staff")
    clock = Clock()
    counter = QuotaCounter(clock)
    apps = ApplicationStore(store.engine)
    steps = [  # (seconds, subject, granted, remaining, retry_after_s)
        (0, ada, True, 1, None),
        (10, ada, True, 0, None),
        (20, ada, False, 0, 3580.0),
        (30, bob, True, 1, None),  # counted per subject
    ]
    for at, subject_id, granted, remaining, retry in steps:
        clock.at(at)
        answer = counter.claim_enrolled(apps, meals, subject_id)
        assert (answer.granted, answer.remaining, answer.retry_after_s) == (
            granted,
            remaining,
            retry,
        )
    assert apps.count_claims() == 3  # denied claims are not written

    # Another process (a restarted service) over the same database.
    store.close()
    again = database()
    apps = ApplicationStore(again.engine)
    counter = QuotaCounter(clock)
    clock.at(40)
    assert counter.claim_enrolled(apps, meals, ada).retry_after_s == 3560.0
    clock.at(3600)
    assert counter.claim_enrolled(apps, meals, ada).granted  # her first left the window
    assert apps.count_claims() == 4

    # Erasing a subject erases their claims (foreign key cascade), not anyone else's.
    again.erase_subject(ada)
    assert apps.claims_since("meals", ada, T0 - timedelta(days=1)) == []
    assert len(apps.claims_since("meals", bob, T0 - timedelta(days=1))) == 1
    assert apps.count_claims() == 1


def test_claims_no_window_reaches_are_swept(database: Callable[[], SqlStore]) -> None:
    store = database()
    ada = enrolled_subject(store, "Ada")
    apps = ApplicationStore(store.engine)
    short = quota(name="short", window_s=60, mode="enrolled", collection="staff")
    long = quota(name="long", window_s=3600, mode="enrolled", collection="staff")
    quotas = QuotaSet((short, long))
    clock = Clock()
    counter = QuotaCounter(clock)
    counter.claim_enrolled(apps, short, ada, quotas=quotas)  # sweeps (first claim): nothing
    counter.claim_enrolled(apps, long, ada, quotas=quotas)
    clock.at(1800)
    counter.claim_enrolled(apps, short, ada, quotas=quotas)  # within the hour: no sweep
    assert apps.count_claims() == 3
    assert counter.sweep_enrolled(apps, quotas) == 0  # the longest window still reaches T0
    clock.at(3601)
    assert counter.sweep_enrolled(apps, quotas) == 2
    assert counter.sweep_enrolled(apps, QuotaSet()) == 1  # no enrolled quota: none kept


def test_definitions_are_read_from_the_application_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "gallery.sqlite3", None)
    apps = ApplicationStore(store.engine)
    assert load_quotas(apps) == QuotaSet()
    quotas = parse_quotas([GOOD])
    apps.put_document(QUOTAS_DOCUMENT, quotas.as_document(), "tests")
    assert load_quotas(apps) == quotas
    store.close()
