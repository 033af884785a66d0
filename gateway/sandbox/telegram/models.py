"""Plain records of the Telegram emulator: accounts, chats, topics, messages, calls, errors.

They carry no behaviour beyond rendering themselves as Bot API dictionaries, so the state,
API, update and control layers can share them without import cycles.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]
"""A JSON object as the Bot API sends it (Message, User, Chat, ...)."""

ChatKey = tuple[int, int]
"""Identity of a chat inside the emulator: ``(bot_id, user_id)`` for private chats (every
bot has its own private chat with a user, and they share the chat id == user id), and
``(0, chat_id)`` for groups."""

TOKEN_RE = re.compile(r"^(\d+):[A-Za-z0-9_-]+$")
GENERAL_THREAD_ID = 1
"""The General topic of a forum; Telegram does not let bots address it by thread id."""
DEFAULT_ICON_COLOR = 7322096
NEUTRAL_OWNER = 0
"""Owner of file ids in the emulator's own (human, console) view of messages."""


class ApiError(Exception):
    """A Bot API failure answer (``ok: false``) with its HTTP status and real description."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> JsonDict:
        """The JSON body Telegram answers with for this error."""
        body: JsonDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(detail: str) -> ApiError:
    """A 400 answer; ``detail`` is the part after Telegram's ``Bad Request:`` prefix."""
    return ApiError(400, f"Bad Request: {detail}")


def too_many_requests(retry_after: int) -> ApiError:
    """A 429 answer exactly as Telegram words it."""
    return ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)


CHAT_NOT_FOUND = "chat not found"
THREAD_NOT_FOUND = "message thread not found"
TOPIC_CLOSED = "TOPIC_CLOSED"
WRONG_FILE_ID = "wrong file identifier/HTTP URL specified"
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
BLOCKED = "Forbidden: bot was blocked by the user"
NOT_A_MEMBER = "Forbidden: bot is not a member of the supergroup chat"
CANT_INITIATE = "Forbidden: bot can't initiate conversation with a user"
CONFLICT_POLLING = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)


@dataclass
class BotAccount:
    """A bot known to the emulator; created on first use of its token."""

    id: int
    token: str
    username: str
    first_name: str

    def user_dict(self) -> JsonDict:
        """The bot as a Bot API ``User`` (what appears in ``from``)."""
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }

    def me_dict(self) -> JsonDict:
        """The ``getMe`` answer: a User with the bot-only capability flags."""
        return {
            **self.user_dict(),
            "can_join_groups": True,
            "can_read_all_group_messages": True,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    @property
    def token_hint(self) -> str:
        """A displayable reference to the token that does not reveal its secret part."""
        return f"{self.id}:…"


@dataclass
class UserAccount:
    """A human (or userbot) account played by a test or by the sandbox console."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_bot: bool = False
    blocked_bots: set[int] = field(default_factory=set)
    profile_photos: list[Any] = field(default_factory=list)
    """StoredFile of each profile photo, the current one first."""

    def user_dict(self) -> JsonDict:
        """The account as a Bot API ``User``."""
        data: JsonDict = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data

    @property
    def display_name(self) -> str:
        """First and last name, as the Telegram app shows it."""
        return " ".join(p for p in (self.first_name, self.last_name) if p)


@dataclass
class Topic:
    """A forum topic; ``thread_id`` is the id of its ``forum_topic_created`` message."""

    thread_id: int
    name: str
    icon_color: int = DEFAULT_ICON_COLOR
    icon_custom_emoji_id: str | None = None
    closed: bool = False
    deleted: bool = False

    def forum_topic(self) -> JsonDict:
        """The Bot API ``ForumTopic`` object."""
        data: JsonDict = {
            "message_thread_id": self.thread_id,
            "name": self.name,
            "icon_color": self.icon_color,
        }
        if self.icon_custom_emoji_id:
            data["icon_custom_emoji_id"] = self.icon_custom_emoji_id
        return data

    def summary(self) -> JsonDict:
        """The emulator's own view, including the state flags a client cannot query."""
        return {**self.forum_topic(), "closed": self.closed, "deleted": self.deleted}


@dataclass
class StoredMessage:
    """A message as the emulator keeps it: the neutral Bot API dict plus bookkeeping."""

    data: JsonDict
    seq: int
    sender_bot_id: int | None
    parse_mode: str | None = None
    keyboard: JsonDict | None = None
    """A non-inline reply markup (reply keyboard, remove, force reply) the user would see."""
    deleted: bool = False
    reactions: dict[int, list[JsonDict]] = field(default_factory=dict)

    @property
    def message_id(self) -> int:
        """The message id, unique within its chat."""
        return int(self.data["message_id"])

    @property
    def thread_id(self) -> int | None:
        """The forum topic the message belongs to, ``None`` for General and private chats."""
        value = self.data.get("message_thread_id")
        return int(value) if value is not None else None

    @property
    def sender_id(self) -> int:
        """Id of the account in ``from``."""
        return int(self.data["from"]["id"])


@dataclass
class ChatRecord:
    """A private chat (one per bot and user) or a forum supergroup."""

    id: int
    type: str
    title: str | None = None
    is_forum: bool = False
    bot_id: int | None = None
    """For private chats: the bot on the other side."""
    user: UserAccount | None = None
    """For private chats: the human on the other side."""
    member_ids: list[int] = field(default_factory=list)
    bot_ids: list[int] = field(default_factory=list)
    topics: dict[int, Topic] = field(default_factory=dict)
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    pinned_ids: list[int] = field(default_factory=list)
    next_message_id: int = 1

    @property
    def key(self) -> ChatKey:
        """The emulator-internal identity (see :data:`ChatKey`)."""
        if self.type == "private":
            return (self.bot_id or 0, self.id)
        return (0, self.id)

    @property
    def is_group(self) -> bool:
        """True for groups and supergroups."""
        return self.type != "private"

    def chat_dict(self) -> JsonDict:
        """The Bot API ``Chat`` object embedded in messages."""
        if self.user is not None:
            data: JsonDict = {"id": self.id, "type": "private", "first_name": self.user.first_name}
            if self.user.last_name:
                data["last_name"] = self.user.last_name
            if self.user.username:
                data["username"] = self.user.username
            return data
        data = {"id": self.id, "type": self.type, "title": self.title}
        if self.is_forum:
            data["is_forum"] = True
        return data

    def take_message_id(self) -> int:
        """Allocate the next message id of this chat."""
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


@dataclass(frozen=True)
class Call:
    """One Bot API request as the emulator saw it, for assertions and benchmarks."""

    method: str
    bot_id: int | None
    params: JsonDict
    status: int
    """HTTP status answered; 0 when the connection was reset on purpose."""
    time: float = field(default_factory=time.time)
    description: str | None = None
    """The error description for failed calls."""


def describe(message: JsonDict) -> str:
    """A one-line summary of a message for error messages and logs."""
    thread = f" [topic {message['message_thread_id']}]" if "message_thread_id" in message else ""
    sender = message.get("from", {})
    who = sender.get("username") or sender.get("first_name") or "?"
    body = message.get("text") or message.get("caption")
    if body is None:
        kinds = [k for k in message if k not in ("message_id", "from", "date", "chat")]
        body = "<" + ",".join(kinds) + ">"
    return f"#{message['message_id']}{thread} {who}: {body!r}"
