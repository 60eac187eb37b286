"""Access control for doors and zones: the model that a policy is built of.

The names and their patterns, the enums (``Direction``, ``Effect``, ``AccessReason``),
``AccessPolicyError``, the parts of a policy (``Door``, ``Group``, ``Rule``), who was
identified (``Identity``) and the answer at a door (``AccessDecision``), with the field
checks (``check_name``, ``door_problems``, ``rule_problems``, ...) that the constructors
and the document parser (``access_document``) share. The engine that decides is
``AccessPolicy`` in ``access``.

Zone presence (anti-passback) is read and written through the small ``ZonePresence``
protocol, kept in memory (``MemoryPresence``) or in the database (``StoredPresence`` on
``ApplicationStore``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from facegate.errors import PolicyError
from facegate.gallery.applications import ApplicationStore

# Doors, zones, groups, schedules and rule ids: safe in a URL path segment, an MQTT topic
# level and the events table (64 characters).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_EXPECTED = "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
# As gallery.records.Collection and config.CameraSettings.
COLLECTION_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
COLLECTION_EXPECTED = "1-64 characters a-z, 0-9, '_' or '-', starting with a letter or digit"
CAMERA_PATTERN = NAME_PATTERN
ANY = "*"
GROUP_PREFIX = "group:"
SUBJECT_PREFIX = "subject:"
MAX_REF = 200  # external ids are at most 200 characters
MAX_PRIORITY = 1_000_000


class Direction(StrEnum):
    IN = "in"  # an entry into the door's zone
    OUT = "out"  # an exit from it
    BOTH = "both"  # either way; cannot tell which, so records no presence


class Effect(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class AccessReason(StrEnum):
    """Why a decision came out as it did (the ``reason`` of access events)."""

    ALLOWED = "allowed"
    UNKNOWN_DOOR = "unknown_door"
    LOW_QUALITY = "low_quality"
    UNKNOWN_PERSON = "unknown_person"
    DENIED_BY_RULE = "denied_by_rule"
    OUTSIDE_SCHEDULE = "outside_schedule"
    NOT_IN_GROUP = "not_in_group"
    LIVENESS_REQUIRED = "liveness_required"
    ANTI_PASSBACK = "anti_passback"


# --- the parts -------------------------------------------------------------------------------
class AccessPolicyError(PolicyError):
    """An access policy (or one of its parts, ``what``) that cannot be used; ``problems``
    lists each bad field as ``path: what was expected`` (``doors[0].direction: ...``)."""

    def __init__(self, problems: Sequence[str], what: str = "access policy") -> None:
        self.problems = tuple(problems)
        super().__init__(f"invalid {what}: " + "; ".join(self.problems))


def check_name(value: Any, what: str, pattern: re.Pattern[str] = NAME_PATTERN) -> str | None:
    """None if ``value`` is a valid name, else what is wrong with it."""
    if not isinstance(value, str) or not pattern.match(value):
        expected = COLLECTION_EXPECTED if pattern is COLLECTION_PATTERN else NAME_EXPECTED
        return f"expected a {what} ({expected}), got {value!r}"
    return None


def check_ref(value: Any) -> str | None:
    if (
        not isinstance(value, str)
        or not 0 < len(value.strip()) <= MAX_REF
        or value != value.strip()
    ):
        return (
            f"expected a subject id or external id of 1-{MAX_REF} characters without "
            f"surrounding spaces, got {value!r}"
        )
    return None


def check_who(value: Any) -> str | None:
    expected = "expected '*', a group name, 'group:NAME' or 'subject:ID-OR-EXTERNAL-ID'"
    if not isinstance(value, str):
        return f"{expected}, got {value!r}"
    if value == ANY:
        return None
    if value.startswith(SUBJECT_PREFIX):
        problem = check_ref(value.removeprefix(SUBJECT_PREFIX))
        return None if problem is None else f"{expected}: {problem}"
    name = value.removeprefix(GROUP_PREFIX)
    if not NAME_PATTERN.match(name):
        return f"{expected}; a group name is {NAME_EXPECTED}; got {value!r}"
    return None


def group_of(who: str) -> str | None:
    """The group a ``who`` entry names (None: ``*`` or a subject)."""
    if who == ANY or who.startswith(SUBJECT_PREFIX):
        return None
    return who.removeprefix(GROUP_PREFIX)


@dataclass(frozen=True, slots=True)
class Door:
    """A door (or turnstile, gate) controlled by face identification.

    ``collection``: the gallery its faces are identified against. ``camera``: the camera
    (a name from the settings) whose events drive it, if any. ``zone``: the area it leads
    into (``in``) or out of (``out``); ``anti_passback``: refuse a second entry into the
    zone without an exit in between (``in`` and ``out`` doors only, with a zone).
    ``min_quality``: probes below this quality (0..1) are refused as ``low_quality``.
    """

    name: str
    collection: str
    camera: str | None = None
    zone: str | None = None
    direction: Direction = Direction.BOTH
    anti_passback: bool = False
    liveness_required: bool = False
    min_quality: float | None = None

    def __post_init__(self) -> None:
        if self.direction in tuple(Direction):
            object.__setattr__(self, "direction", Direction(self.direction))
        problems = door_problems(self)
        if problems:
            raise AccessPolicyError(problems, f"door {self.name!r}")


def door_problems(door: Door) -> list[str]:
    """What is wrong with ``door`` as ``field: why`` (empty: nothing)."""
    problems = []
    for name, what, pattern in (
        ("name", "door name", NAME_PATTERN),
        ("collection", "collection name", COLLECTION_PATTERN),
    ):
        problem = check_name(getattr(door, name), what, pattern)
        if problem:
            problems.append(f"{name}: {problem}")
    for name, what in (("camera", "camera name"), ("zone", "zone name")):
        value = getattr(door, name)
        problem = None if value is None else check_name(value, what, NAME_PATTERN)
        if problem:
            problems.append(f"{name}: {problem}")
    if door.direction not in tuple(Direction):
        problems.append(f"direction: expected 'in', 'out' or 'both', got {door.direction!r}")
    if door.anti_passback and door.zone is None:
        problems.append("anti_passback: needs the door's zone (zone = '...')")
    if door.anti_passback and door.direction == Direction.BOTH:
        problems.append(
            "anti_passback: needs direction 'in' (an entry) or 'out' (an exit); a 'both' "
            "door cannot tell an entry from an exit"
        )
    quality = door.min_quality
    if quality is not None and (
        isinstance(quality, bool) or not isinstance(quality, int | float) or not 0 <= quality <= 1
    ):
        problems.append(f"min_quality: expected a number from 0 to 1, got {quality!r}")
    return problems


@dataclass(frozen=True, slots=True)
class Group:
    """People named by subject id and/or external id (the caller's own key)."""

    name: str
    members: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(self.members))
        problems = [p for p in (check_name(self.name, "group name"),) if p]
        problems += [
            f"members[{i}]: {p}" for i, m in enumerate(self.members) if (p := check_ref(m))
        ]
        if problems:
            raise AccessPolicyError(problems, f"group {self.name!r}")


@dataclass(frozen=True, slots=True)
class Rule:
    """``effect`` for ``who`` at ``doors`` (``("*",)``: every door), while ``schedule``
    (a schedule's name) is open, at ``priority`` (higher first). ``id``: an optional name
    that decisions and logs quote."""

    effect: Effect
    doors: tuple[str, ...]
    who: tuple[str, ...]
    schedule: str | None = None
    priority: int = 0
    id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "doors", tuple(self.doors))
        object.__setattr__(self, "who", tuple(self.who))
        if self.effect in tuple(Effect):
            object.__setattr__(self, "effect", Effect(self.effect))
        problems = rule_problems(self)
        if problems:
            raise AccessPolicyError(problems, "rule" + (f" {self.id!r}" if self.id else ""))

    def names_door(self, door: str) -> bool:
        return self.doors == (ANY,) or door in self.doors


def rule_problems(rule: Rule) -> list[str]:
    problems = []
    if rule.effect not in tuple(Effect):
        problems.append(f"effect: expected 'allow' or 'deny', got {rule.effect!r}")
    if not rule.doors:
        problems.append("doors: expected door names or ['*'], got an empty list")
    for i, door in enumerate(rule.doors):
        problem = None if door == ANY else check_name(door, "door name or '*'")
        if problem:
            problems.append(f"doors[{i}]: {problem}")
    if ANY in rule.doors and len(rule.doors) > 1:
        problems.append("doors: '*' (every door) stands alone")
    if not rule.who:
        problems.append("who: expected group names, 'subject:...' entries or ['*'], got []")
    problems += [f"who[{i}]: {p}" for i, w in enumerate(rule.who) if (p := check_who(w))]
    if ANY in rule.who and len(rule.who) > 1:
        problems.append("who: '*' (anyone identified) stands alone")
    if rule.schedule is not None and (p := check_name(rule.schedule, "schedule name")):
        problems.append(f"schedule: {p}")
    if rule.id is not None and (p := check_name(rule.id, "rule id")):
        problems.append(f"id: {p}")
    if (
        isinstance(rule.priority, bool)
        or not isinstance(rule.priority, int)
        or not -MAX_PRIORITY <= rule.priority <= MAX_PRIORITY
    ):
        problems.append(
            f"priority: expected an integer from {-MAX_PRIORITY} to {MAX_PRIORITY}, "
            f"got {rule.priority!r}"
        )
    return problems


@dataclass(frozen=True, slots=True)
class Identity:
    """Who was identified: the subject id and the subject's external id (if any)."""

    subject_id: str
    external_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.subject_id, str) or not self.subject_id:
            raise ValueError(f"subject_id must be a non-empty string, got {self.subject_id!r}")

    @property
    def refs(self) -> frozenset[str]:
        """What a group member or ``subject:`` entry may name them by."""
        if self.external_id:
            return frozenset((self.subject_id, self.external_id))
        return frozenset((self.subject_id,))


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """The answer at one door for one passer-by at ``at``.

    ``rule``/``rule_id``: the index in ``AccessPolicy.rules`` (and the id, if it has one) of
    the rule behind ``allowed``, ``denied_by_rule`` and ``outside_schedule``; None for the
    other reasons. ``detail``: one sentence for logs and operators.
    """

    door: str
    allowed: bool
    reason: AccessReason
    subject_id: str | None
    rule: int | None
    rule_id: str | None
    at: datetime
    detail: str = ""

    def __post_init__(self) -> None:
        if self.allowed != (self.reason is AccessReason.ALLOWED):
            raise ValueError(f"allowed={self.allowed} contradicts reason {self.reason}")
        if self.at.tzinfo is None:
            raise ValueError("a decision's time must be timezone-aware")


# --- zone presence (anti-passback) ----------------------------------------------------------
class ZonePresence(Protocol):
    """Who is inside which zone. ``decide`` reads it for anti-passback and, on an allowed
    decision at an ``in`` or ``out`` door with a zone, writes the movement."""

    def is_inside(self, subject_id: str, zone: str) -> bool: ...

    def record(self, subject_id: str, zone: str, inside: bool, at: datetime) -> None: ...


class MemoryPresence:
    """Zone presence in this process's memory (tests, single-process tools)."""

    def __init__(self) -> None:
        self._inside: dict[tuple[str, str], tuple[bool, datetime]] = {}
        self._lock = threading.Lock()

    def is_inside(self, subject_id: str, zone: str) -> bool:
        with self._lock:
            found = self._inside.get((subject_id, zone))
        return found is not None and found[0]

    def record(self, subject_id: str, zone: str, inside: bool, at: datetime) -> None:
        with self._lock:
            self._inside[(subject_id, zone)] = (inside, at)


class StoredPresence:
    """Zone presence in the gallery's database (``zone_presence``): shared by every
    process on the same database, erased with the subject."""

    def __init__(self, store: ApplicationStore) -> None:
        self.store = store

    def is_inside(self, subject_id: str, zone: str) -> bool:
        found = self.store.presence(subject_id, zone)
        return found is not None and found.inside

    def record(self, subject_id: str, zone: str, inside: bool, at: datetime) -> None:
        self.store.set_presence(subject_id, zone, inside, at)
