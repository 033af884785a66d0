"""Working hours: when an account is staffed, and deadlines counted in working time.

A :class:`Schedule` is a week of opening intervals in a time zone, minus holidays. SLA
deadlines count only working time: a message on Friday at 19:00 with a 30-minute SLA,
on a Monday–Friday 09:00–18:00 schedule, is due on Monday at 09:30. Everything is
counted in local wall-clock time, as the schedule is written: a DST change at night
moves no working hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HORIZON_DAYS = 400
"""How far a deadline is searched for (a schedule with no open day has none)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    zone: ZoneInfo
    week: tuple[tuple[tuple[time, time], ...], ...]
    """Seven days from Monday, each a sorted tuple of ``(start, end)``; end 00:00 means
    midnight at the end of the day."""
    holidays: frozenset[date] = field(default_factory=frozenset)

    def _intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The open intervals of a local day, as aware datetimes."""
        if day in self.holidays:
            return []
        out = []
        for start, end in self.week[day.weekday()]:
            begin = datetime.combine(day, start, self.zone)
            finish = (
                datetime.combine(day + timedelta(days=1), time(0), self.zone)
                if end == time(0)
                else datetime.combine(day, end, self.zone)
            )
            out.append((begin, finish))
        return out

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(self.zone)
        return any(b <= local < e for b, e in self._intervals(local.date()))

    def add(self, at: datetime, work: timedelta) -> datetime:
        """``at`` plus ``work`` of working time (``at`` itself if ``work`` is zero and
        the account is open; else the next opening)."""
        local = at.astimezone(self.zone)
        left = work
        day = local.date()
        for _ in range(HORIZON_DAYS):
            for begin, end in self._intervals(day):
                if end <= local:
                    continue
                start = max(begin, local)
                # Same tzinfo: Python subtracts and adds wall-clock time, which is
                # what a schedule of local hours means.
                available = end - start
                if left <= available:
                    return (start + left).astimezone(at.tzinfo)
                left -= available
            day += timedelta(days=1)
        raise ValueError("no working time in the schedule within a year")

    def next_open(self, at: datetime) -> datetime:
        """When the account is next open (``at`` itself if open now)."""
        return self.add(at, timedelta(0))


def parse_interval(text: str) -> tuple[time, time]:
    """``"09:00-18:00"`` → times; ``24:00`` (or ``00:00`` as the end) is midnight."""
    start_text, sep, end_text = text.replace(" ", "").partition("-")
    if not sep:
        raise ValueError(f"expected HH:MM-HH:MM, got {text!r}")
    start = time.fromisoformat(start_text)
    end = time(0) if end_text in ("24:00", "00:00") else time.fromisoformat(end_text)
    if end != time(0) and end <= start:
        raise ValueError(f"{text!r} ends before it starts")
    return start, end
