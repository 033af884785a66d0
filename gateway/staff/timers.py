"""What the scheduler's timers do: close a task after the customer's silence, and remind
the topic while a customer waits past the deadline.

Both are idempotent and check the state again before acting: a timer can fire late
(after downtime) or twice (a replica died after claiming it).
"""

from __future__ import annotations

import functools
from datetime import datetime

import structlog
from redis.asyncio.client import Pipeline as RedisPipeline

from gateway import process as bp
from gateway.jobs import StaffCard, StaffNotice, StaffReminder
from gateway.model import ContactId, Mention, PlatformUserId
from gateway.process import NumberFor, Process, Transition
from gateway.staff.waiting import WaitingTasks, after_close
from gateway.store import keys
from gateway.store.events import record_event
from gateway.worker import Worker, Writer

log = structlog.get_logger(__name__)
MAX_MENTIONS = 10
"""An unassigned task mentions the line's operators, but never more than this."""


class Timers(Worker):
    @functools.cached_property
    def waiting(self) -> WaitingTasks:
        return WaitingTasks(self.settings, self.bus, self.contacts, self.lines, self.processes)

    async def auto_close(self, contact_id: str, now: datetime) -> None:
        """Close the task answered by an operator after the customer's silence."""
        store = self.processes

        def step(current: Process | None, _: NumberFor) -> Transition | None:
            return bp.auto_close(current, now, store.sla)

        def effects(pipe: Writer, transition: Transition | None) -> None:
            if transition is None:
                return  # the customer wrote meanwhile, or it was closed by hand
            process, task = transition.process, transition.process.task
            minutes = self.settings.processes.auto_close_after_minutes
            notice = StaffNotice(
                out_id=f"auto-close:{contact_id}:{process.number}:{task.number}",
                contact_id=ContactId(contact_id),
                text=(
                    f"✅ {process.number}, task {task.number} closed automatically: "
                    f"no reply from the customer for {minutes:g} min."
                ),
            )
            self.queue(pipe, notice)

        transition = await store.apply(contact_id, now, step, effects)
        if transition is not None:
            log.info("process.auto_closed", contact_id=contact_id)
            await after_close(self.waiting, transition, now, f"auto:{contact_id}:{now.timestamp()}")

    async def remind(self, contact_id: str, now: datetime) -> None:
        """The customer still waits past the deadline: remind the topic, mentioning who
        should answer, and again after the interval while it lasts (one reminder per
        task per interval, however long the gateway was down)."""
        store = self.processes
        every = store.remind_every
        current = await store.current(contact_id)
        if every is None or current is None or not bp.overdue(current, now):
            return  # answered or closed meanwhile: the timer was (or will be) cleared
        task = current.task
        late = bp.minutes_late(task, now)
        text, mentions = self._compose(
            f"⏰ {current.number}, task {task.number}: the customer has been waiting "
            f"{late} min past the deadline. ",
            self._who_should_answer(task),
            ", please answer.",
        )
        reminder = StaffReminder(
            out_id=f"remind:{contact_id}:{current.number}:{task.number}:{int(now.timestamp())}",
            contact_id=ContactId(contact_id),
            text=text,
            mentions=mentions,
        )
        due = int((now + every).timestamp() * 1000)

        # The card (and the topic's title) shows it overdue now.
        card = StaffCard(out_id=f"card:{reminder.out_id}", contact_id=ContactId(contact_id))

        def build(pipe: RedisPipeline) -> None:
            self.queue(pipe, reminder, card)
            pipe.zadd(keys.TIMERS, {f"{keys.REMIND}:{contact_id}": due}, xx=True)
            record_event(
                pipe,
                contact_id,
                bp.Event("reminder.sent", now, current.number, task.number, bp.SYSTEM),
            )

        await self.bus.commit(build)
        log.info("process.reminder_sent", contact_id=contact_id, late_minutes=late)

    def _who_should_answer(self, task: bp.Task) -> list[str]:
        """The responsible operator; for a transferred task, whom it waits for; for an
        unassigned one, the line's operators (nobody by name when any member may)."""
        owner = task.transferred_to if task.status is bp.Status.RETURNED else task.responsible
        if bp.is_role(owner):
            members = [str(o.id) for o in self.settings.staff.operators if owner in o.roles]
            return members[:MAX_MENTIONS]
        if owner is not None:
            return [owner]
        return list(self.operators)[:MAX_MENTIONS]

    def _compose(
        self, before: str, user_ids: list[str], after: str
    ) -> tuple[str, tuple[Mention, ...]]:
        """``before`` + the names (each a mention) + ``after``."""
        if not user_ids:
            return f"{before}Anyone{after}", ()
        text, mentions = before, []
        for i, user_id in enumerate(user_ids):
            if i:
                text += ", "
            name = self.tasks.name_of(user_id)
            mentions.append(
                Mention(offset=len(text), length=len(name), user_id=PlatformUserId(user_id))
            )
            text += name
        return text + after, tuple(mentions)
