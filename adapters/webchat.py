"""The website chat: visitors of the company's site, through the embeddable widget.

Here the gateway is the platform. The widget talks to the gateway's own endpoints
(:mod:`gateway.webchat.server`), which authenticate the visitor, store their message in
the visitor's log (:mod:`gateway.webchat.log`) and hand this adapter a payload of the
shape below to parse — the same durable ingest as any webhook. Replies, edits,
deletions and read marks are appended to the log, where the widget picks them up.

Inbound payloads (built by the server, never by a browser directly)::

    {"type": "message", "visitor": "v…", "id": "<log entry id>", "cid": "<client id>",
     "text": "…", "file": {"id", "name", "mime", "size"}, "name": "…",
     "phone": "+7…", "email": "…", "at": <ms>}
    {"type": "seen", "visitor": "v…", "id": "<log entry id of a reply>", "at": <ms>}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.base import Answer, Batch, Capabilities, Upload
from adapters.markup import to_plain
from gateway.config import DeliverySettings, WebchatChannel
from gateway.errors import BadPayload, PermanentError, Unauthorized
from gateway.model import (
    AccountId,
    Attachment,
    Channel,
    ChatId,
    Content,
    Destination,
    InboundEvent,
    InboundMessage,
    InboundReceipt,
    Kind,
    MessageId,
    PlatformUserId,
    Sender,
    Sent,
)
from gateway.ratelimit import Bucket
from gateway.webchat.log import VisitorLog

CHANNEL = Channel.WEBCHAT
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


class WebchatAdapter:
    """One website chat account (a site, or a group of sites sharing a widget)."""

    channel = CHANNEL
    ack = Answer()
    reply_window: timedelta | None = None
    media_by_url = False
    # The gateway owns the conversation, so it can do everything but reactions.
    capabilities = Capabilities(
        edit=True,
        delete=True,
        edit_within=None,
        reactions_in=False,
        reactions_out=False,
        albums=False,
        delivery_receipts=True,
        reply_to=False,
        max_text=4096,
        max_file_mb=20,
        formatting="plain",
    )
    read_receipts = True  # the visitor sees their messages marked read

    def __init__(self, account: str, settings: WebchatChannel, limits: DeliverySettings) -> None:
        self.account = AccountId(account)
        self.settings = settings
        self.limits = limits
        self._log: VisitorLog | None = None

    def attach(self, log: VisitorLog) -> None:
        """Give the adapter its store (the gateway's Redis, once connected)."""
        self._log = log

    @property
    def log(self) -> VisitorLog:
        if self._log is None:
            raise PermanentError(CHANNEL.value, "not attached", reason="the gateway is starting")
        return self._log

    @property
    def file_scope(self) -> str:
        return f"webchat:{self.account}"

    def buckets(self, destination: Destination) -> list[Bucket]:
        return []  # our own Redis: no platform limit to keep to

    # Inbound -----------------------------------------------------------------------------

    def challenge(self, query: Mapping[str, str]) -> Answer:
        raise Unauthorized("the website chat has no webhook to verify")

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        raise Unauthorized("the website chat takes messages only through /webchat")

    def handshake(self, payload: Mapping[str, Any]) -> Answer | None:
        return None

    def parse(self, payload: Mapping[str, Any], received_at: datetime) -> Sequence[InboundEvent]:
        try:
            visitor = str(payload["visitor"])
            entry_id = MessageId(str(payload["id"]))
            sent_at = datetime.fromtimestamp(int(payload["at"]) / 1000, UTC)
            sender = Sender(
                account=self.account,
                channel=CHANNEL,
                user_id=PlatformUserId(visitor),
                chat_id=ChatId(visitor),
                display_name=str(payload.get("name") or f"Visitor {visitor[-4:]}"),
                phone=str(payload["phone"]) if payload.get("phone") else None,
                email=str(payload["email"]) if payload.get("email") else None,
            )
            if payload.get("type") == "seen":
                key = f"web:{self.account}:{visitor}:seen:{entry_id}"
                seen = InboundReceipt(
                    key=key,
                    sender=sender,
                    message_id=entry_id,
                    status="seen",
                    received_at=received_at,
                )
                return [seen]
            content = self._content(payload)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadPayload(CHANNEL, f"not a website chat event: {exc}") from exc
        message = InboundMessage(
            key=f"web:{self.account}:{visitor}:{payload['cid']}",
            sender=sender,
            message_id=entry_id,
            sent_at=sent_at,
            received_at=received_at,
            content=content,
        )
        return [message]

    def _content(self, payload: Mapping[str, Any]) -> Content:
        said = str(payload.get("text") or "") or None
        file = payload.get("file")
        if not file:
            if said is None:
                raise ValueError("a message needs text or a file")
            return Content(kind=Kind.TEXT, text=said)
        mime = str(file["mime"])
        attachment = Attachment(
            account=self.account,
            file_id=str(file["id"]),
            file_name=str(file["name"]),
            mime_type=mime,
            size=int(file["size"]),
        )
        kind = Kind.PHOTO if mime in IMAGE_TYPES else Kind.DOCUMENT
        return Content(kind=kind, text=said, attachment=attachment)

    async def enrich(self, events: Sequence[InboundEvent]) -> Sequence[InboundEvent]:
        return events

    def event_id(self, payload: Mapping[str, Any]) -> str:
        return str(payload.get("id", "?"))

    # Lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def set_webhook(self, url: str) -> None:
        pass  # the widget comes to us

    async def poll(self, cursor: int | None, timeout: float) -> Batch:
        raise PermanentError(CHANNEL.value, "poll", reason="the website chat has no server to poll")

    # Outbound ----------------------------------------------------------------------------

    async def send(
        self,
        destination: Destination,
        content: Content,
        upload: Upload | None = None,
        *,
        key: str | None = None,
        author: str | None = None,
    ) -> Sent:
        fields = {"e": "msg", "d": "out", "t": self._said(content)}
        if author and self.settings.operator_names:
            fields["a"] = author
        if upload is None and content.attachment is not None:
            upload = await self.download(content.attachment)  # a file of this chat
        if upload is not None:
            mime = _mime(content, upload.file_name)
            file_id = await self.log.store_file(upload.data, upload.file_name, mime)
            size = len(upload.data)
            meta = {"id": file_id, "name": upload.file_name, "mime": mime, "size": size}
            fields["f"] = json.dumps(meta)
        entry_id = await self.log.append(destination.chat_id, fields)
        return Sent(message_ids=(MessageId(entry_id),))

    @staticmethod
    def _said(content: Content) -> str:
        said = to_plain(content.text or "", content.styles)
        if content.location is not None and not said:
            point = content.location
            said = f"📍 https://maps.google.com/?q={point.latitude},{point.longitude}"
        if content.contact is not None:
            said = f"👤 {content.contact.first_name} {content.contact.phone}".strip()
        return said

    async def edit_text(self, chat_id: ChatId, message_id: MessageId, content: Content) -> None:
        await self._refers(chat_id, message_id)
        await self.log.append(chat_id, {"e": "edit", "r": message_id, "t": self._said(content)})

    async def delete(self, chat_id: ChatId, message_id: MessageId) -> None:
        await self._refers(chat_id, message_id)
        await self.log.append(chat_id, {"e": "del", "r": message_id})

    async def react(self, chat_id: ChatId, message_id: MessageId, emoji: str) -> None:
        raise PermanentError(CHANNEL.value, "react", reason="the website chat shows no reactions")

    async def mark_read(self, chat_id: ChatId, message_id: MessageId) -> None:
        await self.log.append(chat_id, {"e": "read", "r": message_id})

    async def _refers(self, chat_id: ChatId, message_id: MessageId) -> None:
        if not await self.log.exists(chat_id, message_id):
            raise PermanentError(
                CHANNEL.value, "unknown message", reason="the message is no longer in the chat"
            )

    async def download(self, attachment: Attachment) -> Upload:
        stored = await self.log.file(attachment.file_id)
        if stored is None:
            raise PermanentError(CHANNEL.value, "file gone", reason="the file has expired")
        return Upload(data=stored.data, file_name=stored.name)

    async def avatar(self, user_id: str) -> Upload | None:
        return None


def _mime(content: Content, name: str) -> str:
    if content.attachment is not None and content.attachment.mime_type:
        return content.attachment.mime_type
    if content.kind in (Kind.PHOTO, Kind.STICKER):
        return "image/webp" if name.endswith(".webp") else "image/jpeg"
    return "application/octet-stream"
