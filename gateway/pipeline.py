"""The inbound worker: a customer's message → the contact → a post into its topic;
an operator's message in a topic → a reply to the customer.

Each handler stores its effect (an outbound job) and acknowledges the inbound entry in
one Redis transaction; the job ids derive from the inbound event's key, so handling the
same entry twice (after a crash) queues the same job, which delivery sends once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import structlog
from redis.asyncio.client import Pipeline as RedisPipeline

from gateway import process as bp
from gateway.bus import Bus, Entry
from gateway.config import STAFF_ACCOUNT, Settings
from gateway.contacts import Contacts
from gateway.jobs import (
    CallbackAnswer,
    CustomerSend,
    StaffEdit,
    StaffGeneral,
    StaffNotice,
    StaffPost,
    _Job,
)
from gateway.model import (
    INBOUND,
    AccountId,
    Button,
    ChatId,
    ContactId,
    Destination,
    InboundCallback,
    InboundMessage,
    MessageId,
    Sender,
    TopicId,
)
from gateway.process import NumberFor, Process, Transition
from gateway.staff.commands import GENERAL_HELP, HELP, Command, parse_command, topic_link
from gateway.staff.tasks import CHANGES, TaskCommands
from gateway.store import keys
from gateway.store.messages import MessageRef, peer
from gateway.store.processes import ProcessStore, record_event
from gateway.store.topics import Topics
from gateway.store.writes import Writes

log = structlog.get_logger(__name__)
Writer = RedisPipeline | Writes
"""Where a handler's effects go: a transaction, or the process store's recorded writes."""


def routing_key(message: InboundMessage | InboundCallback) -> str:
    """Inbound partitioning: per customer chat, or per staff topic (order is per key)."""
    if message.sender.account == STAFF_ACCOUNT:
        return f"staff:{message.thread_id or 0}"
    return f"{message.sender.account}:{message.sender.chat_id}"


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        contacts: Contacts,
        topics: Topics,
        processes: ProcessStore,
    ) -> None:
        self.settings = settings
        self.processes = processes
        self.tasks = TaskCommands(settings)
        self.bus = bus
        self.redis = bus.redis
        self.contacts = contacts
        self.topics = topics
        self.staff_chat = str(settings.staff.chat_id)
        self.operators = {str(o.id): o.name for o in settings.staff.operators}

    async def handle(self, entry: Entry) -> None:
        message = INBOUND.validate_json(entry.payload)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            account=message.sender.account, event_key=message.key, entry=entry.id
        )
        if isinstance(message, InboundCallback):
            await self._callback(message, entry)
        elif message.sender.account == STAFF_ACCOUNT:
            await self._from_staff(message, entry)
        else:
            await self._from_customer(message, entry)

    def _is_operator(self, sender: Sender) -> bool:
        """Listed operators are obeyed; with no list, any (human) member of the group."""
        return not sender.is_bot and (not self.operators or sender.user_id in self.operators)

    async def _account_of(self, contact_id: ContactId) -> str:
        """The channel account the contact last wrote from ("" if unknown)."""
        route = await self.contacts.reply_route(contact_id)
        return route[0] if route else ""

    async def _commit(self, entry: Entry, family: str | None, job: _Job | None) -> None:
        effects = self._effects(entry, family, job)
        await self.bus.commit(lambda pipe: effects(pipe, None))

    def _effects(
        self, entry: Entry, family: str | None, job: _Job | None
    ) -> Callable[[Writer, Transition | None], None]:
        """Queue ``job`` (if any) and acknowledge ``entry``, inside a transaction."""

        def build(pipe: Writer, _: Transition | None) -> None:
            if family is not None and job is not None:
                self.bus.add(pipe, family, job.contact_id, job.model_dump_json())
            self.bus.ack(pipe, entry)

        return build

    async def _from_customer(self, message: InboundMessage, entry: Entry) -> None:
        if message.group_chat or message.sender.is_bot:
            # A customer bot added to some group: that is not a customer conversation.
            log.warning("inbound.ignored_group_message", chat=message.sender.chat_id)
            await self._commit(entry, None, None)
            return
        contact, created = await self.contacts.resolve(message.sender, message.received_at)
        structlog.contextvars.bind_contextvars(contact_id=contact.id)
        if message.edited:
            # An edit is not a new message: the business process does not move.
            edit = StaffEdit(out_id=f"edit:{message.key}", contact_id=contact.id, message=message)
            await self._commit(entry, keys.STAFF_OUT, edit)
            return
        post = StaffPost(out_id=f"post:{message.key}", contact_id=contact.id, message=message)
        at, store = message.received_at, self.processes
        transition = await store.apply(
            contact.id,
            at,
            lambda current, number_for: bp.inbound(
                current, at, zone=store.zone, sla=store.sla, number_for=number_for
            ),
            self._effects(entry, keys.STAFF_OUT, post),
            once=message.key,
            may_open=True,
        )
        number = transition.process.number if transition else None
        log.info("inbound.accepted", kind=message.content.kind, new_contact=created, process=number)

    async def _from_staff(self, message: InboundMessage, entry: Entry) -> None:
        sender = message.sender
        if sender.chat_id != self.staff_chat:
            log.warning("staff.foreign_chat_ignored", chat=sender.chat_id, user=sender.user_id)
            await self._commit(entry, None, None)
            return
        if not self._is_operator(sender):
            log.warning("staff.not_an_operator", user=sender.user_id)
            await self._commit(entry, None, None)
            return
        if not message.is_topic_message or message.thread_id is None:
            # General topic: staff talk among themselves; only commands are answered.
            command = parse_command(message.content.text or "")
            general = None
            if command is not None:
                general = StaffGeneral(
                    out_id=f"general:{message.key}",
                    contact_id=ContactId("general"),
                    text=await self._general_command(command, message.received_at),
                    reply_to=message.message_id,
                )
            await self._commit(entry, keys.STAFF_OUT, general)
            return
        contact_id = await self.topics.contact_of(TopicId(message.thread_id))
        text = message.content.text or ""
        if contact_id is None:
            log.info("staff.topic_without_contact", thread=message.thread_id)
            await self._commit(entry, None, None)
            return
        structlog.contextvars.bind_contextvars(contact_id=contact_id, operator=sender.user_id)
        notice = None
        if text.startswith("!"):
            log.info("staff.note")
        elif (command := parse_command(text)) is not None:
            if command.name in CHANGES:
                await self._task_command(command, message, entry, contact_id)
                return
            notice = await self._command(command, contact_id, message.received_at)
        elif message.edited:
            notice = "✏️ Edits are not sent to the customer. Send a new message instead."
        else:
            await self._reply(message, entry, contact_id)
            return
        job = None
        if notice is not None:
            job = StaffNotice(
                out_id=f"notice:{message.key}",
                contact_id=contact_id,
                text=notice,
                reply_to=message.message_id,
            )
        await self._commit(entry, keys.STAFF_OUT, job)

    async def auto_close(self, contact_id: str, now: datetime) -> None:
        """Timer: close the task answered by an operator after the customer's silence."""
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
            self.bus.add(pipe, keys.STAFF_OUT, contact_id, notice.model_dump_json())

        transition = await store.apply(contact_id, now, step, effects)
        if transition is not None:
            log.info("process.auto_closed", contact_id=contact_id)

    async def remind(self, contact_id: str, now: datetime) -> None:
        """Timer: the customer still waits past the deadline — tell the topic, again
        after the interval while it lasts (one reminder per task per interval)."""
        store = self.processes
        every = store.remind_every
        current = await store.current(contact_id)
        if every is None or current is None or not bp.overdue(current, now):
            return  # answered or closed meanwhile: the timer was (or will be) cleared
        task = current.task
        who = self.tasks.name_of(task.responsible) if task.responsible else "anyone"
        late = int((now - task.respond_by).total_seconds() // 60)
        notice = StaffNotice(
            out_id=f"remind:{contact_id}:{current.number}:{task.number}:{int(now.timestamp())}",
            contact_id=ContactId(contact_id),
            text=(
                f"⏰ {current.number}, task {task.number}: the customer has been waiting "
                f"{late} min past the deadline. {who}, please answer."
            ),
        )
        due = int((now + every).timestamp() * 1000)

        def build(pipe: RedisPipeline) -> None:
            self.bus.add(pipe, keys.STAFF_OUT, contact_id, notice.model_dump_json())
            pipe.zadd(keys.TIMERS, {f"{keys.REMIND}:{contact_id}": due}, xx=True)
            record_event(
                pipe,
                contact_id,
                bp.Event("reminder.sent", now, current.number, task.number, "system"),
            )

        await self.bus.commit(build)
        log.info("process.reminder_sent", contact_id=contact_id, late_minutes=late)

    async def _callback(self, press: InboundCallback, entry: Entry) -> None:
        """A button under a task card (or a choice it offered) was pressed."""
        sender = press.sender
        structlog.contextvars.bind_contextvars(user=sender.user_id, button=press.data)
        contact_id = None
        if sender.chat_id == self.staff_chat and press.thread_id is not None:
            contact_id = await self.topics.contact_of(TopicId(press.thread_id))
        route = ContactId(contact_id or "general")

        def answer(text: str, *, alert: bool = False) -> CallbackAnswer:
            return CallbackAnswer(
                out_id=f"answer:{press.key}",
                contact_id=route,
                callback_id=press.callback_id,
                text=text,
                alert=alert,
            )

        if sender.chat_id != self.staff_chat:
            log.warning("staff.foreign_callback_ignored", chat=sender.chat_id)
            await self._commit(entry, None, None)
            return
        if not self._is_operator(sender):
            log.warning("staff.callback_by_non_operator")
            await self._commit(
                entry, keys.STAFF_OUT, answer("Only operators can do this.", alert=True)
            )
            return
        action, _, argument = press.data.removeprefix("t:").partition(":")
        if contact_id is None or not press.data.startswith("t:"):
            await self._commit(
                entry, keys.STAFF_OUT, answer("This button does nothing here.", alert=True)
            )
            return
        if action not in CHANGES:
            await self._commit(entry, keys.STAFF_OUT, answer("Unknown button.", alert=True))
            return
        account = await self._account_of(contact_id)
        channel = self.settings.channel(account)
        if action == "close" and not argument and channel is not None and channel.close_reasons:
            choices = [Button(text=r, data=f"t:close:{r}"[:64]) for r in channel.close_reasons]
            await self._offer(
                entry,
                answer("Choose a reason below."),
                contact_id,
                press,
                "Close with which reason?",
                choices,
            )
            return
        if action == "transfer" and not argument:
            choices = [
                Button(text=name, data=f"t:transfer:{user_id}")
                for user_id, name in self.operators.items()
                if user_id != sender.user_id
            ]
            if not choices:
                await self._commit(
                    entry, keys.STAFF_OUT, answer("There is nobody to transfer to.", alert=True)
                )
                return
            await self._offer(
                entry, answer("Choose whom below."), contact_id, press, "Transfer to whom?", choices
            )
            return
        at = press.received_at
        try:
            step = self.tasks.step(action, argument, sender.user_id, at, account)
        except bp.RuleError as exc:
            await self._commit(entry, keys.STAFF_OUT, answer(str(exc), alert=True))
            return

        def effects(pipe: Writer, transition: Transition | None) -> None:
            text = self.tasks.confirm(action, transition) if transition else "Done."
            self._effects(entry, keys.STAFF_OUT, answer(text))(pipe, transition)

        try:
            await self.processes.apply(contact_id, at, step, effects, once=press.key)
        except bp.RuleError as exc:
            await self._commit(entry, keys.STAFF_OUT, answer(str(exc), alert=True))

    async def _offer(
        self,
        entry: Entry,
        answer: CallbackAnswer,
        contact_id: ContactId,
        press: InboundCallback,
        question: str,
        choices: list[Button],
    ) -> None:
        """Answer the press and post a row of choices (reasons, operators) in the topic."""
        rows = tuple(tuple(choices[i : i + 3]) for i in range(0, len(choices), 3))
        offer = StaffNotice(
            out_id=f"offer:{press.key}",
            contact_id=contact_id,
            text=question,
            reply_to=press.message_id,
            buttons=rows,
        )

        def build(pipe: RedisPipeline) -> None:
            self.bus.add(pipe, keys.STAFF_OUT, contact_id, offer.model_dump_json())
            self.bus.add(pipe, keys.STAFF_OUT, contact_id, answer.model_dump_json())
            self.bus.ack(pipe, entry)

        await self.bus.commit(build)

    async def _general_command(self, command: Command, now: datetime) -> str:
        if command.name == "overdue":
            return await self._overdue_digest(now)
        if command.name == "help":
            return GENERAL_HELP
        return f"/{command.name} works in a customer's topic. Here: /overdue, /help."

    async def _overdue_digest(self, now: datetime) -> str:
        overdue = await self.processes.overdue(now)
        if not overdue:
            return "✅ No overdue tasks."
        lines = [f"⏰ Overdue tasks ({len(overdue)}), longest waiting first:"]
        for contact_id, process in overdue:
            task = process.task
            name = (await self.contacts.get(ContactId(contact_id))).get("display_name", contact_id)
            late = int((now - task.respond_by).total_seconds() // 60)
            who = self.tasks.name_of(task.responsible) if task.responsible else "nobody"
            line = f"• {name} — {process.number}, task {task.number}, {late} min late, {who}"
            topic = await self.topics.get(ContactId(contact_id))
            if topic is not None:
                line += f"\n  {topic_link(self.staff_chat, topic)}"
            lines.append(line)
        return "\n".join(lines)

    async def _command(self, command: Command, contact_id: ContactId, at: datetime) -> str:
        name = command.name
        if name == "help":
            return HELP
        if name == "id":
            contact = await self.contacts.get(contact_id)
            return (
                f"Contact #{contact_id}: {contact.get('display_name', '?')}\n"
                f"Replies go to {contact.get('reply_channel', '?')} · "
                f"{contact.get('reply_account', '?')}, chat {contact.get('reply_chat', '?')}"
            )
        if name == "task":
            return self.tasks.card(await self.processes.current(contact_id), at)
        if name == "history":
            current = await self.processes.current(contact_id)
            return self.tasks.history(current, await self.processes.archive(contact_id))
        return f"Unknown command /{name}. Send /help for the list."

    async def _task_command(
        self, command: Command, message: InboundMessage, entry: Entry, contact_id: ContactId
    ) -> None:
        """A command that changes the task: applied atomically with its confirmation."""
        account = await self._account_of(contact_id)
        at, operator = message.received_at, message.sender.user_id

        def notice(text: str) -> StaffNotice:
            return StaffNotice(
                out_id=f"notice:{message.key}",
                contact_id=contact_id,
                text=text,
                reply_to=message.message_id,
            )

        def effects(pipe: Writer, transition: Transition | None) -> None:
            job = notice(self.tasks.confirm(command.name, transition)) if transition else None
            self._effects(entry, keys.STAFF_OUT, job)(pipe, transition)

        try:
            step = self.tasks.step(command.name, command.args, operator, at, account)
            await self.processes.apply(contact_id, at, step, effects, once=message.key)
        except bp.RuleError as exc:
            await self._commit(entry, keys.STAFF_OUT, notice(f"⚠️ {exc}"))
        log.info("staff.task_command", command=command.name)

    async def _reply(self, message: InboundMessage, entry: Entry, contact_id: ContactId) -> None:
        route = await self.contacts.reply_route(contact_id)
        if route is None:
            await self._commit(entry, None, None)
            return
        account, chat = route
        reply_to = None
        if message.reply_to is not None:
            # The operator quoted a message in the topic: quote its customer-side twin.
            ref = MessageRef(AccountId(STAFF_ACCOUNT), ChatId(self.staff_chat), message.reply_to)
            found = await peer(self.redis, ref)
            if found is not None and found.ref.account == account:
                reply_to = found.ref.message_id
        job = CustomerSend(
            out_id=f"reply:{message.key}",
            contact_id=contact_id,
            destination=Destination(account=account, chat_id=chat, reply_to=reply_to),
            content=message.content,
            staff_chat=self.staff_chat,
            staff_message=MessageId(message.message_id),
            operator_id=message.sender.user_id,
            created_at=time.time(),
        )
        at, operator = message.received_at, message.sender.user_id

        def answered(current: Process | None, _: NumberFor) -> Transition | None:
            try:
                return bp.reply(current, at, operator)
            except bp.RuleError:
                return None  # no open task (e.g. closed): the reply still goes out

        await self.processes.apply(
            contact_id,
            at,
            answered,
            self._effects(entry, keys.CUSTOMER_OUT, job),
            once=message.key,
        )
        log.info("staff.reply_queued", kind=message.content.kind)
