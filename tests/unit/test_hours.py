"""Working-time arithmetic: deadlines across evenings, weekends, holidays and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.hours import Schedule, parse_interval

MSK = ZoneInfo("Europe/Moscow")  # no DST
BERLIN = ZoneInfo("Europe/Berlin")  # DST
WEEKDAYS = ((time(9), time(18)),)


def office(zone: ZoneInfo = MSK, holidays: frozenset[date] = frozenset()) -> Schedule:
    return Schedule(zone=zone, week=(WEEKDAYS,) * 5 + ((), ()), holidays=holidays)


def at(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)


def test_friday_evening_is_due_on_monday_morning() -> None:
    friday_19 = at(MSK, 2026, 11, 27, 19, 0)
    assert office().add(friday_19, timedelta(minutes=30)) == at(MSK, 2026, 11, 30, 9, 30)
    assert not office().is_open(friday_19)
    assert office().next_open(friday_19) == at(MSK, 2026, 11, 30, 9, 0)


def test_work_left_at_closing_continues_next_morning() -> None:
    late = at(MSK, 2026, 11, 24, 17, 45)  # Tuesday
    assert office().add(late, timedelta(minutes=30)) == at(MSK, 2026, 11, 25, 9, 15)
    assert office().add(late, timedelta(minutes=15)) == at(MSK, 2026, 11, 24, 18, 0)


def test_holidays_and_lunch_breaks_are_skipped() -> None:
    new_year = frozenset({date(2027, 1, 1)})
    eve = at(MSK, 2026, 12, 31, 17, 0)  # Thursday; Friday is a holiday
    assert office(holidays=new_year).add(eve, timedelta(hours=2)) == at(MSK, 2027, 1, 4, 10, 0)
    lunch = Schedule(MSK, (((time(9), time(13)), (time(14), time(18))),) * 7)
    assert lunch.add(at(MSK, 2026, 11, 24, 12, 30), timedelta(hours=1)) == at(
        MSK, 2026, 11, 24, 14, 30
    )


def test_round_the_clock_and_dst_days() -> None:
    always = Schedule(BERLIN, (((time(0), time(0)),),) * 7)
    start = at(BERLIN, 2026, 3, 28, 12, 0)  # DST starts on Sunday 29 March at 02:00
    assert always.add(start, timedelta(hours=24)) == at(BERLIN, 2026, 3, 29, 12, 0)
    office_berlin = office(BERLIN)
    friday = at(BERLIN, 2026, 10, 23, 17, 0)  # DST ends on Sunday 25 October
    assert office_berlin.add(friday, timedelta(hours=2)) == at(BERLIN, 2026, 10, 26, 10, 0)


def test_an_empty_schedule_has_no_deadline_and_intervals_parse() -> None:
    with pytest.raises(ValueError, match="no working time"):
        Schedule(MSK, ((),) * 7).add(at(MSK, 2026, 1, 1, 0, 0), timedelta(minutes=1))
    assert parse_interval("09:00-18:00") == (time(9), time(18))
    assert parse_interval("20:00 - 24:00") == (time(20), time(0))
    for bad in ("9-18", "18:00-09:00", "09:00"):
        with pytest.raises(ValueError, match=r"HH:MM|before|Invalid"):
            parse_interval(bad)


moments = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
spans = st.integers(min_value=0, max_value=3 * 24 * 60).map(lambda m: timedelta(minutes=m))


@settings(max_examples=300, deadline=None)
@given(moments, spans, spans, st.sampled_from([MSK, BERLIN]))
def test_working_time_adds_up(start: datetime, a: timedelta, b: timedelta, zone: ZoneInfo) -> None:
    schedule = office(zone)
    due = schedule.add(start, a + b)
    assert due >= start
    if b > timedelta(0):  # adding in two steps is the same (adding zero work means "the
        # next opening", which a deadline exactly at closing time is not)
        assert schedule.add(schedule.add(start, a), b) == due
    if a + b > timedelta(0):
        # A deadline falls inside working time (or exactly at a closing time).
        local = due.astimezone(zone)
        assert schedule.is_open(due) or local.time() == time(18)


@settings(max_examples=200, deadline=None)
@given(moments)
def test_in_open_hours_nothing_is_skipped(start: datetime) -> None:
    always = Schedule(MSK, (((time(0), time(0)),),) * 7)
    assert always.add(start, timedelta(minutes=90)) == start + timedelta(minutes=90)
