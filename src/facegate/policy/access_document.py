"""Access control for doors and zones: reading a policy document.

A document (parsed JSON or TOML; ``read_policy_file`` reads a ``.toml`` or ``.json``
file) has the sections ``doors``, ``groups``, ``schedules`` and ``rules``, each optional.
The pydantic models here (``DoorDoc``, ``GroupDoc``, ``NamedScheduleDoc``, ``RuleDoc``)
check each entry; the cross-references are checked with the engine's
``reference_problems`` and ``environment_problems``; ``parse_access_policy`` reports every
problem at once as an ``AccessPolicyError`` and otherwise builds the ``AccessPolicy``.
``AccessPolicy.to_document`` writes the same form back.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from facegate.errors import PolicyError
from facegate.policy.access import AccessPolicy, RuleRefs, environment_problems, reference_problems
from facegate.policy.access_model import (
    ANY,
    COLLECTION_PATTERN,
    MAX_PRIORITY,
    AccessPolicyError,
    Direction,
    Door,
    Effect,
    Group,
    Rule,
    check_name,
    check_ref,
    check_who,
)
from facegate.policy.schedule import ScheduleDoc, build_schedule, describe_errors, schedule_problems

SECTIONS = ("doors", "groups", "schedules", "rules")


# --- the entries-----------------------------------------------------------------------------
def _validated(check: Callable[[Any], str | None]) -> Callable[[Any], Any]:
    def validate(value: Any) -> Any:
        problem = check(value)
        if problem:
            raise ValueError(problem)
        return value

    return validate


Name = Annotated[str, AfterValidator(_validated(lambda v: check_name(v, "name")))]
DoorName = Annotated[str, AfterValidator(_validated(lambda v: check_name(v, "door name")))]
CollectionName = Annotated[
    str,
    AfterValidator(_validated(lambda v: check_name(v, "collection name", COLLECTION_PATTERN))),
]
Ref = Annotated[str, AfterValidator(_validated(check_ref))]
Who = Annotated[str, AfterValidator(_validated(check_who))]
DoorRef = Annotated[
    str,
    AfterValidator(_validated(lambda v: None if v == ANY else check_name(v, "door name or '*'"))),
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
