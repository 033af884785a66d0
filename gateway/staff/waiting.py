"""Tasks waiting for an owner: ``/queue``, and handing them out when someone can take them.

A new task nobody was available for stays ``new`` and unassigned; a task transferred
to a role waits ``returned`` for a member. When an operator says ``/online``, or has
room again (a task of theirs closed or was transferred away), they get the waiting
tasks of their roles, oldest first, up to their capacity (``broadcast`` roles excepted:
those are taken, not handed out). Both read the index of customers waiting for an
answer (``keys.AWAITING``), oldest deadline first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog

from gateway import process as bp
from gateway.config import Line, Operator, Responsible
from gateway.jobs import StaffNotice, _Job
from gateway.model import ContactId, InboundMessage
from gateway.process import Process, Status, Transition
from gateway.routing import Router, assigned, naming
from gateway.staff.presence import Presence
from gateway.store import keys
from gateway.store.redis import text
from gateway.worker import Worker, Writer

log = structlog.get_logger(__name__)
LISTED = 30


@dataclass(frozen=True, slots=True)
class Waiting:
    contact_id: ContactId
    process: Process
    responsible: Responsible | None
    line: Line


def _takes(operator: Operator, responsible: Responsible | None, line: Line) -> bool:
    if responsible is None or responsible.strategy == "broadcast":
        return False
    if line.operators and operator.id not in line.operators:
        return False  # not one of the line's people
    if responsible.operator is not None:
        return responsible.operator == operator.id
    return responsible.role in operator.roles


class WaitingTasks(Worker):
    async def unassigned(self) -> list[Waiting]:
        """New tasks without an owner, the longest waiting first."""
        found = []
        for member in await self.redis.zrange(keys.AWAITING, 0, -1):
            contact_id = ContactId(text(member if isinstance(member, bytes | str) else b""))
            process = await self.processes.current(contact_id)
            if process is None:
                continue
            task = process.task
            if not bp.waits_for_owner(task):
                continue
            line = self.settings.line(task.line)
            if task.transferred_to is not None:  # to a role
                route: Responsible | None = Responsible(role=task.transferred_to)
            else:
                account = await self.account_of(contact_id)
                channel = self.settings.channel(account)
                route = channel.responsible if channel else None
                if route is None or self.settings.line_of(account).name != line.name:
                    route = line.responsible  # its line's (moved or started there)
            found.append(Waiting(contact_id, process, route, line))
        return found

    async def listing(self) -> str:
        """``/queue``: the waiting tasks by role, oldest first, with links."""
        waiting = await self.unassigned()
        if not waiting:
            return "✅ No task is waiting for an owner."
        lines = [f"⏳ Waiting for an owner ({len(waiting)}), oldest first:"]
        for item in waiting[:LISTED]:
            route = item.responsible
            role = route.role if route and route.role else "anyone"
            name = (await self.contacts.get(item.contact_id)).get("display_name", "?")
            line = f"• [{role}] {name} — {item.process.number}, task {item.process.task.number}"
            link = await self.lines.link(item.contact_id)
            if link is not None:
                line += f"\n  {link}"
            lines.append(line)
        return "\n".join(lines)

    async def presence_command(self, name: str, message: InboundMessage) -> str:
        """``/online``, ``/offline`` (for the sender), ``/status`` (everyone) and
        ``/queue``; coming online hands out waiting tasks."""
        operator, at = message.sender.user_id, message.received_at
        presence = Presence(self.redis, self.settings)
        if name == "queue":
            return await self.listing()
        if name not in ("online", "offline"):
            return await presence.status(self.operators)
        await presence.set(operator, name == "online", at)
        who = self.operators.get(operator) or message.sender.display_name
        given = ""
        configured = self.operator(operator)
        if name == "online" and configured is not None:
            if not presence.on_shift(operator, at):
                given = "; outside your working hours no new tasks come to you"
            elif got := await self.hand_out(configured, at, message.key):
                given = f"; {got} waiting task(s) handed to you"
        return f"{who} is {name} ({await presence.load(operator)} open task(s){given})."

    async def hand_out(
        self, operator: Operator, at: datetime, key: str, why: str = "came online"
    ) -> int:
        """Give ``operator`` (online, with room) the waiting tasks of their roles, oldest
        first, up to their capacity; how many they got."""
        presence = Presence(self.redis, self.settings)
        if not presence.on_shift(str(operator.id), at):
            return 0
        given = 0
        for item in await self.unassigned():
            if await presence.load(str(operator.id)) >= operator.max_chats:
                break
            if not _takes(operator, item.responsible, item.line):
                continue
            task = item.process.task
            if task.status is Status.RETURNED and task.responsible == str(operator.id):
                continue  # never back to whoever handed it over
            told = assigned(
                self.settings, operator, item.contact_id, f"{key}:{item.contact_id}", why
            )

            def effects(
                pipe: Writer, transition: Transition | None, jobs: list[_Job] = told
            ) -> None:
                if transition is not None:
                    self.queue(pipe, *jobs)

            transition = await self.processes.apply(
                item.contact_id,
                at,
                lambda current, _: bp.assign(current, at, str(operator.id)),
                effects,
                once=f"assign:{key}:{item.contact_id}",
                room=(str(operator.id), operator.max_chats),
            )
            given += transition is not None
        log.info("routing.handed_out", operator=operator.id, tasks=given)
        return given

    async def route(
        self, contact_id: ContactId, at: datetime, responsible: Responsible, key: str, line: Line
    ) -> None:
        """Route the contact's new task among ``line``'s operators (see
        :mod:`gateway.routing`). It runs after the message is stored: if this fails,
        the task stays new for whoever takes it."""
        choice = await Router(
            self.redis, self.settings, Presence(self.redis, self.settings)
        ).choose(responsible, at, line)
        if choice.assignee is None:
            if choice.told:  # broadcast
                text, named = naming(
                    f"📣 New task for {responsible.role}: ",
                    choice.told,
                    " — the first to /take it owns it.",
                )
                await self.commit(
                    None,
                    StaffNotice(
                        out_id=f"told:{key}", contact_id=contact_id, text=text, mentions=named
                    ),
                )
            else:
                log.info("routing.nobody_available", role=responsible.role)
            return
        operator = choice.assignee
        told = assigned(self.settings, operator, contact_id, key)

        def effects(pipe: Writer, transition: Transition | None) -> None:
            if transition is not None:
                self.queue(pipe, *told)

        await self.processes.apply(
            contact_id,
            at,
            lambda current, _: bp.assign(current, at, str(operator.id)),
            effects,
            once=f"assign:{key}",
            # A role's member only while they have room (atomic with the assignment:
            # another replica may have taken their last slot); a fixed one always.
            room=None if responsible.operator else (str(operator.id), operator.max_chats),
        )
        log.info("routing.assigned", operator=operator.id)


async def after_close(
    waiting: WaitingTasks, transition: Transition | None, at: datetime, key: str
) -> None:
    """A task closed or transferred away freed room: its owner, if online, gets the
    oldest waiting task(s) of their roles (the same hand-out as ``/online``)."""
    freeing = ("task.closed", "task.transferred")
    if transition is None or not any(e.type in freeing for e in transition.events):
        return
    # A transfer leaves ``responsible`` as it was: the operator who handed it over.
    owner = transition.process.task.responsible or ""
    operator = waiting.operator(owner)
    if operator is not None and await Presence(waiting.redis, waiting.settings).online([owner]):
        await waiting.hand_out(operator, at, f"freed:{key}", "had room again")
