"""WhatsApp Business through the Cloud API (Graph API over aiohttp; there is no SDK).

- Webhooks: ``GET`` answers Meta's ``hub.challenge`` handshake when the verify token
  matches; ``POST`` bodies are signed with the app secret (``X-Hub-Signature-256``) and
  checked on the raw bytes before parsing (:mod:`adapters.whatsapp.parse`).
- Sending: ``POST /{phone_number_id}/messages``; files are uploaded to ``/media`` first
  and sent by id. Replies are free-form only within 24 hours of the customer's last
  message (``reply_window``): the gateway refuses later ones before calling the API and
  offers the configured templates (``/template``).
- Receiving files: ``GET /{media_id}`` gives a short-lived URL, fetched with the token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import mimetypes
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from adapters.base import Answer, Batch, Capabilities, Upload
from adapters.markup import to_whatsapp
from adapters.text import split_text
from adapters.whatsapp.errors import CHANNEL, from_answer
from adapters.whatsapp.parse import parse_webhook
from gateway.config import DeliverySettings, WhatsAppChannel
from gateway.errors import BadPayload, PermanentError, TransientError, Unauthorized
from gateway.model import (
    AccountId,
    Attachment,
    Channel,
    ChatId,
    Content,
    Destination,
    InboundEvent,
    Kind,
    MessageId,
    Sent,
)
from gateway.ratelimit import Bucket

SIGNATURE_HEADER = "X-Hub-Signature-256"
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
BUTTON_TITLE_LIMIT = 20
DOWNLOAD_LIMIT = 50 * 1024 * 1024
# https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types
LIMITS = {"image": 5, "video": 16, "audio": 16, "sticker": 0.5, "document": 100}
MEDIA_TYPE = {
    Kind.PHOTO: "image",
    Kind.VIDEO: "video",
    Kind.VIDEO_NOTE: "video",
    Kind.AUDIO: "audio",
    Kind.VOICE: "audio",
    Kind.STICKER: "sticker",
    Kind.DOCUMENT: "document",
    Kind.ANIMATION: "video",
}
ACCEPTED = {
    "image": ("image/jpeg", "image/png"),
    "video": ("video/mp4", "video/3gpp"),
    "audio": ("audio/ogg", "audio/mpeg", "audio/aac", "audio/mp4", "audio/amr", "audio/opus"),
    "sticker": ("image/webp",),
}


class WhatsAppAdapter:
    """One WhatsApp Business phone number."""

    channel = Channel.WHATSAPP
    ack = Answer()
    reply_window: timedelta | None = timedelta(hours=24)
    media_by_url = False
    # The Cloud API cannot edit or delete a business message; it reports sent,
    # delivered, read and failed, and customers' reactions arrive as messages.
    capabilities = Capabilities(
        edit=False,
        delete=False,
        edit_within=None,
        reactions_in=True,
        reactions_out=True,
        albums=False,
        delivery_receipts=True,
        reply_to=True,
        max_text=4096,
        max_file_mb=100,
        formatting="whatsapp",
    )
    read_receipts = True  # the customer sees blue ticks

    def __init__(self, account: str, settings: WhatsAppChannel, limits: DeliverySettings) -> None:
        self.account = AccountId(account)
        self.settings = settings
        self.limits = limits
        self.number = settings.phone_number_id
        self.graph = f"{str(settings.api_server).rstrip('/')}/{settings.api_version}"
        self._secret = settings.app_secret.get_secret_value().encode()
        self._session: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self.settings.token.get_secret_value()}"},
                timeout=aiohttp.ClientTimeout(total=self.limits.request_timeout_seconds),
            )
        return self._session

    @property
    def file_scope(self) -> str:
        return f"whatsapp:{self.number}"

    def buckets(self, destination: Destination) -> list[Bucket]:
        # 80 messages/s per number by default; to one customer about one per 6 s after
        # a short burst (error 131056 otherwise).
        pair = Bucket.per_minute(f"wa:{self.number}:{destination.chat_id}", 10, burst=5)
        return [pair, Bucket.per_second(f"wa:{self.number}", 80, burst=20)]

    # Inbound -----------------------------------------------------------------------------

    def challenge(self, query: Mapping[str, str]) -> Answer:
        """Meta's verification request (``GET``): echo ``hub.challenge`` when the verify
        token matches (https://developers.facebook.com/docs/graph-api/webhooks/getting-started)."""
        given = query.get("hub.verify_token", "")
        expected = self.settings.verify_token.get_secret_value()
        if query.get("hub.mode") != "subscribe" or not hmac.compare_digest(
            given.encode(), expected.encode()
        ):
            raise Unauthorized("wrong hub.verify_token or hub.mode")
        challenge = query.get("hub.challenge", "")
        if not challenge:
            raise BadPayload(Channel.WHATSAPP, "no hub.challenge")
        return Answer(body=challenge, content_type="text/plain")

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        given = headers.get(SIGNATURE_HEADER, "")
        expected = "sha256=" + hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.lower().encode(), expected.encode()):
            raise Unauthorized(f"wrong or missing {SIGNATURE_HEADER}")

    def handshake(self, payload: Mapping[str, Any]) -> Answer | None:
        return None  # the handshake is a GET (challenge)

    def parse(self, payload: Mapping[str, Any], received_at: datetime) -> Sequence[InboundEvent]:
        return parse_webhook(
            payload, account=self.account, phone_number_id=self.number, received_at=received_at
        )

    async def enrich(self, events: Sequence[InboundEvent]) -> Sequence[InboundEvent]:
        return events  # the webhook names its senders (contacts[].profile.name)

    def event_id(self, payload: Mapping[str, Any]) -> str:
        entries = payload.get("entry") if isinstance(payload, Mapping) else None
        return f"entries:{len(entries) if isinstance(entries, list) else '?'}"

    # Lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def set_webhook(self, url: str) -> None:
        """Point this number's webhooks at ``url``: a per-number override of the app's
        callback URL, so several numbers of one app can go to several accounts
        (https://developers.facebook.com/docs/whatsapp/embedded-signup/webhooks/override).
        Meta verifies it with a GET (:meth:`challenge`) before it answers."""
        body = {
            "webhook_configuration": {
                "override_callback_uri": url,
                "verify_token": self.settings.verify_token.get_secret_value(),
            }
        }
        await self._request("POST", f"{self.graph}/{self.number}", json=body)

    async def poll(self, cursor: int | None, timeout: float) -> Batch:
        raise PermanentError(CHANNEL, "poll", reason="WhatsApp only has webhooks")

    # Calls -------------------------------------------------------------------------------

    async def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            async with self.http.request(method, url, **kwargs) as response:
                raw = await response.read()
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                if response.status >= 300:
                    raise from_answer(response.status, body)
                if body is None:
                    raise TransientError(CHANNEL, f"unreadable answer from {url}")
                return body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(CHANNEL, f"network: {type(exc).__name__}: {exc}") from exc

    async def _post_message(self, to: str, body: dict[str, Any]) -> MessageId:
        payload = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
        answer = await self._request(
            "POST", f"{self.graph}/{self.number}/messages", json=payload | body
        )
        return MessageId(str(answer["messages"][0]["id"]))

    # Outbound ----------------------------------------------------------------------------

    async def send(
        self,
        destination: Destination,
        content: Content,
        upload: Upload | None = None,
        *,
        key: str | None = None,  # the Cloud API has no idempotency key
        author: str | None = None,
    ) -> Sent:
        to = destination.chat_id
        context = {"context": {"message_id": destination.reply_to}} if destination.reply_to else {}
        bodies = await self._bodies(content, upload)
        ids = []
        for n, body in enumerate(bodies):
            ids.append(await self._post_message(to, body | (context if n == 0 else {})))
        return Sent(message_ids=tuple(ids))

    async def _bodies(self, content: Content, upload: Upload | None) -> list[dict[str, Any]]:
        text = to_whatsapp(content.text or "", content.styles)
        if content.template is not None:
            template = content.template
            parameters = [{"type": "text", "text": p} for p in template.parameters]
            components = [{"type": "body", "parameters": parameters}] if parameters else []
            return [
                {
                    "type": "template",
                    "template": {
                        "name": template.name,
                        "language": {"code": template.language},
                        "components": components,
                    },
                }
            ]
        bodies: list[dict[str, Any]] = []
        if content.attachment is not None and content.kind in MEDIA_TYPE:
            kind, media = await self._media(content, upload)
            if kind in ("image", "video", "document") and text and len(text) <= CAPTION_LIMIT:
                media["caption"], text = text, ""
            bodies.append({"type": kind, kind: media})
        where = content.location or (content.venue.location if content.venue else None)
        if where is not None:
            point: dict[str, Any] = {"latitude": where.latitude, "longitude": where.longitude}
            if content.venue is not None:
                point |= {"name": content.venue.title, "address": content.venue.address}
            bodies.append({"type": "location", "location": point})
        if content.contact is not None:
            shared = content.contact
            name = " ".join(p for p in (shared.first_name, shared.last_name) if p)
            card = {
                "name": {"formatted_name": name, "first_name": shared.first_name},
                "phones": [{"phone": shared.phone, "type": "CELL"}],
            }
            bodies.append({"type": "contacts", "contacts": [card]})
        replies = [b for row in content.buttons for b in row if b.data is not None][:3]
        links = [b for row in content.buttons for b in row if b.url is not None]
        if links:
            text = "\n".join([text, *(f"{b.text}: {b.url}" for b in links)]).strip()
        chunks = split_text(text, TEXT_LIMIT) if text else []
        for n, chunk in enumerate(chunks):
            if replies and n == len(chunks) - 1:
                buttons = [
                    {"type": "reply", "reply": {"id": b.data, "title": b.text[:BUTTON_TITLE_LIMIT]}}
                    for b in replies
                ]
                interactive = {
                    "type": "button",
                    "body": {"text": chunk},
                    "action": {"buttons": buttons},
                }
                bodies.append({"type": "interactive", "interactive": interactive})
            else:
                bodies.append({"type": "text", "text": {"body": chunk, "preview_url": True}})
        if not bodies:
            bodies.append({"type": "text", "text": {"body": f"[{content.kind.value}]"}})
        return bodies

    async def _media(self, content: Content, upload: Upload | None) -> tuple[str, dict[str, Any]]:
        """The media object: the file uploaded to WhatsApp (or reused), by id."""
        attachment = content.attachment
        assert attachment is not None
        kind = MEDIA_TYPE[content.kind]
        if upload is None:
            if attachment.account == self.account:
                return kind, {"id": attachment.file_id}
            raise PermanentError(CHANNEL, "no file bytes", reason="the file is unavailable")
        mime = attachment.mime_type or _guess(upload.file_name)
        if kind in ACCEPTED and mime not in ACCEPTED[kind]:
            kind = "document"  # WhatsApp shows any file as a document
        limit = int(LIMITS[kind] * 1024 * 1024)
        if len(upload.data) > limit:
            if kind != "document" and len(upload.data) <= LIMITS["document"] * 1024 * 1024:
                kind = "document"
            else:
                raise PermanentError(
                    CHANNEL,
                    f"file of {len(upload.data)} bytes",
                    reason=f"the file is larger than the {LIMITS[kind]:g} MB WhatsApp takes",
                )
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime)
        form.add_field("file", upload.data, filename=upload.file_name, content_type=mime)
        answer = await self._request("POST", f"{self.graph}/{self.number}/media", data=form)
        media: dict[str, Any] = {"id": str(answer["id"])}
        if kind == "document":
            media["filename"] = upload.file_name
        return kind, media

    async def edit_text(self, chat_id: ChatId, message_id: MessageId, content: Content) -> None:
        raise PermanentError(CHANNEL, "edit", reason="WhatsApp cannot edit sent messages")

    async def delete(self, chat_id: ChatId, message_id: MessageId) -> None:
        raise PermanentError(CHANNEL, "delete", reason="WhatsApp cannot delete sent messages")

    async def react(self, chat_id: ChatId, message_id: MessageId, emoji: str) -> None:
        # https://developers.facebook.com/docs/whatsapp/cloud-api/messages/reaction-messages:
        # a "reaction" message naming the customer's message; an empty emoji removes it.
        body = {"type": "reaction", "reaction": {"message_id": message_id, "emoji": emoji}}
        await self._post_message(chat_id, body)

    async def mark_read(self, chat_id: ChatId, message_id: MessageId) -> None:
        body = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
        await self._request("POST", f"{self.graph}/{self.number}/messages", json=body)

    async def download(self, attachment: Attachment) -> Upload:
        """``GET /{media-id}`` for a URL valid a few minutes, then the bytes (the same
        bearer token), streamed with a size cap."""
        info = await self._request("GET", f"{self.graph}/{attachment.file_id}")
        size = info.get("file_size")
        if isinstance(size, int) and size > DOWNLOAD_LIMIT:
            raise PermanentError(
                CHANNEL,
                f"file of {size} bytes",
                reason=f"the file is larger than the {DOWNLOAD_LIMIT // 2**20} MB forwarded",
            )
        buffer = bytearray()
        try:
            async with self.http.get(str(info["url"])) as response:
                if response.status >= 300:
                    raise from_answer(response.status, None)
                async for chunk in response.content.iter_chunked(64 * 1024):
                    buffer += chunk
                    if len(buffer) > DOWNLOAD_LIMIT:
                        raise PermanentError(
                            CHANNEL, "file too large", reason="the file is larger than 50 MB"
                        )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(CHANNEL, f"network: {type(exc).__name__}: {exc}") from exc
        mime = str(info.get("mime_type") or attachment.mime_type or "")
        name = attachment.file_name or f"file{_extension(mime)}"
        return Upload(data=bytes(buffer), file_name=name)

    async def avatar(self, user_id: str) -> Upload | None:
        return None  # the Cloud API does not show customers' profile photos


def _guess(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _extension(mime: str) -> str:
    base = mime.split(";")[0].strip()
    return {"audio/ogg": ".ogg", "image/jpeg": ".jpg"}.get(base) or (
        mimetypes.guess_extension(base) or ""
    )
