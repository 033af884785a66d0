"""The satisfaction survey's outcome on a task (pure): the customer's rating, or none
when the survey expired unanswered.

The answer may come after the contact moved on — a new task opened in the same process,
or a new day sent the process to the archive — so these take whichever process holds
the task, and the task by its number (not necessarily the current one).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from gateway.process.rule import CUSTOMER, SYSTEM, Event, Process, Transition

NO_ANSWER = 0
"""``Task.rating`` of a task whose survey expired before the customer answered."""
RATINGS = range(1, 6)
UNANSWERED = "none"
"""``task.rated``'s ``rating`` for a survey nobody answered (else ``"1"``..``"5"``)."""


def rate(process: Process, task: int, rating: int, at: datetime) -> Transition | None:
    """The customer rated task number ``task`` of ``process``; ``None`` when the process
    has no such task. A task surveyed again (reopened, closed again) takes the newer
    rating: the latest answer speaks for it."""
    if rating not in RATINGS:
        raise ValueError(f"a rating is 1 to 5, not {rating}")
    return _answered(process, task, rating, at, CUSTOMER, str(rating))


def unanswered(process: Process, task: int, at: datetime) -> Transition | None:
    """The survey of task ``task`` expired unanswered. The event says so either way; the
    task is marked ``NO_ANSWER`` unless an earlier survey of it was answered (that
    rating stays)."""
    found = next((t for t in process.tasks if t.number == task), None)
    if found is None:
        return None
    if found.rating is None:
        rating, rated_at = NO_ANSWER, at
    else:
        rating, rated_at = found.rating, found.rated_at or at
    return _answered(process, task, rating, rated_at, SYSTEM, UNANSWERED, event_at=at)


def _answered(
    process: Process,
    number: int,
    rating: int,
    rated_at: datetime,
    actor: str,
    said: str,
    *,
    event_at: datetime | None = None,
) -> Transition | None:
    tasks = list(process.tasks)
    for i, task in enumerate(tasks):
        if task.number == number:
            tasks[i] = replace(task, rating=rating, rated_at=rated_at)
            updated = replace(process, tasks=tuple(tasks))
            event = Event(
                "task.rated", event_at or rated_at, process.number, number, actor, {"rating": said}
            )
            return Transition(updated, (event,))
    return None
