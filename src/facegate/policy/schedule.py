"""Weekly opening hours in a named IANA time zone, with exceptions by date.

A schedule is a list of weekly windows (``mon-fri 07:00-22:00``) read on the local wall
clock of its time zone, plus exceptions that replace a whole date's windows (closed all
day, or special hours).

Semantics, chosen once and tested:

- A window is ``[start, end)`` in local wall-clock minutes. ``end`` may be ``24:00``. A
  window whose end is not after its start runs past midnight: ``fri 22:00-02:00`` is
  *Friday's* window and lasts until Saturday 02:00. Windows belong to the date they start
  on, so an exception for a date removes or replaces the windows that *start* that date
  (an exception for Saturday does not cut Friday's overnight window short; one for Friday
  removes it, Saturday's small hours included).
- Wall clock across daylight-saving changes: an instant is inside a window when its local
  wall time (in the schedule's zone) is. On the spring-forward night a window such as
  01:30-03:00 covers only the wall times that exist (Europe/Berlin 2026-03-29: 01:30 to
  02:00 CET, then 03:00 CEST is already past the end: 30 real minutes). On the fall-back
  night a window covering the repeated hour covers both occurrences
  (America/New_York 2026-11-01 01:00-02:00: 01:00 EDT to 02:00 EST, two real hours).
- Times are minutes: ``HH:MM`` (TOML local times such as ``07:00:00`` are accepted when
  their seconds are zero). ``start == end`` is refused as ambiguous; use 00:00-24:00 for a
  whole day.
- ``is_open`` needs a timezone-aware instant; a naive datetime is refused (ValueError).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from facegate.errors import PolicyError

MINUTES_PER_DAY = 24 * 60
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^(\d{2}):(\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ZONE_KEY = re.compile(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$")


# --- values ---------------------------------------------------------------------------------
def parse_clock(value: Any, *, end: bool = False) -> int:
    """``"HH:MM"`` (or a ``datetime.time`` with zero seconds) as minutes after midnight.
    ``24:00`` is accepted only as an ``end``. Raises ValueError saying what was expected."""
    if isinstance(value, time):
        if value.second or value.microsecond or value.tzinfo is not None:
            raise ValueError(f"expected a time of day as HH:MM (whole minutes), got {value}")
        return value.hour * 60 + value.minute
    if not isinstance(value, str):
        raise ValueError(f"expected a time of day as a string HH:MM, got {type(value).__name__}")
    found = _CLOCK.match(value)
    hours, minutes = (int(found.group(1)), int(found.group(2))) if found else (-1, -1)
    if found and end and (hours, minutes) == (24, 0):
        return MINUTES_PER_DAY
    if not found or hours > 23 or minutes > 59:
        last = "24:00" if end else "23:59"
        raise ValueError(f"expected a time of day HH:MM from 00:00 to {last}, got {value!r}")
    return hours * 60 + minutes


def format_clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_days(values: Sequence[Any]) -> frozenset[int]:
    """Day names (``mon`` .. ``sun``) and ranges (``mon-fri``; ``fri-mon`` wraps) as
    weekday numbers, Monday 0. Raises ValueError saying what was expected."""
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise ValueError('expected a non-empty list of days such as ["mon-fri", "sun"]')
    days: set[int] = set()
    for value in values:
        text = value.strip().lower() if isinstance(value, str) else None
        first, _, last = (text or "").partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ValueError(
                f"expected day names {', '.join(DAY_NAMES)} or a range such as 'mon-fri', "
                f"got {value!r}"
            )
        start = DAY_NAMES.index(first)
        stop = DAY_NAMES.index(last) if last else start
        days.update((start + i) % 7 for i in range((stop - start) % 7 + 1))
    return frozenset(days)


def zone(key: str) -> ZoneInfo:
    """The IANA time zone ``key`` (``Europe/Berlin``); ValueError if there is none."""
    if not isinstance(key, str) or not _ZONE_KEY.match(key):
        raise ValueError(f"expected an IANA time zone name such as 'Europe/Berlin', got {key!r}")
    try:
        return ZoneInfo(key)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(
            f"unknown time zone {key!r}: expected an IANA name such as 'Europe/Berlin'"
        ) from None


@dataclass(frozen=True, slots=True)
class Window:
    """``[start, end)`` in local wall-clock minutes after midnight of the day it starts.
    ``end <= start``: the window runs past midnight into the next day."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < MINUTES_PER_DAY:
            raise PolicyError(f"window start must be in [0, 1440) minutes, got {self.start}")
        if not 0 <= self.end <= MINUTES_PER_DAY:
            raise PolicyError(f"window end must be in [0, 1440] minutes, got {self.end}")
        if self.start == self.end:
            raise PolicyError(
                f"window {self.label} is empty or ambiguous: expected an end other than "
                "its start (00:00-24:00 for a whole day)"
            )

    @classmethod
    def of(cls, start: Any, end: Any) -> Window:
        """From ``"HH:MM"`` strings: ``Window.of("22:00", "02:00")``."""
        try:
            return cls(parse_clock(start), parse_clock(end, end=True))
        except ValueError as error:
            raise PolicyError(str(error)) from None

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    @property
    def label(self) -> str:
        return f"{format_clock(self.start)}-{format_clock(self.end)}"

    def span(self, day: date) -> tuple[datetime, datetime]:
        """The window on ``day`` as naive local wall-clock datetimes ``[begin, end)``."""
        midnight = datetime.combine(day, time())
        begin = midnight + timedelta(minutes=self.start)
        end = midnight + timedelta(minutes=self.end)
        if self.overnight:
            end += timedelta(days=1)
        return begin, end


@dataclass(frozen=True, slots=True)
class WeeklyWindow:
    """A window on some weekdays (Monday 0 .. Sunday 6)."""

    days: frozenset[int]
    window: Window

    def __post_init__(self) -> None:
        if not self.days or not self.days <= set(range(7)):
            raise PolicyError(f"days must be a non-empty set of weekdays 0..6, got {self.days}")

    @classmethod
    def of(cls, days: Sequence[str], start: Any, end: Any) -> WeeklyWindow:
        """``WeeklyWindow.of(["mon-fri"], "07:00", "22:00")``."""
        try:
            found = parse_days(days)
        except ValueError as error:
            raise PolicyError(str(error)) from None
        return cls(found, Window.of(start, end))


@dataclass(frozen=True)
class Schedule:
    """Weekly windows in the IANA zone ``timezone``; ``exceptions`` replace a date's
    weekly windows (an empty tuple: closed all day)."""

    timezone: str
    weekly: tuple[WeeklyWindow, ...] = ()
    exceptions: Mapping[date, tuple[Window, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "_zone", zone(self.timezone))
        except ValueError as error:
            raise PolicyError(f"timezone: {error}") from None
        object.__setattr__(self, "weekly", tuple(self.weekly))
        object.__setattr__(
            self, "exceptions", {d: tuple(w) for d, w in sorted(self.exceptions.items())}
        )

    @property
    def tz(self) -> ZoneInfo:
        found: ZoneInfo = self.__dict__["_zone"]
        return found

    def windows_on(self, day: date) -> tuple[Window, ...]:
        """The windows that start on ``day`` (its exception's, or the weekly ones)."""
        if day in self.exceptions:
            return self.exceptions[day]
        weekday = day.weekday()
        return tuple(w.window for w in self.weekly if weekday in w.days)

    def is_open(self, at: datetime) -> bool:
        """Whether the local wall time of the aware instant ``at`` lies in a window."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"is_open needs a timezone-aware datetime, got naive {at}")
        wall = at.astimezone(self.tz).replace(tzinfo=None)  # fold ignored: wall-clock time
        for day in (wall.date() - timedelta(days=1), wall.date()):
            for window in self.windows_on(day):
                begin, end = window.span(day)
                if begin <= wall < end:
                    return True
        return False

    def describe(self, at: datetime) -> str:
        """``at`` as the schedule reads it: ``Sat 2026-03-28 23:10 Europe/Berlin``."""
        local = at.astimezone(self.tz)
        return f"{local:%a %Y-%m-%d %H:%M} {self.timezone}"

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "timezone": self.timezone,
            "windows": [
                {
                    "days": [DAY_NAMES[d] for d in sorted(w.days)],
                    "start": format_clock(w.window.start),
                    "end": format_clock(w.window.end),
                }
                for w in self.weekly
            ],
        }
        if self.exceptions:
            document["exceptions"] = [
                {"date": day.isoformat(), "closed": True}
                if not windows
                else {
                    "date": day.isoformat(),
                    "windows": [
                        {"start": format_clock(w.start), "end": format_clock(w.end)}
                        for w in windows
                    ],
                }
                for day, windows in self.exceptions.items()
            ]
        return document


# --- the document ---------------------------------------------------------------------------
def _clock(value: Any) -> int:
    return parse_clock(value)


def _end_clock(value: Any) -> int:
    return parse_clock(value, end=True)


def _days(value: Any) -> frozenset[int]:
    return parse_days(value)


def _date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}")


def _zone_name(value: Any) -> str:
    zone(value)
    return str(value)


Clock = Annotated[int, BeforeValidator(_clock)]
EndClock = Annotated[int, BeforeValidator(_end_clock)]
Days = Annotated[frozenset[int], BeforeValidator(_days)]
Day = Annotated[date, BeforeValidator(_date)]
ZoneName = Annotated[str, BeforeValidator(_zone_name)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class WindowDoc(_Strict):
    start: Clock = Field(..., description="HH:MM, local wall clock.")
    end: EndClock = Field(..., description="HH:MM (24:00 allowed); not after start: next day.")

    @model_validator(mode="after")
    def _not_empty(self) -> WindowDoc:
        try:
            self.build()
        except PolicyError as error:
            raise ValueError(str(error)) from None
        return self

    def build(self) -> Window:
        return Window(self.start, self.end)


class WeeklyWindowDoc(WindowDoc):
    days: Days = Field(..., description='Days and ranges: ["mon-fri"], ["sat", "sun"].')

    def build_weekly(self) -> WeeklyWindow:
        return WeeklyWindow(self.days, self.build())


class ExceptionDoc(_Strict):
    date: Day
    closed: bool = False
    windows: list[WindowDoc] | None = None

    @model_validator(mode="after")
    def _closed_or_windows(self) -> ExceptionDoc:
        if self.closed == bool(self.windows):
            raise ValueError(
                "expected either closed = true or a non-empty list of windows, "
                "not both and not neither"
            )
        return self


class ScheduleDoc(_Strict):
    timezone: ZoneName = Field(..., description="IANA time zone, e.g. Europe/Berlin.")
    windows: list[WeeklyWindowDoc] = Field(default_factory=list)
    exceptions: list[ExceptionDoc] = Field(default_factory=list)


def schedule_problems(doc: ScheduleDoc, where: str = "") -> list[str]:
    """What is wrong with a schedule document that passed validation field by field
    (empty: nothing): dates given more than once."""
    prefix = f"{where}." if where else ""
    problems = []
    seen: dict[date, int] = {}
    for i, exception in enumerate(doc.exceptions):
        if exception.date in seen:
            problems.append(
                f"{prefix}exceptions[{i}].date: {exception.date} already has an exception "
                f"({prefix}exceptions[{seen[exception.date]}]); give each date once"
            )
        seen.setdefault(exception.date, i)
    return problems


def build_schedule(doc: ScheduleDoc) -> Schedule:
    """The schedule of a document that ``schedule_problems`` found nothing wrong with."""
    return Schedule(
        doc.timezone,
        tuple(w.build_weekly() for w in doc.windows),
        {e.date: tuple(w.build() for w in (e.windows or [])) for e in doc.exceptions},
    )


def describe_errors(error: ValidationError, prefix: str = "") -> list[str]:
    """Each pydantic error as ``path: what was expected`` (``doors[0].direction: ...``);
    the input itself is not echoed beyond what the message says."""
    found = []
    for item in error.errors():
        path = prefix
        for part in item.get("loc", ()):
            if isinstance(part, int):
                path += f"[{part}]"
            elif not str(part).startswith(("function-", "lax-", "strict-")):
                path += f".{part}" if path else str(part)
        kind = item.get("type", "")
        message = str(item.get("msg", "invalid"))
        if kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "missing":
            message = "required field is missing"
        elif kind == "value_error":
            message = message.removeprefix("Value error, ")
        found.append(f"{path or 'document'}: {message}")
    return found


def parse_schedule(data: Any) -> Schedule:
    """One schedule from its document (``{"timezone": ..., "windows": [...],
    "exceptions": [...]}``); PolicyError naming every bad field."""
    try:
        doc = ScheduleDoc.model_validate(data)
    except ValidationError as error:
        raise PolicyError("invalid schedule: " + "; ".join(describe_errors(error))) from None
    problems = schedule_problems(doc)
    if problems:
        raise PolicyError("invalid schedule: " + "; ".join(problems))
    return build_schedule(doc)
