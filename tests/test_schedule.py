"""Weekly schedules in IANA time zones: windows across midnight, daylight-saving nights in
two zones, exceptions by date, and the errors of bad documents."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from facegate.errors import PolicyError
from facegate.policy.schedule import (
    Schedule,
    WeeklyWindow,
    Window,
    parse_days,
    parse_schedule,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

OFFICE = parse_schedule(
    {
        "timezone": "Europe/Berlin",
        "windows": [
            {"days": ["mon-fri"], "start": "07:00", "end": "22:00"},
            {"days": ["fri"], "start": "22:00", "end": "02:00"},  # Friday's, into Saturday
            {"days": ["sun"], "start": "10:00", "end": "24:00"},
        ],
        "exceptions": [
            {"date": "2026-12-25", "closed": True},  # a Friday: its late window goes too
            {"date": "2026-12-24", "windows": [{"start": "08:00", "end": "12:00"}]},
            {"date": "2026-01-03", "closed": True},  # a Saturday: Friday's window still runs
        ],
    }
)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("at", "open_"),
    [
        (berlin(2026, 3, 23, 6, 59), False),  # Monday before opening
        (berlin(2026, 3, 23, 7, 0), True),  # start is inclusive
        (berlin(2026, 3, 23, 21, 59), True),
        (berlin(2026, 3, 23, 22, 0), False),  # end is exclusive
        (berlin(2026, 3, 26, 23, 0), False),  # Thursday night: no overnight window
        (berlin(2026, 3, 27, 22, 0), True),  # Friday's overnight window
        (berlin(2026, 3, 28, 1, 59), True),  # ... runs into Saturday
        (berlin(2026, 3, 28, 2, 0), False),
        (berlin(2026, 3, 28, 12, 0), False),  # Saturday
        (berlin(2026, 3, 29, 9, 59), False),  # Sunday before 10:00
        (berlin(2026, 3, 29, 23, 59), True),  # ... until 24:00
        (berlin(2026, 3, 30, 0, 0), False),  # Monday 00:00: Sunday's window has ended
        # The same instant in another zone gets the same answer (converted, not relabelled).
        (datetime(2026, 3, 23, 6, 0, tzinfo=UTC), True),  # 07:00 in Berlin (CET)
        (datetime(2026, 3, 23, 5, 59, tzinfo=UTC), False),
        (datetime(2026, 3, 23, 2, 0, tzinfo=NEW_YORK), True),  # 07:00 in Berlin
    ],
)
def test_weekly_windows_and_midnight(at: datetime, open_: bool) -> None:
    assert OFFICE.is_open(at) is open_


@pytest.mark.parametrize(
    ("at", "open_"),
    [
        (berlin(2026, 12, 24, 7, 30), False),  # special hours replace the weekly ones
        (berlin(2026, 12, 24, 8, 0), True),
        (berlin(2026, 12, 24, 11, 59), True),
        (berlin(2026, 12, 24, 12, 0), False),
        (berlin(2026, 12, 24, 20, 0), False),  # a Thursday, normally open
        (berlin(2026, 12, 25, 12, 0), False),  # closed all day (a Friday)
        (berlin(2026, 12, 25, 23, 0), False),  # Friday's late window belongs to the 25th
        (berlin(2026, 12, 26, 1, 0), False),  # ... so it is gone on the 26th too
        (berlin(2026, 1, 2, 23, 0), True),  # Friday before a closed Saturday
        (berlin(2026, 1, 3, 1, 30), True),  # Friday's window is not cut by it
        (berlin(2026, 1, 3, 12, 0), False),
        (berlin(2027, 12, 24, 20, 0), True),  # an exception holds for its date only
    ],
)
def test_exceptions_by_date(at: datetime, open_: bool) -> None:
    assert OFFICE.is_open(at) is open_


def open_minutes(schedule: Schedule, day: date, zone: ZoneInfo) -> list[datetime]:
    """Every real (UTC) minute of the two days from local midnight of ``day`` that the
    schedule is open."""
    start = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
    minutes = (start + timedelta(minutes=m) for m in range(48 * 60))
    return [m for m in minutes if schedule.is_open(m)]


def one_window(zone: str, day: str, start: str, end: str) -> Schedule:
    return Schedule(zone, (WeeklyWindow.of([day], start, end),))


@pytest.mark.parametrize(
    ("zone", "day", "window", "minutes", "first", "last"),
    [
        # Spring forward, Berlin: 02:00 CET -> 03:00 CEST. 01:30-03:00 covers only the wall
        # times that exist: 01:30-02:00 CET, 30 real minutes.
        ("Europe/Berlin", date(2026, 3, 29), ("01:30", "03:00"), 30, "00:30", "00:59"),
        # A window inside the gap is never open.
        ("Europe/Berlin", date(2026, 3, 29), ("02:00", "03:00"), 0, None, None),
        # Fall back, Berlin: 03:00 CEST -> 02:00 CET. 02:00-03:00 covers both occurrences.
        ("Europe/Berlin", date(2026, 10, 25), ("02:00", "03:00"), 120, "00:00", "01:59"),
        # Spring forward, New York: 02:00 EST -> 03:00 EDT.
        ("America/New_York", date(2026, 3, 8), ("01:30", "03:00"), 30, "06:30", "06:59"),
        # Fall back, New York: 02:00 EDT -> 01:00 EST. 01:00-02:00 covers both occurrences.
        ("America/New_York", date(2026, 11, 1), ("01:00", "02:00"), 120, "05:00", "06:59"),
        # Outside the changes, an hour is an hour.
        ("America/New_York", date(2026, 11, 8), ("01:00", "02:00"), 60, "06:00", "06:59"),
    ],
)
def test_daylight_saving_nights(
    zone: str,
    day: date,
    window: tuple[str, str],
    minutes: int,
    first: str | None,
    last: str | None,
) -> None:
    schedule = one_window(zone, "sun", *window)
    found = open_minutes(schedule, day, ZoneInfo(zone))
    assert len(found) == minutes
    if minutes:
        assert f"{found[0]:%H:%M}" == first and f"{found[-1]:%H:%M}" == last  # in UTC


def test_an_overnight_window_across_a_change_lasts_the_real_hours() -> None:
    # Saturday 22:00 to Sunday 06:00 in Berlin: the night clocks go forward is 7 hours long.
    schedule = one_window("Europe/Berlin", "sat", "22:00", "06:00")
    assert len(open_minutes(schedule, date(2026, 3, 28), BERLIN)) == 7 * 60
    assert len(open_minutes(schedule, date(2026, 10, 24), BERLIN)) == 9 * 60


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        OFFICE.is_open(datetime(2026, 3, 23, 12, 0))


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (["mon-fri"], {0, 1, 2, 3, 4}),
        (["sat", "SUN"], {5, 6}),
        (["fri-mon"], {4, 5, 6, 0}),  # a range may wrap the week
        (["wed"], {2}),
        (["mon-sun"], set(range(7))),
    ],
)
def test_day_names_and_ranges(days: list[str], expected: set[int]) -> None:
    assert parse_days(days) == frozenset(expected)


def test_toml_values_and_the_document_round_trip() -> None:
    # tomllib gives times and dates as objects, not strings.
    schedule = parse_schedule(
        {
            "timezone": "America/New_York",
            "windows": [{"days": ["sat"], "start": time(22, 0), "end": time(2, 0)}],
            "exceptions": [{"date": date(2026, 7, 4), "closed": True}],
        }
    )
    assert schedule.windows_on(date(2026, 7, 11)) == (Window.of("22:00", "02:00"),)
    assert schedule.windows_on(date(2026, 7, 4)) == ()
    assert parse_schedule(schedule.to_document()) == schedule
    assert parse_schedule(OFFICE.to_document()) == OFFICE


BAD: list[tuple[dict[str, Any], list[str]]] = [
    ({"timezone": "Mars/Olympus"}, ["timezone: unknown time zone 'Mars/Olympus'"]),
    ({"timezone": "../etc/passwd"}, ["timezone: expected an IANA time zone name"]),
    ({}, ["timezone: required field is missing"]),
    (
        {"timezone": "UTC", "windows": [{"days": ["mon"], "start": "25:00", "end": "26:00"}]},
        [
            "windows[0].start: expected a time of day HH:MM from 00:00 to 23:59, got '25:00'",
            "windows[0].end: expected a time of day HH:MM from 00:00 to 24:00, got '26:00'",
        ],
    ),
    (
        {"timezone": "UTC", "windows": [{"days": ["mon"], "start": "24:00", "end": "07:00"}]},
        ["windows[0].start: expected a time of day HH:MM from 00:00 to 23:59"],
    ),
    (
        {"timezone": "UTC", "windows": [{"days": ["mon"], "start": "7:00", "end": "07:60"}]},
        ["windows[0].start: expected", "windows[0].end: expected"],
    ),
    (
        {"timezone": "UTC", "windows": [{"days": ["mon"], "start": "07:00", "end": "07:00"}]},
        ["windows[0]: window 07:00-07:00 is empty or ambiguous"],
    ),
    (
        {"timezone": "UTC", "windows": [{"days": ["funday"], "start": "07:00", "end": "08:00"}]},
        ["windows[0].days: expected day names"],
    ),
    (
        {"timezone": "UTC", "windows": [{"days": [], "start": "07:00", "end": "08:00"}]},
        ["windows[0].days: expected a non-empty list of days"],
    ),
    (
        {"timezone": "UTC", "windows": [{"start": "07:00", "end": "08:00", "day": ["mon"]}]},
        ["windows[0].days: required field is missing", "windows[0].day: unknown field"],
    ),
    (
        {
            "timezone": "UTC",
            "exceptions": [
                {"date": "2026-02-30", "closed": True},
                {"date": "2026-05-01"},
                {
                    "date": "2026-05-02",
                    "closed": True,
                    "windows": [{"start": "08:00", "end": "09:00"}],
                },
            ],
        },
        [
            "exceptions[0].date: expected a date YYYY-MM-DD, got '2026-02-30'",
            "exceptions[1]: expected either closed = true or a non-empty list of windows",
            "exceptions[2]: expected either closed = true",
        ],
    ),
    (
        {
            "timezone": "UTC",
            "exceptions": [
                {"date": "2026-05-01", "closed": True},
                {"date": "2026-05-01", "closed": True},
            ],
        },
        ["exceptions[1].date: 2026-05-01 already has an exception (exceptions[0])"],
    ),
    (
        {
            "timezone": "UTC",
            "windows": [{"days": ["mon"], "start": time(7, 0, 30), "end": "08:00"}],
        },
        ["windows[0].start: expected a time of day as HH:MM (whole minutes)"],
    ),
]


@pytest.mark.parametrize(("document", "messages"), BAD)
def test_bad_schedules_name_every_field(document: dict[str, Any], messages: list[str]) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_schedule(document)
    assert raised.value.code == "invalid_policy"
    for message in messages:
        assert message in str(raised.value), (message, str(raised.value))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Window.of("10:00", "10:00"), "empty or ambiguous"),
        (lambda: Window.of("10:00", "25:00"), "00:00 to 24:00"),
        (lambda: Window(0, 1441), "window end"),
        (lambda: WeeklyWindow.of(["someday"], "10:00", "11:00"), "expected day names"),
        (lambda: Schedule("Nowhere/Atlantis"), "unknown time zone"),
    ],
)
def test_constructors_validate(make: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        make()


def test_a_whole_day_and_windows_ending_at_midnight() -> None:
    schedule = Schedule(
        "UTC",
        (
            WeeklyWindow.of(["mon"], "00:00", "24:00"),
            WeeklyWindow.of(["tue"], "20:00", "00:00"),  # same as 20:00-24:00
        ),
    )
    monday = datetime(2026, 3, 23, tzinfo=UTC)
    assert schedule.is_open(monday) and schedule.is_open(monday + timedelta(hours=23, minutes=59))
    assert not schedule.is_open(monday + timedelta(days=1, hours=19, minutes=59))
    assert schedule.is_open(monday + timedelta(days=1, hours=23, minutes=59))
    assert not schedule.is_open(monday + timedelta(days=2))
