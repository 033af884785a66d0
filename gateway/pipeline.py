"""The inbound worker: a customer's message → the contact → its business process → a
post into the contact's staff topic. Staff-group messages and button presses go to
:mod:`gateway.staff.desk` and :mod:`gateway.staff.buttons`.

Each handler stores its effects (outbound jobs) and acknowledges the inbound entry
atomically (see :mod:`gateway.worker`), so an entry handled twice after a crash queues
the same jobs, which delivery sends once.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

import structlog

from gateway import process as bp
from gateway.abuse import Guard
from gateway.bus import Entry
from gateway.config import STAFF_ACCOUNT, Line
from gateway.csat import Csat
from gateway.external import External
from gateway.identity import InvalidIdentity, normalise_phone, phones_in
from gateway.jobs import CustomerAuto, StaffEdit, StaffNotice, StaffPost
from gateway.logging import bind_context, new_context
from gateway.model import (
    INBOUND,
    Button,
    ContactId,
    Content,
    Destination,
    InboundCallback,
    InboundEvent,
    InboundExternal,
    InboundMessage,
    InboundReaction,
    InboundReceipt,
    InboundStatus,
    Kind,
)
from gateway.process import Transition
from gateway.receipts import Receipts
from gateway.staff import render
from gateway.staff.buttons import Buttons
from gateway.staff.desk import Desk
from gateway.staff.timers import Timers
from gateway.staff.watch import Watch
from gateway.store import keys
from gateway.store.merge import MergeRefused
from gateway.store.processes import ContactMerged, Step
from gateway.store.redis import text
from gateway.worker import Effects, Worker, Writer

log = structlog.get_logger(__name__)
"""Reactions a bot may set (Telegram's standard list has no check mark)."""


def _own_phone(message: InboundMessage) -> str | None:
    """The sender's phone when they share their own contact (Telegram's "Share my
    phone"), or when the platform identifies senders by phone."""
    shared = message.content.contact
    if shared is not None and shared.user_id == message.sender.user_id:
        return shared.phone
    return message.sender.phone


def routing_key(message: InboundEvent) -> str:
    """Inbound partitioning: per customer chat, or per staff topic (order is per key)."""
    if message.sender.account == STAFF_ACCOUNT and isinstance(
        message, InboundMessage | InboundCallback
    ):
        return f"staff:{message.thread_id or 0}"
    return f"{message.sender.account}:{message.sender.chat_id}"


class Pipeline(Worker):
    @functools.cached_property
    def desk(self) -> Desk:
        return Desk(self.settings, self.bus, self.contacts, self.lines, self.processes)

    @functools.cached_property
    def buttons(self) -> Buttons:
        return Buttons(self.settings, self.bus, self.contacts, self.lines, self.processes)

    @functools.cached_property
    def receipts(self) -> Receipts:
        return Receipts(self.settings, self.bus, self.contacts, self.lines, self.processes)

    @functools.cached_property
    def external(self) -> External:
        return External(self.settings, self.bus, self.contacts, self.lines, self.processes)

    @functools.cached_property
    def csat(self) -> Csat:
        return Csat(self.settings, self.bus, self.contacts, self.lines, self.processes)

    @functools.cached_property
    def guard(self) -> Guard:
        return Guard(self.settings, self.bus, self.contacts, self.lines, self.processes)

    @functools.cached_property
    def watch(self) -> Watch:
        return Watch(self.settings, self.bus, self.contacts, self.lines, self.processes)

    @functools.cached_property
    def timers(self) -> Timers:
        return Timers(self.settings, self.bus, self.contacts, self.lines, self.processes)

    async def handle(self, entry: Entry) -> None:
        message = INBOUND.validate_json(entry.payload)
        new_context(account=message.sender.account, event_key=message.key, entry=entry.id)
        if isinstance(message, InboundCallback) and message.sender.account != STAFF_ACCOUNT:
            await self.csat.pressed(message, entry)  # a customer's press: a survey's button
        elif isinstance(message, InboundCallback):
            await self.buttons.handle(message, entry)
        elif isinstance(message, InboundStatus):
            await self._status(message, entry)
        elif isinstance(message, InboundReceipt):
            await self.receipts.handle(message, entry)
        elif isinstance(message, InboundReaction) and message.sender.account == STAFF_ACCOUNT:
            await self.receipts.operator_reacted(message, entry)
        elif isinstance(message, InboundReaction):
            await self.receipts.reaction(message, entry)
        elif isinstance(message, InboundExternal):
            await self.external.handle(message, entry)
        elif message.sender.account == STAFF_ACCOUNT:
            await self.desk.handle(message, entry)
        else:
            await self._from_customer(message, entry)

    async def _status(self, status: InboundStatus, entry: Entry) -> None:
        """Allowed or denied messages: a notice in the person's topic. Someone who never
        wrote has no topic yet; their first message will open one."""
        sender = status.sender
        contact_id = await self.contacts.of_identity(sender.account, sender.user_id)
        if contact_id is None:
            log.info("inbound.status_of_stranger", allowed=status.allowed)
            await self.commit(entry)
            return
        notice = StaffNotice(
            out_id=f"status:{status.key}",
            contact_id=contact_id,
            text=render.subscription(status.allowed, sender.channel, sender.account),
        )
        log.info("inbound.status", allowed=status.allowed, contact_id=contact_id)
        effects = self.effects(entry, notice)
        denied = keys.denied(sender.account, sender.user_id)

        def build(pipe: Writer) -> None:
            # Remembered for writing first (see gateway.staff.reach).
            if status.allowed:
                pipe.delete(denied)
            else:
                pipe.set(denied, status.received_at.astimezone(UTC).isoformat())
            effects(pipe, None)

        await self.bus.commit(build)

    def _phone(self, message: InboundMessage) -> str | None:
        raw = _own_phone(message)
        if raw is None:
            return None
        try:
            return normalise_phone(raw, self.settings.contacts.default_region)
        except InvalidIdentity:
            log.info("inbound.phone_unreadable")
            return None

    def _automatic(
        self, message: InboundMessage, contact_id: str, created: bool, effects: Effects
    ) -> Effects:
        """``effects`` plus what the account answers by itself: the greeting on a new
        contact's first message, the away message outside working hours (its id is the
        process's, so delivery sends it once per process however often they write)."""
        account = message.sender.account
        channel = self.settings.channel(account)
        destination = Destination(account=account, chat_id=message.sender.chat_id)

        def auto(out_id: str, text: str, what: str) -> CustomerAuto:
            content = Content(kind=Kind.TEXT, text=text)
            return CustomerAuto(
                out_id=out_id,
                contact_id=ContactId(contact_id),
                destination=destination,
                content=content,
                what=what,
            )

        def build(pipe: Writer, transition: Transition | None) -> None:
            effects(pipe, transition)
            if transition is None or channel is None:
                return  # seen before (redelivered): its answers were queued then
            if created and channel.greeting:
                self.queue(pipe, auto(f"greeting:{contact_id}", channel.greeting, "greeting"))
            hours = self.processes.sla_for(account).hours
            if channel.away_message and hours and not hours.is_open(message.received_at):
                out_id = f"away:{contact_id}:{transition.process.number}"
                self.queue(pipe, auto(out_id, channel.away_message, "away message"))

        return build

    def _rule(self, at: datetime, sla: bp.Sla, line: str | None) -> Step:
        """The process rule for a customer's message at ``at``."""
        zone = self.processes.zone
        return lambda current, number_for: bp.inbound(
            current, at, zone=zone, sla=sla, number_for=number_for, line=line
        )

    async def _started(self, contact_id: str) -> Line | None:
        """The line an operator started a conversation with the contact in (``/new``),
        if the customer has not answered since (only with several lines)."""
        if not self.lines.several:
            return None
        name = await self.redis.get(keys.line_start(contact_id))
        return self.settings.line(text(name)) if name is not None else None

    async def _phone_offer(self, message: InboundMessage, contact_id: str) -> list[StaffNotice]:
        """A phone number written in the text: offer staff to save it (confirmed by a
        person, since "call 8 800 …" may be anyone's number)."""
        region = self.settings.contacts.default_region
        numbers = phones_in(message.content.text or "", region)
        if not numbers:
            return []
        known = await self.redis.smembers(keys.contact_phones(contact_id))
        new = [n for n in numbers if n.encode() not in known]
        if not new:
            return []
        buttons = tuple((Button(text=f"📞 Save {n}", data=f"c:phone:{n}"),) for n in new)
        offer = StaffNotice(
            out_id=f"phone-offer:{message.key}",
            contact_id=ContactId(contact_id),
            text="The customer wrote a phone number. Save it as theirs?",
            reply_to=None,
            buttons=buttons,
        )
        return [offer]

    async def _from_customer(self, message: InboundMessage, entry: Entry) -> None:
        if message.group_chat or message.sender.is_bot:
            # A customer bot added to some group: that is not a customer conversation.
            log.warning("inbound.ignored_group_message", chat=message.sender.chat_id)
            await self.commit(entry)
            return
        if await self.csat.answered(message, entry):
            return  # the rating of a closed task: not a new request
        latest = None if message.edited else message.message_id
        channel = self.settings.channel(message.sender.account)
        line = self.settings.line_of(message.sender.account)
        kind = "client" if channel is None or channel.create_clients else "lead"
        at, store = message.received_at, self.processes
        for _ in range(3):  # a merge may move the contact while we work
            resolved = await self.contacts.resolve(
                message.sender, message.received_at, latest, kind=kind, phone=self._phone(message)
            )
            contact = resolved.contact
            bind_context(contact_id=contact.id)
            other = resolved.same_phone_as
            if (
                other is not None
                and self.settings.dedup.auto_merge == "exact"
                and not await self.contacts.distinct(contact.id, other)
            ):
                survivor, absorbed = sorted((contact.id, other), key=int)
                try:
                    await self.desk.people.merge(
                        survivor, absorbed, at, "dedup", f"dedup:{message.key}"
                    )
                except MergeRefused as exc:
                    log.warning("contact.dedup_merge_refused", reason=str(exc))
                else:
                    continue  # resolve again: the identity now belongs to the survivor
            email = message.sender.email
            if email and await self.contacts.add_email(contact.id, email):
                log.info("contact.email_of_another", contact_id=contact.id)  # /merge: staff
            if await self.guard.screen(message, contact.id, bool(resolved.banned_at), entry):
                return  # banned, spam or flood: kept, not posted
            suggestions: list[StaffNotice] = []
            people = self.desk.people
            if other is not None and self.settings.dedup.auto_merge == "suggest":
                phone = self._phone(message) or ""
                suggestions = await people.suggestions(contact.id, other, phone, message.key)
            if resolved.created and self.settings.dedup.suggest_by_name:
                for similar in await people.similar_names(contact.id, contact.display_name):
                    suggestions += await people.suggestions(contact.id, similar, "", message.key)
            if message.edited:
                # An edit is not a new message: the business process does not move.
                edit = StaffEdit(
                    out_id=f"edit:{message.key}", contact_id=contact.id, message=message
                )
                await self.commit(entry, edit)
                return
            post = StaffPost(out_id=f"post:{message.key}", contact_id=contact.id, message=message)
            suggestions += await self._phone_offer(message, contact.id)
            started = await self._started(contact.id)
            opening = (started or line).name if self.lines.several else None
            try:
                transition = await store.apply(
                    contact.id,
                    at,
                    self._rule(at, store.sla_for(message.sender.account), opening),
                    self.in_line(
                        contact.id,
                        started is not None,
                        self._automatic(
                            message,
                            contact.id,
                            resolved.created,
                            self.recorded(
                                self.effects(entry, post, *suggestions),
                                contact.id,
                                message.sender,
                                message.received_at,
                                message.content,
                                message.message_id,
                            ),
                        ),
                    ),
                    once=message.key,
                    may_open=True,
                )
            except ContactMerged:
                continue  # merged meanwhile: resolve again, to the survivor
            break
        else:
            raise RuntimeError("the contact kept being merged while its message was handled")
        opened = transition is not None and any(e.type == "task.opened" for e in transition.events)
        if opened and transition is not None:
            task_line = self.settings.line(transition.process.task.line)
            responsible = channel.responsible if channel is not None else None
            if responsible is None or task_line.name != line.name:
                responsible = task_line.responsible  # started or carried in another line
            if responsible is not None:
                await self.desk.waiting.route(contact.id, at, responsible, message.key, task_line)
        created = resolved.created
        number = transition.process.number if transition else None
        log.info("inbound.accepted", kind=message.content.kind, new_contact=created, process=number)
