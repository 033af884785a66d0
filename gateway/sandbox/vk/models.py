"""Records of the emulated VK: communities, people, messages, API errors and call records.

Everything is plain data; behaviour lives in :mod:`.state` (the world) and the API
handlers. Message objects are produced in the shapes of API 5.199
(https://dev.vk.com/ru/reference/objects/message).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, NamedTuple

JsonDict = dict[str, Any]

API_VERSION = "5.199"
MAX_MESSAGE_LENGTH = 4096
NO_PHOTO_URL = "https://vk.com/images/camera_200.png"
CLIENT_INFO: JsonDict = {
    "button_actions": ["text", "vkpay", "open_app", "location", "open_link", "callback"],
    "keyboard": True,
    "inline_keyboard": True,
    "carousel": True,
    "lang_id": 0,
}
"""``message_new.object.client_info`` of a current VK app (what the customer's app supports)."""

MESSAGE_EVENTS = ("message_new", "message_edit", "message_allow", "message_deny")
"""Event types the emulator produces; a callback server gets those switched on for it."""


class VkApiError(Exception):
    """A VK API error, answered as ``{"error": {"error_code", "error_msg", ...}}``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message


def missing(name: str) -> VkApiError:
    """Error 100 for a required parameter that was not sent."""
    return VkApiError(
        100, f"One of the parameters specified was missing or invalid: {name} is undefined"
    )


def invalid(what: str) -> VkApiError:
    """Error 100 for a parameter with a wrong value; ``what`` says which and why."""
    return VkApiError(100, f"One of the parameters specified was missing or invalid: {what}")


ACCESS_DENIED = "Access denied"
AUTH_FAILED = "User authorization failed: invalid access_token (4)."
NO_VERSION = "Invalid request: v (version) is required"
UNKNOWN_METHOD = "Unknown method passed"
TOO_MANY_RPS = "Too many requests per second"
NO_PERMISSION = "Can't send messages for users without permission"
TOO_LONG = "Message is too long"

DEFAULT_ERROR_MESSAGES = {
    1: "Unknown error occurred",
    5: AUTH_FAILED,
    6: TOO_MANY_RPS,
    9: "Flood control",
    10: "Internal server error",
    15: ACCESS_DENIED,
    29: "Rate limit reached",
    100: "One of the parameters specified was missing or invalid",
    900: "Can't send messages for users from blacklist",
    901: NO_PERMISSION,
    902: "Can't send messages to this user due to their privacy settings",
    914: TOO_LONG,
}
"""Texts VK uses for the codes tests most often inject (https://dev.vk.com/ru/reference/errors)."""


class Call(NamedTuple):
    """One API request as received: the method name and its parameters (no access_token)."""

    method: str
    params: dict[str, str]


@dataclass
class User:
    """A VK person."""

    id: int
    first_name: str
    last_name: str = ""
    screen_name: str | None = None
    photo_url: str | None = None
    """Absolute URL of the profile photo served by the emulator (``None``: no photo)."""

    @property
    def display_name(self) -> str:
        """First and last name."""
        return f"{self.first_name} {self.last_name}".strip()

    def user_dict(self, fields: frozenset[str] = frozenset()) -> JsonDict:
        """The ``users.get`` object, with the optional ``fields`` that were asked for."""
        data: JsonDict = {
            "id": self.id,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "can_access_closed": True,
            "is_closed": False,
        }
        if "screen_name" in fields:
            data["screen_name"] = self.screen_name or f"id{self.id}"
        if "photo_200" in fields:
            data["photo_200"] = self.photo_url or NO_PHOTO_URL
        return data


@dataclass
class Message:
    """A message of a community conversation, in either direction."""

    id: int
    conversation_message_id: int
    peer_id: int
    from_id: int
    """The user for incoming messages, ``-group_id`` for the community's own."""
    text: str
    date: int
    attachments: list[JsonDict] = field(default_factory=list)
    random_id: int = 0
    update_time: int | None = None
    reply_message: JsonDict | None = None
    fwd_messages: list[JsonDict] = field(default_factory=list)
    geo: JsonDict | None = None
    keyboard: Any = None
    version: int = 1

    @property
    def out(self) -> int:
        """1 for the community's own messages, 0 for the customer's."""
        return 1 if self.from_id < 0 else 0

    def vk_object(self) -> JsonDict:
        """The message object of events and API answers (API 5.199)."""
        data: JsonDict = {
            "date": self.date,
            "from_id": self.from_id,
            "id": self.id,
            "out": self.out,
            "version": self.version,
            "attachments": copy.deepcopy(self.attachments),
            "conversation_message_id": self.conversation_message_id,
            "fwd_messages": copy.deepcopy(self.fwd_messages),
            "important": False,
            "is_hidden": False,
            "peer_id": self.peer_id,
            "random_id": self.random_id,
            "text": self.text,
        }
        if self.update_time is not None:
            data["update_time"] = self.update_time
        if self.reply_message is not None:
            data["reply_message"] = copy.deepcopy(self.reply_message)
        if self.geo is not None:
            data["geo"] = copy.deepcopy(self.geo)
        return data

    def quoted(self) -> JsonDict:
        """The message as it appears inside another one (``reply_message``/``fwd_messages``)."""
        data: JsonDict = {
            "date": self.date,
            "from_id": self.from_id,
            "text": self.text,
            "attachments": copy.deepcopy(self.attachments),
            "conversation_message_id": self.conversation_message_id,
            "peer_id": self.peer_id,
            "id": self.id,
        }
        if self.fwd_messages:
            data["fwd_messages"] = copy.deepcopy(self.fwd_messages)
        return data

    def view(self) -> JsonDict:
        """The inspection view (tests and the console): the object plus ``update_time``
        (``None`` if never edited), ``reply_to`` (the quoted id) and ``keyboard``."""
        data = self.vk_object()
        data["update_time"] = self.update_time
        if self.reply_message is not None:
            data["reply_to"] = self.reply_message["id"]
        if self.keyboard is not None:
            data["keyboard"] = copy.deepcopy(self.keyboard)
        return data


@dataclass
class CallbackServer:
    """A Callback API server of a community (``groups.addCallbackServer``)."""

    id: int
    group_id: int
    title: str
    url: str
    secret_key: str | None
    creator_id: int = 0
    status: str = "unconfigured"
    """``unconfigured`` → ``wait`` (confirmation sent) → ``ok`` or ``failed``."""
    api_version: str = API_VERSION
    events: set[str] = field(default_factory=set)
    """Event types switched on (``groups.setCallbackSettings``); others are not sent."""
    removed: bool = False
    """Deleted (``groups.deleteCallbackServer``): queued deliveries are dropped."""

    def item(self) -> JsonDict:
        """The ``groups.getCallbackServers`` item."""
        return {
            "id": self.id,
            "title": self.title,
            "creator_id": self.creator_id,
            "url": self.url,
            "secret_key": self.secret_key or "",
            "status": self.status,
        }
