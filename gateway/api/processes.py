"""``/processes`` and ``/tasks``: business processes and their tasks, read-only.

A contact has one current process (its latest task is the one staff act on) and an
archive of older ones; every contact with a process is found by walking the current
processes (:mod:`gateway.api.paging`). Archived processes never hold an open task (a
new day closes yesterday's as ``carried_over``, a merge closes one as ``merged``), so a
filter on open statuses reads no archive.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Literal, TypeVar

from pydantic import Field, model_validator

from gateway.api.errors import not_found
from gateway.api.paging import Cursor, PageQuery, walk
from gateway.api.registry import Call, In, Out, Routes
from gateway.api.schemas import (
    CONTACT_ID,
    ContactPath,
    Page,
    ProcessOut,
    TaskOut,
    process_out,
    task_out,
)
from gateway.model import ContactId
from gateway.process import Process, Status, Task
from gateway.staff.desk import Desk
from gateway.store import keys
from gateway.store.processes import PROCESS
from gateway.store.redis import text

T = TypeVar("T")
routes = Routes("processes", "Business processes (one per customer and day) and their tasks.")
Wanted = Literal["new", "in_work", "returned", "closed", "open"]
OPEN = frozenset({"new", "in_work", "returned", "open"})


class ProcessQuery(PageQuery):
    status: Wanted | None = None
    """A task status, or ``open`` (any but closed). For processes: their latest task's."""
    operator: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """An operator's Telegram id (or a role a task was transferred to): tasks they are
    responsible for or that wait for them. For processes: any of their tasks."""
    account: str | None = Field(None, min_length=1, max_length=64)
    """The channel account the customer last wrote from (``channels[].id``)."""
    contact_id: str | None = Field(None, pattern=CONTACT_ID)
    """One contact's (a merged contact's id stands for the person it was merged into)."""
    date_from: date | None = None
    """The process's day (in the gateway's timezone), from this one on."""
    date_to: date | None = None
    """The process's day, up to and including this one."""

    @model_validator(mode="after")
    def _dates(self) -> ProcessQuery:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("date_from is after date_to")
        return self


class ProcessPage(Page):
    items: list[ProcessOut]


class TaskPage(Page):
    items: list[TaskOut]


class ProcessPath(In):
    contact_id: str = Field(pattern=CONTACT_ID)
    number: str = Field(min_length=1, max_length=64)
    """The process number (``BP-20261123-0007``)."""


class CurrentTask(Out):
    contact_id: str
    process: ProcessOut
    task: TaskOut
    """The process's latest task: the one take, assign, transfer and close act on."""


Found = tuple[str, Process, bool]
"""A contact id, one of its processes, and whether it is the current one."""


def _status_ok(wanted: Wanted | None, task: Task) -> bool:
    if wanted is None:
        return True
    return task.is_open if wanted == "open" else task.status is Status(wanted)


def _operator_ok(wanted: str | None, task: Task) -> bool:
    return wanted is None or wanted in (task.responsible, task.transferred_to)


def _day_ok(query: ProcessQuery, process: Process) -> bool:
    if query.date_from is not None and process.day < query.date_from:
        return False
    return query.date_to is None or process.day <= query.date_to


async def _processes(desk: Desk, query: ProcessQuery, ids: list[str]) -> list[Found]:
    """The processes of ``ids`` that pass the account and date filters (current first,
    then the archive, newest first)."""
    archives = query.status not in OPEN
    async with desk.redis.pipeline(transaction=False) as pipe:
        for contact_id in ids:
            pipe.get(keys.process(contact_id))
            if archives:
                pipe.lrange(keys.process_archive(contact_id), 0, -1)
            if query.account is not None:
                pipe.hget(keys.contact(contact_id), "reply_account")
        replies = iter(await pipe.execute())
    found: list[Found] = []
    for contact_id in ids:
        raw = next(replies)
        archived = next(replies) if archives else []
        account = next(replies) if query.account is not None else None
        if raw is None or (query.account is not None and text(account or b"") != query.account):
            continue
        candidates = [(PROCESS.validate_json(raw), True)]
        candidates += [(PROCESS.validate_json(a), False) for a in archived]
        found += [(contact_id, p, c) for p, c in candidates if _day_ok(query, p)]
    return found


async def _walk(
    call: Call, query: ProcessQuery, expand: Callable[[list[str]], Awaitable[list[T]]]
) -> tuple[list[T], Cursor | None]:
    """A page of everyone's items, or of one contact's (``contact_id``: by offset)."""
    cursor = Cursor.decode(query.cursor)
    if query.contact_id is None:
        return await walk(call.desk.redis, keys.process(""), cursor, query.limit, expand)
    person = await call.desk.contacts.survivor(ContactId(query.contact_id))
    items = await expand([person])
    end = cursor.skip + query.limit
    return items[cursor.skip : end], Cursor(0, end) if end < len(items) else None


@routes.route("GET", "/processes", scope="read", query=ProcessQuery, response=ProcessPage)
async def list_processes(call: Call) -> ProcessPage:
    """List business processes

    Current and archived processes, filtered: ``status`` is their latest task's,
    ``operator`` any of their tasks'. In no particular order across contacts; a
    contact's newest first."""
    query, desk = call.query(ProcessQuery), call.desk

    async def expand(ids: list[str]) -> list[Found]:
        return [
            (contact_id, process, current)
            for contact_id, process, current in await _processes(desk, query, ids)
            if _status_ok(query.status, process.task)
            and any(_operator_ok(query.operator, t) for t in process.tasks)
        ]

    page, after = await _walk(call, query, expand)
    now, zone = call.now, desk.settings.zone
    items = [process_out(c, p, current=cur, now=now, zone=zone) for c, p, cur in page]
    return ProcessPage(items=items, next_cursor=after.encode() if after else None)


@routes.route("GET", "/tasks", scope="read", query=ProcessQuery, response=TaskPage)
async def list_tasks(call: Call) -> TaskPage:
    """List tasks

    Every task of every process, filtered. In no particular order across contacts; a
    contact's newest first."""
    query, desk = call.query(ProcessQuery), call.desk

    async def expand(ids: list[str]) -> list[tuple[str, Process, Task]]:
        return [
            (contact_id, process, task)
            for contact_id, process, _ in await _processes(desk, query, ids)
            for task in reversed(process.tasks)
            if _status_ok(query.status, task) and _operator_ok(query.operator, task)
        ]

    page, after = await _walk(call, query, expand)
    now, zone = call.now, desk.settings.zone
    items = [task_out(c, p, t, now, zone) for c, p, t in page]
    return TaskPage(items=items, next_cursor=after.encode() if after else None)


@routes.route(
    "GET",
    "/contacts/{contact_id}/processes/{number}",
    scope="read",
    path_params=ProcessPath,
    response=ProcessOut,
    errors=(404,),
)
async def get_process(call: Call) -> ProcessOut:
    """One process of a contact, with its tasks"""
    path, desk = call.path(ProcessPath), call.desk
    person = await desk.contacts.survivor(ContactId(path.contact_id))
    current = await desk.processes.current(person)
    if current is not None and current.number == path.number:
        return process_out(person, current, current=True, now=call.now, zone=desk.settings.zone)
    for process in await desk.processes.archive(person, keys.PROCESS_ARCHIVE_LIMIT):
        if process.number == path.number:
            return process_out(
                person, process, current=False, now=call.now, zone=desk.settings.zone
            )
    raise not_found(f"Contact #{path.contact_id} has no process {path.number}.")


@routes.route(
    "GET",
    "/contacts/{contact_id}/task",
    scope="read",
    path_params=ContactPath,
    response=CurrentTask,
    errors=(404,),
)
async def get_task(call: Call) -> CurrentTask:
    """A contact's current task

    The latest task of the contact's current process (open or closed): the one
    ``take``, ``assign``, ``transfer`` and ``close`` act on."""
    return await current_task(call, ContactId(call.path(ContactPath).contact_id))


async def current_task(call: Call, contact_id: ContactId) -> CurrentTask:
    """The person's current process and task (404 without a contact or a process)."""
    desk = call.desk
    if not await desk.contacts.exists(contact_id):
        raise not_found("No such contact.")
    person = await desk.contacts.survivor(contact_id)
    process = await desk.processes.current(person)
    if process is None:
        raise not_found(
            f"Contact #{person} has no process yet (it opens with their first message of a day)."
        )
    return current_view(call, person, process)


def current_view(call: Call, person: str, process: Process) -> CurrentTask:
    now, zone = call.now, call.desk.settings.zone
    shown = process_out(person, process, current=True, now=now, zone=zone)
    return CurrentTask(contact_id=person, process=shown, task=shown.tasks[-1])
