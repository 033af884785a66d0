"""Messages operators write in the staff group.

In a customer's topic: a reply goes to the customer (and answers the task), ``!text``
is an internal note, a ``/command`` changes or shows the task. In the General topic
only commands are answered (``/overdue``, ``/help``); other talk is the staff's own.
"""

from __future__ import annotations

import functools
import time
from datetime import datetime

import structlog

from gateway import process as bp
from gateway.abuse import COMMANDS as ABUSE
from gateway.abuse import Guard
from gateway.bus import Entry
from gateway.config import STAFF_ACCOUNT, AnyChannel, Operator
from gateway.csat import Csat
from gateway.jobs import (
    CustomerDelete,
    CustomerEdit,
    CustomerRead,
    CustomerSend,
    StaffGeneral,
    StaffNotice,
    _Job,
)
from gateway.logging import bind_context
from gateway.model import (
    AccountId,
    Button,
    ContactId,
    Content,
    Destination,
    InboundMessage,
    MessageId,
    TopicId,
)
from gateway.process import NumberFor, Process, Transition
from gateway.staff import render
from gateway.staff.commands import GENERAL_HELP, HELP, Command, parse_command
from gateway.staff.lines import COMMANDS as LINE_COMMANDS
from gateway.staff.lines import GENERAL as GENERAL_LINES
from gateway.staff.lines import Conversations
from gateway.staff.people import COMMANDS as PEOPLE
from gateway.staff.people import People
from gateway.staff.prepared import Prepared
from gateway.staff.presence import COMMANDS as PRESENCE
from gateway.staff.presence import Presence
from gateway.staff.tasks import CHANGES
from gateway.staff.transfers import Mentions, Rows, Transfers, announce, rows
from gateway.staff.waiting import WaitingTasks, after_close
from gateway.staff.watchers import COMMANDS as WATCH_COMMANDS
from gateway.staff.watchers import Watchers
from gateway.store.messages import MessageRef, peer
from gateway.worker import Writer

log = structlog.get_logger(__name__)
NO_READ_RECEIPTS = frozenset({"telegram", "viber"})
"""Messengers whose bots cannot mark a customer's messages read."""
UNLINKED = (
    "⚠️ Not sent: this topic belongs to no customer. Find theirs with /find in General "
    "(a topic of the same name may be a leftover)."
)
HISTORY_SHOWN = 40
"""Latest messages /history shows (with every process and task)."""


class Desk(Prepared):
    @functools.cached_property
    def waiting(self) -> WaitingTasks:
        return WaitingTasks(self.settings, self.bus, self.contacts, self.lines, self.processes)

    @functools.cached_property
    def csat(self) -> Csat:
        return Csat(self.settings, self.bus, self.contacts, self.lines, self.processes)

    @functools.cached_property
    def presence(self) -> Presence:
        return Presence(self.redis, self.settings)

    @functools.cached_property
    def transfers(self) -> Transfers:
        return Transfers(self.redis, self.settings)

    @functools.cached_property
    def conversations(self) -> Conversations:
        return Conversations(self.settings, self.bus, self.contacts, self.lines, self.processes)

    @functools.cached_property
    def guard(self) -> Guard:
        return Guard(self.settings, self.bus, self.contacts, self.lines, self.processes)

    @functools.cached_property
    def watchers(self) -> Watchers:
        return Watchers(self.settings, self.bus, self.contacts, self.lines, self.processes)

    @functools.cached_property
    def people(self) -> People:
        return People(self.settings, self.bus, self.contacts, self.lines, self.processes)

    bot_username: str | None = None
    """The staff bot's @username (set at start from getMe), to tell its commands apart
    from other bots' in the group."""

    async def handle(self, message: InboundMessage, entry: Entry) -> None:
        sender = message.sender
        if self.settings.line_at(sender.chat_id) is None:
            await self._private(message, entry)
            return
        if not self.is_operator(sender):
            log.warning("staff.not_an_operator", user=sender.user_id)
            await self.commit(entry)
            return
        await self.presence.touch(sender.user_id, message.received_at)
        if not message.is_topic_message or message.thread_id is None:
            await self._in_general(message, entry)
            return
        contact_id = await self.lines.at(sender.chat_id).contact_of(TopicId(message.thread_id))
        text = message.content.text or ""
        if contact_id is None:
            # A topic staff made by hand, or an orphan: Telegram made a topic whose
            # answer came too late, and the gateway made (and bound) another.
            log.info("staff.topic_without_contact", thread=message.thread_id)
            told = None
            if text and not text.startswith("!") and parse_command(text) is None:
                told = StaffGeneral(
                    out_id=f"unlinked:{message.key}",
                    contact_id=ContactId("general"),
                    text=UNLINKED,
                    reply_to=message.message_id,
                    chat=message.sender.chat_id,
                    thread=message.thread_id,
                )
            await self.commit(entry, told)
            return
        # The topic of a contact merged into another acts for the survivor.
        contact_id = await self.contacts.survivor(contact_id)
        bind_context(contact_id=contact_id, operator=sender.user_id)
        notice = None
        if message.edited:
            await self._edited(message, entry, contact_id)
            return
        if text.startswith("!"):
            log.info("staff.note")
        elif text.startswith("//"):
            notice = await self.quick(text[2:].strip(), message, entry, contact_id)
            if notice is None:
                return
        elif (command := parse_command(text, self.bot_username)) is not None:
            if command.elsewhere:
                log.info("staff.command_for_another_bot", command=command.name)
            elif command.name in CHANGES:
                await self._task_command(command, message, entry, contact_id)
                return
            elif command.name in PEOPLE:
                await self.people.command(command, contact_id, message, entry)
                return
            elif command.name == "delete":
                await self._delete(message, entry, contact_id)
                return
            elif command.name in ABUSE:
                await self.guard.command(command, message, entry, contact_id)
                return
            elif command.name in LINE_COMMANDS:
                await self.conversations.move(command, message, entry, contact_id)
                return
            elif command.name in WATCH_COMMANDS:
                await self.watchers.command(command, message, entry, contact_id)
                return
            elif command.name in PRESENCE:
                notice = await self.waiting.presence_command(command.name, message)
            elif command.name == "t":
                notice = await self.quick(command.args, message, entry, contact_id)
                if notice is None:
                    return
            elif command.name == "template":
                notice = await self._template(command, message, entry, contact_id)
                if notice is None:
                    return
            else:
                notice = await self._command(command, contact_id, message.received_at)
        else:
            await self._reply(message, entry, contact_id)
            return
        await self.commit(entry, self.notice_under(message, contact_id, notice) if notice else None)

    async def _edited(self, message: InboundMessage, entry: Entry, contact_id: ContactId) -> None:
        """An operator edited a message in the topic: a reply's correction goes to the
        customer (see :mod:`gateway.corrections`); edited notes and commands change
        nothing."""
        text = message.content.text or ""
        job = None
        if not text.startswith(("!", "/")):
            job = CustomerEdit(
                out_id=f"edit:{message.key}",  # the key has the edit's date: one per edit
                contact_id=contact_id,
                content=message.content,
                staff_chat=message.sender.chat_id,
                staff_message=message.message_id,
            )
        await self.commit(entry, job)
        log.info("staff.edit", forwarded=job is not None)

    async def _delete(self, message: InboundMessage, entry: Entry, contact_id: ContactId) -> None:
        """``/delete`` in reply to one's own reply: take it back from the customer."""
        quoted = message.reply_to
        copy = None
        if quoted is not None:
            ref = MessageRef(AccountId(STAFF_ACCOUNT), message.sender.chat_id, quoted)
            copy = await peer(self.redis, ref)
        me = self.operator(message.sender.user_id)
        mine = copy is not None and (
            copy.author == message.sender.user_id or (me is not None and me.admin)
        )
        if quoted is None or copy is None or copy.ref.account == STAFF_ACCOUNT or not mine:
            said = "⚠️ /delete works as a reply to your own message that reached the customer."
            await self.commit(entry, self.notice_under(message, contact_id, said))
            return
        job = CustomerDelete(
            out_id=f"delete:{message.key}",
            contact_id=contact_id,
            staff_chat=message.sender.chat_id,
            staff_message=quoted,
            command=message.message_id,
        )
        await self.commit(entry, job)

    async def _private(self, message: InboundMessage, entry: Entry) -> None:
        """A private chat with the staff bot: listed operators may say /online,
        /offline, /status and /queue there; anything else is ignored."""
        sender = message.sender
        command = parse_command(message.content.text or "", self.bot_username)
        private = not message.group_chat and str(sender.chat_id) == str(sender.user_id)
        if not private or sender.user_id not in self.operators or command is None:
            log.warning("staff.foreign_chat_ignored", chat=sender.chat_id, user=sender.user_id)
            await self.commit(entry)
            return
        await self.presence.touch(sender.user_id, message.received_at)
        reply = (
            await self.waiting.presence_command(command.name, message)
            if command.name in PRESENCE
            else "Here: /online, /offline, /status, /queue. Everything else is in the group."
        )
        answer = StaffGeneral(
            out_id=f"private:{message.key}",
            contact_id=ContactId("general"),
            text=reply,
            chat=sender.chat_id,
        )
        await self.commit(entry, answer)

    async def _in_general(self, message: InboundMessage, entry: Entry) -> None:
        """General topic: staff talk among themselves; only commands are answered."""
        command = parse_command(message.content.text or "", self.bot_username)
        answer = None
        if command is not None and not command.elsewhere and command.name in GENERAL_LINES:
            await self.conversations.start(command, message, entry)
            return
        if command is not None and not command.elsewhere and command.name in WATCH_COMMANDS:
            await self.watchers.command(command, message, entry, None)
            return
        if command is not None and not command.elsewhere:
            buttons: tuple[tuple[Button, ...], ...] = ()
            if command.name == "find":
                reply, buttons = await self.people.find(command.args)
            elif command.name in PRESENCE:
                reply = await self.waiting.presence_command(command.name, message)
            else:
                reply = await self._general_command(command, message.received_at)
            answer = self.answer_in_chat(message, reply, buttons)
        await self.commit(entry, answer)

    async def _general_command(self, command: Command, now: datetime) -> str:
        if command.name == "overdue":
            return await self._overdue_digest(now)
        if command.name == "help":
            return GENERAL_HELP
        return (
            f"/{command.name} works in a customer's topic. "
            "Here: /overdue, /find, /new, /watching, /online, /offline, /status, /help."
        )

    async def _overdue_digest(self, now: datetime) -> str:
        overdue = await self.processes.overdue(now)
        if not overdue:
            return "✅ No overdue tasks."
        lines = [f"⏰ Overdue tasks ({len(overdue)}), longest waiting first:"]
        for contact_id, process in overdue:
            task = process.task
            name = (await self.contacts.get(ContactId(contact_id))).get("display_name", contact_id)
            late = bp.minutes_late(task, now)
            who = self.tasks.name_of(task.responsible)
            line = f"• {name} — {process.number}, task {task.number}, {late} min late, {who}"
            link = await self.lines.link(contact_id)
            if link is not None:
                line += f"\n  {link}"
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
            records = await self.history.of_person(contact_id, limit=HISTORY_SHOWN)
            return self.tasks.history(current, await self.processes.archive(contact_id), records)
        return f"Unknown command /{name}. Send /help for the list."

    async def _task_command(
        self, command: Command, message: InboundMessage, entry: Entry, contact_id: ContactId
    ) -> None:
        """A command that changes the task: applied atomically with its confirmation."""
        account = await self.account_of(contact_id)
        at, operator = message.received_at, message.sender.user_id

        def notice(text: str, buttons: Rows = (), mentions: Mentions = ()) -> StaffNotice:
            return StaffNotice(
                out_id=f"notice:{message.key}",
                contact_id=contact_id,
                text=text,
                reply_to=message.message_id,
                buttons=buttons,
                mentions=mentions,
                line=self.line_here(message),
            )

        told: list[Operator] = []

        def effects(pipe: Writer, transition: Transition | None) -> None:
            job = None
            if transition is not None:
                said, named = self.tasks.confirm(command.name, transition), Mentions()
                if command.name == "transfer":
                    to = transition.process.task.transferred_to or ""
                    said, named = announce(said, to, told)
                job = notice(said, mentions=named)
            self.effects(entry, job)(pipe, transition)

        try:
            if command.name == "transfer" and not command.args.strip():
                choices = rows(await self.transfers.choices(operator, at))
                await self.commit(entry, notice("Transfer to whom?", choices))
                return
            if command.name == "transfer":
                told = await self.transfers.told(self.tasks.target(command.args), at)
            sla = self.processes.sla_for(account)
            step = self.tasks.step(command.name, command.args, operator, at, account, sla)
            closing = command.name == "close"  # the satisfaction survey, in the close's commit
            stored = await self.csat.asking(contact_id, effects) if closing else effects
            done = await self.processes.apply(contact_id, at, step, stored, once=message.key)
            await after_close(self.waiting, done, at, message.key)
        except bp.RuleError as exc:
            await self.commit(entry, notice(f"⚠️ {exc}"))
        log.info("staff.task_command", command=command.name)

    async def read_receipt(
        self, contact_id: ContactId, account: str, channel: AnyChannel | None
    ) -> CustomerRead | None:
        """Answering reads the customer's messages: on messengers that show it (VK,
        WhatsApp), mark them read up to the latest, with the reply. Telegram bots
        cannot, so nothing is queued for them."""
        if channel is None or channel.kind in NO_READ_RECEIPTS:
            return None
        latest = await self.contacts.last_message(contact_id)
        if latest is None or latest[0].account != account:
            return None
        destination, message_id = latest
        return CustomerRead(
            out_id=f"read:{contact_id}:{message_id}",
            contact_id=contact_id,
            destination=destination,
            message_id=message_id,
        )

    async def _reply(
        self,
        message: InboundMessage,
        entry: Entry,
        contact_id: ContactId,
        content: Content | None = None,
        extra: _Job | None = None,
    ) -> None:
        """Send ``content`` (the operator's message itself by default) to the customer,
        with ``extra`` (e.g. a button's answer) in the same transaction."""
        content = content or message.content
        route = await self.contacts.reply_route(contact_id)
        if route is None:  # known only from a call, a form or an e-mail (the API)
            why = "the person has not written from any messenger yet"
            await self.commit(
                entry, self.notice_under(message, contact_id, render.not_delivered(why))
            )
            return
        account, chat = route
        reply_to = None
        if message.reply_to is not None:
            # The operator quoted a message in the topic: quote its customer-side twin.
            ref = MessageRef(AccountId(STAFF_ACCOUNT), message.sender.chat_id, message.reply_to)
            found = await peer(self.redis, ref)
            if found is not None and found.ref.account != STAFF_ACCOUNT:
                # A reply to a forwarded message goes back through that message's
                # messenger, whichever the person used last.
                account, chat = found.ref.account, found.ref.chat_id
                reply_to = found.ref.message_id
        refused = self.may_not_send(message.sender.user_id, account)
        if refused is not None:  # (a button's "sent" answer is not given)
            await self.commit(entry, self.notice_under(message, contact_id, refused))
            return
        job = CustomerSend(
            out_id=f"reply:{message.key}",
            contact_id=contact_id,
            destination=Destination(account=account, chat_id=chat, reply_to=reply_to),
            content=content,
            staff_chat=message.sender.chat_id,
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

        channel = self.settings.channel(account)
        read = await self.read_receipt(contact_id, account, channel)
        queued = self.effects(entry, job, read, extra)

        def effects(pipe: Writer, transition: Transition | None) -> None:
            queued(pipe, transition)
            self.history.append(
                pipe,
                contact_id,
                direction="out",
                at=at,
                channel=channel.kind if channel is not None else "",
                account=account,
                content=content,
                message_id=message.message_id,
                chat=message.sender.chat_id,
                operator=operator,
                process=transition.process.number if transition else "",
                task=transition.process.task.number if transition else None,
            )

        await self.processes.apply(contact_id, at, answered, effects, once=message.key)
        log.info("staff.reply_queued", kind=message.content.kind)
