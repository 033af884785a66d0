"""Conversations between lines: ``/line`` moves one to another line's group, ``/new``
starts one from a line's General topic.

``/line service`` in a customer's topic moves the conversation to the ``service``
line: the open task goes with it (new again, for that line's people, with its SLA),
the contact's topic in that line's group is used (made on the way), both topics get a
link to each other, and the new one gets the latest messages so nobody starts blind.
The person still has one open task: it only changed hands.

``/new +7 916 123-45-67`` (or ``@username``, or a contact id; ``… via wa_sales`` to
choose the account) opens — or finds — the person's topic in this line, so the
operator can write first. What the messengers allow is checked and said (see
:mod:`gateway.staff.reach`): a refused start is a clear answer, never silence.
"""

from __future__ import annotations

import functools
from datetime import datetime

import structlog

from gateway import process as bp
from gateway.bus import Entry
from gateway.config import Line
from gateway.external import sender_of
from gateway.identity import InvalidIdentity, normalise_phone
from gateway.jobs import StaffGeneral, StaffNotice
from gateway.model import ContactId, InboundMessage
from gateway.process import NumberFor, Process, Transition
from gateway.staff.commands import Command
from gateway.staff.people import People
from gateway.staff.reach import Reacher, Unreachable
from gateway.staff.tasks import local_time
from gateway.staff.waiting import WaitingTasks
from gateway.store import keys
from gateway.store.redis import text
from gateway.worker import Worker, Writer

log = structlog.get_logger(__name__)
COMMANDS = frozenset({"line"})
"""In a customer's topic."""
GENERAL = frozenset({"new"})
"""In a line's General topic."""
CARRIED = 10
"""Latest messages shown in the topic a conversation moves to."""
NEW_USAGE = (
    "Start a conversation: /new <phone, @username or contact id> [via <account>], e.g. "
    "/new +7 916 123-45-67 via wa_sales"
)


class Conversations(Worker):
    @functools.cached_property
    def reacher(self) -> Reacher:
        return Reacher(self.redis, self.settings, self.contacts)

    @functools.cached_property
    def waiting(self) -> WaitingTasks:
        return WaitingTasks(self.settings, self.bus, self.contacts, self.lines, self.processes)

    @functools.cached_property
    def people(self) -> People:
        return People(self.settings, self.bus, self.contacts, self.lines, self.processes)

    def _named(self, name: str) -> Line | None:
        wanted = name.strip().casefold()
        return next(
            (x for x in self.settings.all_lines if wanted in (x.name, x.label.casefold())), None
        )

    def _who(self, message: InboundMessage) -> str:
        return self.operators.get(message.sender.user_id) or message.sender.display_name

    # /line -----------------------------------------------------------------------------

    async def move(
        self, command: Command, message: InboundMessage, entry: Entry, contact_id: ContactId
    ) -> None:
        """``/line <name>``: move the conversation (and its open task) to that line."""
        target = self._named(command.args)
        here = await self.lines.line_of(contact_id)

        def answer(said: str) -> StaffNotice:
            return StaffNotice(
                out_id=f"notice:{message.key}",
                contact_id=contact_id,
                text=said,
                reply_to=message.message_id,
                line=here.name,
            )

        if not self.lines.several:
            await self.commit(entry, answer("⚠️ There is one line here (no lines: in the config)."))
            return
        if target is None:
            names = ", ".join(f"{x.name} ({x.label})" for x in self.settings.all_lines)
            await self.commit(entry, answer(f"Move to which line? /line <name> — {names}"))
            return
        if target.name == here.name:
            await self.commit(entry, answer(f"It is in line {here.label} already."))
            return
        at, operator, who = message.received_at, message.sender.user_id, self._who(message)
        sla = self.processes.sla_in(target.name)
        carried = await self._digest(contact_id)
        arrive = StaffNotice(
            out_id=f"moved-in:{message.key}",
            contact_id=contact_id,
            text=f"⬅️ Moved here from line {here.label} by {who}.{carried}\nThe earlier topic:",
            line=target.name,
            link_line=here.name,
        )
        leave = StaffNotice(
            out_id=f"moved-out:{message.key}",
            contact_id=contact_id,
            text=f"➡️ Moved to line {target.label} by {who}: it goes on there.",
            reply_to=message.message_id,
            line=here.name,
            link_line=target.name,
        )

        def step(current: Process | None, _: NumberFor) -> Transition | None:
            if current is None or not current.task.is_open:
                return None  # nothing open: the conversation moves all the same
            return bp.move(current, at, operator, target.name, sla)

        def effects(pipe: Writer, transition: Transition | None) -> None:
            self.lines.enter(pipe, contact_id, target)
            if transition is None:  # their next message opens its task there
                ttl = int(keys.LINE_START_TTL.total_seconds())
                pipe.set(keys.line_start(contact_id), target.name, ex=ttl)
            self.effects(entry, arrive, leave)(pipe, transition)

        moved = await self.processes.apply(contact_id, at, step, effects, once=message.key)
        log.info("staff.line_moved", to=target.name, task=moved is not None)
        if moved is not None and target.responsible is not None:
            await self.waiting.route(contact_id, at, target.responsible, message.key, target)

    async def _digest(self, contact_id: ContactId) -> str:
        """The latest messages, for the topic a conversation moves to."""
        records = await self.history.of_person(contact_id, limit=CARRIED)
        if not records:
            return ""
        shown = []
        for record in records[-CARRIED:]:
            arrow = "←" if record.direction == "in" else "→"
            body = record.text or f"[{record.kind}]"
            body = body if len(body) <= 200 else body[:199] + "…"
            shown.append(f"{local_time(record.at, self.settings.zone)} {arrow} {body}")
        return "\nLatest messages:\n" + "\n".join(shown)

    # /new ------------------------------------------------------------------------------

    async def start(self, command: Command, message: InboundMessage, entry: Entry) -> None:
        """``/new <who> [via <account>]`` in a line's General topic."""
        line = self.settings.line_at(message.sender.chat_id) or self.settings.default_line
        words = command.args.split()
        via = None
        if len(words) >= 2 and words[-2].casefold() == "via":
            via, words = words[-1], words[:-2]
        at = message.received_at
        said = NEW_USAGE
        contact_id = None
        if words:
            try:
                contact_id = await self._person(" ".join(words), at, via)
                said = await self._open(contact_id, message, entry, line, via)
            except Unreachable as exc:
                said = f"⚠️ Cannot start it: {exc}."
        if said:
            await self.commit(entry, self.answer_in_chat(message, said))
        log.info("staff.new_conversation", contact_id=contact_id, started=not said)

    async def _person(self, who: str, at: datetime, via: str | None) -> ContactId:
        """The contact ``who`` names: a contact id, an @username, or a phone (someone
        new gets a contact, reachable by WhatsApp only)."""
        bare = who.strip().lstrip("#")
        if bare.isdigit() and len(bare) <= 9:
            if await self.contacts.exists(bare):
                return await self.contacts.survivor(ContactId(bare))
            raise Unreachable(f"there is no contact #{bare}")
        if bare.startswith("@"):
            handle = bare[1:].casefold()
            for found in await self.people.by_name(handle):
                data = await self.contacts.get(ContactId(found))
                if data.get("username", "").casefold() == handle:
                    return await self.contacts.survivor(ContactId(found))
            raise Unreachable(
                f"nobody with the username @{handle} wrote to us: Telegram bots write only "
                "to people who started them"
            )
        try:
            number = normalise_phone(bare, self.settings.contacts.default_region)
        except InvalidIdentity:
            raise Unreachable(f"{who!r} is not a phone, @username or contact id") from None
        owner = await self.redis.get(keys.phone(number))
        if owner is not None:
            return await self.contacts.survivor(ContactId(text(owner)))
        return await self._stranger(number, at, via)

    async def _stranger(self, number: str, at: datetime, via: str | None) -> ContactId:
        """Someone nobody knows, by phone: a lead reachable by WhatsApp."""
        whatsapp = [c.id for c in self.settings.channels if c.kind == "whatsapp"]
        if not whatsapp or (via is not None and via not in whatsapp):
            raise Unreachable(
                f"nobody with {number} wrote to us, and only WhatsApp lets a business write "
                "first to a phone number; Telegram, Viber and VK bots write only to people "
                "who wrote to them"
            )
        return await self.contacts.lead(sender_of(None, number, None), at, number)

    async def _open(
        self,
        contact_id: ContactId,
        message: InboundMessage,
        entry: Entry,
        line: Line,
        via: str | None,
    ) -> str:
        """Open the person's topic in ``line`` for writing first; what to answer in
        General ("" when the topic's link is the answer)."""
        at = message.received_at
        current = await self.processes.current(contact_id)
        here = await self.lines.line_of(contact_id)
        link = await self.lines.link(contact_id)
        if current is not None and current.task.is_open and here.name != line.name:
            return (
                f"They have an open task in line {here.label}: {link or 'no topic yet'} — "
                f"move it here with /line {line.name} there."
            )
        reach = await self.reacher.reach(contact_id, at, via, line)
        refused = self.may_not_send(message.sender.user_id, reach.account)
        if refused is not None:
            return refused
        chat = await self.contacts.route_via(contact_id, reach.account, reach.channel.kind)
        if chat is None:
            raise Unreachable(f"they have no chat with {reach.account}")
        who = self._who(message)
        note = f"\n{reach.note}" if reach.note else ""
        opened = StaffNotice(
            out_id=f"new:{message.key}",
            contact_id=contact_id,
            text=f"🆕 {who} starts a conversation through {reach.account} "
            f"({reach.channel.kind}): write here.{note}",
            line=line.name,
        )
        pointer = StaffGeneral(
            out_id=f"general:{message.key}",
            contact_id=contact_id,  # queued behind the notice that makes the topic
            text=f"🆕 Write to them in their topic:{note}",
            reply_to=message.message_id,
            chat=message.sender.chat_id,
            link_topic=True,
        )
        ttl = int(keys.LINE_START_TTL.total_seconds())

        def build(pipe: Writer) -> None:
            self.lines.enter(pipe, contact_id, line)
            if self.lines.several and not (current is not None and current.task.is_open):
                pipe.set(keys.line_start(contact_id), line.name, ex=ttl)
            self.effects(entry, opened, pointer)(pipe, None)

        await self.bus.commit(build)
        return ""
