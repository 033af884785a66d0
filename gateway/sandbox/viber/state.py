"""The emulated Viber: bots, people, conversations, files and the console feed.

A bot may message a person only while they are subscribed: after they subscribed or
wrote to it, and not after they unsubscribed
(https://developers.viber.com/docs/api/rest-bot-api/#send-message). Opening the chat
(``conversation_started``) does not subscribe anyone; it only lets the bot answer with
one welcome message. :class:`ViberFeed` is the stream of what happened for the web
console and ``wait_for``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..common.feed import Feed
from .callbacks import Callbacks
from .files import FileStore, image_name
from .models import (
    CHAT_HOSTNAME,
    Bot,
    Call,
    JsonDict,
    StoredMessage,
    Tokens,
    User,
    ViberError,
    new_user_id,
    now_ms,
)


class ViberFeed(Feed):
    """What happened between bots and people: ``message`` (a new message either way),
    ``status`` (a bot's message was delivered, seen, failed or its media fetched),
    ``subscribed``, ``unsubscribed``, ``conversation_started``, ``webhook``."""

    def emit(self, kind: str, bot_id: str, user_id: str | None, **fields: Any) -> JsonDict:
        """Record ``kind`` in the conversation of a bot and a person."""
        return self.record(kind, {"bot_id": bot_id, "user_id": user_id}, fields)


class ViberWorld:
    """All state of one emulator."""

    def __init__(self, base_url: Callable[[], str], callbacks: Callbacks) -> None:
        self.callbacks = callbacks
        self.bots: dict[str, Bot] = {}
        """By token."""
        self.users: dict[str, User] = {}
        self.files = FileStore(base_url)
        self.feed = ViberFeed()
        self.calls: list[Call] = []
        self.tokens = Tokens()
        self.stickers: dict[int, str] = {}
        """Sticker id → the URL of its image."""
        self.auto_deliver = True
        """Report each message of a bot ``delivered`` once it reached the phone."""
        self.receipt_delay = 0.0
        """Seconds between accepting a bot's message and its ``delivered`` callback."""
        self.require_webhook = True
        """``send_message`` answers status 10 while the bot has no webhook."""

    # --- accounts -------------------------------------------------------------------------

    def create_bot(self, token: str, name: str, avatar: str | None) -> Bot:
        """Register a bot with its authentication token."""
        if not token:
            raise ValueError("a bot needs a token")
        if token in self.bots:
            raise ValueError("another bot already has this token")
        if not 1 <= len(name) <= 28:
            raise ValueError("a bot's name has 1 to 28 characters")
        bot = Bot(token=token, name=name, avatar=avatar)
        self.bots[token] = bot
        return bot

    def bot(self, token: str) -> Bot:
        """A bot by token (``ValueError`` when unknown)."""
        bot = self.bots.get(token)
        if bot is None:
            raise ValueError("unknown bot token")
        return bot

    def bot_by_id(self, bot_id: str) -> Bot:
        """A bot by its public id (what the console uses: it never sees tokens)."""
        bot = next((b for b in self.bots.values() if b.id == bot_id), None)
        if bot is None:
            raise ValueError(f"unknown bot {bot_id!r}")
        return bot

    def authenticate(self, token: str | None) -> Bot:
        """The bot of a token; status 2 for a missing or unknown one."""
        bot = self.bots.get(token or "")
        if bot is None:
            raise ViberError(2, "missing auth_token" if not token else "unknown auth_token")
        return bot

    def create_user(
        self,
        name: str,
        *,
        avatar: bytes | None,
        country: str,
        language: str,
        api_version: int,
    ) -> User:
        """Register a person with a fresh id."""
        if not name:
            raise ValueError("a person needs a name")
        user_id = new_user_id()
        while user_id in self.users:
            user_id = new_user_id()
        user = User(user_id, name, None, country, language, api_version)
        if avatar is not None:
            user.avatar = self.files.add(avatar, image_name(avatar, "avatar")).url
        self.users[user_id] = user
        return user

    def user(self, user_id: str) -> User:
        """A person by id (``ValueError`` when unknown)."""
        user = self.users.get(user_id)
        if user is None:
            raise ValueError(f"unknown user {user_id!r}")
        return user

    # --- conversations --------------------------------------------------------------------

    def add_message(self, bot: Bot, message: StoredMessage) -> StoredMessage:
        """Store a message in its conversation and tell the feed."""
        bot.conversations.setdefault(message.user_id, []).append(message)
        self.feed.emit("message", bot.id, message.user_id, message=message.view(with_bytes=False))
        return message

    def message(self, bot: Bot, user_id: str, message_token: int) -> StoredMessage:
        """A message of a conversation by token (``ValueError`` when there is none)."""
        for message in bot.conversations.get(user_id, []):
            if message.message_token == message_token:
                return message
        raise ValueError(f"no message {message_token} with {user_id!r}")

    def changed(self, bot: Bot, message: StoredMessage) -> None:
        """Tell the feed a stored message changed (status, fetched media)."""
        self.feed.emit("status", bot.id, message.user_id, message=message.view(with_bytes=False))

    def envelope(self, event: str, **fields: Any) -> JsonDict:
        """A callback's common fields with a fresh message token, then ``fields``."""
        payload: JsonDict = {
            "event": event,
            "timestamp": now_ms(),
            "chat_hostname": CHAT_HOSTNAME,
            "message_token": self.tokens.new(),
        }
        payload.update(fields)
        return payload

    def receipt(self, bot: Bot, message: StoredMessage, event: str, desc: str = "") -> None:
        """The bot's message was ``delivered``, ``seen`` or ``failed``: store it, tell the
        feed and the bot (welcome messages are not reported: the bot has no token)."""
        message.status = event
        if desc:
            message.desc = desc
        self.changed(bot, message)
        if message.welcome:
            return
        payload: JsonDict = {
            "event": event,
            "timestamp": now_ms(),
            "chat_hostname": CHAT_HOSTNAME,
            "message_token": message.message_token,
            "user_id": message.user_id,
        }
        if event == "failed":
            payload["desc"] = desc
        self.callbacks.send(bot, payload)

    def close(self) -> None:
        """Release console waiters."""
        self.feed.close()
