"""Access control for doors and zones: the policy model and its decision engine.

Pure logic over an identification result: the caller identifies the face (against the
door's ``collection``), then asks ``AccessPolicy.decide`` whether that person may pass
that door now. Nothing here knows about HTTP or cameras; zone presence (anti-passback) is
read and written through the small ``ZonePresence`` protocol, kept in memory
(``MemoryPresence``) or in the database (``StoredPresence`` on ``ApplicationStore``).

The checks, in order; the first that fails decides, with its reason:

1. ``unknown_door``: the policy has no such door.
2. ``low_quality``: the door sets ``min_quality`` and the probe's quality is below it (or
   was not measured).
3. ``unknown_person``: nobody enrolled was identified.
4. the rules (below): ``denied_by_rule``, ``outside_schedule`` or ``not_in_group``.
5. ``liveness_required``: the door requires liveness and no liveness check passed.
6. ``anti_passback``: an entry (``in``) door with anti-passback, and the person is already
   inside its zone.
7. ``allowed``; the movement is recorded: an ``in`` door with a zone marks the person
   inside it, an ``out`` door outside it (``both`` doors record nothing).

Rules: a rule applies when it names the door (or ``*``), names the person (``*``: anyone
identified; a group name or ``group:NAME``: a member, by subject id or external id;
``subject:REF``: that subject id or external id) and its schedule, if any, is open at
``at``. Rules are taken by priority, highest first; among the rules that apply at the
highest priority that has any, a deny beats an allow. If no rule applies the answer is no:
``outside_schedule`` when an allow rule names the door and the person but its schedule is
closed now, else ``not_in_group``. ``AccessDecision.rule`` is the index (in ``rules``) of
the rule behind ``allowed``, ``denied_by_rule`` and ``outside_schedule``, else None.
"""

from __future__ import annotations

import json
import re
import threading
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import groupby
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from facegate.errors import PolicyError
from facegate.gallery.applications import ApplicationStore
from facegate.policy.schedule import (
    Schedule,
    ScheduleDoc,
    build_schedule,
    describe_errors,
    schedule_problems,
)

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
SECTIONS = ("doors", "groups", "schedules", "rules")


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


# --- the model ------------------------------------------------------------------------------
class AccessPolicyError(PolicyError):
    """An access policy (or one of its parts, ``what``) that cannot be used; ``problems``
    lists each bad field as ``path: what was expected`` (``doors[0].direction: ...``)."""

    def __init__(self, problems: Sequence[str], what: str = "access policy") -> None:
        self.problems = tuple(problems)
        super().__init__(f"invalid {what}: " + "; ".join(self.problems))


def _check_name(value: Any, what: str, pattern: re.Pattern[str] = NAME_PATTERN) -> str | None:
    """None if ``value`` is a valid name, else what is wrong with it."""
    if not isinstance(value, str) or not pattern.match(value):
        expected = COLLECTION_EXPECTED if pattern is COLLECTION_PATTERN else NAME_EXPECTED
        return f"expected a {what} ({expected}), got {value!r}"
    return None


def _check_ref(value: Any) -> str | None:
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


def _check_who(value: Any) -> str | None:
    expected = "expected '*', a group name, 'group:NAME' or 'subject:ID-OR-EXTERNAL-ID'"
    if not isinstance(value, str):
        return f"{expected}, got {value!r}"
    if value == ANY:
        return None
    if value.startswith(SUBJECT_PREFIX):
        problem = _check_ref(value.removeprefix(SUBJECT_PREFIX))
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
        problem = _check_name(getattr(door, name), what, pattern)
        if problem:
            problems.append(f"{name}: {problem}")
    for name, what in (("camera", "camera name"), ("zone", "zone name")):
        value = getattr(door, name)
        problem = None if value is None else _check_name(value, what, NAME_PATTERN)
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
        problems = [p for p in (_check_name(self.name, "group name"),) if p]
        problems += [
            f"members[{i}]: {p}" for i, m in enumerate(self.members) if (p := _check_ref(m))
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
        problem = None if door == ANY else _check_name(door, "door name or '*'")
        if problem:
            problems.append(f"doors[{i}]: {problem}")
    if ANY in rule.doors and len(rule.doors) > 1:
        problems.append("doors: '*' (every door) stands alone")
    if not rule.who:
        problems.append("who: expected group names, 'subject:...' entries or ['*'], got []")
    problems += [f"who[{i}]: {p}" for i, w in enumerate(rule.who) if (p := _check_who(w))]
    if ANY in rule.who and len(rule.who) > 1:
        problems.append("who: '*' (anyone identified) stands alone")
    if rule.schedule is not None and (p := _check_name(rule.schedule, "schedule name")):
        problems.append(f"schedule: {p}")
    if rule.id is not None and (p := _check_name(rule.id, "rule id")):
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


# --- the policy -----------------------------------------------------------------------------
def _duplicates(names: Sequence[str | None], section: str, what: str) -> list[str]:
    problems = []
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name is None:
            continue
        if name in first:
            problems.append(
                f"{section}[{i}].name: duplicate {what} name {name!r} "
                f"(already {section}[{first[name]}])"
            )
        else:
            first[name] = i
    return problems


def _known(names: Iterable[str | None]) -> str:
    listed = sorted({n for n in names if n is not None})
    return ", ".join(listed) if listed else "none defined"


@dataclass(frozen=True, slots=True)
class RuleRefs:
    """What one rule refers to by name (possibly from a rule that is invalid otherwise)."""

    doors: Sequence[Any] = ()
    who: Sequence[Any] = ()
    schedule: Any = None

    @classmethod
    def of_raw(cls, item: Any) -> RuleRefs:
        """The references of a rule document, as far as they can be read."""
        if not isinstance(item, Mapping):
            return cls()

        def strings(value: Any) -> Sequence[Any]:
            ok = isinstance(value, list | tuple)
            return [v if isinstance(v, str) else None for v in value] if ok else []

        schedule = item.get("schedule")
        return cls(strings(item.get("doors")), strings(item.get("who")), schedule)


def reference_problems(
    door_names: Sequence[str | None],
    group_names: Sequence[str | None],
    schedule_names: Sequence[str | None],
    rules: Iterable[tuple[int, RuleRefs | Rule]],
) -> list[str]:
    """Duplicate names and rules naming doors, groups or schedules that do not exist.
    Names are by position in their section (None: an entry without a usable name);
    references that are not well-formed are left to the syntax checks."""
    problems = _duplicates(door_names, "doors", "door")
    problems += _duplicates(group_names, "groups", "group")
    problems += _duplicates(schedule_names, "schedules", "schedule")
    doors, groups, schedules = set(door_names), set(group_names), set(schedule_names)
    for i, rule in rules:
        for j, door in enumerate(rule.doors):
            if door == ANY or _check_name(door, "door") is not None:
                continue
            if door not in doors:
                problems.append(
                    f"rules[{i}].doors[{j}]: unknown door {door!r} (doors: {_known(door_names)})"
                )
        for j, who in enumerate(rule.who):
            group = group_of(who) if _check_who(who) is None else None
            if group is not None and group not in groups:
                problems.append(
                    f"rules[{i}].who[{j}]: unknown group {group!r} (groups: "
                    f"{_known(group_names)}); name a person as 'subject:ID-OR-EXTERNAL-ID'"
                )
        if _check_name(rule.schedule, "schedule") is None and rule.schedule not in schedules:
            problems.append(
                f"rules[{i}].schedule: unknown schedule {rule.schedule!r} "
                f"(schedules: {_known(schedule_names)})"
            )
    return problems


def environment_problems(
    doors: Iterable[tuple[int, Door]],
    *,
    cameras: Mapping[str, str] | None,
    collections: Collection[str] | None,
) -> list[str]:
    """Doors naming cameras (``cameras``: name -> its collection) or collections that the
    installation does not have; None: not checked."""
    problems = []
    for i, door in doors:
        if collections is not None and door.collection not in collections:
            problems.append(
                f"doors[{i}].collection: no collection named {door.collection!r} "
                f"(collections: {_known(collections)})"
            )
        if cameras is None or door.camera is None:
            continue
        if door.camera not in cameras:
            problems.append(
                f"doors[{i}].camera: no camera named {door.camera!r} in the settings "
                f"(cameras: {_known(cameras)})"
            )
        elif cameras[door.camera] != door.collection:
            problems.append(
                f"doors[{i}].camera: camera {door.camera!r} identifies against collection "
                f"{cameras[door.camera]!r}, not the door's {door.collection!r}"
            )
    return problems


@dataclass(frozen=True)
class AccessPolicy:
    """Doors, groups, named schedules and rules; immutable, checked on construction."""

    doors: tuple[Door, ...] = ()
    groups: tuple[Group, ...] = ()
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "doors", tuple(self.doors))
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "schedules", dict(self.schedules))
        problems = [
            f"schedules.{name}.name: {p}"
            for name in self.schedules
            if (p := _check_name(name, "schedule name"))
        ]
        problems += reference_problems(
            [d.name for d in self.doors],
            [g.name for g in self.groups],
            list(self.schedules),
            enumerate(self.rules),
        )
        if problems:
            raise AccessPolicyError(problems)
        members = {g.name: frozenset(g.members) for g in self.groups}
        # Evaluation order: priority high to low; the order written within a priority.
        order = sorted(range(len(self.rules)), key=lambda i: -self.rules[i].priority)
        object.__setattr__(self, "_doors", {d.name: d for d in self.doors})
        object.__setattr__(self, "_members", members)
        object.__setattr__(self, "_order", order)

    # --- lookups --------------------------------------------------------------------------
    def door(self, name: str) -> Door | None:
        found: Door | None = self.__dict__["_doors"].get(name)
        return found

    def doors_for_camera(self, camera: str) -> tuple[Door, ...]:
        """The doors a camera's events drive."""
        return tuple(d for d in self.doors if d.camera == camera)

    def names_person(self, rule: Rule, person: Identity) -> bool:
        refs = person.refs
        members: dict[str, frozenset[str]] = self.__dict__["_members"]
        for who in rule.who:
            if who == ANY:
                return True
            if who.startswith(SUBJECT_PREFIX):
                if who.removeprefix(SUBJECT_PREFIX) in refs:
                    return True
            elif refs & members[who.removeprefix(GROUP_PREFIX)]:
                return True
        return False

    # --- the decision ---------------------------------------------------------------------
    def decide(
        self,
        door: str,
        subject: Identity | None,
        at: datetime,
        *,
        quality: float | None = None,
        liveness_passed: bool = False,
        presence: ZonePresence | None = None,
    ) -> AccessDecision:
        """May ``subject`` (None: nobody enrolled was identified) pass ``door`` at ``at``
        (timezone-aware)? ``quality``: the probe face's quality (0..1); ``liveness_passed``:
        a liveness check passed for this face; ``presence``: zone presence, needed by doors
        with a zone (read for anti-passback, written on an allowed decision)."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"decide needs a timezone-aware time, got naive {at}")
        subject_id = subject.subject_id if subject else None

        def answer(reason: AccessReason, detail: str, rule: int | None = None) -> AccessDecision:
            return AccessDecision(
                door=door,
                allowed=reason is AccessReason.ALLOWED,
                reason=reason,
                subject_id=subject_id,
                rule=rule,
                rule_id=None if rule is None else self.rules[rule].id,
                at=at,
                detail=detail,
            )

        found = self.door(door)
        if found is None:
            return answer(
                AccessReason.UNKNOWN_DOOR,
                f"no door named {door!r} in the policy "
                f"(doors: {_known(d.name for d in self.doors)})",
            )
        records = found.zone is not None and found.direction != Direction.BOTH
        if records and presence is None:
            raise ValueError(
                f"door {door!r} leads {found.direction} of zone {found.zone!r}: decide needs "
                "a presence store (presence=...)"
            )
        # "not >=": a NaN quality is refused too.
        if found.min_quality is not None and (quality is None or not quality >= found.min_quality):
            measured = "was not measured" if quality is None else f"is {quality:.2f}"
            return answer(
                AccessReason.LOW_QUALITY,
                f"door {door!r} needs a probe quality of at least {found.min_quality:.2f}; "
                f"this one {measured}",
            )
        if subject is None:
            return answer(AccessReason.UNKNOWN_PERSON, "nobody enrolled was identified")

        reason, rule, detail = self._by_rules(found, subject, at)
        if reason is not AccessReason.ALLOWED:
            return answer(reason, detail, rule)
        if found.liveness_required and not liveness_passed:
            return answer(
                AccessReason.LIVENESS_REQUIRED,
                f"door {door!r} requires a passed liveness check",
            )
        if records:
            assert presence is not None and found.zone is not None
            if (
                found.anti_passback
                and found.direction == Direction.IN
                and presence.is_inside(subject.subject_id, found.zone)
            ):
                return answer(
                    AccessReason.ANTI_PASSBACK,
                    f"already inside zone {found.zone!r}: no exit since the last entry",
                )
            presence.record(subject.subject_id, found.zone, found.direction == Direction.IN, at)
        return answer(AccessReason.ALLOWED, detail, rule)

    def _rule_text(self, index: int) -> str:
        rule_id = self.rules[index].id
        return f"rule {index}" + (f" ({rule_id!r})" if rule_id else "")

    def _by_rules(
        self, door: Door, person: Identity, at: datetime
    ) -> tuple[AccessReason, int | None, str]:
        order: list[int] = self.__dict__["_order"]
        closed_allow: int | None = None
        for priority, level in groupby(order, key=lambda i: self.rules[i].priority):
            allow: int | None = None
            for i in level:
                rule = self.rules[i]
                if not (rule.names_door(door.name) and self.names_person(rule, person)):
                    continue
                if rule.schedule is not None and not self.schedules[rule.schedule].is_open(at):
                    if rule.effect == Effect.ALLOW and closed_allow is None:
                        closed_allow = i
                    continue
                if rule.effect == Effect.DENY:
                    return (
                        AccessReason.DENIED_BY_RULE,
                        i,
                        f"denied by {self._rule_text(i)} at priority {priority}",
                    )
                if allow is None:
                    allow = i
            if allow is not None:
                return AccessReason.ALLOWED, allow, f"allowed by {self._rule_text(allow)}"
        if closed_allow is not None:
            rule = self.rules[closed_allow]
            assert rule.schedule is not None
            schedule = self.schedules[rule.schedule]
            return (
                AccessReason.OUTSIDE_SCHEDULE,
                closed_allow,
                f"{self._rule_text(closed_allow)} allows them only while schedule "
                f"{rule.schedule!r} is open; {schedule.describe(at)} is outside it",
            )
        return (
            AccessReason.NOT_IN_GROUP,
            None,
            f"no rule allows this person at door {door.name!r}",
        )

    # --- documents ------------------------------------------------------------------------
    def to_document(self) -> dict[str, Any]:
        """The policy as a JSON/TOML-ready document; ``parse_access_policy`` reads it back
        to an equal policy. Unset optional fields are left out (TOML has no null)."""
        return {
            "doors": [_door_document(d) for d in self.doors],
            "groups": [{"name": g.name, "members": list(g.members)} for g in self.groups],
            "schedules": [{"name": n, **s.to_document()} for n, s in self.schedules.items()],
            "rules": [_rule_document(r) for r in self.rules],
        }


def _door_document(door: Door) -> dict[str, Any]:
    document: dict[str, Any] = {"name": door.name, "collection": door.collection}
    for name in ("camera", "zone"):
        if getattr(door, name) is not None:
            document[name] = getattr(door, name)
    document["direction"] = str(door.direction)
    document["anti_passback"] = door.anti_passback
    document["liveness_required"] = door.liveness_required
    if door.min_quality is not None:
        document["min_quality"] = door.min_quality
    return document


def _rule_document(rule: Rule) -> dict[str, Any]:
    document: dict[str, Any] = {}
    if rule.id is not None:
        document["id"] = rule.id
    document |= {"effect": str(rule.effect), "doors": list(rule.doors), "who": list(rule.who)}
    if rule.schedule is not None:
        document["schedule"] = rule.schedule
    document["priority"] = rule.priority
    return document


# --- parsing --------------------------------------------------------------------------------
def _validated(check: Callable[[Any], str | None]) -> Callable[[Any], Any]:
    def validate(value: Any) -> Any:
        problem = check(value)
        if problem:
            raise ValueError(problem)
        return value

    return validate


Name = Annotated[str, AfterValidator(_validated(lambda v: _check_name(v, "name")))]
DoorName = Annotated[str, AfterValidator(_validated(lambda v: _check_name(v, "door name")))]
CollectionName = Annotated[
    str,
    AfterValidator(_validated(lambda v: _check_name(v, "collection name", COLLECTION_PATTERN))),
]
Ref = Annotated[str, AfterValidator(_validated(_check_ref))]
Who = Annotated[str, AfterValidator(_validated(_check_who))]
DoorRef = Annotated[
    str,
    AfterValidator(_validated(lambda v: None if v == ANY else _check_name(v, "door name or '*'"))),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DoorDoc(_Strict):
    name: DoorName
    collection: CollectionName = Field(..., description="The gallery faces are identified in.")
    camera: Name | None = Field(None, description="A camera of the settings that drives it.")
    zone: Name | None = Field(None, description="The area it leads into (in) or out of (out).")
    direction: Literal["in", "out", "both"] = "both"
    anti_passback: bool = False
    liveness_required: bool = False
    min_quality: float | None = Field(None, ge=0, le=1)

    def build(self) -> Door:
        return Door(
            self.name,
            self.collection,
            self.camera,
            self.zone,
            Direction(self.direction),
            self.anti_passback,
            self.liveness_required,
            self.min_quality,
        )


class GroupDoc(_Strict):
    name: Name
    members: list[Ref] = Field(default_factory=list, description="Subject or external ids.")

    def build(self) -> Group:
        return Group(self.name, tuple(self.members))


class NamedScheduleDoc(ScheduleDoc):
    name: Name


class RuleDoc(_Strict):
    id: Name | None = None
    effect: Literal["allow", "deny"]
    doors: list[DoorRef] = Field(..., min_length=1)
    who: list[Who] = Field(..., min_length=1)
    schedule: Name | None = None
    priority: int = Field(0, ge=-MAX_PRIORITY, le=MAX_PRIORITY)

    def build(self) -> Rule:
        return Rule(
            Effect(self.effect),
            tuple(self.doors),
            tuple(self.who),
            self.schedule,
            self.priority,
            self.id,
        )


_DOCS: dict[str, type[BaseModel]] = {
    "doors": DoorDoc,
    "groups": GroupDoc,
    "schedules": NamedScheduleDoc,
    "rules": RuleDoc,
}


def _raw_name(item: Any) -> str | None:
    name = item.get("name") if isinstance(item, dict) else None
    return name if isinstance(name, str) else None


def parse_access_policy(
    data: Any,
    *,
    cameras: Mapping[str, str] | None = None,
    collections: Collection[str] | None = None,
) -> AccessPolicy:
    """The policy of a document (parsed JSON or TOML): ``{"doors": [...], "groups": [...],
    "schedules": [...], "rules": [...]}``, every section optional.

    ``cameras`` (camera name -> its collection) and ``collections`` (names that exist),
    when given, are checked against the doors. Raises ``AccessPolicyError`` (a
    ``PolicyError``, code ``invalid_policy``) naming every bad field path and what was
    expected, all at once.
    """
    if not isinstance(data, Mapping):
        raise AccessPolicyError(
            [f"document: expected an object with {', '.join(SECTIONS)}, got {type(data).__name__}"]
        )
    problems = [
        f"{key}: unknown section (expected {', '.join(SECTIONS)})"
        for key in data
        if key not in SECTIONS
    ]
    parsed: dict[str, list[tuple[int, Any]]] = {s: [] for s in SECTIONS}
    raw: dict[str, list[Any]] = {s: [] for s in SECTIONS}
    for section, model in _DOCS.items():
        if section not in data:
            continue
        items = data[section]
        if isinstance(items, str | bytes) or not isinstance(items, Sequence):
            problems.append(f"{section}: expected a list, got {type(items).__name__}")
            continue
        raw[section] = list(items)
        for i, item in enumerate(items):
            where = f"{section}[{i}]"
            try:
                doc = model.model_validate(item)
            except ValidationError as error:
                problems += describe_errors(error, where)
                continue
            if isinstance(doc, NamedScheduleDoc):
                found = schedule_problems(doc, where)
                if found:
                    problems += found
                    continue
                parsed[section].append((i, (doc.name, build_schedule(doc))))
            elif isinstance(doc, DoorDoc | GroupDoc | RuleDoc):
                try:
                    parsed[section].append((i, doc.build()))
                except AccessPolicyError as error:
                    problems += [f"{where}.{p}" for p in error.problems]
    problems += reference_problems(
        [_raw_name(d) for d in raw["doors"]],
        [_raw_name(g) for g in raw["groups"]],
        [_raw_name(s) for s in raw["schedules"]],
        enumerate(RuleRefs.of_raw(r) for r in raw["rules"]),
    )
    problems += environment_problems(parsed["doors"], cameras=cameras, collections=collections)
    if problems:
        raise AccessPolicyError(problems)
    return AccessPolicy(
        doors=tuple(d for _, d in parsed["doors"]),
        groups=tuple(g for _, g in parsed["groups"]),
        schedules=dict(s for _, s in parsed["schedules"]),
        rules=tuple(r for _, r in parsed["rules"]),
    )


def read_policy_file(path: Path) -> dict[str, Any]:
    """A policy document from a ``.toml`` or ``.json`` file (PolicyError if it cannot be
    read or parsed; pass the result to ``parse_access_policy``)."""
    try:
        text = path.read_bytes()
    except OSError as error:
        raise PolicyError(f"cannot read the policy file {path}: {error.strerror}") from None
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text.decode("utf-8"))
        if path.suffix.lower() == ".json":
            loaded = json.loads(text)
            if not isinstance(loaded, dict):
                raise ValueError("the document must be a JSON object")
            return loaded
    except (ValueError, UnicodeDecodeError) as error:  # TOMLDecodeError, JSONDecodeError
        raise PolicyError(f"{path} is not valid {path.suffix[1:].upper()}: {error}") from None
    raise PolicyError(f"{path}: expected a .toml or .json file")


def load_access_policy(
    path: Path,
    *,
    cameras: Mapping[str, str] | None = None,
    collections: Collection[str] | None = None,
) -> AccessPolicy:
    """``parse_access_policy`` of a ``.toml`` or ``.json`` file."""
    return parse_access_policy(read_policy_file(path), cameras=cameras, collections=collections)
