"""Task commands operators type in a contact's topic, and how tasks are shown.

``/take``, ``/close [reason]``, ``/transfer <operator or role>``, ``/reopen`` and
``/rename TEXT`` change the contact's current task through the atomic process store;
``/task`` and ``/history`` show it. A command the rule does not allow gets the rule's explanation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from gateway import process as bp
from gateway.config import Settings
from gateway.model import Button
from gateway.process import Process, Status, Task
from gateway.staff import render
from gateway.store.history import Record

CHANGES = frozenset({"take", "close", "transfer", "reopen", "rename"})
VIEWS = frozenset({"task", "history"})
STATUS_ICONS = {
    Status.NEW: "🟢 new",
    Status.IN_WORK: "🟡 in work",
    Status.RETURNED: "🔁 returned",
    Status.CLOSED: "✅ closed",
}

OVERDUE_ICON = "🔴"
NEW_ICON = STATUS_ICONS[Status.NEW].split()[0]


def status_icon(process: Process | None, now: datetime) -> str:
    """The icon a topic's title starts with: its task's state (🔴 while overdue)."""
    if process is None:
        return NEW_ICON
    if bp.overdue(process, now):
        return OVERDUE_ICON
    return STATUS_ICONS[process.task.status].split()[0]


Step = Callable[[Process | None, bp.NumberFor], bp.Transition]


class TaskCommands:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.zone = settings.zone
        self.operators: Mapping[str, str] = {str(o.id): o.name for o in settings.staff.operators}
        staff = settings.staff
        self.roles: Mapping[str, str] = {r: r for o in staff.operators for r in o.roles} | {
            r.name: r.title or r.name for r in staff.roles
        }

    def name_of(self, user_id: str | None) -> str:
        """An operator's name, or a role's (``transferred_to`` may be either)."""
        if user_id is None:
            return "nobody"
        if bp.is_role(user_id):
            return f"the {self.roles.get(user_id, user_id)} role"
        return self.operators.get(user_id, f"operator {user_id}")

    def step(
        self,
        name: str,
        args: str,
        operator: str,
        at: datetime,
        account: str,
        sla: bp.Sla | None = None,
    ) -> Step:
        """The rule step for a changing command (raises RuleError for bad arguments);
        ``sla`` (the account's) starts a transferred task's take-by clock."""
        match name:
            case "take":
                return lambda current, _: bp.take(current, at, operator)
            case "close":
                channel = self.settings.channel(account)
                reasons = channel.close_reasons if channel else ()
                required = channel.require_close_reason if channel else False
                reason = args or None
                return lambda current, _: bp.close(
                    current, at, operator, reason, reasons=reasons, require_reason=required
                )
            case "transfer":
                target = self.target(args)
                return lambda current, _: bp.transfer(current, at, operator, target, sla)
            case "reopen":
                return lambda current, _: bp.reopen(current, at, operator, zone=self.zone)
            case _:
                return lambda current, _: bp.rename(current, at, operator, args)

    def target(self, text: str) -> str:
        """``/transfer`` whom: an operator (name, @name or Telegram id) or a role."""
        wanted = text.strip().lstrip("@").lower()
        if not wanted:
            names = ", ".join([*self.operators.values(), *self.roles]) or "a Telegram id"
            raise bp.RuleError(f"Whom to? /transfer <operator or role>: {names}")
        for user_id, name in self.operators.items():
            if wanted in (user_id, name.lower()):
                return user_id
        for role, title in self.roles.items():
            if wanted in (role, title.lower()):
                return role
        raise bp.RuleError(f"No operator or role called {text.strip()!r}.")

    def confirm(self, name: str, transition: bp.Transition) -> str:
        """The reply after a changing command succeeded."""
        process, task = transition.process, transition.process.task
        where = f"{process.number}, task {task.number}"
        match name:
            case "take":
                return f"🟡 {self.name_of(task.responsible)} took {where}."
            case "close":
                why = f": {task.close_reason}" if task.close_reason else ""
                return f"✅ Closed {where}{why}."
            case "transfer":
                to = self.name_of(task.transferred_to)
                return f"🔁 {where} handed to {to}; it waits to be taken."
            case "reopen":
                return f"🟡 Reopened {where}; {self.name_of(task.responsible)} has it."
            case _:
                return f"✏️ {process.number} is now called “{process.title}”."

    def card(self, process: Process | None, at: datetime) -> str:
        if process is None:
            return "No business process yet: it opens with the customer's first message of a day."
        return render_card(process, at, self.zone, self.name_of)

    def history(
        self, current: Process | None, archive: list[Process], records: Sequence[Record] = ()
    ) -> str:
        """Processes newest first, each with its tasks and its messages (in and out,
        across the person's messengers, oldest first within the process)."""
        processes = ([current] if current else []) + archive
        if not processes and not records:
            return "No history yet."
        lines = ["🗂 History, newest first:"]
        for process in processes:
            title = f" “{process.title}”" if process.title else ""
            lines.append(f"\n{process.number}{title} — {process.day:%d.%m.%Y}")
            for task in reversed(process.tasks):
                lines.append("  " + _task_line(task, self.zone, self.name_of))
            lines += [self._record_line(r) for r in records if r.process == process.number]
        known = {p.number for p in processes}
        outside = [self._record_line(r) for r in records if r.process not in known]
        if outside:
            lines += ["\nOutside a process:", *outside]
        return "\n".join(lines)

    def _record_line(self, record: Record) -> str:
        body = record.text or f"[{record.kind}]"
        if len(body) > 200:
            body = body[:199] + "…"
        when = local_time(record.at, self.zone)
        if record.direction == "in":
            return f"    {when} ← {record.channel} · {record.account}: {body}"
        return f"    {when} → {self.name_of(record.operator)}: {body}"


def card_buttons(process: Process, today: bool) -> tuple[tuple[Button, ...], ...]:
    """[Take] [Close] [Transfer] on an open task; [Reopen] on today's closed one."""
    task = process.task
    if task.is_open:
        row = [] if task.status is Status.IN_WORK else [Button(text="Take", data="t:take")]
        row += [Button(text="Close", data="t:close"), Button(text="Transfer", data="t:transfer")]
        return (tuple(row),)
    return ((Button(text="Reopen", data="t:reopen"),),) if today else ()


def render_card(
    process: Process, at: datetime, zone: ZoneInfo, name_of: Callable[[str | None], str]
) -> str:
    task = process.task
    title = f" “{process.title}”" if process.title else ""
    lines = [
        f"📋 {process.number}{title} · task {task.number}",
        f"Status: {STATUS_ICONS[task.status]}"
        + (f" — {name_of(task.responsible)}" if task.responsible else ""),
    ]
    if task.status is Status.RETURNED and task.transferred_to:
        lines.append(f"Waiting for: {name_of(task.transferred_to)}")
    if task.is_open and task.awaiting_reply:
        late = " — ⏰ overdue" if bp.overdue(process, at) else ""
        lines.append(f"Respond by: {local_time(task.respond_by, zone)}{late}")
    elif task.answered_at is not None and task.is_open:
        lines.append(f"Answered at {local_time(task.answered_at, zone)}; waiting for the customer")
    if task.is_open and task.seen_at is not None and not task.unread:
        lines.append(f"👁 Seen by {name_of(task.seen_by)} at {local_time(task.seen_at, zone)}")
    if task.close_reason:
        lines.append(f"Closed: {task.close_reason}")
    if task.rating is not None:
        lines.append(f"Customer's rating: {render.rating(task.rating)}")
    lines.append(f"Opened: {local_time(task.opened_at, zone)}")
    return "\n".join(lines)


def _task_line(task: Task, zone: ZoneInfo, name_of: Callable[[str | None], str]) -> str:
    who = f", {name_of(task.responsible)}" if task.responsible else ""
    opened = local_time(task.opened_at, zone)
    line = f"task {task.number}: {STATUS_ICONS[task.status]}{who}, opened {opened}"
    if task.close_reason:
        closed = local_time(task.closed_at, zone) if task.closed_at else ""
        line += f", closed {closed} ({task.close_reason}"
        line += f" → {task.continued_in})" if task.continued_in else ")"
    if task.rating is not None:
        line += f", {render.rating(task.rating)}"
    return line


def local_time(value: datetime, zone: ZoneInfo) -> str:
    """How staff messages show a moment: ``23.11 10:05`` in the business's zone."""
    return f"{value.astimezone(zone):%d.%m %H:%M}"
