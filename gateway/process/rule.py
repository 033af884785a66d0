"""The business-process rule: a pure state machine (no I/O, no clock of its own).

Per contact and per calendar day (in the configured time zone):

- the first inbound message of the day opens a **business process** (a numbered case)
  with its first **task** (``new``, ``respond_by = received_at + sla.first_response``);
- later messages that day never open a second process. If the current task is closed,
  a new task opens in the same process; if it is open and the customer is already
  waiting for a reply, ``respond_by`` stays (a chatty customer cannot push it away);
  if it was answered, ``respond_by = received_at + sla.next_response``;
- the first message after midnight opens the next day's process even if yesterday's
  task is open: that task closes with reason ``carried_over`` and a link to the new
  process, and the new task keeps yesterday's ``respond_by`` if the customer was still
  waiting — midnight never resets an SLA clock, and a contact never has two open tasks.

Every function takes the contact's state and returns the new state with the events it
caused; the storage layer applies it atomically. Time is always passed in, so tests
and the dry-run simulator drive a virtual clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from gateway.errors import GatewayError
from gateway.hours import Schedule

CARRIED_OVER = "carried_over"
AUTO = "auto"
MERGED = "merged"


class Status(StrEnum):
    NEW = "new"
    """Nobody has taken it."""
    IN_WORK = "in_work"
    """An operator is responsible (took it, or replied)."""
    RETURNED = "returned"
    """Transferred to an operator or a role; waiting for the new owner to take it."""
    CLOSED = "closed"


class RuleError(GatewayError):
    """An operator's action the rule does not allow; the message is shown to them."""


@dataclass(frozen=True, slots=True)
class Sla:
    first_response: timedelta
    next_response: timedelta
    auto_close_after: timedelta | None = None
    hours: Schedule | None = None
    """The account's working hours: response deadlines count only working time."""
    take_within: timedelta | None = None
    """A new or transferred task not taken within this escalates (``None``: never)."""

    def due(self, at: datetime, within: timedelta) -> datetime:
        return self.hours.add(at, within) if self.hours is not None else at + within

    def take_by(self, at: datetime) -> datetime | None:
        """When a task waiting to be taken since ``at`` escalates."""
        return self.due(at, self.take_within) if self.take_within is not None else None


@dataclass(frozen=True, slots=True)
class Task:
    number: int
    """1, 2, … within its process."""
    status: Status
    opened_at: datetime
    respond_by: datetime
    awaiting_reply: bool
    """True while the customer waits for an operator (the deadline runs)."""
    responsible: str | None = None
    transferred_to: str | None = None
    answered_at: datetime | None = None
    last_inbound_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    continued_in: str | None = None
    """For a task closed as ``carried_over``: the process it continues in."""
    seen_at: datetime | None = None
    seen_by: str | None = None
    """Who marked the customer's messages read ("Mark read" on a reminder), and when."""
    take_by: datetime | None = None
    """While new or returned: when it escalates if nobody takes it (cleared once it did)."""
    rating: int | None = None
    """The customer's satisfaction rating (1-5) after a close, or ``NO_ANSWER`` (0): asked,
    not answered in time (see :mod:`gateway.process.rating`). ``None``: not rated."""
    rated_at: datetime | None = None
    line: str | None = None
    """The line (staff group) it is handled in; ``None``: the default one."""

    @property
    def unread(self) -> bool:
        """The customer wrote since an operator last marked the messages read."""
        last = self.last_inbound_at
        return last is not None and (self.seen_at is None or self.seen_at < last)

    @property
    def is_open(self) -> bool:
        return self.status is not Status.CLOSED


@dataclass(frozen=True, slots=True)
class Process:
    # number, then day: the store's read script finds the day in the stored JSON by its
    # place (gateway.store.processes; another order still works, only slower).
    number: str
    day: date
    opened_at: datetime
    tasks: tuple[Task, ...]
    title: str | None = None

    @property
    def task(self) -> Task:
        """The current (latest) task; every process has at least one."""
        return self.tasks[-1]

    def with_task(self, task: Task) -> Process:
        """The process with its current task replaced."""
        return replace(self, tasks=(*self.tasks[:-1], task))


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    at: datetime
    process: str
    task: int
    actor: str | None = None
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Transition:
    """The contact's new current process, the one it replaced (if a new day began), and
    what happened, in order."""

    process: Process
    events: tuple[Event, ...]
    archived: Process | None = None


NumberFor = Callable[[date], str]
"""Gives the next process number for a day (a counter per day, atomic in storage)."""

CUSTOMER = "customer"
SYSTEM = "system"


def local_day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def inbound(
    current: Process | None,
    at: datetime,
    *,
    zone: ZoneInfo,
    sla: Sla,
    number_for: NumberFor,
    line: str | None = None,
) -> Transition:
    """A customer's message arrived at ``at``; a task it opens is handled in ``line``
    (an open task stays in its own)."""
    day = local_day(at, zone)
    if current is None or current.day != day:
        return _new_day(current, at, day, sla, number_for, line)
    task = current.task
    if not task.is_open:
        new = Task(
            number=task.number + 1,
            status=Status.NEW,
            opened_at=at,
            respond_by=sla.due(at, sla.first_response),
            awaiting_reply=True,
            last_inbound_at=at,
            take_by=sla.take_by(at),
            line=line,
        )
        process = replace(current, tasks=(*current.tasks, new))
        return Transition(process, (_event("task.opened", at, process, new, CUSTOMER),))
    if task.awaiting_reply:
        # Already waiting for a reply: the deadline stays where it was.
        updated = replace(task, last_inbound_at=at)
    else:
        updated = replace(
            task, awaiting_reply=True, respond_by=sla.due(at, sla.next_response), last_inbound_at=at
        )
    process = current.with_task(updated)
    return Transition(process, (_event("task.updated", at, process, updated, CUSTOMER),))


def _new_day(
    previous: Process | None,
    at: datetime,
    day: date,
    sla: Sla,
    number_for: NumberFor,
    line: str | None,
) -> Transition:
    events: list[Event] = []
    number = number_for(day)
    respond_by = sla.due(at, sla.first_response)
    status, responsible = Status.NEW, None
    archived = previous
    carried = previous is not None and previous.task.is_open
    if previous is not None and carried:
        old = previous.task
        if old.awaiting_reply:
            respond_by = old.respond_by  # midnight never resets an SLA clock
        if old.status is Status.IN_WORK:
            status, responsible = Status.IN_WORK, old.responsible  # the owner keeps it
        line = old.line  # and the line
        closed = _closed(old, at, CARRIED_OVER, continued_in=number)
        archived = previous.with_task(closed)
        events.append(
            _event(
                "task.closed",
                at,
                archived,
                closed,
                SYSTEM,
                reason=CARRIED_OVER,
                continued_in=number,
            )
        )
    task = Task(
        number=1,
        status=status,
        opened_at=at,
        respond_by=respond_by,
        awaiting_reply=True,
        responsible=responsible,
        last_inbound_at=at,
        take_by=sla.take_by(at) if status is Status.NEW else None,
        line=line,
    )
    process = Process(number=number, day=day, opened_at=at, tasks=(task,))
    extra = {"carried_from": previous.number} if previous is not None and carried else {}
    events.append(_event("process.opened", at, process, task, CUSTOMER))
    events.append(_event("task.opened", at, process, task, CUSTOMER, **extra))
    return Transition(process, tuple(events), archived)


def reply(current: Process | None, at: datetime, operator: str) -> Transition:
    """An operator answered the customer: the task is answered, and taken by them if
    nobody had it (replying takes the task)."""
    current, task = _open(current)
    events: list[Event] = []
    updated = replace(task, awaiting_reply=False, answered_at=at)
    if task.status is not Status.IN_WORK or task.responsible is None:
        updated = replace(
            updated, status=Status.IN_WORK, responsible=operator, transferred_to=None, take_by=None
        )
        events.append(_event("task.taken", at, current, updated, operator))
    process = current.with_task(updated)
    data = {"answered": "true"}
    if task.answered_at is None:  # the first answer: how long the customer waited
        data["first_response_seconds"] = str(round((at - task.opened_at).total_seconds()))
    events.append(_event("task.updated", at, process, updated, operator, **data))
    return Transition(process, tuple(events))


def take(current: Process | None, at: datetime, operator: str) -> Transition:
    current, task = _open(current)
    if task.status is Status.IN_WORK and task.responsible == operator:
        raise RuleError("You already have this task.")
    updated = replace(
        task, status=Status.IN_WORK, responsible=operator, transferred_to=None, take_by=None
    )
    process = current.with_task(updated)
    return Transition(process, (_event("task.taken", at, process, updated, operator),))


def is_role(owner: str | None) -> bool:
    """``transferred_to`` names a role (operators are Telegram ids: digits)."""
    return owner is not None and not owner.isdigit()


def waits_for_owner(task: Task) -> bool:
    """Nobody in particular is to take it: new and unassigned, or transferred to a role."""
    if task.status is Status.NEW:
        return task.responsible is None
    return task.status is Status.RETURNED and is_role(task.transferred_to)


def assign(current: Process | None, at: datetime, operator: str) -> Transition | None:
    """Route a task nobody in particular has (new, or transferred to a role) to
    ``operator``; it waits until they take it or reply. ``None`` when someone has it
    already (taken meanwhile)."""
    current, task = _open(current)
    if not waits_for_owner(task):
        return None
    if task.status is Status.NEW:
        updated = replace(task, responsible=operator)
    else:
        updated = replace(task, transferred_to=operator)
    process = current.with_task(updated)
    return Transition(process, (_event("task.assigned", at, process, updated, None, to=operator),))


def transfer(
    current: Process | None, at: datetime, actor: str, to: str, sla: Sla | None = None
) -> Transition:
    """Hand the task to an operator or a role; it waits as ``returned`` until taken
    (and escalates after ``sla.take_within``, counted from now)."""
    current, task = _open(current)
    if task.status is Status.RETURNED and task.transferred_to == to:
        raise RuleError("It is already waiting for them.")
    take_by = sla.take_by(at) if sla is not None else None
    updated = replace(task, status=Status.RETURNED, transferred_to=to, take_by=take_by)
    process = current.with_task(updated)
    return Transition(process, (_event("task.transferred", at, process, updated, actor, to=to),))


def move(current: Process | None, at: datetime, actor: str, line: str, sla: Sla) -> Transition:
    """Move the open task to another line: it waits there as new, for that line's
    operators (and escalates after ``sla.take_within``, counted from now)."""
    current, task = _open(current)
    if task.line == line:
        raise RuleError("It is in that line already.")
    updated = replace(
        task,
        line=line,
        status=Status.NEW,
        responsible=None,
        transferred_to=None,
        take_by=sla.take_by(at),
    )
    process = current.with_task(updated)
    moved = {"from": task.line or "", "to": line}
    return Transition(process, (_event("task.moved", at, process, updated, actor, **moved),))


def escalate(current: Process | None, at: datetime) -> Transition | None:
    """Nobody took the task in time: mark it escalated (once per wait); ``None`` when
    it was taken, closed or transferred again meanwhile, or is not due yet."""
    if current is None or not current.task.is_open:
        return None
    task = current.task
    if task.status is Status.IN_WORK or task.take_by is None or at < task.take_by:
        return None
    updated = replace(task, take_by=None)
    process = current.with_task(updated)
    return Transition(process, (_event("task.escalated", at, process, updated, SYSTEM),))


def close(
    current: Process | None,
    at: datetime,
    actor: str,
    reason: str | None,
    *,
    reasons: Sequence[str] = (),
    require_reason: bool = False,
) -> Transition:
    """Close the current task; ``reasons`` is the account's list (when it has one)."""
    current, task = _open(current)
    if reason is None and require_reason:
        listed = ", ".join(reasons) if reasons else "any text"
        raise RuleError(f"A reason is required to close this task: {listed}.")
    if reason is not None and reasons and reason not in reasons:
        raise RuleError(f"Unknown reason {reason!r}. Choose one of: {', '.join(reasons)}.")
    updated = _closed(task, at, reason)
    process = current.with_task(updated)
    data = {"reason": reason} if reason else {}
    return Transition(process, (_event("task.closed", at, process, updated, actor, **data),))


def reopen(current: Process | None, at: datetime, actor: str, *, zone: ZoneInfo) -> Transition:
    """Reopen the last closed task of today's process."""
    if current is None or current.day != local_day(at, zone):
        raise RuleError("There is no process today to reopen.")
    task = current.task
    if task.is_open:
        raise RuleError("The task is already open.")
    updated = replace(
        task,
        status=Status.IN_WORK,
        responsible=actor,
        transferred_to=None,
        closed_at=None,
        close_reason=None,
        take_by=None,
    )
    process = current.with_task(updated)
    return Transition(process, (_event("task.reopened", at, process, updated, actor),))


def rename(current: Process | None, at: datetime, actor: str, title: str) -> Transition:
    """Give the current process a human title (shown on its card and in history)."""
    if current is None:
        raise RuleError("There is no process to rename yet.")
    title = title.strip()
    if not title:
        raise RuleError("Give the new name after the command: /rename Order #1234")
    process = replace(current, title=title[:200])
    return Transition(
        process, (_event("process.renamed", at, process, process.task, actor, title=title[:200]),)
    )


def auto_close_due(current: Process | None, sla: Sla) -> datetime | None:
    """When the current task closes by itself: after ``auto_close_after`` of customer
    silence following an operator's reply; ``None`` when nothing is due."""
    if current is None or sla.auto_close_after is None:
        return None
    task = current.task
    if not task.is_open or task.awaiting_reply or task.answered_at is None:
        return None
    return task.answered_at + sla.auto_close_after


def auto_close(current: Process | None, at: datetime, sla: Sla) -> Transition | None:
    """Close the task with reason ``auto`` if it is (still) due at ``at``."""
    due = auto_close_due(current, sla)
    if due is None or at < due:
        return None
    return close(current, at, SYSTEM, AUTO)


def overdue(current: Process | None, at: datetime) -> bool:
    """The customer waits for a reply past the deadline."""
    if current is None:
        return False
    task = current.task
    return task.is_open and task.awaiting_reply and at > task.respond_by


def mark_read(current: Process | None, at: datetime, operator: str) -> Transition:
    """An operator saw the customer's messages (the task and its deadline stay: only
    an answer stops the clock)."""
    current, task = _open(current)
    if not task.unread:
        raise RuleError("Nothing unread: the customer has not written since.")
    updated = replace(task, seen_at=at, seen_by=operator)
    process = current.with_task(updated)
    return Transition(
        process, (_event("task.updated", at, process, updated, operator, read="true"),)
    )


def minutes_late(task: Task, at: datetime) -> int:
    """Whole minutes past the task's deadline at ``at`` (0 if not yet late)."""
    return max(0, int((at - task.respond_by).total_seconds() // 60))


def _closed(task: Task, at: datetime, reason: str | None, continued_in: str | None = None) -> Task:
    return replace(
        task,
        status=Status.CLOSED,
        closed_at=at,
        close_reason=reason,
        continued_in=continued_in,
        awaiting_reply=False,
        take_by=None,
    )


def _open(current: Process | None) -> tuple[Process, Task]:
    """The process and its task, which must be open."""
    if current is None or not current.task.is_open:
        raise RuleError("There is no open task.")
    return current, current.task


def _event(
    kind: str, at: datetime, process: Process, task: Task, actor: str | None, **data: str
) -> Event:
    return Event(kind, at, process.number, task.number, actor, dict(data))
