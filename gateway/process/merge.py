"""Two contacts found to be one person: their current processes combined (pure)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from gateway.process.rule import MERGED, SYSTEM, Event, Process, Status, Task, _closed, _event


@dataclass(frozen=True, slots=True)
class Merged:
    """Two contacts' processes after a merge: the survivor's current process, the
    processes that go to its archive, and what happened."""

    current: Process | None
    archived: tuple[Process, ...]
    events: tuple[Event, ...]


def merge(survivor: Process | None, absorbed: Process | None, at: datetime) -> Merged:
    """Combine the current processes of two contacts that are one person.

    The later day's process stays current (the survivor's on a tie); the other goes to
    the archive. If its task was open it closes as ``merged``, linked to the one that
    stays — and if the customer was waiting there, the task that stays waits too,
    under the earlier of the two deadlines (a merge never resets an SLA clock, and a
    person never has two open tasks).
    """
    if absorbed is None or survivor is None:
        return Merged(survivor or absorbed, (), ())
    keep, drop = (absorbed, survivor) if absorbed.day > survivor.day else (survivor, absorbed)
    events: list[Event] = []
    old = drop.task
    if old.is_open:
        closed = _closed(old, at, MERGED, continued_in=keep.number)
        drop = drop.with_task(closed)
        events.append(_event("task.closed", at, drop, closed, SYSTEM, reason=MERGED))
        if old.awaiting_reply:
            keep, more = _wait_in(keep, old, at)
            events.extend(more)
    return Merged(keep, (drop,), tuple(events))


def _wait_in(process: Process, waiting: Task, at: datetime) -> tuple[Process, list[Event]]:
    """``process`` takes over a customer who waits for a reply in ``waiting``."""
    task = process.task
    if task.is_open:
        respond_by = (
            min(task.respond_by, waiting.respond_by) if task.awaiting_reply else waiting.respond_by
        )
        last = max(
            (t for t in (task.last_inbound_at, waiting.last_inbound_at) if t is not None),
            default=None,
        )
        updated = replace(task, awaiting_reply=True, respond_by=respond_by, last_inbound_at=last)
        process = process.with_task(updated)
        return process, [_event("task.updated", at, process, updated, SYSTEM, merged="true")]
    new = Task(
        number=task.number + 1,
        status=Status.NEW,
        opened_at=at,
        respond_by=waiting.respond_by,
        awaiting_reply=True,
        last_inbound_at=waiting.last_inbound_at,
    )
    process = replace(process, tasks=(*process.tasks, new))
    return process, [_event("task.opened", at, process, new, SYSTEM, merged="true")]
