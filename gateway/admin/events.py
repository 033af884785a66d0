"""What one entry of the events stream adds to its day's statistics (pure: no I/O).

The statistics are per-day hashes of counters (``day_key``), one field per thing
counted. Counters only ever grow by whole numbers, so any number of replicas can add
to them in any order, and the totals are the same: the order of events never matters,
only that each is counted once (see :mod:`gateway.admin.stats`).

Fields of a day (``YYYY-MM-DD`` in ``settings.timezone``):

- ``in:channel:<kind>``, ``in:account:<id>``: customer messages (``message.inbound``);
- ``out:channel:<kind>``, ``out:account:<id>``: replies sent (``message.outbound``);
- ``opened``, ``closed``: tasks opened and closed that day (a task carried over to the
  next day's process, or closed by a merge, is a continuation, not a new or a closed
  case: neither is counted);
- ``frt:<le>``, ``frt_sum``, ``frt_n``: first-response times (``task.updated`` with
  ``first_response_seconds``), in histogram buckets of upper bound ``le`` seconds
  (``inf`` for the last), their sum and count;
- ``res_sum``, ``res_n``: resolution times of the tasks closed that day (opened →
  closed, seconds; filled in by the consumer, which reads the task's opening);
- ``csat:<1..5>``, ``csat_sum``, ``csat_n``, ``csat_none``: satisfaction ratings, and
  customers who did not answer the survey (``task.rated``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from gateway.store import keys

GROUP = "stats"
"""The statistics' own consumer group on ``keys.EVENTS`` (integrations have theirs)."""
DAY_TTL_SECONDS = 400 * 86400
"""A day's counters are kept this long (more than a year: last year's same week)."""
SEEN_TTL_SECONDS = 2 * 86400
"""Event ids counted into a day are remembered this long after the last one: far longer
than an entry can stay pending (a stalled replica's entries are claimed within
minutes), and short enough to keep the sets small (one member per counted event)."""

FIRST_RESPONSE_BUCKETS = (30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400)
"""Upper bounds (seconds) of the first-response histogram: the dashboard's chart and
``gateway_first_response_seconds`` share them (the SLA's 15 minutes is a boundary)."""
RESOLUTION_BUCKETS = (300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800)
RATINGS = ("1", "2", "3", "4", "5")
NO_RATING = "none"
CONTINUATIONS = frozenset({"carried_over", "merged"})
"""Close reasons that continue a case elsewhere instead of ending it."""


def day_key(day: date) -> str:
    """Hash of a day's counters (TTL ``DAY_TTL_SECONDS``)."""
    return f"{keys.PREFIX}:stats:day:{day.isoformat()}"


def seen_key(day: date) -> str:
    """Set of the event ids already counted into a day (TTL ``SEEN_TTL_SECONDS``)."""
    return f"{keys.PREFIX}:stats:seen:{day.isoformat()}"


class Malformed(ValueError):
    """An events-stream entry the statistics cannot read (logged, acknowledged, skipped)."""


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of ``keys.EVENTS`` (see ``gateway.store.events.record_event``)."""

    id: str
    type: str
    at: datetime
    contact: str
    process: str = ""
    task: int = 0
    actor: str = ""
    data: dict[str, str] = field(default_factory=dict)


def parse(entry_id: str, fields: dict[bytes, bytes]) -> Event:
    """The entry as an :class:`Event`; :class:`Malformed` if it cannot be one."""
    try:
        values = {k.decode(): v.decode() for k, v in fields.items()}
        at = datetime.fromisoformat(values["at"])
        raw = json.loads(values.get("data") or "{}")
        task = int(values.get("task") or 0)
    except (KeyError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Malformed(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    if not isinstance(raw, dict):
        raise Malformed("data is not a JSON object")
    return Event(
        id=entry_id,
        type=values.get("type", ""),
        at=at if at.tzinfo is not None else at.replace(tzinfo=UTC),
        contact=values.get("contact", ""),
        process=values.get("process", ""),
        task=task,
        actor=values.get("actor", ""),
        data={str(k): str(v) for k, v in raw.items()},
    )


def local_day(at: datetime, zone: ZoneInfo) -> date:
    """The business day an event counts for: its time in the config's time zone."""
    return at.astimezone(zone).date()


def bucket(seconds: float, bounds: tuple[int, ...]) -> str:
    """The histogram bucket (its upper bound, ``inf`` past the last) of ``seconds``."""
    return next((str(b) for b in bounds if seconds <= b), "inf")


def seconds_of(value: str) -> int:
    """A duration in the event's data: whole seconds, never negative (a clock skew
    between replicas must not make a negative wait)."""
    try:
        number = float(value)
    except ValueError as exc:
        raise Malformed(f"not a number of seconds: {value[:40]!r}") from exc
    if number != number or number in (float("inf"), float("-inf")):
        raise Malformed(f"not a number of seconds: {value[:40]!r}")
    return max(0, round(number))


def first_response(event: Event) -> int | None:
    """Seconds the customer waited for the task's first answer (``None``: not one)."""
    if event.type != "task.updated" or "first_response_seconds" not in event.data:
        return None
    return seconds_of(event.data["first_response_seconds"])


def is_resolution(event: Event) -> bool:
    """A task closed for good (not carried over to the next day, not merged away)."""
    return event.type == "task.closed" and event.data.get("reason") not in CONTINUATIONS


def rating(event: Event) -> str | None:
    """``"1"``..``"5"`` or ``"none"`` for a ``task.rated`` event (``None``: not one)."""
    if event.type != "task.rated":
        return None
    value = event.data.get("rating", "")
    if value not in (*RATINGS, NO_RATING):
        raise Malformed(f"rating {value[:20]!r} is not 1-5 or none")
    return value


def increments(event: Event, resolution: int | None = None) -> dict[str, int]:
    """The counters ``event`` adds to its day (empty: it counts for nothing).

    ``resolution`` is the closed task's open time in seconds, which the event itself
    does not carry (the consumer reads it from the task)."""
    found: dict[str, int] = {}
    data = event.data
    if event.type in ("message.inbound", "message.outbound"):
        side = "in" if event.type == "message.inbound" else "out"
        channel, account = data.get("channel", ""), data.get("account", "")
        if not channel or not account:
            raise Malformed(f"{event.type} without channel or account")
        found[f"{side}:channel:{channel}"] = 1
        found[f"{side}:account:{account}"] = 1
    elif event.type == "task.opened":
        if "carried_from" not in data and "merged" not in data:
            found["opened"] = 1
    elif is_resolution(event):
        found["closed"] = 1
        if resolution is not None:
            found["res_sum"] = resolution
            found["res_n"] = 1
    elif (waited := first_response(event)) is not None:
        found[f"frt:{bucket(waited, FIRST_RESPONSE_BUCKETS)}"] = 1
        found["frt_sum"] = waited
        found["frt_n"] = 1
    elif (rated := rating(event)) is not None:
        if rated == NO_RATING:
            found["csat_none"] = 1
        else:
            found[f"csat:{rated}"] = 1
            found["csat_sum"] = int(rated)
            found["csat_n"] = 1
    return found
