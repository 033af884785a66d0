"""What every delivery step shares: platform calls at the platforms' pace, the staff
topics (created and healed on demand), and the exactly-once bookkeeping.

- **Rate limits are physics**: every call takes tokens from the destination's buckets
  (shared by all replicas, in Redis) and waits for them; a platform's ``retry_after``
  pushes the bucket into the future for everyone. Nothing is dropped: it waits.
- **Transient errors** are retried a few times (exponential backoff, capped, at least
  the platform's ``retry_after``); past that the job stays queued and the bus retries
  it again, in order.
- **Done markers**: a job's ``out_id`` is marked done, with what the platform answered,
  in the same transaction that acknowledges the job; a job seen again is not re-sent.
- **Topics heal**: a topic deleted by staff (Telegram: "message thread not found") is
  recreated and remapped, and the message is sent there; a closed topic is reopened.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from redis.asyncio.client import Pipeline

from adapters.base import Adapter, StaffAdapter, Upload
from gateway.bus import Bus, Entry
from gateway.config import Settings
from gateway.contacts import Contacts
from gateway.errors import PermanentError, TopicClosed, TopicLost, TransientError
from gateway.jobs import StaffCard
from gateway.lifecycle import raise_if_cancelling
from gateway.media import MediaStore
from gateway.metrics import Metrics
from gateway.model import (
    AccountId,
    Attachment,
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
from gateway.ratelimit import Limiter, Turn
from gateway.staff import render
from gateway.staff.tasks import NEW_ICON, TaskCommands
from gateway.store import keys
from gateway.store.lines import Lines
from gateway.store.messages import MessageRef, link
from gateway.store.processes import ProcessStore
from gateway.store.topics import Topics
from gateway.store.writes import Writes

log = structlog.get_logger(__name__)
T = TypeVar("T")
A = TypeVar("A", bound=Adapter)
QUICK_ATTEMPTS = 5
_GROUP: ContextVar[str | None] = ContextVar("staff_group", default=None)
"""The staff group (line) the job being delivered addresses; set per job by
:meth:`gateway.delivery.Delivery.handle_staff` (a context variable: partitions are
delivered concurrently, each in its own task)."""
"""Retries inside one handling of a job; then the bus retries the job itself."""


class Outbox:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        adapters: Mapping[str, Adapter],
        staff: StaffAdapter,
        contacts: Contacts,
        lines: Lines,
        limiter: Limiter,
        metrics: Metrics,
        processes: ProcessStore,
        clock: Callable[[], datetime],
        relays: Sequence[StaffAdapter] = (),
    ) -> None:
        self.relays = list(relays)
        """Extra bots that share the staff group's sending (``staff.relay_bots``)."""
        self.processes = processes
        self.clock = clock
        self.tasks = TaskCommands(settings)
        self.settings = settings
        self.bus = bus
        self.redis = bus.redis
        self.adapters = adapters
        self.staff = staff
        self.contacts = contacts
        self.lines = lines
        self.limiter = limiter
        self.metrics = metrics
        self.done_ttl = settings.bus.dedup_ttl_days * 86400
        self.max_backoff = settings.delivery.max_backoff_seconds
        self.media = MediaStore(self.redis, settings)
        self.operator_names = {str(o.id): o.name for o in settings.staff.operators}

    @property
    def staff_chat(self) -> ChatId:
        """The staff group of the job being delivered (its contact's line)."""
        return ChatId(_GROUP.get() or str(self.lines.default.chat_id))

    @property
    def group(self) -> int:
        """:attr:`staff_chat` as a number (how store keys name a group)."""
        return int(self.staff_chat)

    @property
    def topics(self) -> Topics:
        """The topics of the job's staff group."""
        return self.lines.at(self.staff_chat)

    @staticmethod
    def address(group: str | int) -> None:
        """Deliver the current job in this staff group (see :data:`_GROUP`)."""
        _GROUP.set(str(group))

    async def _to_topic(
        self,
        contact_id: ContactId,
        content: Content,
        *,
        reply_to: MessageId | None = None,
        upload: Upload | None = None,
        first: InboundMessage | None = None,
    ) -> tuple[TopicId, Sent]:
        """Send into the contact's topic (by the staff bot), creating or healing the
        topic as needed."""

        def send(bot: StaffAdapter, dest: Destination) -> Awaitable[Sent]:
            return bot.send(dest, content, upload)

        topic, sent, _ = await self._via_pool(
            contact_id, send, [self.staff], reply_to=reply_to, first=first
        )
        return topic, sent

    def senders(self, content: Content, upload: Upload | None) -> list[StaffAdapter]:
        """Who may post ``content``: the relay bots first (keeping the staff bot's budget
        for what only it can send), then the staff bot. Buttons stay with the staff bot
        (presses go to the bot that posted them), and so does a file sent by its
        Telegram file id (file ids belong to one bot)."""
        if content.buttons or (content.attachment is not None and upload is None):
            return [self.staff]
        return [*self.relays, self.staff]

    async def _via_pool(
        self,
        contact_id: ContactId,
        send: Callable[[StaffAdapter, Destination], Awaitable[Sent]],
        bots: Sequence[StaffAdapter],
        *,
        reply_to: MessageId | None = None,
        first: InboundMessage | None = None,
        priority: int = 0,
        topic: TopicId | None = None,
    ) -> tuple[TopicId, Sent, StaffAdapter]:
        """``send`` into the contact's topic through one of ``bots`` (the first with
        budget), creating or healing the topic as needed; returns the topic, what
        Telegram answered, and the bot that sent it.

        Topics take turns at the group's budget, in order of when they started waiting
        (a chatty customer cannot starve the others); ``priority`` (the account's)
        moves a topic ahead of those that have waited up to that many minutes longer."""
        # One queue per set of bots: a card (the staff bot only) at the head of a shared
        # queue would keep idle relays from taking the posts behind it.
        queue = f"turns:{self.staff_chat}:{'pool' if len(bots) > 1 else 'staff'}"
        turn = Turn(queue, contact_id, priority * 60_000)
        for _ in range(3):
            # ``topic``: the caller read it already (first attempt only).
            topic = topic or await self._ensure_topic(contact_id, first)
            dest = Destination(
                account=self.staff.account,
                chat_id=self.staff_chat,
                thread_id=topic,
                reply_to=reply_to,
            )

            def call(bot: StaffAdapter, d: Destination = dest) -> Awaitable[Sent]:
                return send(bot, d)

            try:
                sent, bot = await self._call_any(bots, dest, call, turn)
                return topic, sent, bot
            except TopicLost:
                log.warning("staff.topic_lost", topic=topic)
                self.metrics.topics_recreated.inc()
                await self.topics.forget(contact_id, topic)
                topic, reply_to = None, None  # the quoted message went away with the topic
                await self._redraw_card(contact_id)
            except TopicClosed:
                survivor = await self.contacts.survivor(contact_id)
                if survivor != contact_id:
                    # Closed because the contact was merged: what was still on its way
                    # goes to the person's topic now.
                    log.info("staff.redirected_to_survivor", survivor=survivor)
                    contact_id, reply_to, topic = survivor, None, None
                    continue
                log.info("staff.topic_reopened", topic=topic)
                await self._call(self.staff, dest, self.staff.reopen_topic, self.staff_chat, topic)
        raise TransientError(Channel.TELEGRAM.value, "the staff topic keeps disappearing")

    async def _redraw_card(self, contact_id: ContactId) -> None:
        """The task card went with a lost topic: queue drawing it again, in the new
        topic, after the message on its way there (state changes redraw it otherwise)."""
        card = StaffCard(out_id=f"card:lost:{uuid.uuid4().hex}", contact_id=contact_id)

        def build(pipe: Pipeline) -> None:
            self.bus.add(pipe, keys.STAFF_OUT, contact_id, card.model_dump_json())

        await self.bus.commit(build)

    async def _ensure_topic(self, contact_id: ContactId, first: InboundMessage | None) -> TopicId:
        known = await self.topics.get(contact_id)
        if known is not None:
            return known
        # One partition owner per contact at a time, so no second worker creates a
        # topic for this contact concurrently.
        contact = await self._contact(contact_id)
        name = render.topic_name(self.settings.staff.topic_name, contact)
        if contact_id == keys.SPAM:
            name = "🚫 Spam"  # what the spam rules caught (gateway.abuse)
        elif self.settings.staff.topic_status:  # the task's state, kept up by the card
            name = f"{NEW_ICON} {name}"
        dest = Destination(account=self.staff.account, chat_id=self.staff_chat)
        turn = Turn(f"turns:{self.staff_chat}:staff", contact_id)  # a new topic waits too
        topic, _ = await self._call_any(
            [self.staff], dest, lambda bot: bot.create_topic(self.staff_chat, name), turn
        )
        await self.topics.bind(contact_id, topic)
        log.info("staff.topic_created", topic=topic)
        if first is not None:
            header = render.header_card(contact, first, self.settings.zone)
            avatar = await self._avatar(first)
            card = Content(
                kind=Kind.PHOTO if avatar else Kind.TEXT,
                text=header,
                attachment=Attachment(account=self.staff.account, file_id="avatar")
                if avatar
                else None,
            )
            card_dest = dest.model_copy(update={"thread_id": topic})
            sent, _ = await self._call_any(
                [self.staff], card_dest, lambda bot: bot.send(card_dest, card, avatar), turn
            )
            await self._pin(sent.message_ids[0])
        return topic

    async def _avatar(self, first: InboundMessage) -> Upload | None:
        """The customer's profile picture for the topic's header, fetched once, when
        the topic is made; a missing or unavailable one only leaves the header plain."""
        adapter = self.adapters.get(first.sender.account)
        if adapter is None:
            return None
        try:
            return await adapter.avatar(first.sender.user_id)
        except (PermanentError, TransientError) as exc:
            log.info("staff.avatar_unavailable", error=str(exc))
            return None

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
            kind="lead" if data.get("kind") == "lead" else "client",
        )

    async def _delete(self, message_id: MessageId) -> bool:
        """Delete a staff message the bot sent; ``False`` if it is gone already (or too
        old for Telegram to delete): either way it no longer needs deleting."""
        dest = Destination(account=self.staff.account, chat_id=self.staff_chat)
        try:
            await self._call(self.staff, dest, self.staff.delete, self.staff_chat, message_id)
        except PermanentError as exc:
            log.info("staff.delete_failed", reason=exc.reason)
            return False
        return True

    async def _call(
        self, adapter: Adapter, dest: Destination, call: Callable[..., Awaitable[T]], *args: Any
    ) -> T:
        """One platform call: wait for the rate limit, retry transient errors a few times."""
        result, _ = await self._call_any([adapter], dest, lambda _: call(*args))
        return result

    async def _call_any(
        self,
        adapters: Sequence[A],
        dest: Destination,
        call: Callable[[A], Awaitable[T]],
        turn: Turn | None = None,
    ) -> tuple[T, A]:
        """One platform call through whichever of ``adapters`` (bots of a pool, the
        preferred first) has rate budget first; returns what it answered and which one.
        A retry may go through another bot of the pool. With a ``turn``, the budget goes
        round the waiters in order (see :meth:`Limiter.acquire_any`).

        A :class:`TransientError` is tried again after 0.2 s, 0.4 s, 0.8 s… (capped at
        ``delivery.max_backoff_seconds``, and never sooner than the platform's
        ``retry_after``), :data:`QUICK_ATTEMPTS` attempts in all; then it is raised.
        (A plain loop: a retry library's per-call set-up cost ~3% of a staff post's CPU.)
        """
        for attempt in range(1, QUICK_ATTEMPTS + 1):
            options = [adapter.buckets(dest) for adapter in adapters]
            index, waited = await self.limiter.acquire_any(options, turn)
            adapter, buckets = adapters[index], options[index]
            if waited:
                self.metrics.rate_wait.labels(adapter.channel.value, adapter.account).inc(waited)
            try:
                return await call(adapter), adapter
            except TransientError as exc:
                raise_if_cancelling()
                reason = "retry_after" if exc.retry_after else "transient"
                self.metrics.retries.labels(adapter.channel.value, adapter.account, reason).inc()
                log.warning("delivery.retry", error=str(exc), retry_after=exc.retry_after)
                if exc.retry_after and buckets:
                    await self.limiter.penalize(buckets[0], exc.retry_after)
                if attempt == QUICK_ATTEMPTS:
                    raise
                backoff = min(0.2 * 2 ** (attempt - 1), self.max_backoff)
                await asyncio.sleep(max(backoff, exc.retry_after or 0.0))
        raise AssertionError("unreachable: the last attempt raises")  # pragma: no cover

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
        also: Callable[[Writes], object] | None = None,
    ) -> None:
        """Mark the job done (with what the platform answered) and acknowledge it, with
        the message links and any other writes (``also``) in the same transaction."""
        ids = json.dumps(list(sent.message_ids) if sent else [])

        def build(pipe: Writes) -> None:
            pipe.set(keys.done(out_id), ids, ex=self.done_ttl)
            if links is not None:
                link(pipe, *links)
            if also is not None:
                also(pipe)
            self.bus.ack(pipe, entry)

        await self.bus.apply(build)

    def _count(self, direction: str, channel: Channel | None, account: str, result: str) -> None:
        name = channel.value if channel else "unknown"
        self.metrics.outbound.labels(direction, name, account, result).inc()
