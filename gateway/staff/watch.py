"""Timers about people: a task nobody takes in time escalates, an idle operator goes
offline.

``sla.take_within_minutes`` after a task became new (or was transferred), if it is
still not taken, a notice in its topic mentions whom ``sla.escalate_to`` names: the
operator it waits for and the members of its role (those online; all of them if nobody
is), and the head of its department (the account's, else the owner's). Once per wait:
a new transfer starts a new one.

With ``staff.idle_offline_minutes``, an online operator who did nothing in the staff
group for that long is set offline (no new tasks) and told so privately.

Both are scheduler timers: idempotent, and they check the state again before acting.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from redis.asyncio.client import Pipeline as RedisPipeline

from gateway import process as bp
from gateway.config import Operator
from gateway.jobs import StaffGeneral, StaffNotice
from gateway.model import ContactId
from gateway.process import NumberFor, Process, Transition
from gateway.routing import naming
from gateway.staff.presence import Presence, state_of
from gateway.store import keys
from gateway.worker import Worker, Writer

log = structlog.get_logger(__name__)
MAX_MENTIONS = 10


class Watch(Worker):
    async def take_timeout(self, contact_id: str, now: datetime) -> None:
        """The task waited ``sla.take_within_minutes`` without being taken: escalate."""
        current = await self.processes.current(contact_id)
        if current is None:
            return
        whom = await self.escalation_targets(ContactId(contact_id), current.task)
        task = current.task
        take = self.processes.sla_in(task.line).take_within
        minutes = take.total_seconds() / 60 if take else 0
        before = f"⏱ {current.number}, task {task.number} was not taken within {minutes:g} min. "
        if whom:
            text, named = naming(before, whom, ", please /take it or /transfer it.")
        else:
            text, named = f"{before}Anyone, please /take it.", ()

        def step(process: Process | None, _: NumberFor) -> Transition | None:
            return bp.escalate(process, now)

        def effects(pipe: Writer, transition: Transition | None) -> None:
            if transition is None:
                return  # taken, closed or transferred again meanwhile
            waited = transition.process.task
            notice = StaffNotice(
                out_id=f"escalate:{contact_id}:{transition.process.number}:{waited.number}:"
                f"{int(now.timestamp())}",
                contact_id=ContactId(contact_id),
                text=text,
                mentions=named,
            )
            self.queue(pipe, notice)

        if await self.processes.apply(contact_id, now, step, effects) is not None:
            log.info("routing.escalated", contact_id=contact_id, told=len(whom))

    async def escalation_targets(self, contact_id: ContactId, task: bp.Task) -> list[Operator]:
        """Whom ``sla.escalate_to`` names for ``task`` (in order, each once)."""
        settings = self.settings
        channel = settings.channel(await self.account_of(contact_id))
        waiting_for = task.transferred_to if task.status is bp.Status.RETURNED else task.responsible
        owner = self.operator(waiting_for) if waiting_for else None
        role = waiting_for if bp.is_role(waiting_for) else None
        line = settings.line(task.line)
        route = (channel.responsible if channel else None) or line.responsible
        if role is None and owner is None and route is not None:
            role = route.role
        found: list[Operator] = []
        if settings.sla.escalate_to in ("role", "both"):
            if owner is not None:
                found.append(owner)
            members = [
                o
                for o in settings.staff.operators
                if role and role in o.roles and (not line.operators or o.id in line.operators)
            ]
            online = await Presence(self.redis, settings).online([str(o.id) for o in members])
            found += [o for o in members if str(o.id) in online] or members
        if settings.sla.escalate_to in ("head", "both"):
            unit = (channel.department if channel else None) or (owner and owner.department)
            head = next((d.head for d in settings.staff.departments if d.name == unit), None)
            if head is not None and (operator := self.operator(str(head))) is not None:
                found.append(operator)
        unique = {o.id: o for o in found}
        return list(unique.values())[:MAX_MENTIONS]

    async def idle(self, operator: str, now: datetime) -> None:
        """Set ``operator`` offline if they have been idle for ``idle_offline_minutes``."""
        minutes = self.settings.staff.idle_offline_minutes
        presence = Presence(self.redis, self.settings)
        if minutes is None or operator not in await presence.online([operator]):
            return
        last = await presence.last_active(operator)
        due = (last or now).timestamp() * 1000 + minutes * 60_000
        if last is not None and now.timestamp() * 1000 < due:
            # Active since the timer was armed: wait for the rest of the idle time.
            await self.redis.zadd(keys.TIMERS, {f"{keys.IDLE}:{operator}": int(due)})
            return
        told = StaffGeneral(
            out_id=f"idle:{operator}:{int(now.timestamp())}",
            contact_id=ContactId("general"),
            text=(
                f"⚪️ You are offline now: nothing from you in the staff group for "
                f"{minutes:g} min, so no new tasks come to you. Send /online to take work again."
            ),
            chat=operator,
        )

        def build(pipe: RedisPipeline) -> None:
            pipe.hset(keys.PRESENCE, operator, state_of(False, now))
            self.queue(pipe, told)

        await self.bus.commit(build)
        log.info("presence.idle_offline", operator=operator, minutes=minutes)
