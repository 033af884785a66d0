"""Outbound delivery: staff topics and customers, at the platforms' pace, exactly once.

- **Idempotent**: a job's ``out_id`` is marked done, with what the platform answered, in
  the same transaction that acknowledges the job; a job seen again is not re-sent.
  The one unavoidable window — the platform accepted the send and the process died
  before that transaction — is as short as one Redis round trip.
- **Paced and retried** by :class:`gateway.outbox.Outbox`: rate-limit buckets shared by
  all replicas, transient errors retried, topics created and healed on demand.
- **Permanent errors** are told to staff in the contact's topic: nothing fails silently.
- **One reminder per topic**: a new reminder replaces the previous one, and the
  reminder disappears once the task is answered or closed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from datetime import datetime
from typing import Any

import structlog
from redis.asyncio.client import Pipeline

from adapters.base import Adapter
from gateway import coalesce
from gateway import process as bp
from gateway.bus import Entry
from gateway.config import STAFF_ACCOUNT
from gateway.corrections import Corrections
from gateway.errors import PermanentError
from gateway.jobs import (
    JOB,
    CallbackAnswer,
    CustomerAuto,
    CustomerDelete,
    CustomerEdit,
    CustomerReact,
    CustomerRead,
    CustomerSend,
    Job,
    StaffCard,
    StaffCloseTopic,
    StaffDelete,
    StaffEdit,
    StaffGeneral,
    StaffNotice,
    StaffPost,
    StaffReact,
    StaffReminder,
)
from gateway.logging import new_context
from gateway.model import (
    AccountId,
    Button,
    ChatId,
    ContactId,
    Content,
    Destination,
    Kind,
    MessageId,
)
from gateway.receipts import parked_job
from gateway.staff import render
from gateway.staff.commands import topic_link
from gateway.staff.redeliver import Redeliver
from gateway.staff.tasks import NEW_ICON, card_buttons, render_card, status_icon
from gateway.store import keys
from gateway.store.messages import MessageRef, mark_receipt
from gateway.store.processes import PROCESS
from gateway.store.redis import text
from gateway.store.writes import Writes

log = structlog.get_logger(__name__)
CUSTOMER_JOBS = (
    CustomerSend,
    CustomerEdit,
    CustomerDelete,
    CustomerReact,
    CustomerAuto,
    CustomerRead,
    CallbackAnswer,
)


class Delivery(Corrections):
    @functools.cached_property
    def redeliver(self) -> Redeliver:
        return Redeliver(self.redis, self.settings, self.contacts)

    # Entry points (one per outbound stream family) ------------------------------------

    async def handle_staff(self, entry: Entry) -> None:
        job = JOB.validate_json(entry.payload)
        # A card refresh draws the current state: doing one twice is harmless, so it
        # skips the done-marker look-up; a post looks it up with what it reads anyway.
        quick = isinstance(job, StaffCard | StaffPost)
        if not quick and await self._already_done(job.out_id, entry):
            return
        new_context(contact_id=job.contact_id, job=job.out_id)
        await self._address(job)
        match job:
            case StaffPost():
                await self._post(job, entry)
            case StaffEdit():
                await self._edit(job, entry)
            case StaffNotice():
                said = job.text
                if job.link_line is not None:
                    said += await self._link_in(job.contact_id, job.link_line)
                content = Content(
                    kind=Kind.TEXT, text=said, buttons=job.buttons, mentions=job.mentions
                )
                _, sent = await self._to_topic(job.contact_id, content, reply_to=job.reply_to)
                await self._finish(entry, job.out_id, sent)
            case StaffCard():
                done, reads = keys.done(job.out_id), self._card_keys(job.contact_id)
                current = await coalesce.drop_if_superseded(
                    self.redis, entry, job, done, self.done_ttl, reads
                )
                if current is not None:  # else finished: a later refresh draws it
                    await self._card(job.contact_id, entry, job.out_id, current)
            case StaffReminder():
                await self._reminder(job, entry)
            case StaffDelete():
                await self._delete_job(job, entry)
            case StaffReact():
                dest = Destination(account=self.staff.account, chat_id=self.staff_chat)
                try:
                    await self._call(
                        self.staff,
                        dest,
                        self.staff.react,
                        self.staff_chat,
                        job.message_id,
                        job.emoji,
                    )
                except PermanentError as exc:  # a mark is cosmetic: never bother staff
                    log.info("staff.react_failed", reason=exc.reason)
                await self._finish(entry, job.out_id, None)
            case StaffCloseTopic():
                topic = await self.topics.get(job.contact_id)
                if topic is not None:
                    dest = Destination(account=self.staff.account, chat_id=self.staff_chat)
                    try:
                        await self._call(
                            self.staff, dest, self.staff.close_topic, self.staff_chat, topic
                        )
                    except PermanentError as exc:  # deleted by staff: nothing to close
                        log.info("staff.close_topic_failed", reason=exc.reason)
                await self._finish(entry, job.out_id, None)
            case CallbackAnswer():
                await self._answer_press(job)
                await self._finish(entry, job.out_id, None)
            case StaffGeneral():
                general = Destination(
                    account=self.staff.account,
                    chat_id=ChatId(job.chat) if job.chat else self.staff_chat,
                    thread_id=job.thread,
                    reply_to=job.reply_to,
                )
                said = job.text
                if job.link_topic and (topic := await self.topics.get(job.contact_id)):
                    said += f"\n{topic_link(self.staff_chat, topic)}"
                content = Content(kind=Kind.TEXT, text=said, buttons=job.buttons)
                if job.edit is not None:
                    try:
                        await self._call(
                            self.staff,
                            general,
                            self.staff.edit_text,
                            general.chat_id,
                            job.edit,
                            content,
                        )
                    except PermanentError as exc:  # deleted meanwhile: nothing to page
                        log.info("staff.general_edit_failed", reason=exc.reason)
                    await self._finish(entry, job.out_id, None)
                    return
                try:
                    posted = await self._call(
                        self.staff, general, self.staff.send, general, content
                    )
                except PermanentError as exc:
                    if job.chat is None or job.chat.startswith("-"):
                        raise  # a staff group's: a real failure
                    # An operator who never started the bot cannot be written to.
                    log.info("staff.private_chat_unreachable", reason=exc.reason)
                    posted = None
                await self._finish(entry, job.out_id, posted)
            case CustomerSend():
                await self._to_customer(job, entry)
            case CustomerEdit():
                await self._correct(job, entry)
            case CustomerDelete():
                await self._unsend(job, entry)
            case CustomerReact():
                await self._react(job, entry)
            case CustomerAuto():
                await self._auto(job, entry)
            case CustomerRead():
                await self._read_receipt(job, entry)

    handle_customer = handle_staff
    """Both families carry the same job union; the family only decides the order."""

    async def _address(self, job: Job) -> None:
        """Deliver ``job`` in its contact's current line's group (a notice may name
        another line: the one a conversation left); one read, only with several lines."""
        self.address(self.lines.default.chat_id)
        if not self.lines.several:
            return
        if isinstance(job, StaffNotice) and job.line is not None:
            self.address(self.settings.line(job.line).chat_id)
        elif isinstance(job, StaffReact) and job.chat is not None:
            self.address(job.chat)
        elif not isinstance(job, (*CUSTOMER_JOBS, StaffPost)) and not (
            isinstance(job, StaffGeneral) and not job.link_topic
        ):  # a post reads its line with what it reads anyway (Posting._post)
            self.address((await self.lines.line_of(job.contact_id)).chat_id)

    async def _link_in(self, contact_id: ContactId, line_name: str) -> str:
        """A link to the contact's topic in a line's group (a line of its own)."""
        line = self.settings.line(line_name)
        topic = await self.lines.at(line.chat_id).get(contact_id)
        return f"\n{topic_link(str(line.chat_id), topic)}" if topic is not None else ""

    async def _answer_press(self, job: CallbackAnswer) -> None:
        """Answer a button press through the bot that got it: the staff bot, or a
        customer's (a satisfaction survey's button, ``job.destination``)."""
        dest = job.destination or Destination(account=self.staff.account, chat_id=self.staff_chat)
        bot = self.staff if job.destination is None else self.adapters.get(dest.account)
        answer_callback = getattr(bot, "answer_callback", None)  # Telegram bots only
        if bot is None or answer_callback is None:
            log.info("callback_answer_unroutable", account=dest.account)
            return
        answer = functools.partial(answer_callback, alert=job.alert)
        try:
            await self._call(bot, dest, answer, job.callback_id, job.text)
        except PermanentError as exc:  # too late (answers expire): nothing to repair
            log.info("staff.callback_answer_failed", reason=exc.reason)

    # Staff side ------------------------------------------------------------------------

    def _card_keys(self, contact_id: ContactId) -> list[str]:
        """What a card refresh reads: the process, the card's id, what it shows, the
        reminder."""
        key = keys.card(self.group, contact_id)
        reminder = keys.reminder(self.group, contact_id)
        return [keys.process(contact_id), key, f"{key}:shown", reminder]

    async def _card(
        self, contact_id: ContactId, entry: Entry, out_id: str, current: list[Any]
    ) -> None:
        """Show the current task card: edit the pinned one, or post and pin a new one.
        ``current``: the values of :meth:`_card_keys`, read in the same round trip as
        the look for a later refresh."""
        key = keys.card(self.group, contact_id)
        raw, card_id, drawn, reminded = current
        process = PROCESS.validate_json(raw) if raw is not None else None
        if process is None:
            await self._finish(entry, out_id, None)
            return
        now = self.clock()
        today = process.day == now.astimezone(self.settings.zone).date()
        body = render_card(process, now, self.settings.zone, self.tasks.name_of)
        content = Content(kind=Kind.TEXT, text=body, buttons=card_buttons(process, today))
        # What the card shows now; drawn already (a refresh that changed nothing on it,
        # e.g. another message while the customer waits): no edit, no budget spent.
        shown = hashlib.blake2b(content.model_dump_json().encode(), digest_size=12).hexdigest()
        if self.settings.staff.topic_status:  # the title's icon is part of what is drawn
            shown += " " + status_icon(process, now)
        if card_id is not None and drawn is not None and text(drawn) == shown:
            if reminded is not None:
                await self._clear_reminder(contact_id, process, now)
            await self._finish(entry, out_id, None)
            return
        ttl = int(keys.MESSAGE_MAP_TTL.total_seconds())
        if card_id is not None:
            dest = Destination(account=self.staff.account, chat_id=self.staff_chat)
            try:
                message = MessageId(text(card_id))
                await self._call(
                    self.staff, dest, self.staff.edit_text, self.staff_chat, message, content
                )
                await self._retitle(contact_id, drawn, shown)
                if reminded is not None:
                    await self._clear_reminder(contact_id, process, now)
                await self._finish(
                    entry, out_id, None, also=lambda pipe: pipe.set(f"{key}:shown", shown, ex=ttl)
                )
                return
            except PermanentError as exc:  # deleted, or its topic was lost: post anew
                log.info("staff.card_reposted", reason=exc.reason)
        _, sent = await self._to_topic(contact_id, content)
        await self._pin(sent.message_ids[0])
        await self.redis.set(key, sent.message_ids[0])
        await self._retitle(contact_id, drawn, shown)
        if reminded is not None:
            await self._clear_reminder(contact_id, process, now)
        await self._finish(
            entry, out_id, sent, also=lambda pipe: pipe.set(f"{key}:shown", shown, ex=ttl)
        )

    async def _retitle(self, contact_id: ContactId, drawn: Any, shown: str) -> None:
        """The task's state changed the title's icon (``staff.topic_status``): rename
        the topic. Only on a change: a topic starts with 🟢 (see ``_ensure_topic``)."""
        icon = shown.partition(" ")[2]
        before = text(drawn).partition(" ")[2] if drawn is not None else NEW_ICON
        topic = await self.topics.get(contact_id) if icon and icon != before else None
        if topic is None:
            return
        contact = await self._contact(contact_id)
        name = f"{icon} {render.topic_name(self.settings.staff.topic_name, contact)}"
        dest = Destination(account=self.staff.account, chat_id=self.staff_chat)
        try:
            await self._call(self.staff, dest, self.staff.rename_topic, dest.chat_id, topic, name)
        except PermanentError as exc:  # a title is cosmetic: never bother staff
            log.info("staff.topic_rename_failed", reason=exc.reason)

    async def _clear_reminder(
        self, contact_id: ContactId, process: bp.Process, now: datetime
    ) -> None:
        """The task was answered or closed: its reminder goes away with it (callers
        that know no reminder is shown need not call)."""
        if bp.overdue(process, now):
            return
        key = keys.reminder(self.group, contact_id)
        shown = await self.redis.get(key)
        if shown is not None:
            await self._delete(MessageId(text(shown)))
            await self.redis.delete(key)

    async def _reminder(self, job: StaffReminder, entry: Entry) -> None:
        """Post the reminder with its buttons, replacing the topic's previous one."""
        contact_id = job.contact_id
        topic = await self._ensure_topic(contact_id, None)
        chat = self.group
        key = keys.reminder(chat, contact_id)
        previous, card = await self.redis.mget(key, keys.card(chat, contact_id))
        to_chat = topic_link(self.staff_chat, topic)
        to_task = f"{to_chat}/{text(card)}" if card is not None else to_chat
        buttons = (
            (Button(text="Go to task", url=to_task), Button(text="Go to chat", url=to_chat)),
            (Button(text="Mark read", data="r:read"), Button(text="Dismiss", data="r:dismiss")),
        )
        content = Content(kind=Kind.TEXT, text=job.text, buttons=buttons, mentions=job.mentions)
        _, sent = await self._to_topic(contact_id, content)
        shown = sent.message_ids[0]
        await self._finish(entry, job.out_id, sent, also=lambda pipe: pipe.set(key, shown))
        if previous is not None and text(previous) != shown:
            await self._delete(MessageId(text(previous)))

    async def _delete_job(self, job: StaffDelete, entry: Entry) -> None:
        await self._delete(job.message_id)
        key = keys.reminder(self.group, job.contact_id)
        if text(await self.redis.get(key) or b"") == job.message_id:
            await self.redis.delete(key)
        await self._finish(entry, job.out_id, None)

    # Customer side ---------------------------------------------------------------------

    async def _to_customer(self, job: CustomerSend, entry: Entry) -> None:
        dest = job.destination
        adapter = self.adapters.get(dest.account)
        staff_ref = MessageRef(AccountId(STAFF_ACCOUNT), ChatId(job.staff_chat), job.staff_message)
        try:
            if adapter is None:
                raise PermanentError(
                    "gateway",
                    "no adapter",
                    reason=f"channel account {dest.account} is not configured",
                )
            await self._within_window(adapter, job)
            self._fits(job.content, adapter)
            content, upload = await self._transfer(job.content, adapter)
            author = self.operator_names.get(job.operator_id)
            # The outbound id makes sends idempotent where the platform allows it.
            send = functools.partial(adapter.send, key=job.out_id, author=author)
            sent = await self._call(adapter, dest, send, dest, content, upload)
        except PermanentError as exc:
            log.warning("customer.not_delivered", reason=exc.reason)
            self._count("customer", adapter.channel if adapter else None, dest.account, "failed")
            failure = await self.redeliver.failed(job, exc.reason)
            failed = json.dumps({"failed": exc.reason})

            def build(pipe: Pipeline) -> None:
                pipe.set(keys.done(job.out_id), failed, ex=self.done_ttl)
                failure.keep(pipe)
                for told in failure.jobs:
                    self.bus.add(pipe, keys.STAFF_OUT, job.contact_id, told.model_dump_json())
                self.bus.ack(pipe, entry)

            await self.bus.commit(build)
            return
        customer_ref = MessageRef(dest.account, dest.chat_id, sent.message_ids[0])
        staff_key = keys.message(staff_ref.account, staff_ref.chat_id, staff_ref.message_id)
        receipts = adapter.capabilities.delivery_receipts

        def also(pipe: Writes) -> None:
            pipe.hset(staff_key, "author", job.operator_id)  # for /delete
            if receipts:  # a failure receipt may come: its buttons need the send
                self.redeliver.keep_until_receipt(pipe, job)

        await self._finish(entry, job.out_id, sent, (customer_ref, staff_ref, None), also=also)
        await self._parked_receipt(customer_ref, staff_ref, job)
        self._count("customer", adapter.channel, dest.account, "sent")
        self.metrics.latency.labels("to_customer").observe(max(0.0, time.time() - job.created_at))

    async def _auto(self, job: CustomerAuto, entry: Entry) -> None:
        """Send a message of the gateway's own (greeting, away message) and leave a note
        of it in the topic; a failure is only noted there (nobody waits for it)."""
        dest = job.destination
        adapter = self.adapters.get(dest.account)
        try:
            if adapter is None:
                raise PermanentError("gateway", "no adapter", reason="the account is gone")
            send = functools.partial(adapter.send, key=job.out_id)
            sent = await self._call(adapter, dest, send, dest, job.content)
        except PermanentError as exc:
            note = f"🤖 The {job.what} was not delivered: {exc.reason}."
            sent = None
        else:
            note = f"🤖 Sent the {job.what}: {job.content.text}"
        notice = StaffNotice(out_id=f"note:{job.out_id}", contact_id=job.contact_id, text=note)

        def also(pipe: Writes) -> None:
            if job.noted:
                self.bus.add(pipe, keys.STAFF_OUT, job.contact_id, notice.model_dump_json())

        await self._finish(entry, job.out_id, sent, also=also)

    async def _parked_receipt(
        self, customer: MessageRef, staff: MessageRef, job: CustomerSend
    ) -> None:
        """A receipt that overtook the send's answer: show it now (see gateway.receipts)."""
        line = self.lines.name_at(job.staff_chat)
        parked = await parked_job(self.redis, customer, staff, line, job.contact_id)
        if parked is None:
            return
        mark, rank, reason = parked
        key = keys.message(customer.account, customer.chat_id, customer.message_id)
        failure = None
        if isinstance(mark, StaffNotice):  # a failure: with the buttons to get it through
            failure = await self.redeliver.failed(job, reason)

        def build(pipe: Pipeline) -> None:
            mark_receipt(pipe, customer, rank)
            pipe.hdel(key, "parked", "parked_reason")
            if failure is not None:
                failure.keep(pipe)
            for shown in failure.jobs if failure is not None else [mark]:
                self.bus.add(pipe, keys.STAFF_OUT, job.contact_id, shown.model_dump_json())

        await self.bus.commit(build)

    async def _within_window(self, adapter: Adapter, job: CustomerSend) -> None:
        """Refuse, before calling the platform, a free-form reply it would refuse: too
        long after the customer last wrote (WhatsApp's 24-hour window)."""
        window = adapter.reply_window
        if window is None or job.content.template is not None:
            return
        dest = job.destination
        seen = await self.contacts.last_seen(job.contact_id, dest.account, dest.chat_id)
        if seen is not None and self.clock() - seen <= window:
            return
        channel = self.settings.channel(dest.account)
        names = [t.name for t in getattr(channel, "templates", ())]
        offer = f" (templates: {', '.join(names)})" if names else " (none configured yet)"
        hours = int(window.total_seconds() // 3600)
        raise PermanentError(
            adapter.channel.value,
            "outside the reply window",
            reason=f"more than {hours} hours since the customer last wrote, so "
            f"{adapter.channel.value} only takes an approved template now: /template NAME "
            f"args…{offer}",
        )

    async def _read_receipt(self, job: CustomerRead, entry: Entry) -> None:
        """Mark the customer's messages read on their messenger, where it has receipts
        (Telegram bots cannot mark messages read: there it only counts staff-side)."""
        dest = job.destination
        adapter = self.adapters.get(dest.account)
        if adapter is not None and adapter.read_receipts:
            try:
                await self._call(adapter, dest, adapter.mark_read, dest.chat_id, job.message_id)
            except PermanentError as exc:  # a receipt is not worth bothering staff with
                log.info("customer.read_receipt_failed", reason=exc.reason)
        await self._finish(entry, job.out_id, None)

    # Shared ----------------------------------------------------------------------------
