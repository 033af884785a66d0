"""What the dashboard shows, gathered in one pass: the statistics of today and the last
7 days, and the live state — the queue, overdue tasks and operators — read from the
same stores and with the same code as ``/queue``, ``/overdue`` and ``/status``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.admin.chart import Chart, bucket_labels, histogram
from gateway.admin.report import Counters, Day, days_until, read_days
from gateway.app import App
from gateway.config import Responsible
from gateway.model import ContactId
from gateway.process import Process, Status, minutes_late
from gateway.store import keys
from gateway.store.redis import Redis, text

DAYS = 7
LISTED = 50
"""Rows shown in the queue and overdue lists (the totals count every task)."""


@dataclass(frozen=True, slots=True)
class TaskRow:
    contact_id: str
    name: str
    account: str
    process: str
    task: int
    status: str
    waiting_for: str
    opened_at: datetime
    respond_by: datetime
    minutes_late: int
    link: str | None
    """Opens the customer's topic in Telegram (``None``: no topic yet)."""


@dataclass(frozen=True, slots=True)
class OperatorRow:
    id: str
    name: str
    online: bool
    since: datetime | None
    load: int
    capacity: int | None
    on_shift: bool

    @property
    def full(self) -> bool:
        return self.capacity is not None and self.load >= self.capacity


@dataclass(frozen=True, slots=True)
class Snapshot:
    now: datetime
    days: tuple[Day, ...]
    """The last ``DAYS`` days, oldest first; the last one is today."""
    channels: tuple[str, ...]
    queue: tuple[TaskRow, ...]
    queue_total: int
    overdue: tuple[TaskRow, ...]
    overdue_total: int
    operators: tuple[OperatorRow, ...]
    chart: Chart
    buckets: tuple[str, ...]

    @property
    def today(self) -> Counters:
        return self.days[-1].counters

    @property
    def week(self) -> Counters:
        return Counters.total(d.counters for d in self.days)


async def snapshot(gateway: App) -> Snapshot:
    settings = gateway.settings
    now = gateway.clock()
    days = await read_days(_redis(gateway), days_until(now, settings.zone, DAYS))
    week = Counters.total(d.counters for d in days)
    configured = {c.kind for c in settings.channels}
    channels = tuple(sorted(configured | set(week.by("in:channel:"))))
    waiting = await gateway.pipeline.desk.waiting.unassigned()
    queue = [
        await _row(gateway, w.contact_id, w.process, now, _route_name(gateway, w.responsible))
        for w in waiting[:LISTED]
    ]
    late = await gateway.processes.overdue(now, limit=LISTED)
    overdue = [await _row(gateway, ContactId(cid), p, now, _owner(gateway, p)) for cid, p in late]
    overdue_total = await _redis(gateway).zcount(
        keys.AWAITING, "-inf", f"({int(now.timestamp() * 1000)}"
    )
    today = days[-1].counters.first_response_buckets()
    return Snapshot(
        now=now,
        days=tuple(days),
        channels=channels,
        queue=tuple(queue),
        queue_total=len(waiting),
        overdue=tuple(overdue),
        overdue_total=int(overdue_total),
        operators=tuple(await operators(gateway)),
        chart=histogram(today, week.first_response_buckets()),
        buckets=tuple(bucket_labels()),
    )


def _redis(gateway: App) -> Redis:
    if gateway.redis is None:
        raise RuntimeError("the gateway has not started")
    return gateway.redis


def _route_name(gateway: App, route: Responsible | None) -> str:
    """Whose the waiting task is to take: a role, an operator, or anyone."""
    if route is not None and route.role:
        return f"role {route.role}"
    if route is not None and route.operator is not None:
        names = {o.id: o.name for o in gateway.settings.staff.operators}
        return names.get(route.operator, f"operator {route.operator}")
    return "anyone"


def _owner(gateway: App, process: Process) -> str:
    """Who should answer the overdue task: its owner, the one it waits for, or nobody."""
    task = process.task
    owner = task.transferred_to if task.status is Status.RETURNED else task.responsible
    if owner is None:
        return "nobody yet"
    names = {str(o.id): o.name for o in gateway.settings.staff.operators}
    return names.get(owner, owner if not owner.isdigit() else f"operator {owner}")


async def _row(
    gateway: App, contact_id: ContactId, process: Process, now: datetime, waiting_for: str
) -> TaskRow:
    contact = await gateway.pipeline.contacts.get(contact_id)
    link = await gateway.pipeline.lines.link(contact_id)
    task = process.task
    return TaskRow(
        contact_id=contact_id,
        name=contact.get("display_name") or contact_id,
        account=contact.get("reply_account") or contact.get("account", ""),
        process=process.number,
        task=task.number,
        status=task.status.value,
        waiting_for=waiting_for,
        opened_at=task.opened_at,
        respond_by=task.respond_by,
        minutes_late=minutes_late(task, now),
        link=link,
    )


async def operators(gateway: App) -> list[OperatorRow]:
    """Every configured operator (or, with none configured, everyone who said /online or
    /offline): availability since when, open tasks against capacity, on shift or not."""
    settings = gateway.settings
    presence = gateway.pipeline.desk.presence
    raw = await _redis(gateway).hgetall(keys.PRESENCE)
    states = {text(k): text(v) for k, v in raw.items()}
    configured = {str(o.id): o for o in settings.staff.operators}
    ids = list(configured) or sorted(states)
    now = gateway.clock()
    rows = []
    for operator in ids:
        state, _, since = states.get(operator, "offline:").partition(":")
        known = configured.get(operator)
        rows.append(
            OperatorRow(
                id=operator,
                name=known.name if known else operator,
                online=state == "online",
                since=datetime.fromisoformat(since).astimezone(UTC) if since else None,
                load=await presence.load(operator),
                capacity=known.max_chats if known else None,
                on_shift=presence.on_shift(operator, now),
            )
        )
    return rows
