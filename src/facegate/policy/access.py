"""Access control for doors and zones: the decision engine (``AccessPolicy``).

Pure logic over an identification result: the caller identifies the face (against the
door's ``collection``), then asks ``AccessPolicy.decide`` whether that person may pass
that door now. Nothing here knows about HTTP or cameras. The parts a policy is built of
(doors, groups, rules, zone presence) are in ``access_model``; reading a policy document
is ``access_document``, which shares the cross-reference checks here
(``reference_problems``, ``environment_problems``); ``AccessPolicy.to_document`` writes
the document back.

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

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Any

from facegate.policy.access_model import (
    ANY,
    GROUP_PREFIX,
    SUBJECT_PREFIX,
    AccessDecision,
    AccessPolicyError,
    AccessReason,
    Direction,
    Door,
    Effect,
    Group,
    Identity,
    Rule,
    ZonePresence,
    check_name,
    check_who,
    group_of,
)
from facegate.policy.schedule import Schedule


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
            if door == ANY or check_name(door, "door") is not None:
                continue
            if door not in doors:
                problems.append(
                    f"rules[{i}].doors[{j}]: unknown door {door!r} (doors: {_known(door_names)})"
                )
        for j, who in enumerate(rule.who):
            group = group_of(who) if check_who(who) is None else None
            if group is not None and group not in groups:
                problems.append(
                    f"rules[{i}].who[{j}]: unknown group {group!r} (groups: "
                    f"{_known(group_names)}); name a person as 'subject:ID-OR-EXTERNAL-ID'"
                )
        if check_name(rule.schedule, "schedule") is None and rule.schedule not in schedules:
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
            if (p := check_name(name, "schedule name"))
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
        """The policy as a JSON/TOML-ready document; ``parse_access_policy`` (in
        ``access_document``) reads it back
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
