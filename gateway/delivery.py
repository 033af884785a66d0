"""Outbound delivery: staff topics and customers, at the platforms' pace, exactly once.

- **Idempotent**: a job's ``out_id`` is marked done, with what the platform answered, in
  the same transaction that acknowledges the job; a job seen again is not re-sent.
  The one unavoidable window — the platform accepted the send and the process died
  before that transaction — is as short as one Redis round trip.
- **Rate limits are physics**: every send takes tokens from the destination's buckets
  (shared by all replicas, in Redis) and waits for them; a platform's ``retry_after``
  pushes the bucket into the future for everyone. Nothing is dropped: it waits.
- **Transient errors** are retried with tenacity (exponential backoff, capped, at least
  the platform's ``retry_after``); past the cap the job stays queued and the bus retries
  it again, in order. **Permanent errors** are told to staff in the contact's topic.
- **Topics heal**: a topic deleted by staff (Telegram: "message thread not found") is
  recreated and remapped, and the message is sent there; a closed topic is reopened.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from redis.asyncio.client import Pipeline
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from adapters.base import Adapter, StaffAdapter, Upload
from gateway.bus import Bus, Entry
from gateway.config import STAFF_ACCOUNT, Settings
from gateway.contacts import Contacts
from gateway.errors import PermanentError, TopicClosed, TopicLost, TransientError
from gateway.jobs import (
    JOB,
    CallbackAnswer,
    CustomerSend,
    StaffCard,
    StaffEdit,
    StaffGeneral,
    StaffNotice,
    StaffPost,
)
from gateway.lifecycle import raise_if_cancelling
from gateway.metrics import Metrics
from gateway.model import (
    AccountId,
    Channel,
    ChatId,
    Contact,
    ContactId,
    Content,
    Destination,
    InboundMessage,
    Kind,
    MessageId,
    Sent,
    TopicId,
)
from gateway.ratelimit import Limiter
from gateway.staff import render
from gateway.staff.tasks import TaskCommands, card_buttons, render_card
from gateway.store import keys
from gateway.store.messages import MessageRef, link, peer
from gateway.store.processes import ProcessStore
from gateway.store.redis import text
from gateway.store.topics import Topics

log = structlog.get_logger(__name__)
T = TypeVar("T")
QUICK_ATTEMPTS = 5
"""Retries inside one handling of a job; then the bus retries the job itself."""


class Delivery:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        adapters: Mapping[str, Adapter],
        staff: StaffAdapter,
        contacts: Contacts,
        topics: Topics,
        limiter: Limiter,
        metrics: Metrics,
        processes: ProcessStore,
        clock: Callable[[], datetime],
    ) -> None:
        self.processes = processes
        self.clock = clock
        self.tasks = TaskCommands(settings)
        self.settings = settings
        self.bus = bus
        self.redis = bus.redis
        self.adapters = adapters
        self.staff = staff
        self.contacts = contacts
        self.topics = topics
        self.limiter = limiter
        self.metrics = metrics
        self.staff_chat = ChatId(str(settings.staff.chat_id))
        self.done_ttl = settings.bus.dedup_ttl_days * 86400
        self.max_backoff = settings.delivery.max_backoff_seconds

    # Entry points (one per outbound stream family) ------------------------------------

    async def handle_staff(self, entry: Entry) -> None:
        job = JOB.validate_json(entry.payload)
        if await self._already_done(job.out_id, entry):
            return
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(contact_id=job.contact_id, job=job.out_id)
        match job:
            case StaffPost():
                await self._post(job, entry)
            case StaffEdit():
                await self._edit(job, entry)
            case StaffNotice():
                content = Content(kind=Kind.TEXT, text=job.text, buttons=job.buttons)
                _, sent = await self._to_topic(job.contact_id, content, reply_to=job.reply_to)
                await self._finish(entry, job.out_id, sent)
            case StaffCard():
                await self._card(job.contact_id, entry, job.out_id)
            case CallbackAnswer():
                dest = Destination(account=self.staff.account, chat_id=self.staff_chat)
                answer = functools.partial(self.staff.answer_callback, alert=job.alert)
                try:
                    await self._call(self.staff, dest, answer, job.callback_id, job.text)
                except PermanentError as exc:  # too late (answers expire): nothing to repair
                    log.info("staff.callback_answer_failed", reason=exc.reason)
                await self._finish(entry, job.out_id, None)
            case StaffGeneral():
                general = Destination(
                    account=self.staff.account, chat_id=self.staff_chat, reply_to=job.reply_to
                )
                content = Content(kind=Kind.TEXT, text=job.text)
                sent = await self._call(self.staff, general, self.staff.send, general, content)
                await self._finish(entry, job.out_id, sent)
            case CustomerSend():
                await self._to_customer(job, entry)

    handle_customer = handle_staff
    """Both families carry the same job union; the family only decides the order."""

    # Staff side ------------------------------------------------------------------------

    async def _post(self, job: StaffPost, entry: Entry) -> None:
        message = job.message
        origin = _origin(message)
        reply_to = None
        if message.reply_to is not None:
            quoted = await peer(
                self.redis, MessageRef(origin.account, origin.chat_id, message.reply_to)
            )
            if quoted is not None and quoted.ref.account == STAFF_ACCOUNT:
                reply_to = quoted.ref.message_id
        content, upload = await self._transfer(message.content, self.staff)
        _, sent = await self._to_topic(
            job.contact_id, content, reply_to=reply_to, upload=upload, first=message
        )
        staff_ref = MessageRef(AccountId(STAFF_ACCOUNT), self.staff_chat, sent.message_ids[0])
        await self._finish(entry, job.out_id, sent, (origin, staff_ref, message.content.text))
        self._count("staff", message.sender.channel, STAFF_ACCOUNT, "sent")
        self.metrics.latency.labels("to_staff").observe(
            max(0.0, time.time() - message.received_at.timestamp())
        )

    async def _edit(self, job: StaffEdit, entry: Entry) -> None:
        message = job.message
        origin = _origin(message)
        text = message.content.text or ""
        copy = await peer(self.redis, origin)
        if copy is not None and copy.text == text:
            # Telegram sends edited_message for changes a bot cannot see (e.g. a link
            # preview appearing): nothing visible changed, so staff are not bothered.
            await self._finish(entry, job.out_id, None)
            return
        edited = message.content.model_copy(update={"text": render.edited_text(text)})
        if copy is not None:
            dest = Destination(account=self.staff.account, chat_id=self.staff_chat)
            try:
                await self._call(
                    self.staff,
                    dest,
                    self.staff.edit_text,
                    dest.chat_id,
                    copy.ref.message_id,
                    edited,
                )
                await self._finish(entry, job.out_id, None, (origin, copy.ref, text))
                return
            except PermanentError as exc:
                log.info("staff.edit_fallback", reason=exc.reason)
        # The copy is unknown or cannot be edited: post the new version as a reply.
        notice = Content(kind=Kind.TEXT, text=render.edited_text(text))
        reply_to = copy.ref.message_id if copy is not None else None
        _, sent = await self._to_topic(job.contact_id, notice, reply_to=reply_to)
        staff_ref = MessageRef(AccountId(STAFF_ACCOUNT), self.staff_chat, sent.message_ids[0])
        await self._finish(entry, job.out_id, sent, (origin, staff_ref, text))

    async def _to_topic(
        self,
        contact_id: ContactId,
        content: Content,
        *,
        reply_to: MessageId | None = None,
        upload: Upload | None = None,
        first: InboundMessage | None = None,
    ) -> tuple[TopicId, Sent]:
        """Send into the contact's topic, creating or healing the topic as needed."""
        for _ in range(3):
            topic = await self._ensure_topic(contact_id, first)
            dest = Destination(
                account=self.staff.account,
                chat_id=self.staff_chat,
                thread_id=topic,
                reply_to=reply_to,
            )
            try:
                sent = await self._call(self.staff, dest, self.staff.send, dest, content, upload)
                return topic, sent
            except TopicLost:
                log.warning("staff.topic_lost", topic=topic)
                self.metrics.topics_recreated.inc()
                await self.topics.forget(contact_id, topic)
                reply_to = None  # the quoted message went away with the topic
            except TopicClosed:
                log.info("staff.topic_reopened", topic=topic)
                await self._call(self.staff, dest, self.staff.reopen_topic, self.staff_chat, topic)
        raise TransientError(Channel.TELEGRAM.value, "the staff topic keeps disappearing")

    async def _ensure_topic(self, contact_id: ContactId, first: InboundMessage | None) -> TopicId:
        topic = await self.topics.get(contact_id)
        if topic is not None:
            return topic
        # One partition owner per contact at a time, so no second worker creates a
        # topic for this contact concurrently.
        contact = await self._contact(contact_id)
        name = render.topic_name(self.settings.staff.topic_name, contact)
        dest = Destination(account=self.staff.account, chat_id=self.staff_chat)
        topic = await self._call(self.staff, dest, self.staff.create_topic, self.staff_chat, name)
        await self.topics.bind(contact_id, topic)
        log.info("staff.topic_created", topic=topic)
        if first is not None:
            card = Content(
                kind=Kind.TEXT, text=render.header_card(contact, first, self.settings.zone)
            )
            card_dest = dest.model_copy(update={"thread_id": topic})
            sent = await self._call(self.staff, card_dest, self.staff.send, card_dest, card)
            await self._pin(sent.message_ids[0])
        return topic

    async def _pin(self, message_id: MessageId) -> None:
        """Pin a staff message; a missing pin is cosmetic, so failures are only logged."""
        try:
            await self.staff.pin(self.staff_chat, message_id)
        except (PermanentError, TransientError) as exc:
            log.info("staff.pin_failed", error=str(exc))

    async def _contact(self, contact_id: ContactId) -> Contact:
        data = await self.contacts.get(contact_id)
        return Contact(
            id=contact_id,
            display_name=data.get("display_name") or f"Contact {contact_id}",
            username=data.get("username") or None,
            channel=Channel(data.get("channel", Channel.TELEGRAM.value)),
            account=AccountId(data.get("account", "?")),
            first_seen=datetime.fromisoformat(data["first_seen"])
            if "first_seen" in data
            else datetime.now(UTC),
        )

    async def _card(self, contact_id: ContactId, entry: Entry, out_id: str) -> None:
        """Show the current task card: edit the pinned one, or post and pin a new one."""
        process = await self.processes.current(contact_id)
        if process is None:
            await self._finish(entry, out_id, None)
            return
        now = self.clock()
        today = process.day == now.astimezone(self.settings.zone).date()
        body = render_card(process, now, self.settings.zone, self.tasks.name_of)
        content = Content(kind=Kind.TEXT, text=body, buttons=card_buttons(process, today))
        key = keys.card(self.settings.staff.chat_id, contact_id)
        card_id = await self.redis.get(key)
        if card_id is not None:
            dest = Destination(account=self.staff.account, chat_id=self.staff_chat)
            try:
                message = MessageId(text(card_id))
                await self._call(
                    self.staff, dest, self.staff.edit_text, self.staff_chat, message, content
                )
                await self._finish(entry, out_id, None)
                return
            except PermanentError as exc:  # deleted, or its topic was lost: post anew
                log.info("staff.card_reposted", reason=exc.reason)
        _, sent = await self._to_topic(contact_id, content)
        await self._pin(sent.message_ids[0])
        await self.redis.set(key, sent.message_ids[0])
        await self._finish(entry, out_id, sent)

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
            content, upload = await self._transfer(job.content, adapter)
            sent = await self._call(adapter, dest, adapter.send, dest, content, upload)
        except PermanentError as exc:
            log.warning("customer.not_delivered", reason=exc.reason)
            self._count("customer", adapter.channel if adapter else None, dest.account, "failed")
            notice = StaffNotice(
                out_id=f"failed:{job.out_id}",
                contact_id=job.contact_id,
                text=render.not_delivered(exc.reason),
                reply_to=job.staff_message,
            )
            failed = json.dumps({"failed": exc.reason})

            def build(pipe: Pipeline) -> None:
                pipe.set(keys.done(job.out_id), failed, ex=self.done_ttl)
                self.bus.add(pipe, keys.STAFF_OUT, job.contact_id, notice.model_dump_json())
                self.bus.ack(pipe, entry)

            await self.bus.commit(build)
            return
        customer_ref = MessageRef(dest.account, dest.chat_id, sent.message_ids[0])
        await self._finish(entry, job.out_id, sent, (customer_ref, staff_ref, None))
        self._count("customer", adapter.channel, dest.account, "sent")
        self.metrics.latency.labels("to_customer").observe(max(0.0, time.time() - job.created_at))

    # Shared ----------------------------------------------------------------------------

    async def _transfer(self, content: Content, target: Adapter) -> tuple[Content, Upload | None]:
        """Bytes for the target when it cannot reuse the source's file id (another bot)."""
        attachment = content.attachment
        if attachment is None:
            return content, None
        source = self.adapters.get(attachment.account) or (
            self.staff if attachment.account == STAFF_ACCOUNT else None
        )
        if source is not None and source.file_scope == target.file_scope:
            return content, None
        try:
            if source is None:
                raise PermanentError(
                    "gateway", "no adapter", reason=f"account {attachment.account} is gone"
                )
            upload = await source.download(attachment)
        except PermanentError as exc:
            placeholder = render.attachment_unavailable(content.kind.value, exc.reason)
            text = f"{placeholder}\n{content.text}" if content.text else placeholder
            return Content(kind=Kind.TEXT, text=text), None
        return content, upload

    async def _call(
        self, adapter: Adapter, dest: Destination, call: Callable[..., Awaitable[T]], *args: Any
    ) -> T:
        """One platform call: wait for the rate limit, retry transient errors a few times."""
        buckets = adapter.buckets(dest)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            backoff = wait_exponential(multiplier=0.2, max=self.max_backoff)(state)
            if isinstance(exc, TransientError) and exc.retry_after:
                return max(backoff, exc.retry_after)
            return backoff

        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            wait=wait,
            stop=stop_after_attempt(QUICK_ATTEMPTS),
            reraise=True,
        ):
            with attempt:
                waited = await self.limiter.acquire(buckets)
                if waited:
                    self.metrics.rate_wait.labels(adapter.channel.value, adapter.account).inc(
                        waited
                    )
                try:
                    return await call(*args)
                except TransientError as exc:
                    raise_if_cancelling()
                    reason = "retry_after" if exc.retry_after else "transient"
                    self.metrics.retries.labels(
                        adapter.channel.value, adapter.account, reason
                    ).inc()
                    log.warning("delivery.retry", error=str(exc), retry_after=exc.retry_after)
                    if exc.retry_after and buckets:
                        await self.limiter.penalize(buckets[0], exc.retry_after)
                    raise
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _already_done(self, out_id: str, entry: Entry) -> bool:
        if await self.redis.exists(keys.done(out_id)):
            log.info("delivery.duplicate_skipped", job=out_id)
            await self.bus.ack_now(entry)
            return True
        return False

    async def _finish(
        self,
        entry: Entry,
        out_id: str,
        sent: Sent | None,
        links: tuple[MessageRef, MessageRef, str | None] | None = None,
    ) -> None:
        ids = json.dumps(list(sent.message_ids) if sent else [])

        def build(pipe: Pipeline) -> None:
            pipe.set(keys.done(out_id), ids, ex=self.done_ttl)
            if links is not None:
                link(pipe, *links)
            self.bus.ack(pipe, entry)

        await self.bus.commit(build)

    def _count(self, direction: str, channel: Channel | None, account: str, result: str) -> None:
        name = channel.value if channel else "unknown"
        self.metrics.outbound.labels(direction, name, account, result).inc()


def _origin(message: InboundMessage) -> MessageRef:
    return MessageRef(message.sender.account, message.sender.chat_id, message.message_id)
