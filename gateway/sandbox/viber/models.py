"""Records of the emulated Viber: bots, people, messages, statuses and call records.

Everything is plain data; behaviour lives in :mod:`.state` (the world), :mod:`.api`
(the REST endpoints) and :mod:`.actions` (what people do). Shapes follow the REST Bot
API (https://developers.viber.com/docs/api/rest-bot-api/).
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

JsonDict = dict[str, Any]

CHAT_HOSTNAME = "SN-CHAT-05_"
"""What Viber puts in ``chat_hostname`` (the chat server that handled the request)."""

STATUS_NAMES = {
    0: "ok",
    1: "invalidUrl",
    2: "invalidAuthToken",
    3: "badData",
    4: "missingData",
    5: "receiverNotRegistered",
    6: "receiverNotSubscribed",
    7: "publicAccountBlocked",
    8: "publicAccountNotFound",
    9: "publicAccountSuspended",
    10: "webhookNotSet",
    11: "receiverNoSuitableDevice",
    12: "tooManyRequests",
    13: "apiVersionNotSupported",
}
"""Every answer's ``status`` and its ``status_message``
(https://developers.viber.com/docs/api/rest-bot-api/#error-codes)."""

FILTERABLE_EVENTS: tuple[str, ...] = (
    "delivered",
    "seen",
    "failed",
    "subscribed",
    "unsubscribed",
    "conversation_started",
)
"""Callbacks ``set_webhook`` may switch on or off with ``event_types``."""
ALWAYS_SENT = frozenset({"webhook", "message", "subscribed", "unsubscribed"})
"""Callbacks a webhook gets whatever its ``event_types`` (Viber's mandatory ones)."""

MESSAGE_TYPES: tuple[str, ...] = (
    "text",
    "picture",
    "video",
    "file",
    "sticker",
    "contact",
    "location",
    "url",
    "rich_media",
    "keyboard",
)
MEDIA_TYPES = frozenset({"picture", "video", "file"})
"""Types whose ``media`` Viber downloads before it delivers the message."""

PLACEHOLDER_NAME = "Subscriber"
"""The name callbacks carry when the webhook was set without ``send_name``."""


class ViberError(Exception):
    """A non-zero ``status`` answer; ``details`` says what exactly was wrong."""

    def __init__(self, status: int, details: str = "") -> None:
        super().__init__(f"[{status}] {STATUS_NAMES.get(status, 'failure')}: {details}")
        self.status = status
        self.details = details

    def body(self) -> JsonDict:
        """The answer: ``{"status", "status_message", "details"?}`` (HTTP 200)."""
        answer: JsonDict = {"status": self.status, "status_message": status_name(self.status)}
        if self.details:
            answer["details"] = self.details
        return answer


def status_name(status: int) -> str:
    """The ``status_message`` of a status code (``failure`` for unknown ones)."""
    return STATUS_NAMES.get(status, "failure")


def bad_data(details: str) -> ViberError:
    """Status 3: the request is malformed or a field has a wrong value."""
    return ViberError(3, details)


def missing_data(name: str) -> ViberError:
    """Status 4: a mandatory field is absent."""
    return ViberError(4, f"{name} is required")


def now_ms() -> int:
    """Callback timestamps: Unix time in milliseconds."""
    return int(time.time() * 1000)


def new_user_id() -> str:
    """A Viber user id: base64 of 16 random bytes (``"jc9HsWTZ2Yf2NkRZ8KcNug=="``)."""
    return base64.b64encode(secrets.token_bytes(16)).decode()


def new_bot_id() -> str:
    """A bot (public account) id, ``pa:`` and 19 digits."""
    return f"pa:{secrets.randbelow(9 * 10**18) + 10**18}"


class Tokens:
    """Message tokens: unique 64-bit integers above 2**53, as Viber's are (a JSON reader
    that turns numbers into doubles loses them; Python's does not)."""

    def __init__(self) -> None:
        self._used: set[int] = set()

    def new(self) -> int:
        """A fresh token."""
        while True:
            token = 2**53 + 1 + secrets.randbelow(2**63 - 2**53 - 2)
            if token not in self._used:
                self._used.add(token)
                return token


class Call(NamedTuple):
    """One REST call: endpoint, the body without ``auth_token``, the answer's status."""

    endpoint: str
    params: JsonDict
    status: int | None = None
    """``status`` of the answer; ``None`` for an injected HTTP failure."""


@dataclass
class Webhook:
    """What ``set_webhook`` registered."""

    url: str
    event_types: tuple[str, ...]
    send_name: bool = False
    send_photo: bool = False

    def wants(self, event: str) -> bool:
        """Whether callbacks of ``event`` go to this webhook."""
        return event in ALWAYS_SENT or event in self.event_types


@dataclass
class User:
    """A person with a Viber account (one id for every bot, unlike real Viber, where
    the same person has a different id with each bot)."""

    id: str
    name: str
    avatar: str | None = None
    country: str = "RU"
    language: str = "ru"
    api_version: int = 10
    primary_device_os: str = "Android 14"
    viber_version: str = "23.9.0.0"
    device_type: str = "SM-S921B"
    online: bool = True
    last_online: int = field(default_factory=now_ms)

    def profile(self, webhook: Webhook | None = None) -> JsonDict:
        """The user object of callbacks; name and photo only if the webhook asked."""
        send_name = webhook is None or webhook.send_name
        send_photo = webhook is None or webhook.send_photo
        found: JsonDict = {"id": self.id, "name": self.name if send_name else PLACEHOLDER_NAME}
        if send_photo and self.avatar:
            found["avatar"] = self.avatar
        found.update(country=self.country, language=self.language, api_version=self.api_version)
        return found

    def details(self) -> JsonDict:
        """The ``get_user_details`` user object."""
        found = self.profile()
        found.update(
            primary_device_os=self.primary_device_os,
            viber_version=self.viber_version,
            mcc=250,
            mnc=1,
            device_type=self.device_type,
        )
        return found


@dataclass
class StoredMessage:
    """A message of a conversation between a bot and a person, either direction."""

    direction: str
    """``in`` (the person wrote) or ``out`` (the bot sent it)."""
    message_token: int
    type: str
    user_id: str
    content: JsonDict
    """The type's fields as sent: text, media, thumbnail, size, duration, file_name,
    sticker_id, contact, location, rich_media, alt_text."""
    sender: JsonDict
    timestamp: int = field(default_factory=now_ms)
    keyboard: JsonDict | None = None
    tracking_data: str | None = None
    min_api_version: int | None = None
    status: str | None = None
    """Out messages: ``sent``, then ``delivered``/``seen``, or ``failed``."""
    desc: str | None = None
    """Why it failed."""
    media_bytes: bytes | None = None
    """The file behind ``media`` (fetched from the bot's URL for out messages)."""
    local_url: str | None = None
    """Where the emulator serves :attr:`media_bytes`."""
    welcome: bool = False
    """The bot's answer to ``conversation_started``."""

    def view(self, *, with_bytes: bool = True) -> JsonDict:
        """The inspection dict (``media_bytes`` left out for JSON consumers)."""
        found: JsonDict = {
            "direction": self.direction,
            "message_token": self.message_token,
            "message_token_str": str(self.message_token),
            "type": self.type,
            "user_id": self.user_id,
            "timestamp": self.timestamp,
            "text": self.content.get("text"),
            "media": self.content.get("media"),
        }
        found.update({k: v for k, v in self.content.items() if k not in found})
        found.update(
            sender=dict(self.sender),
            keyboard=self.keyboard,
            tracking_data=self.tracking_data,
            min_api_version=self.min_api_version,
            status=self.status,
            desc=self.desc,
            local_url=self.local_url,
            welcome=self.welcome,
        )
        if with_bytes:
            found["media_bytes"] = self.media_bytes
        return found


@dataclass
class Bot:
    """A bot (public account) with its token and conversations."""

    token: str
    name: str
    id: str = field(default_factory=new_bot_id)
    avatar: str | None = None
    webhook: Webhook | None = None
    conversations: dict[str, list[StoredMessage]] = field(default_factory=dict)
    subscribed: dict[str, bool] = field(default_factory=dict)
    """Per person: may the bot message them (they subscribed or wrote, and did not
    unsubscribe since)."""
    opened: set[str] = field(default_factory=set)
    """People who opened the chat (``conversation_started``)."""
    tracking: dict[str, str] = field(default_factory=dict)
    """Per person: the ``tracking_data`` of the bot's last message, echoed in replies."""

    @property
    def uri(self) -> str:
        """The bot's URI (``viber://pa?chatURI=...``)."""
        return f"shop{self.id[-6:]}"

    @property
    def subscribers_count(self) -> int:
        """How many people are subscribed now."""
        return sum(self.subscribed.values())
