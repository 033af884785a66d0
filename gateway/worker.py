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
from gateway.jobs import StaffGeneral, StaffNotice, _Job, family
from gateway.model import Button, ContactId, Content, InboundMessage, Sender
from gateway.process import Transition
from gateway.staff.tasks import TaskCommands
from gateway.store import keys
from gateway.store.history import History
from gateway.store.lines import Lines
from gateway.store.processes import ProcessStore
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
        lines: Lines,
        processes: ProcessStore,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.redis = bus.redis
        self.contacts = contacts
        self.lines = lines
        self.processes = processes
        self.tasks = TaskCommands(settings)
        self.operators = {str(o.id): o.name for o in settings.staff.operators}
        self._configured = {str(o.id): o for o in settings.staff.operators}
        self.history = History(self.redis, settings.history.retention_days)

    def operator(self, user_id: str) -> Operator | None:
        """The operator as configured in ``staff.operators`` (``None``: not listed)."""
        return self._configured.get(user_id)

    def is_operator(self, sender: Sender) -> bool:
        """Listed operators are obeyed; with no list, any (human) member of the group."""
        return not sender.is_bot and (not self.operators or sender.user_id in self.operators)

    def may_not_send(self, operator: str, account: str) -> str | None:
        """Why ``operator`` may not write to ``account``'s customers (``None``: may)."""
        configured = self.operator(operator)
        if configured is None or configured.admin or not configured.accounts:
            return None
        if account in configured.accounts:
            return None
        return (
            f"⚠️ Not sent: you can see {account}'s customers but not write to them "
            "(staff.operators[].accounts). Ask a colleague or an admin."
        )

    def line_here(self, message: InboundMessage) -> str | None:
        """The line of the staff group ``message`` was written in: answers under it go
        there, even in a topic the conversation has since left (``None``: one line)."""
        return self.lines.name_at(message.sender.chat_id)

    def notice_under(
        self, message: InboundMessage, contact_id: ContactId, text: str
    ) -> StaffNotice:
        """The gateway's answer to an operator's message, under it in the topic."""
        return StaffNotice(
            out_id=f"notice:{message.key}",
            contact_id=contact_id,
            text=text,
            reply_to=message.message_id,
            line=self.line_here(message),
        )

    @staticmethod
    def answer_in_chat(
        message: InboundMessage, text: str, buttons: tuple[tuple[Button, ...], ...] = ()
    ) -> StaffGeneral:
        """The gateway's answer to a command outside a customer's topic: under it, in
        the chat (a line's General topic, a private chat) it was written in."""
        return StaffGeneral(
            out_id=f"general:{message.key}",
            contact_id=ContactId("general"),
            text=text,
            reply_to=message.message_id,
            buttons=buttons,
            chat=message.sender.chat_id,
            thread=message.thread_id if message.is_topic_message else None,
        )

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

    def in_line(self, contact_id: str, started: bool, effects: Effects) -> Effects:
        """``effects`` plus the contact's current line: its task's (with several lines);
        a conversation an operator started is answered now."""

        def build(pipe: Writer, transition: Transition | None) -> None:
            effects(pipe, transition)
            if transition is None or not self.lines.several:
                return
            self.lines.enter(pipe, contact_id, self.settings.line(transition.process.task.line))
            if started and any(e.type == "task.opened" for e in transition.events):
                pipe.delete(keys.line_start(contact_id))

        return build

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
