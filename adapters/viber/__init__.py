"""Viber bots through ``viberbot``: a signed webhook in, the REST Bot API out.

viberbot is synchronous and posts with module-level ``requests.post`` and no timeout;
the adapter gives its ``Api`` a request sender (:class:`_Sender`) that posts through a
session with timeouts to ``api_server`` (the real API or the emulator) and raises
:class:`~adapters.viber.errors.ViberStatus` for a non-zero ``status``, so every failure
is typed. Message objects, their validation and their JSON are viberbot's.

Viber has no upload endpoint: outbound files are public URLs Viber downloads, served by
the gateway (``Adapter.media_by_url``, :mod:`gateway.media`). Delivery receipts
(``delivered``/``seen``/``failed``) come back as callbacks and become marks on the
operator's message in the topic.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import requests
from viberbot import Api, BotConfiguration
from viberbot.api.api_request_sender import ApiRequestSender
from viberbot.api.consts import VIBER_BOT_USER_AGENT
from viberbot.api.messages import (
    ContactMessage,
    FileMessage,
    LocationMessage,
    PictureMessage,
    TextMessage,
    VideoMessage,
)
from viberbot.api.messages.data_types.contact import Contact as ViberContact
from viberbot.api.messages.data_types.location import Location as ViberLocation

from adapters.base import Answer, Batch, Capabilities, Upload
from adapters.files import fetch_capped
from adapters.markup import to_plain
from adapters.text import split_text
from adapters.viber.errors import ViberStatus, off_loop
from adapters.viber.parse import parse_callback
from gateway.config import DeliverySettings, ViberChannel
from gateway.errors import PermanentError, Unauthorized
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

SIGNATURE_HEADER = "X-Viber-Content-Signature"
TEXT_LIMIT = 7000
SENDER_NAME_LIMIT = 28
CAPTION_LIMIT = 120  # a picture's description
PICTURE_LIMIT = 1024 * 1024  # bigger pictures go as files
VIDEO_LIMIT = 26 * 1024 * 1024
FILE_LIMIT = 50 * 1024 * 1024
DOWNLOAD_LIMIT = 50 * 1024 * 1024
PICTURE_TYPES = (".jpg", ".jpeg", ".png", ".gif")
EVENTS = ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"]
log = logging.getLogger(__name__)


class _Sender(ApiRequestSender):  # type: ignore[misc]
    """viberbot's request sender, posting through a session with a timeout."""

    def __init__(self, base: str, config: BotConfiguration, timeout: float) -> None:
        super().__init__(log, base.rstrip("/"), config, VIBER_BOT_USER_AGENT)
        self.session = requests.Session()
        self.timeout = timeout

    def post_request(self, endpoint: str, payload: str) -> dict[str, Any]:
        # Viber caps a request at 30 KB; viberbot's JSON escapes every non-ASCII
        # character (6 bytes for one Cyrillic letter), so the body is sent as UTF-8.
        body = json.dumps(json.loads(payload), ensure_ascii=False).encode()
        response = self.session.post(
            f"{self._viber_bot_api_url}/{endpoint}",
            data=body,
            headers={"User-Agent": self._user_agent, "Content-Type": "application/json"},
            timeout=self.timeout,
        )
        response.raise_for_status()
        result = response.json()
        if not isinstance(result, dict):
            raise ValueError(f"answer is not an object: {result!r:.100}")  # noqa: TRY004
        status = result.get("status")
        if status != 0:
            raise ViberStatus(int(status or -1), str(result.get("status_message") or "?"))
        return result


class ViberAdapter:
    """One Viber bot (one auth token)."""

    channel = Channel.VIBER
    ack = Answer()  # any 200 will do
    reply_window: timedelta | None = None
    media_by_url = True
    # The REST bot API has no edit, delete or reactions; it reports delivered/seen.
    capabilities = Capabilities(
        edit=False,
        delete=False,
        edit_within=None,
        reactions_in=False,
        reactions_out=False,
        albums=False,
        delivery_receipts=True,
        reply_to=False,
        max_text=7000,
        max_file_mb=50,
        formatting="plain",
    )
    read_receipts = False  # a bot cannot mark messages seen; customers' "seen" comes back

    def __init__(self, account: str, settings: ViberChannel, limits: DeliverySettings) -> None:
        self.account = AccountId(account)
        self.settings = settings
        self.limits = limits
        token = settings.token.get_secret_value()
        self._token = token.encode()
        avatar = str(settings.avatar) if settings.avatar else None
        self.config = BotConfiguration(auth_token=token, name=settings.name, avatar=avatar)
        self.api = Api(self.config)
        self.sender = _Sender(str(settings.api_server), self.config, limits.request_timeout_seconds)
        self.api._request_sender = self.sender
        self.api._message_sender._request_sender = self.sender
        self._id = hashlib.sha256(self._token).hexdigest()[:12]

    @property
    def file_scope(self) -> str:
        return f"viber:{self._id}"

    def buckets(self, destination: Destination) -> list[Bucket]:
        # Viber publishes no per-second figure; keep a bot under ~20 sends a second.
        return [Bucket.per_second(f"viber:{self._id}", 20, burst=5)]

    # Inbound -----------------------------------------------------------------------------

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """``X-Viber-Content-Signature``: hex HMAC-SHA256 of the raw body with the token
        (viberbot compares with ``==``; this is constant-time)."""
        given = headers.get(SIGNATURE_HEADER, "")
        expected = hmac.new(self._token, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.lower().encode(), expected.encode()):
            raise Unauthorized(f"wrong or missing {SIGNATURE_HEADER}")

    def challenge(self, query: Mapping[str, str]) -> Answer:
        raise Unauthorized("this platform verifies webhooks without a GET request")

    def handshake(self, payload: Mapping[str, Any]) -> Answer | None:
        """The answer to ``conversation_started`` is the welcome message, if any."""
        if payload.get("event") != "conversation_started" or not self.settings.welcome:
            return None
        welcome = TextMessage(text=self.settings.welcome, min_api_version=self._version).to_dict()
        welcome["sender"] = {"name": self.settings.name}
        if self.config.avatar:
            welcome["sender"]["avatar"] = self.config.avatar
        return Answer(body=json.dumps({k: v for k, v in welcome.items() if v is not None}))

    def parse(self, payload: Mapping[str, Any], received_at: datetime) -> Sequence[InboundEvent]:
        return parse_callback(payload, account=self.account, received_at=received_at)

    async def enrich(self, events: Sequence[InboundEvent]) -> Sequence[InboundEvent]:
        return events  # message callbacks carry the sender's name

    def event_id(self, payload: Mapping[str, Any]) -> str:
        return f"{payload.get('event')}:{payload.get('message_token')}"

    # Lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.sender.session.close()

    async def set_webhook(self, url: str) -> None:
        """``set_webhook`` with the events the gateway uses and the sender's name and
        photo (viberbot cannot ask for those: without ``send_name`` Viber sends no
        names)."""
        payload = {
            "auth_token": self.config.auth_token,
            "url": url,
            "event_types": EVENTS,
            "send_name": True,
            "send_photo": True,
        }
        await off_loop(self.sender.post_request, "set_webhook", json.dumps(payload))

    async def poll(self, cursor: int | None, timeout: float) -> Batch:
        raise PermanentError(self.channel.value, "poll", reason="Viber only has webhooks")

    # Outbound ----------------------------------------------------------------------------

    @property
    def _version(self) -> int:
        return self.settings.min_api_version

    async def send(
        self,
        destination: Destination,
        content: Content,
        upload: Upload | None = None,
        *,
        key: str | None = None,  # the REST API has no idempotency key
        author: str | None = None,
    ) -> Sent:
        messages = self._messages(content, upload)
        name = self.settings.name
        if author and self.settings.operator_as_sender:
            name = author[:SENDER_NAME_LIMIT]
        tokens = await off_loop(self._send_all, destination.chat_id, messages, name)
        return Sent(message_ids=tuple(MessageId(str(t)) for t in tokens))

    def _send_all(self, receiver: str, messages: list[Any], name: str) -> list[int]:
        """viberbot's ``send_messages`` with the sender's name chosen per send."""
        sender = self.api._message_sender
        return [sender.send_message(receiver, name, self.config.avatar, m) for m in messages]

    def _messages(self, content: Content, upload: Upload | None) -> list[Any]:
        version = self._version
        text = to_plain(content.text or "", content.styles)  # bots send plain text
        out: list[Any] = []
        keyboard = _keyboard(content)
        if content.attachment is not None and content.kind not in (Kind.LOCATION, Kind.CONTACT):
            media, size, name = self._media(content.attachment, upload)
            picture = (
                content.kind is Kind.PHOTO
                and size <= PICTURE_LIMIT
                and name.lower().endswith(PICTURE_TYPES)
            )
            if picture and len(text) <= CAPTION_LIMIT:
                out.append(PictureMessage(media=media, text=text, min_api_version=version))
                text = ""
            elif content.kind is Kind.VIDEO and size <= VIDEO_LIMIT:
                out.append(VideoMessage(media=media, size=size, min_api_version=version))
            else:
                if size > FILE_LIMIT:
                    raise PermanentError(
                        self.channel.value,
                        f"file of {size} bytes",
                        reason=f"the file is larger than the {FILE_LIMIT // 2**20} MB Viber takes",
                    )
                out.append(
                    FileMessage(media=media, size=size, file_name=name, min_api_version=version)
                )
        if content.location is not None or content.venue is not None:
            where = content.location or (content.venue.location if content.venue else None)
            assert where is not None
            point = ViberLocation(lat=where.latitude, lon=where.longitude)
            out.append(LocationMessage(location=point, min_api_version=version))
            if content.venue is not None:
                text = f"📍 {content.venue.title}, {content.venue.address}\n{text}".strip()
        if content.contact is not None:
            shared = content.contact
            name = " ".join(p for p in (shared.first_name, shared.last_name) if p)
            card = ViberContact(name=name, phone_number=shared.phone)
            out.append(ContactMessage(contact=card, min_api_version=version))
        for chunk in split_text(text, TEXT_LIMIT) if text else []:
            out.append(TextMessage(text=chunk, min_api_version=version))
        if not out:
            out.append(TextMessage(text=f"[{content.kind.value}]", min_api_version=version))
        if keyboard is not None:
            out[-1]._keyboard = keyboard  # under the last message, where the reader is
        return out

    def _media(self, attachment: Attachment, upload: Upload | None) -> tuple[str, int, str]:
        """The URL Viber fetches, the size and the file name."""
        if upload is not None and upload.url:
            return upload.url, len(upload.data), upload.file_name
        if attachment.account == self.account and attachment.file_id.startswith("http"):
            name = attachment.file_name or attachment.file_id.rsplit("/", 1)[-1] or "file"
            return attachment.file_id, attachment.size or 0, name
        raise PermanentError(
            self.channel.value, "no media URL", reason="the file has no public address"
        )

    async def edit_text(self, chat_id: ChatId, message_id: MessageId, content: Content) -> None:
        raise PermanentError(self.channel.value, "edit", reason="Viber cannot edit sent messages")

    async def react(self, chat_id: ChatId, message_id: MessageId, emoji: str) -> None:
        raise PermanentError(
            self.channel.value, "react", reason="Viber bots cannot react to messages"
        )

    async def delete(self, chat_id: ChatId, message_id: MessageId) -> None:
        raise PermanentError(
            self.channel.value, "delete", reason="Viber cannot delete sent messages"
        )

    async def mark_read(self, chat_id: ChatId, message_id: MessageId) -> None:
        raise PermanentError(self.channel.value, "mark_read", reason="bots have no read receipts")

    async def download(self, attachment: Attachment) -> Upload:
        """Customers' files are public links on Viber's media servers."""
        if attachment.size is not None and attachment.size > DOWNLOAD_LIMIT:
            raise PermanentError(
                self.channel.value,
                f"file of {attachment.size} bytes",
                reason=f"the file is larger than the {DOWNLOAD_LIMIT // 2**20} MB forwarded",
            )
        data = await off_loop(self._fetch, attachment.file_id, DOWNLOAD_LIMIT)
        name = attachment.file_name or attachment.file_id.rsplit("/", 1)[-1].split("?")[0]
        return Upload(data=data, file_name=name or "file")

    def _fetch(self, url: str, limit: int) -> bytes:
        return fetch_capped(
            self.sender.session, url, limit, channel=self.channel.value, timeout=self.sender.timeout
        )

    async def avatar(self, user_id: str) -> Upload | None:
        """``get_user_details`` (Viber allows it once per user per 12 hours: the avatar
        is fetched once, when the customer's topic is made)."""
        user = await off_loop(self.api.get_user_details, user_id)
        url = user.get("avatar") if isinstance(user, dict) else None
        if not url:
            return None
        data = await off_loop(self._fetch, str(url), 5 * 1024 * 1024)
        return Upload(data=data, file_name="avatar.jpg")


def _keyboard(content: Content) -> dict[str, Any] | None:
    """Quick replies: "reply" buttons send their data back as the customer's message;
    links open in the browser (https://developers.viber.com/docs/tools/keyboards/)."""
    if not content.buttons:
        return None
    buttons = []
    for row in content.buttons:
        columns = max(1, 6 // len(row))
        for button in row:
            action = ("open-url", button.url) if button.url else ("reply", button.data)
            buttons.append(
                {
                    "Columns": columns,
                    "Rows": 1,
                    "ActionType": action[0],
                    "ActionBody": action[1],
                    "Text": button.text,
                }
            )
    return {"Type": "keyboard", "DefaultHeight": False, "Buttons": buttons}
