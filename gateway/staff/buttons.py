"""Buttons operators press in the staff group.

- ``t:<action>[:<argument>]`` — the task card's [Take] [Close] [Transfer] [Reopen] and
  the choices they offer (close reasons by their index in the account's list, since a
  reason's text may not fit Telegram's 64 bytes of callback data; operators by id);
- ``r:read`` / ``r:dismiss`` — a reminder's [Mark read] and [Dismiss] (its [Go to task]
  and [Go to chat] are links and never reach the gateway);
- ``q:<name>`` — a quick reply offered by ``//``: sends it to the customer;
- ``d:<action>:<message>[:<n>]`` — a failed reply's [Retry] [Send as file] [Via …]
  (:mod:`gateway.staff.redeliver`).

Every press gets an answer (a toast, or an alert when refused); a press by someone who
is not an operator changes nothing.
"""

from __future__ import annotations

import functools

import structlog

from gateway import process as bp
from gateway.bus import Entry
from gateway.config import Operator
from gateway.jobs import (
    CallbackAnswer,
    CustomerRead,
    CustomerSend,
    StaffDelete,
    StaffGeneral,
    StaffNotice,
)
from gateway.logging import bind_context
from gateway.model import (
    Button,
    ContactId,
    Content,
    InboundCallback,
    InboundMessage,
    Kind,
    TopicId,
)
from gateway.process import NumberFor, Process, Transition
from gateway.staff.desk import Desk
from gateway.staff.people import People
from gateway.staff.redeliver import Redeliver
from gateway.staff.tasks import CHANGES
from gateway.staff.transfers import announce, rows
from gateway.staff.waiting import after_close
from gateway.store import keys
from gateway.store.merge import MergeRefused
from gateway.store.redis import text
from gateway.worker import Worker, Writer

log = structlog.get_logger(__name__)
CHOICES_PER_ROW = 3


class Buttons(Worker):
    @functools.cached_property
    def desk(self) -> Desk:
        return Desk(self.settings, self.bus, self.contacts, self.lines, self.processes)

    @functools.cached_property
    def people(self) -> People:
        return People(self.settings, self.bus, self.contacts, self.lines, self.processes)

    @functools.cached_property
    def redeliver(self) -> Redeliver:
        return Redeliver(self.redis, self.settings, self.contacts)

    async def handle(self, press: InboundCallback, entry: Entry) -> None:
        sender = press.sender
        bind_context(user=sender.user_id, button=press.data)
        if self.settings.line_at(sender.chat_id) is None:
            log.warning("staff.foreign_callback_ignored", chat=sender.chat_id)
            await self.commit(entry)
            return
        contact_id = None
        if press.thread_id is not None:
            contact_id = await self.lines.at(sender.chat_id).contact_of(TopicId(press.thread_id))
        if contact_id is not None:
            contact_id = await self.contacts.survivor(contact_id)
        if not self.is_operator(sender):
            log.warning("staff.callback_by_non_operator")
            await self._refuse(press, entry, contact_id, "Only operators can do this.")
            return
        await self.desk.presence.touch(sender.user_id, press.received_at)
        scope, _, rest = press.data.partition(":")
        action, _, argument = rest.partition(":")
        if scope == "f" and argument.isdigit():
            await self._find_page(action, int(argument), press, entry)
        elif contact_id is None or scope not in ("t", "r", "c", "q", "d"):
            await self._refuse(press, entry, contact_id, "This button does nothing here.")
        elif scope == "c" and action in ("merge", "distinct") and argument.isdigit():
            await self._same_person(action, ContactId(argument), press, entry, contact_id)
        elif scope == "c" and action == "phone" and argument.startswith("+"):
            answer = await self.people.save_phone(
                contact_id, argument, press.key, press.received_at
            )
            remove = StaffDelete(
                out_id=f"delete:{press.key}", contact_id=contact_id, message_id=press.message_id
            )
            await self.commit(entry, remove, self._answer(press, contact_id, answer))
        elif scope == "q":
            await self._quick(action, press, entry, contact_id)
        elif scope == "d":
            await self._redeliver(action, argument, press, entry, contact_id)
        elif scope == "r" and action in ("read", "dismiss"):
            await self._reminder(action, press, entry, contact_id)
        elif scope == "t" and action in CHANGES:
            await self._task(action, argument, press, entry, contact_id)
        else:
            await self._refuse(press, entry, contact_id, "Unknown button.")

    async def _quick(
        self, name: str, press: InboundCallback, entry: Entry, contact_id: ContactId
    ) -> None:
        """A quick reply's button (from ``//``): send it, as if ``//name`` was written."""
        said = InboundMessage(
            key=press.key,
            sender=press.sender,
            message_id=press.message_id,
            sent_at=press.received_at,
            received_at=press.received_at,
            content=Content(kind=Kind.TEXT, text=f"//{name}"),
            thread_id=press.thread_id,
            is_topic_message=True,
            group_chat=True,
        )
        answer = self._answer(press, contact_id, f"Sent “{name}”.")
        notice = await self.desk.quick(name, said, entry, contact_id, extra=answer)
        if notice is not None:
            await self._refuse(press, entry, contact_id, notice)

    async def _redeliver(
        self,
        action: str,
        argument: str,
        press: InboundCallback,
        entry: Entry,
        contact_id: ContactId,
    ) -> None:
        """A failed reply's button: send it again, as a file, or through another account."""
        answer, jobs, key = await self.redeliver.press(action, argument, press, contact_id)
        again = next((j for j in jobs if isinstance(j, CustomerSend)), None)
        if again is None:
            await self._refuse(press, entry, contact_id, answer)
            return
        refused = self.may_not_send(press.sender.user_id, again.destination.account)
        if refused is not None:
            await self._refuse(press, entry, contact_id, refused)
            return
        effects = self.effects(entry, *jobs, self._answer(press, contact_id, answer))

        def build(pipe: Writer) -> None:
            effects(pipe, None)
            pipe.delete(key)

        await self.bus.commit(build)

    @staticmethod
    def _answer(
        press: InboundCallback, contact_id: ContactId | None, text: str, *, alert: bool = False
    ) -> CallbackAnswer:
        return CallbackAnswer(
            out_id=f"answer:{press.key}",
            contact_id=contact_id or ContactId("general"),
            callback_id=press.callback_id,
            text=text,
            alert=alert,
        )

    async def _refuse(
        self, press: InboundCallback, entry: Entry, contact_id: ContactId | None, why: str
    ) -> None:
        await self.commit(entry, self._answer(press, contact_id, why, alert=True))

    async def _task(
        self,
        action: str,
        argument: str,
        press: InboundCallback,
        entry: Entry,
        contact_id: ContactId,
    ) -> None:
        account = await self.account_of(contact_id)
        channel = self.settings.channel(account)
        reasons = channel.close_reasons if channel is not None else ()
        if action == "close" and reasons:
            if not argument:
                choices = [Button(text=r, data=f"t:close:#{i}") for i, r in enumerate(reasons)]
                await self._offer(press, entry, contact_id, "Close with which reason?", choices)
                return
            index = argument.removeprefix("#")
            if not index.isdigit() or int(index) >= len(reasons):
                await self._refuse(press, entry, contact_id, "This choice is out of date.")
                return
            argument = reasons[int(index)]
        at = press.received_at
        if action == "transfer" and not argument:
            choices = await self.desk.transfers.choices(press.sender.user_id, at)
            if not choices:
                await self._refuse(press, entry, contact_id, "There is nobody to transfer to.")
                return
            await self._offer(press, entry, contact_id, "Transfer to whom?", choices)
            return
        told: list[Operator] = []
        try:
            if action == "transfer":
                told = await self.desk.transfers.told(self.tasks.target(argument), at)
            sla = self.processes.sla_for(account)
            step = self.tasks.step(action, argument, press.sender.user_id, at, account, sla)
        except bp.RuleError as exc:
            await self._refuse(press, entry, contact_id, str(exc))
            return

        def effects(pipe: Writer, transition: Transition | None) -> None:
            text = self.tasks.confirm(action, transition) if transition else "Done."
            shown = None
            if transition is not None and action == "transfer":
                to = transition.process.task.transferred_to or ""
                said, named = announce(text, to, told)
                shown = StaffNotice(
                    out_id=f"notice:{press.key}", contact_id=contact_id, text=said, mentions=named
                )
            self.effects(entry, self._answer(press, contact_id, text), shown)(pipe, transition)

        closing = action == "close"  # the satisfaction survey, in the close's commit
        stored = await self.desk.csat.asking(contact_id, effects) if closing else effects
        try:
            done = await self.processes.apply(contact_id, at, step, stored, once=press.key)
            await after_close(self.desk.waiting, done, at, press.key)
        except bp.RuleError as exc:
            await self._refuse(press, entry, contact_id, str(exc))

    async def _offer(
        self,
        press: InboundCallback,
        entry: Entry,
        contact_id: ContactId,
        question: str,
        choices: list[Button],
    ) -> None:
        """Answer the press and post the choices (reasons, operators) in the topic."""
        offer = StaffNotice(
            out_id=f"offer:{press.key}",
            contact_id=contact_id,
            text=question,
            reply_to=press.message_id,
            buttons=rows(choices, CHOICES_PER_ROW),
        )
        await self.commit(entry, offer, self._answer(press, contact_id, "Choose below."))

    async def _find_page(
        self, query_id: str, page: int, press: InboundCallback, entry: Entry
    ) -> None:
        """[◀] [▶] under a /find answer: the same search, another page, in place."""
        query = await self.redis.get(keys.find_query(query_id))
        if query is None:
            await self._refuse(press, entry, None, "This search has expired: send /find again.")
            return
        reply, buttons = await self.people.find(text(query), page)
        edit = StaffGeneral(
            out_id=f"find:{press.key}",
            contact_id=ContactId("general"),
            text=reply,
            buttons=buttons,
            edit=press.message_id,
            chat=press.sender.chat_id,
        )
        await self.commit(entry, edit, self._answer(press, None, f"Page {page + 1}"))

    async def _same_person(
        self,
        action: str,
        other: ContactId,
        press: InboundCallback,
        entry: Entry,
        contact_id: ContactId,
    ) -> None:
        """A dedup suggestion's [Merge] (the older contact survives) or [Not the same]."""
        if action == "distinct":
            await self.redis.sadd(keys.contact_distinct(contact_id), other)
            await self.redis.sadd(keys.contact_distinct(other), contact_id)
            remove = StaffDelete(
                out_id=f"delete:{press.key}", contact_id=contact_id, message_id=press.message_id
            )
            answer = self._answer(press, contact_id, "Noted: different people.")
            await self.commit(entry, remove, answer)
            return
        survivor, absorbed = sorted((contact_id, await self.contacts.survivor(other)), key=int)
        try:
            await self.people.merge(
                survivor,
                absorbed,
                press.received_at,
                press.sender.user_id,
                press.key,
                entry,
                also=(self._answer(press, contact_id, "🔗 Merged."),),
            )
        except MergeRefused as exc:
            await self._refuse(press, entry, contact_id, str(exc))

    async def _reminder(
        self, action: str, press: InboundCallback, entry: Entry, contact_id: ContactId
    ) -> None:
        if action == "dismiss":
            remove = StaffDelete(
                out_id=f"delete:{press.key}", contact_id=contact_id, message_id=press.message_id
            )
            await self.commit(entry, remove, self._answer(press, contact_id, "Dismissed."))
            return
        at, operator = press.received_at, press.sender.user_id
        latest = await self.contacts.last_message(contact_id)

        def read(current: Process | None, _: NumberFor) -> Transition:
            return bp.mark_read(current, at, operator)

        def effects(pipe: Writer, transition: Transition | None) -> None:
            receipt = None
            if transition is not None and latest is not None:
                destination, message_id = latest
                receipt = CustomerRead(
                    out_id=f"read:{press.key}",
                    contact_id=contact_id,
                    destination=destination,
                    message_id=message_id,
                )
            answer = self._answer(press, contact_id, "👁 Marked as read.")
            self.effects(entry, receipt, answer)(pipe, transition)

        try:
            await self.processes.apply(contact_id, at, read, effects, once=press.key)
        except bp.RuleError as exc:
            await self._refuse(press, entry, contact_id, str(exc))
