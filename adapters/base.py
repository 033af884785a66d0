"""The Adapter protocol: the only surface the core sees of a messenger.

An adapter turns the platform's inbound payloads into :mod:`gateway.model` messages and
sends model content back to the platform, converting every platform failure into the
:mod:`gateway.errors` tree. It holds no business state: everything durable lives in
Redis and is handled by the core. A new messenger is one new module implementing this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from gateway.model import (
    AccountId,
    Attachment,
    Channel,
    ChatId,
    Content,
    Destination,
    InboundEvent,
    MessageId,
    Sent,
    TopicId,
)
from gateway.ratelimit import Bucket


@dataclass(frozen=True, slots=True)
class Upload:
    """File bytes to upload when the destination cannot reuse the source's file id."""

    data: bytes
    file_name: str
    url: str | None = None
    """Where the gateway serves these bytes, for adapters with ``media_by_url``."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The HTTP body a webhook answers with (platforms differ: Telegram ignores it, the
    VK Callback API wants exactly ``ok``, or the confirmation code)."""

    body: str = '{"ok": true}'
    content_type: str = "application/json"
    status: int = 200


@dataclass(frozen=True, slots=True)
class Batch:
    """What one poll returned: raw updates (parsed later) and the cursor to poll next."""

    updates: Sequence[Mapping[str, Any]]
    cursor: int | None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a messenger lets a bot do, declared by its adapter: the core decides from
    these (and falls back where one is missing), never from the platform's name."""

    edit: bool
    """Edit the text (or caption) of a message it sent (:meth:`Adapter.edit_text`)."""
    delete: bool
    """Delete a message it sent for the customer too (:meth:`Adapter.delete`)."""
    edit_within: timedelta | None
    """How long after sending edits and deletions are allowed (``None``: no limit)."""
    reactions_in: bool
    """Customers' reactions arrive as events."""
    reactions_out: bool
    """The bot can set a reaction on a customer's message."""
    albums: bool
    """Several photos or videos as one grouped message."""
    delivery_receipts: bool
    """The platform reports a message delivered/seen."""
    reply_to: bool
    """A message can quote an earlier one."""
    max_text: int
    """Characters of one text message (longer texts are split)."""
    max_file_mb: float
    """Megabytes of the largest file a bot can send."""
    formatting: str
    """``entities`` (Telegram), ``whatsapp`` (markup: *bold* _italic_) or ``plain``
    (see :mod:`adapters.markup`)."""


class Adapter(Protocol):
    account: AccountId
    channel: Channel
    capabilities: Capabilities
    read_receipts: bool
    """Whether :meth:`mark_read` shows the customer their messages were read."""
    ack: Answer
    reply_window: timedelta | None
    """How long after the customer's last message free-form replies are allowed
    (WhatsApp: 24 hours; then only templates). ``None``: no limit."""
    media_by_url: bool
    """The platform fetches outbound files from a URL (no upload): :meth:`send` gets
    an :class:`Upload` whose ``url`` the gateway serves."""
    """What a webhook answers once the events are durably stored."""

    @property
    def file_scope(self) -> str:
        """Accounts with the same scope can reuse each other's file ids (same bot)."""
        ...

    def buckets(self, destination: Destination) -> list[Bucket]:
        """The platform's rate-limit buckets a send to ``destination`` consumes."""
        ...

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Authenticate a webhook request the platform's way; raise ``Unauthorized``."""
        ...

    def challenge(self, query: Mapping[str, str]) -> Answer:
        """Answer a ``GET`` verification of the webhook URL (WhatsApp's
        ``hub.challenge``); platforms without one raise ``Unauthorized``."""
        ...

    def handshake(self, payload: Mapping[str, Any]) -> Answer | None:
        """The answer to a set-up request that carries no events (VK's ``confirmation``);
        ``None`` for ordinary deliveries. Called after :meth:`verify`."""
        ...

    def parse(self, payload: Mapping[str, Any], received_at: datetime) -> Sequence[InboundEvent]:
        """Normalise one platform payload; ``[]`` for events the gateway does not use.

        Raises ``BadPayload`` when the payload is not what the platform documents.
        """
        ...

    async def enrich(self, events: Sequence[InboundEvent]) -> Sequence[InboundEvent]:
        """Fill in what the platform leaves out of its events (VK sends no names), before
        they are stored. Never raises: what cannot be looked up stays as parsed."""
        ...

    def event_id(self, payload: Mapping[str, Any]) -> str:
        """A short id of the raw payload for logs (never its content)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def set_webhook(self, url: str) -> None: ...

    async def poll(self, cursor: int | None, timeout: float) -> Batch:
        """Long-poll for updates after ``cursor`` (polling mode)."""
        ...

    async def send(
        self,
        destination: Destination,
        content: Content,
        upload: Upload | None = None,
        *,
        key: str | None = None,
        author: str | None = None,
    ) -> Sent:
        """Send ``content``; ``upload`` carries the attachment's bytes when needed.

        ``key`` identifies the outbound message: platforms with idempotent sends (VK's
        ``random_id``) derive their key from it, so a retry after a crash is not a
        second message. ``author`` is the operator who wrote it, for platforms that
        show a sender per message (Viber, when configured)."""
        ...

    async def edit_text(self, chat_id: ChatId, message_id: MessageId, content: Content) -> None:
        """Replace the text (or caption) of a message this account sent."""
        ...

    async def react(self, chat_id: ChatId, message_id: MessageId, emoji: str) -> None:
        """Set the bot's one reaction on a message, replacing its previous one (``""``:
        take it away); raises ``PermanentError`` where bots cannot react
        (``capabilities.reactions_out``)."""
        ...

    async def delete(self, chat_id: ChatId, message_id: MessageId) -> None:
        """Delete a message this account sent, for everyone (``PermanentError`` with the
        reason if it cannot be)."""
        ...

    async def download(self, attachment: Attachment) -> Upload:
        """Fetch an attachment this account received."""
        ...

    async def avatar(self, user_id: str) -> Upload | None:
        """The user's current profile picture, if the platform shows it to the bot."""
        ...

    async def mark_read(self, chat_id: ChatId, message_id: MessageId) -> None:
        """Mark the chat read up to ``message_id`` (only when ``read_receipts``)."""
        ...


class StaffAdapter(Adapter, Protocol):
    """The staff side: a Telegram bot in a forum supergroup."""

    async def username(self) -> str | None:
        """The bot's own @username (without @), as the platform reports it."""
        ...

    async def send_album(
        self, destination: Destination, items: Sequence[tuple[Content, Upload | None]]
    ) -> Sent:
        """Send 2-10 photos and videos (or documents, or audio files) as one album;
        the ids of its messages, in order."""
        ...

    async def create_topic(self, chat_id: ChatId, name: str) -> TopicId: ...

    async def reopen_topic(self, chat_id: ChatId, topic: TopicId) -> None: ...

    async def close_topic(self, chat_id: ChatId, topic: TopicId) -> None: ...

    async def rename_topic(self, chat_id: ChatId, topic: TopicId, name: str) -> None:
        """Retitle a forum topic (its name already: nothing to do, no error)."""
        ...

    async def pin(self, chat_id: ChatId, message_id: MessageId) -> None: ...

    async def typing(self, chat_id: ChatId, topic: TopicId) -> None:
        """Show "typing…" in a topic for a few seconds (a website visitor types)."""
        ...

    async def answer_callback(self, callback_id: str, text: str, *, alert: bool = False) -> None:
        """Answer a button press (a toast, or an alert the user must dismiss)."""
        ...
