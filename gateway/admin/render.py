"""How the dashboard writes times, durations and averages (jinja2 filters).

Each entry of ``FILTERS`` takes the config's time zone and returns the filter, so a
time is always shown in the business's zone, as staff messages show it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo


def duration(seconds: float | None) -> str:
    """``45 s``, ``4 min 10 s``, ``2 h 5 min``, ``1 d 3 h``; ``—`` for none."""
    if seconds is None:
        return "—"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def average(value: float | None) -> str:
    """A rating average with one decimal (``—`` without ratings)."""
    return "—" if value is None else f"{value:.1f}"


def _clock(zone: ZoneInfo) -> Callable[[datetime | None], str]:
    def clock(value: datetime | None) -> str:
        """``14:05`` today, ``03.11 14:05`` another day (in the zone); ``—`` for none."""
        if value is None:
            return "—"
        local = value.astimezone(zone)
        today = datetime.now(zone).date()
        return local.strftime("%H:%M" if local.date() == today else "%d.%m %H:%M")

    return clock


def _weekday(_: ZoneInfo) -> Callable[[date], str]:
    def weekday(day: date) -> str:
        return day.strftime("%a %d.%m")

    return weekday


def _const(function: Callable[..., Any]) -> Callable[[ZoneInfo], Callable[..., Any]]:
    return lambda _: function


FILTERS: dict[str, Callable[[ZoneInfo], Callable[..., Any]]] = {
    "clock": _clock,
    "weekday": _weekday,
    "duration": _const(duration),
    "average": _const(average),
}
