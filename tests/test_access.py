"""Access decisions at doors: groups, subjects and ``*``, precedence, schedules,
anti-passback (in memory and in the database), liveness, quality, and policy documents
that are refused with every bad field named."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from facegate.errors import PolicyError
from facegate.gallery.applications import ApplicationStore
from facegate.gallery.records import Collection, Subject
from facegate.gallery.sqlite_store import SQLiteStore
from facegate.policy.access import AccessPolicy
from facegate.policy.access_document import load_access_policy, parse_access_policy
from facegate.policy.access_model import (
    AccessPolicyError,
    AccessReason,
    Direction,
    Door,
    Effect,
    Identity,
    MemoryPresence,
    Rule,
    StoredPresence,
    ZonePresence,
)
from facegate.policy.schedule import Schedule
from helpers import TEST_CONSENT

BERLIN = ZoneInfo("Europe/Berlin")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "access.md"

ADA = Identity("s-ada", "res-ada")  # a resident, named in the group by external id
BOB = Identity("s-bob")  # a resident, named by subject id; no external id
CY = Identity("s-cy", "cl-cy")  # a cleaner: evenings only
DAN = Identity("s-dan", "vis-dan")  # a visitor named by a subject rule, daytime only
EVE = Identity("s-eve", "emp-eve")  # enrolled, in no group
MAL = Identity("s-mal", "res-mal")  # a resident, banned by a higher-priority rule
PEOPLE = (ADA, BOB, CY, DAN, EVE, MAL)

SITE: dict[str, Any] = {
    "doors": [
        {"name": "lobby", "collection": "staff"},
        {
            "name": "main-in",
            "collection": "staff",
            "camera": "cam-main",
            "zone": "building",
            "direction": "in",
            "anti_passback": True,
        },
        {"name": "main-out", "collection": "staff", "zone": "building", "direction": "out"},
        {"name": "side-in", "collection": "staff", "zone": "building", "direction": "in"},
        {
            "name": "lab-in",
            "collection": "staff",
            "zone": "lab",
            "direction": "in",
            "anti_passback": True,
        },
        {"name": "lab-out", "collection": "staff", "zone": "lab", "direction": "out"},
        {"name": "vault", "collection": "staff", "liveness_required": True, "min_quality": 0.5},
    ],
    "groups": [
        {"name": "residents", "members": ["res-ada", "s-bob", "res-mal"]},
        {"name": "cleaners", "members": ["cl-cy"]},
    ],
    "schedules": [
        {
            "name": "daytime",
            "timezone": "Europe/Berlin",
            "windows": [{"days": ["mon-fri"], "start": "07:00", "end": "19:00"}],
        },
        {
            "name": "cleaning",
            "timezone": "Europe/Berlin",
            "windows": [{"days": ["mon-fri"], "start": "19:00", "end": "01:00"}],
            "exceptions": [{"date": "2026-12-24", "closed": True}],
        },
    ],
    "rules": [
        {"id": "residents", "effect": "allow", "doors": ["*"], "who": ["residents"]},
        {
            "id": "cleaning",
            "effect": "allow",
            "doors": ["lobby", "main-in", "main-out"],
            "who": ["group:cleaners"],
            "schedule": "cleaning",
        },
        {
            "id": "visitor",
            "effect": "allow",
            "doors": ["lobby"],
            "who": ["subject:vis-dan"],
            "schedule": "daytime",
        },
        {"id": "exits", "effect": "allow", "doors": ["main-out", "lab-out"], "who": ["*"]},
        {"id": "ban", "effect": "deny", "doors": ["*"], "who": ["subject:s-mal"], "priority": 10},
    ],
}
POLICY = parse_access_policy(SITE)
MONDAY_NOON = datetime(2026, 3, 23, 12, 0, tzinfo=BERLIN)
MONDAY_EVENING = datetime(2026, 3, 23, 20, 0, tzinfo=BERLIN)
TUESDAY_SMALL_HOURS = datetime(2026, 3, 24, 0, 30, tzinfo=BERLIN)  # Monday's cleaning window
SATURDAY = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)
CHRISTMAS_EVE = datetime(2026, 12, 24, 20, 0, tzinfo=BERLIN)  # a Thursday, no cleaning


@pytest.mark.parametrize(
    ("door", "person", "at", "reason", "rule"),
    [
        # Groups: by external id (Ada) or subject id (Bob); "*" doors.
        ("lobby", ADA, MONDAY_NOON, "allowed", 0),
        ("lobby", BOB, SATURDAY, "allowed", 0),
        ("vault", BOB, MONDAY_NOON, "liveness_required", None),
        # A group with a schedule: outside it, the reason says so, and names the rule.
        ("lobby", CY, MONDAY_EVENING, "allowed", 1),
        ("lobby", CY, TUESDAY_SMALL_HOURS, "allowed", 1),  # Monday's window, past midnight
        ("lobby", CY, MONDAY_NOON, "outside_schedule", 1),
        ("lobby", CY, CHRISTMAS_EVE, "outside_schedule", 1),  # closed by exception
        ("lab-in", CY, MONDAY_EVENING, "not_in_group", None),  # no rule names the lab
        # A subject rule (by external id) with a schedule.
        ("lobby", DAN, MONDAY_NOON, "allowed", 2),
        ("lobby", DAN, SATURDAY, "outside_schedule", 2),
        ("main-in", DAN, MONDAY_NOON, "not_in_group", None),
        # Enrolled but named by no rule for this door: not_in_group; "*" exits let anyone out.
        ("lobby", EVE, MONDAY_NOON, "not_in_group", None),
        ("main-out", EVE, MONDAY_NOON, "allowed", 3),
        # A deny at a higher priority beats the residents' allow.
        ("lobby", MAL, MONDAY_NOON, "denied_by_rule", 4),
        ("main-out", MAL, MONDAY_NOON, "denied_by_rule", 4),
        # Nobody identified, and a door that does not exist.
        ("lobby", None, MONDAY_NOON, "unknown_person", None),
        ("nowhere", ADA, MONDAY_NOON, "unknown_door", None),
    ],
)
def test_who_may_pass(
    door: str, person: Identity | None, at: datetime, reason: str, rule: int | None
) -> None:
    decision = POLICY.decide(door, person, at, quality=0.9, presence=MemoryPresence())
    assert (decision.reason, decision.rule) == (reason, rule), decision.detail
    assert decision.allowed is (reason == "allowed")
    assert decision.door == door and decision.at == at
    assert decision.subject_id == (person.subject_id if person else None)
    assert decision.rule_id == (None if rule is None else POLICY.rules[rule].id)
    assert decision.detail


def test_the_details_say_why() -> None:
    outside = POLICY.decide("lobby", CY, MONDAY_NOON)
    assert "schedule 'cleaning'" in outside.detail and "Mon 2026-03-23 12:00" in outside.detail
    assert "rule 4 ('ban')" in POLICY.decide("lobby", MAL, MONDAY_NOON).detail
    assert "doors: lab-in, lab-out, lobby" in POLICY.decide("x", ADA, MONDAY_NOON).detail


# --- precedence ---------------------------------------------------------------------------
X = Identity("s-x", "ext-x")
ALWAYS = {"timezone": "UTC", "windows": [{"days": ["mon-sun"], "start": "00:00", "end": "24:00"}]}
NEVER = {"timezone": "UTC"}  # no windows: never open


def small_policy(*rules: dict[str, Any]) -> AccessPolicy:
    return parse_access_policy(
        {
            "doors": [{"name": "d", "collection": "c"}, {"name": "other", "collection": "c"}],
            "groups": [{"name": "xs", "members": ["ext-x"]}, {"name": "ys", "members": ["ext-y"]}],
            "schedules": [{"name": "open", **ALWAYS}, {"name": "closed", **NEVER}],
            "rules": list(rules),
        }
    )


def allow(who: str = "xs", **more: Any) -> dict[str, Any]:
    return {"effect": "allow", "doors": ["d"], "who": [who], **more}


def deny(who: str = "xs", **more: Any) -> dict[str, Any]:
    return {"effect": "deny", "doors": ["d"], "who": [who], **more}


@pytest.mark.parametrize(
    ("rules", "reason", "rule"),
    [
        ((), "not_in_group", None),
        ((allow(),), "allowed", 0),
        ((allow("subject:ext-x"),), "allowed", 0),
        ((allow("subject:s-x"),), "allowed", 0),
        ((allow("*"),), "allowed", 0),
        ((allow("ys"),), "not_in_group", None),
        ((allow(doors=["other"]),), "not_in_group", None),
        ((allow(doors=["*"]),), "allowed", 0),
        # Within a priority deny beats allow, whatever the order they are written in.
        ((allow(), deny()), "denied_by_rule", 1),
        ((deny("*"), allow()), "denied_by_rule", 0),
        # Higher priority first: an allow above a deny wins, a deny above an allow wins.
        ((deny(), allow(priority=5)), "allowed", 1),
        ((allow(), deny(priority=-1)), "allowed", 0),
        ((allow("*"), deny(priority=1)), "denied_by_rule", 1),
        # A rule whose schedule is closed does not apply.
        ((deny(schedule="closed"), allow()), "allowed", 1),
        ((allow(schedule="closed"),), "outside_schedule", 0),
        ((allow(schedule="closed"), allow(schedule="open")), "allowed", 1),
        ((allow(schedule="open"),), "allowed", 0),
        # outside_schedule only when no rule applies: a lower deny that does apply decides.
        ((allow(schedule="closed", priority=5), deny("*")), "denied_by_rule", 1),
        # ... and names the first closed allow in evaluation order.
        ((allow(schedule="closed"), allow(schedule="closed", priority=3)), "outside_schedule", 1),
        # A closed allow for another door is not "outside schedule" here.
        ((allow(schedule="closed", doors=["other"]),), "not_in_group", None),
        # Two allows at the same priority: the first written is reported.
        ((allow("*"), allow()), "allowed", 0),
        ((allow(priority=1), allow("*", priority=2)), "allowed", 1),
    ],
)
def test_precedence(rules: tuple[dict[str, Any], ...], reason: str, rule: int | None) -> None:
    decision = small_policy(*rules).decide("d", X, datetime(2026, 5, 4, 12, tzinfo=UTC))
    assert (decision.reason, decision.rule) == (reason, rule), decision.detail


# --- anti-passback --------------------------------------------------------------------------
def memory_presence(tmp_path: Path) -> Iterator[ZonePresence]:
    yield MemoryPresence()


def stored_presence(tmp_path: Path) -> Iterator[ZonePresence]:
    store = SQLiteStore(tmp_path / "gallery.sqlite3", None)
    store.add_collection(Collection("staff", "sface"))
    for person in PEOPLE:  # presence rows belong to enrolled subjects (erased with them)
        subject = Subject(
            id=person.subject_id, display_name=person.subject_id, collection_id="staff"
        )
        store.add_subject(subject, [], TEST_CONSENT.record(subject.id))
    yield StoredPresence(ApplicationStore(store.engine))
    store.close()


PASSAGES = [  # (door, person, reason): one after the other, a minute apart
    ("main-in", ADA, "allowed"),
    ("main-in", ADA, "anti_passback"),  # in again without an exit
    ("lab-in", ADA, "allowed"),  # another zone is independent
    ("lab-in", ADA, "anti_passback"),
    ("main-out", ADA, "allowed"),  # the exit is recorded...
    ("main-in", ADA, "allowed"),  # ... so she may enter again
    ("lab-in", ADA, "anti_passback"),  # still inside the lab
    ("lab-out", ADA, "allowed"),
    ("lab-in", ADA, "allowed"),
    ("main-in", BOB, "allowed"),  # presence is per person
    ("main-out", BOB, "allowed"),
    ("side-in", BOB, "allowed"),  # no anti-passback at the side door, but it records the entry
    ("side-in", BOB, "allowed"),
    ("main-in", BOB, "anti_passback"),  # inside through the side door
    ("main-in", EVE, "not_in_group"),  # a refused entry records nothing ...
    ("main-out", EVE, "allowed"),  # ... and an exit without an entry is never refused
    ("main-in", MAL, "denied_by_rule"),
    ("main-out", MAL, "denied_by_rule"),  # a deny rule holds at exits too
    ("main-in", None, "unknown_person"),
    ("lobby", ADA, "allowed"),  # a door without a zone reads and writes no presence
    ("main-in", ADA, "anti_passback"),
]


@pytest.mark.parametrize("presence_kind", [memory_presence, stored_presence])
def test_anti_passback(
    presence_kind: Callable[[Path], Iterator[ZonePresence]], tmp_path: Path
) -> None:
    made = presence_kind(tmp_path)
    presence = next(made)
    for minute, (door, person, reason) in enumerate(PASSAGES):
        at = MONDAY_NOON + timedelta(minutes=minute)
        decision = POLICY.decide(door, person, at, presence=presence)
        assert decision.reason == reason, (minute, door, person, decision.detail)
    assert presence.is_inside(ADA.subject_id, "building") and presence.is_inside("s-ada", "lab")
    assert not presence.is_inside(EVE.subject_id, "building")
    assert not presence.is_inside(MAL.subject_id, "building")
    next(made, None)


def test_stored_presence_is_shared_and_erased_with_the_subject(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "gallery.sqlite3", None)
    store.add_collection(Collection("staff", "sface"))
    subject = Subject(id="s-ada", display_name="Ada", collection_id="staff")
    store.add_subject(subject, [], TEST_CONSENT.record(subject.id))
    POLICY.decide(
        "main-in", ADA, MONDAY_NOON, presence=StoredPresence(ApplicationStore(store.engine))
    )
    other = StoredPresence(ApplicationStore(store.engine))  # e.g. a camera worker
    assert POLICY.decide("main-in", ADA, MONDAY_NOON, presence=other).reason == "anti_passback"
    store.erase_subject("s-ada")
    assert not other.is_inside("s-ada", "building")
    store.close()


# --- liveness and quality -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("person", "quality", "liveness", "reason"),
    [
        (ADA, 0.9, True, "allowed"),
        (ADA, 0.5, True, "allowed"),  # the minimum itself is enough
        (ADA, 0.9, False, "liveness_required"),
        (ADA, 0.49, True, "low_quality"),
        (ADA, None, True, "low_quality"),  # not measured: refused, not assumed good
        (ADA, float("nan"), True, "low_quality"),
        (None, 0.3, False, "low_quality"),  # quality comes before identity...
        (None, 0.9, False, "unknown_person"),
        (EVE, 0.9, False, "not_in_group"),  # ... and the rules before liveness
        (MAL, 0.9, True, "denied_by_rule"),
    ],
)
def test_liveness_and_quality(
    person: Identity | None, quality: float | None, liveness: bool, reason: str
) -> None:
    decision = POLICY.decide(
        "vault", person, MONDAY_NOON, quality=quality, liveness_passed=liveness
    )
    assert decision.reason == reason, decision.detail


def test_misuse_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        POLICY.decide("lobby", ADA, datetime(2026, 3, 23, 12, 0))
    with pytest.raises(ValueError, match="presence store"):
        POLICY.decide("main-in", ADA, MONDAY_NOON)


# --- the model built in code --------------------------------------------------------------
def test_the_model_can_be_built_in_code() -> None:
    policy = AccessPolicy(
        doors=(Door("front", "staff", zone="b", direction=Direction.IN, anti_passback=True),),
        schedules={"always": Schedule("UTC")},
        rules=(Rule(Effect.ALLOW, ("front",), ("*",), id="all"),),
    )
    assert policy.door("front") is not None and policy.door("back") is None
    decision = policy.decide("front", BOB, MONDAY_NOON, presence=MemoryPresence())
    assert (
        decision.allowed and decision.reason is AccessReason.ALLOWED and decision.rule_id == "all"
    )
    assert parse_access_policy(policy.to_document()) == policy
    assert POLICY.doors_for_camera("cam-main") == (POLICY.door("main-in"),)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Door("front", "staff", anti_passback=True),
            "anti_passback: needs the door's zone",
        ),
        (
            lambda: Door("front", "staff", zone="b", anti_passback=True),
            "a 'both' door cannot tell an entry from an exit",
        ),
        (lambda: Door("front/1", "staff"), "name: expected a door name"),
        (lambda: Door("front", "Staff"), "collection: expected a collection name"),
        (lambda: Door("front", "staff", min_quality=2.0), "min_quality: expected a number"),
        (lambda: Rule(Effect.ALLOW, ("*", "front"), ("*",)), "'*' (every door) stands alone"),
        (lambda: Rule(Effect.ALLOW, ("front",), ()), "who: expected"),
        (lambda: Rule(Effect.ALLOW, ("front",), ("subject:",)), "who[0]: expected"),
        (
            lambda: AccessPolicy(rules=(Rule(Effect.ALLOW, ("front",), ("ghosts",)),)),
            "rules[0].doors[0]: unknown door 'front'",
        ),
        (
            lambda: AccessPolicy(
                doors=(Door("a", "c"), Door("a", "c")),
                rules=(Rule(Effect.DENY, ("a",), ("*",), schedule="nights"),),
            ),
            "doors[1].name: duplicate door name 'a'",
        ),
    ],
)
def test_constructors_validate(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(PolicyError, match=re.escape(message)):
        make()


# --- documents ------------------------------------------------------------------------------
def test_documents_round_trip() -> None:
    document = POLICY.to_document()
    assert json.loads(json.dumps(document)) == document  # plain JSON
    assert "null" not in json.dumps(document)  # and no nulls: TOML has none
    assert parse_access_policy(document) == POLICY
    assert parse_access_policy({}) == AccessPolicy()
    assert AccessPolicy().decide("x", ADA, MONDAY_NOON).reason == "unknown_door"


def toml_example() -> str:
    found = re.search(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert found, "docs/access.md has a TOML example"
    return found.group(1)


def test_the_documented_example_loads_from_toml_and_json(tmp_path: Path) -> None:
    toml_file = tmp_path / "access.toml"
    toml_file.write_text(toml_example(), encoding="utf-8")
    policy = load_access_policy(toml_file, collections=["staff"], cameras={"cam-main": "staff"})
    assert policy.doors and policy.rules and policy.schedules
    json_file = tmp_path / "access.json"
    json_file.write_text(json.dumps(policy.to_document()), encoding="utf-8")
    assert load_access_policy(json_file) == policy


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("p.toml", "doors = [", "is not valid TOML"),
        ("p.json", "[1, 2]", "must be a JSON object"),
        ("p.yaml", "doors: []", "expected a .toml or .json file"),
        ("missing.json", None, "cannot read the policy file"),
    ],
)
def test_policy_files_that_cannot_be_read(
    tmp_path: Path, name: str, text: str | None, message: str
) -> None:
    if text is not None:
        (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match=re.escape(message)):
        load_access_policy(tmp_path / name)


def edited(**changes: Any) -> dict[str, Any]:
    """SITE with some sections replaced."""
    return {**json.loads(json.dumps(SITE)), **changes}


def door(**fields: Any) -> dict[str, Any]:
    return {"name": "d", "collection": "staff", **fields}


BAD: list[tuple[Any, list[str]]] = [
    ([], ["document: expected an object"]),
    ({"door": []}, ["door: unknown section (expected doors, groups, schedules, rules)"]),
    ({"doors": {"name": "d"}}, ["doors: expected a list, got dict"]),
    (
        {"doors": [door(collection="Staff Room")]},
        ["doors[0].collection: expected a collection name"],
    ),
    ({"doors": [door(name="a/b")]}, ["doors[0].name: expected a door name"]),
    ({"doors": [door(direction="sideways")]}, ["doors[0].direction: Input should be 'in', 'out'"]),
    (
        {"doors": [door(anti_passback="yes")]},
        ["doors[0].anti_passback: Input should be a valid bool"],
    ),
    ({"doors": [door(min_quality=1.5)]}, ["doors[0].min_quality: Input should be less than or"]),
    ({"doors": [door(colour="red")]}, ["doors[0].colour: unknown field"]),
    ({"doors": [{"name": "d"}]}, ["doors[0].collection: required field is missing"]),
    (
        {"doors": [door(zone="z", anti_passback=True)]},
        ["doors[0].anti_passback: needs direction 'in' (an entry) or 'out'"],
    ),
    ({"doors": [door(), door()]}, ["doors[1].name: duplicate door name 'd' (already doors[0])"]),
    (
        edited(groups=[{"name": "g"}, {"name": "g", "members": [" x"]}]),
        ["groups[1].members[0]: expected a subject id", "groups[1].name: duplicate group name 'g'"],
    ),
    (
        edited(schedules=[{"name": "s", "timezone": "Europe/Berlln"}]),
        ["schedules[0].timezone: unknown time zone 'Europe/Berlln'"],
    ),
    (
        edited(
            schedules=[
                {
                    "name": "s",
                    "timezone": "UTC",
                    "windows": [{"days": ["mon"], "start": "25:00", "end": "07:00"}],
                }
            ]
        ),
        ["schedules[0].windows[0].start: expected a time of day HH:MM from 00:00 to 23:59"],
    ),
    (
        edited(rules=[{"effect": "allow", "doors": ["back-door"], "who": ["*"]}]),
        ["rules[0].doors[0]: unknown door 'back-door' (doors: lab-in, lab-out, lobby, main-in"],
    ),
    (
        edited(rules=[{"effect": "allow", "doors": ["lobby"], "who": ["visitors", "subject:"]}]),
        [
            "rules[0].who[0]: unknown group 'visitors' (groups: cleaners, residents); name a "
            "person as 'subject:ID-OR-EXTERNAL-ID'",
            "rules[0].who[1]: expected '*', a group name",
        ],
    ),
    (
        edited(rules=[{"effect": "allow", "doors": ["lobby"], "who": ["*"], "schedule": "nights"}]),
        ["rules[0].schedule: unknown schedule 'nights' (schedules: cleaning, daytime)"],
    ),
    (
        edited(rules=[{"effect": "permit", "doors": ["lobby"], "who": ["*"], "priority": "high"}]),
        ["rules[0].effect: Input should be 'allow' or 'deny'", "rules[0].priority: Input should"],
    ),
    (
        edited(rules=[{"effect": "allow", "doors": ["*", "lobby"], "who": ["*"]}]),
        ["rules[0].doors: '*' (every door) stands alone"],
    ),
    (
        edited(rules=[{"effect": "allow", "doors": [], "who": ["*"]}]),
        ["rules[0].doors: List should have at least 1 item"],
    ),
    (  # Everything at once: each bad field is named, references included.
        {
            "doors": [door(collection="Staff!"), door(name="e", direction="up")],
            "schedules": [{"name": "s", "timezone": "Nowhere/None"}],
            "rules": [{"effect": "permit", "doors": ["gone"], "who": ["nobody"], "schedule": "t"}],
        },
        [
            "doors[0].collection:",
            "doors[1].direction:",
            "schedules[0].timezone:",
            "rules[0].effect:",
            "rules[0].doors[0]: unknown door 'gone'",
            "rules[0].who[0]: unknown group 'nobody'",
            "rules[0].schedule: unknown schedule 't'",
        ],
    ),
]


@pytest.mark.parametrize(("document", "messages"), BAD)
def test_bad_documents_name_every_field(document: Any, messages: list[str]) -> None:
    with pytest.raises(AccessPolicyError) as raised:
        parse_access_policy(document)
    assert raised.value.code == "invalid_policy"
    text = str(raised.value)
    for message in messages:
        assert message in text, (message, raised.value.problems)
    assert len(raised.value.problems) >= len(messages)


@pytest.mark.parametrize(
    ("cameras", "collections", "message"),
    [
        ({}, None, "doors[1].camera: no camera named 'cam-main' in the settings (cameras: none"),
        (
            {"cam-main": "visitors"},
            None,
            "doors[1].camera: camera 'cam-main' identifies against collection 'visitors', "
            "not the door's 'staff'",
        ),
        (
            None,
            ["visitors"],
            "doors[0].collection: no collection named 'staff' (collections: visitors)",
        ),
    ],
)
def test_doors_are_checked_against_the_installation(
    cameras: dict[str, str] | None, collections: list[str] | None, message: str
) -> None:
    with pytest.raises(AccessPolicyError) as raised:
        parse_access_policy(SITE, cameras=cameras, collections=collections)
    assert any(message in p for p in raised.value.problems), raised.value.problems
    assert parse_access_policy(SITE, cameras={"cam-main": "staff"}, collections=["staff"])


def test_the_collection_pattern_matches_the_gallery() -> None:
    from facegate.gallery import records
    from facegate.policy.access_model import COLLECTION_PATTERN

    assert COLLECTION_PATTERN.pattern == records._COLLECTION_NAME.pattern
