"""What every inbound handler shares: the stores, the operator check, and one way to
commit effects.

A handler's effects are outbound jobs. They are queued and the inbound entry is
acknowledged in one Redis transaction (or inside the process store's compare-and-set
commit), and every job id derives from the inbound event's key, so handling the same
entry twice after a crash queues the same jobs, which delivery sends once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from redis.asyncio.client import Pipeline as RedisPipeline

from gateway.bus import Bus, Entry
from gateway.config import Operator, Settings
from gateway.contacts import Contacts
from gateway.jobs import _Job, family
from gateway.model import ContactId, Content, Sender
from gateway.process import Transition
from gateway.staff.tasks import TaskCommands
from gateway.store.history import History
from gateway.store.processes import ProcessStore
from gateway.store.topics import Topics
from gateway.store.writes import Writes

Writer = RedisPipeline | Writes
"""Where a handler's effects go: a transaction, or the process store's recorded writes."""
Effects = Callable[[Writer, Transition | None], None]


class Worker:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        contacts: Contacts,
        topics: Topics,
        processes: ProcessStore,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.redis = bus.redis
        self.contacts = contacts
        self.topics = topics
        self.processes = processes
        self.tasks = TaskCommands(settings)
        self.staff_chat = str(settings.staff.chat_id)
        self.operators = {str(o.id): o.name for o in settings.staff.operators}
        self._configured = {str(o.id): o for o in settings.staff.operators}
        self.history = History(self.redis, settings.history.retention_days)

    def operator(self, user_id: str) -> Operator | None:
        """The operator as configured in ``staff.operators`` (``None``: not listed)."""
        return self._configured.get(user_id)

    def is_operator(self, sender: Sender) -> bool:
        """Listed operators are obeyed; with no list, any (human) member of the group."""
        return not sender.is_bot and (not self.operators or sender.user_id in self.operators)

    async def account_of(self, contact_id: ContactId) -> str:
        """The channel account the contact last wrote from ("" if unknown)."""
        route = await self.contacts.reply_route(contact_id)
        return route[0] if route else ""

    async def commit(self, entry: Entry | None, *jobs: _Job | None) -> None:
        """Queue ``jobs`` and acknowledge ``entry`` (if any) in one transaction."""
        effects = self.effects(entry, *jobs)
        await self.bus.commit(lambda pipe: effects(pipe, None))

    def effects(self, entry: Entry | None, *jobs: _Job | None) -> Effects:
        """Queue ``jobs`` and acknowledge ``entry`` (if any), in whatever transaction
        the caller runs."""

        def build(pipe: Writer, _: Transition | None) -> None:
            self.queue(pipe, *jobs)
            if entry is not None:
                self.bus.ack(pipe, entry)

        return build

    def queue(self, pipe: Writer, *jobs: _Job | None) -> None:
        """Add ``jobs`` (``None``s skipped) to their outbound streams in ``pipe``."""
        for job in jobs:
            if job is not None:
                self.bus.add(pipe, family(job), job.contact_id, job.model_dump_json())

    def recorded(
        self,
        effects: Effects,
        contact_id: str,
        sender: Sender,
        at: datetime,
        content: Content,
        message_id: str,
    ) -> Effects:
        """``effects`` plus what the customer sent in the contact's history (and so the
        events stream), once: a redelivered entry the rule already saw (no transition)
        is not recorded twice."""

        def build(pipe: Writer, transition: Transition | None) -> None:
            effects(pipe, transition)
            if transition is not None:
                self.history.append(
                    pipe,
                    contact_id,
                    direction="in",
                    at=at,
                    channel=sender.channel.value,
                    account=sender.account,
                    content=content,
                    message_id=message_id,
                    chat=sender.chat_id,
                    process=transition.process.number,
                    task=transition.process.task.number,
                )

        return build
