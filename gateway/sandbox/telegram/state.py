"""The emulated Telegram world: accounts, chats, topics, messages, files, update queues.

Everything the API handlers, the user-side actions and the control console change goes
through :class:`World`, which keeps messages in the neutral (human) view, re-keys file ids
per bot on delivery and publishes an :class:`EventLog` the web console long-polls.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from .events import EventLog
from .files import FileStore
from .models import (
    BLOCKED,
    CANT_INITIATE,
    CHAT_NOT_FOUND,
    GENERAL_THREAD_ID,
    NOT_A_MEMBER,
    THREAD_NOT_FOUND,
    TOKEN_RE,
    TOPIC_CLOSED,
    ApiError,
    BotAccount,
    Call,
    ChatKey,
    ChatRecord,
    JsonDict,
    StoredMessage,
    Topic,
    UserAccount,
    bad_request,
)
from .updates import BotUpdates, WebhookConfig

WebhookSender = Callable[[BotAccount, WebhookConfig, JsonDict], Awaitable[None]]


class World:
    """All state of one emulator instance."""

    def __init__(
        self,
        send_webhook: WebhookSender,
        *,
        topic_reply_quirk: bool = True,
        allow_remote_webhooks: bool = False,
    ) -> None:
        self.bots: dict[int, BotAccount] = {}
        self.users: dict[int, UserAccount] = {}
        self.groups: dict[int, ChatRecord] = {}
        self.privates: dict[ChatKey, ChatRecord] = {}
        self.files = FileStore()
        self.events = EventLog()
        self.updates: dict[int, BotUpdates] = {}
        self.calls: list[Call] = []
        self.too_many: Counter[int] = Counter()
        self.callbacks: dict[str, JsonDict] = {}
        self.topic_reply_quirk = topic_reply_quirk
        self.allow_remote_webhooks = allow_remote_webhooks
        self._send_webhook = send_webhook
        self._seq = 0
        self._serial = 0
        self._next_user_id = 1_000_001
        self._next_group = 1

    def serial(self) -> int:
        """A fresh number for ids Telegram makes globally unique (polls, callback queries)."""
        self._serial += 1
        return self._serial

    # --- accounts -------------------------------------------------------------------------

    def authenticate(self, token: str) -> BotAccount:
        """The bot of a Bot API token, created on first use; 401 for a malformed or
        superseded token (same bot id, different secret)."""
        match = TOKEN_RE.match(token)
        if match is None:
            raise ApiError(401, "Unauthorized")
        bot_id = int(match.group(1))
        bot = self.bots.get(bot_id)
        if bot is None:
            bot = BotAccount(bot_id, token, f"bot{bot_id}", f"Bot {bot_id}")
            self.bots[bot_id] = bot
            self.updates[bot_id] = BotUpdates(bot_id, self._webhook_sender(bot))
        elif bot.token != token:
            raise ApiError(401, "Unauthorized")
        return bot

    def _webhook_sender(
        self, bot: BotAccount
    ) -> Callable[[WebhookConfig, JsonDict], Awaitable[None]]:
        async def send(config: WebhookConfig, update: JsonDict) -> None:
            await self._send_webhook(bot, config, update)

        return send

    def bot(self, token: str) -> BotAccount:
        """The bot of ``token`` for the Python API; ValueError if the token is malformed."""
        try:
            return self.authenticate(token)
        except ApiError:
            raise ValueError(
                f"not a valid token (or another token of a known bot): {token!r}"
            ) from None

    def bot_by_ref(self, token: str | None = None, bot_id: int | None = None) -> BotAccount:
        """A bot by token or by id (the console only knows ids)."""
        if token:
            return self.bot(token)
        if bot_id is not None and int(bot_id) in self.bots:
            return self.bots[int(bot_id)]
        raise ValueError(f"unknown bot (token or id required, got id {bot_id!r})")

    def user(self, user_id: int) -> UserAccount:
        """A user by id; ValueError if unknown."""
        user = self.users.get(int(user_id))
        if user is None:
            raise ValueError(f"unknown user {user_id}")
        return user

    def create_user(self, user_id: int | None = None, **fields: Any) -> UserAccount:
        """Register a user account; ids are allocated if not given."""
        if user_id is None:
            while self._next_user_id in self.users or self._next_user_id in self.bots:
                self._next_user_id += 1
            user_id = self._next_user_id
        if user_id in self.users or user_id in self.bots or user_id <= 0:
            raise ValueError(f"user id {user_id} is taken or invalid")
        user = UserAccount(id=user_id, **fields)
        self.users[user_id] = user
        return user

    def create_forum_group(
        self, title: str, member_ids: list[int], bot_ids: list[int], chat_id: int | None
    ) -> ChatRecord:
        """A forum supergroup with the given human members and (admin) bots."""
        for member in member_ids:
            self.user(member)
        if chat_id is None:
            while -(10**12 + self._next_group) in self.groups:
                self._next_group += 1
            chat_id = -(10**12 + self._next_group)
        if chat_id >= 0 or chat_id in self.groups:
            raise ValueError(f"group chat id {chat_id} is taken or not negative")
        chat = ChatRecord(
            id=chat_id,
            type="supergroup",
            title=title,
            is_forum=True,
            member_ids=list(member_ids),
            bot_ids=list(bot_ids),
            next_message_id=2,  # 1 is the (not stored) "group created" service message
        )
        self.groups[chat_id] = chat
        return chat

    # --- chats ----------------------------------------------------------------------------

    def private_chat(self, bot_id: int, user_id: int, create: bool = False) -> ChatRecord | None:
        """The private chat between a bot and a user; created by the user's first message."""
        chat = self.privates.get((bot_id, user_id))
        if chat is None and create:
            chat = ChatRecord(id=user_id, type="private", bot_id=bot_id, user=self.user(user_id))
            self.privates[(bot_id, user_id)] = chat
        return chat

    def chat_for_bot(self, bot: BotAccount, chat_id: Any, *, sending: bool = False) -> ChatRecord:
        """A chat the bot may address by ``chat_id``; 400 chat not found otherwise.

        When ``sending``, a known user who never started the bot gives Telegram's 403.
        """
        try:
            numeric = int(chat_id)
        except (TypeError, ValueError):
            raise bad_request(CHAT_NOT_FOUND) from None
        if numeric < 0:
            group = self.groups.get(numeric)
            if group is None:
                raise bad_request(CHAT_NOT_FOUND)
            if bot.id not in group.bot_ids:
                raise ApiError(403, NOT_A_MEMBER)
            return group
        private = self.private_chat(bot.id, numeric)
        if private is None:
            if sending and numeric in self.users:
                raise ApiError(403, CANT_INITIATE)
            raise bad_request(CHAT_NOT_FOUND)
        return private

    def check_can_send(self, bot: BotAccount, chat: ChatRecord) -> None:
        """403 when the user on the other side of a private chat blocked the bot."""
        if chat.user is not None and bot.id in chat.user.blocked_bots:
            raise ApiError(403, BLOCKED)

    def send_thread(self, chat: ChatRecord, thread_id: int | None, *, by_bot: bool) -> int | None:
        """Validate the ``message_thread_id`` a message is sent to (None = General/private)."""
        if thread_id is None:
            return None
        if not chat.is_forum:
            raise bad_request(THREAD_NOT_FOUND)
        if thread_id == GENERAL_THREAD_ID:
            if by_bot:
                raise bad_request(THREAD_NOT_FOUND)
            return None
        topic = chat.topics.get(thread_id)
        if topic is None or topic.deleted:
            raise bad_request(THREAD_NOT_FOUND)
        if topic.closed and by_bot:
            raise bad_request(TOPIC_CLOSED)
        return thread_id

    def chat_by_key(self, key: ChatKey) -> ChatRecord | None:
        """A chat by its internal key (see :data:`~.models.ChatKey`)."""
        return self.groups.get(key[1]) if key[0] == 0 else self.privates.get(key)

    def chats_with_id(self, chat_id: int, bot_id: int | None = None) -> list[ChatRecord]:
        """Chats known under ``chat_id``: one group, or the user's private chats with bots."""
        if chat_id < 0:
            group = self.groups.get(chat_id)
            return [group] if group else []
        return [
            chat
            for (owner, user_id), chat in self.privates.items()
            if user_id == chat_id and (bot_id is None or owner == bot_id)
        ]

    # --- messages -------------------------------------------------------------------------

    def get_message(self, chat: ChatRecord, message_id: int | None) -> StoredMessage | None:
        """A live (not deleted) message of the chat."""
        if message_id is None:
            return None
        message = chat.messages.get(int(message_id))
        return None if message is None or message.deleted else message

    def add_message(
        self,
        chat: ChatRecord,
        *,
        sender: JsonDict,
        sender_bot_id: int | None,
        content: JsonDict,
        thread_id: int | None = None,
        reply_to: StoredMessage | None = None,
        reply_markup: JsonDict | None = None,
        parse_mode: str | None = None,
        message_id: int | None = None,
    ) -> StoredMessage:
        """Store a new message and publish it to the console feed (no bot updates here)."""
        data: JsonDict = {
            "message_id": message_id if message_id is not None else chat.take_message_id(),
            "from": sender,
            "date": int(time.time()),
            "chat": chat.chat_dict(),
        }
        if thread_id is not None:
            data["message_thread_id"] = thread_id
            data["is_topic_message"] = True
        if reply_to is None and thread_id is not None and self.topic_reply_quirk:
            # Real Telegram marks every message of a topic as a reply to the topic's
            # forum_topic_created message unless it replies to something else.
            reply_to = chat.messages.get(thread_id)
        if reply_to is not None and reply_to.message_id != data["message_id"]:
            data["reply_to_message"] = {
                k: v for k, v in reply_to.data.items() if k != "reply_to_message"
            }
        data.update(content)
        keyboard = None
        if reply_markup is not None:
            if "inline_keyboard" in reply_markup:
                data["reply_markup"] = reply_markup
            else:
                keyboard = reply_markup
        self._seq += 1
        message = StoredMessage(data, self._seq, sender_bot_id, parse_mode, keyboard)
        chat.messages[message.message_id] = message
        self.events.emit("message", chat, message=data)
        return message

    def render(self, data: JsonDict, owner: int) -> JsonDict:
        """A message (or any Bot API object) as ``owner`` receives it: file ids re-keyed."""
        rendered: JsonDict = self.files.rebind(data, owner)
        return rendered

    def publish_edit(self, chat: ChatRecord, message: StoredMessage) -> None:
        """Stamp ``edit_date`` and tell the console."""
        message.data["edit_date"] = int(time.time())
        self.events.emit("edit", chat, message=message.data)

    def delete_message(self, chat: ChatRecord, message: StoredMessage) -> None:
        """Delete a message for everybody."""
        message.deleted = True
        chat.pinned_ids = [i for i in chat.pinned_ids if i != message.message_id]
        self.events.emit(
            "delete",
            chat,
            message_id=message.message_id,
            message_thread_id=message.thread_id,
        )

    def fan_out(self, chat: ChatRecord, kind: str, message: StoredMessage) -> None:
        """Queue an update about a user's message for every bot that sees the chat.

        Bots never see other bots' messages, so bot-sent messages produce no updates.
        """
        if message.sender_bot_id is not None:
            return
        bot_ids = chat.bot_ids if chat.is_group else [chat.bot_id or 0]
        for bot_id in bot_ids:
            if bot_id in self.updates:
                self.updates[bot_id].push(kind, self.render(message.data, bot_id))

    def visible_messages(
        self, chats: list[ChatRecord], thread_id: int | None = None
    ) -> list[StoredMessage]:
        """Live messages of the chats in sending order; ``thread_id`` 1 means General."""
        found = [
            message
            for chat in chats
            for message in chat.messages.values()
            if not message.deleted
            and (
                thread_id is None
                or message.thread_id == thread_id
                or (thread_id == GENERAL_THREAD_ID and message.thread_id is None)
            )
        ]
        return sorted(found, key=lambda message: message.seq)

    # --- topics ---------------------------------------------------------------------------

    def create_topic(
        self,
        chat: ChatRecord,
        name: str,
        *,
        sender: JsonDict,
        sender_bot_id: int | None,
        icon_color: int,
        icon_custom_emoji_id: str | None = None,
    ) -> Topic:
        """A new topic; its id is the id of its ``forum_topic_created`` service message."""
        thread_id = chat.take_message_id()
        topic = Topic(thread_id, name, icon_color, icon_custom_emoji_id)
        chat.topics[thread_id] = topic
        created: JsonDict = {"name": name, "icon_color": icon_color}
        if icon_custom_emoji_id:
            created["icon_custom_emoji_id"] = icon_custom_emoji_id
        self.add_message(
            chat,
            sender=sender,
            sender_bot_id=sender_bot_id,
            content={"forum_topic_created": created},
            thread_id=thread_id,
            message_id=thread_id,
        )
        self.events.emit("topic", chat, topic=topic.summary())
        return topic

    def topic_changed(
        self,
        chat: ChatRecord,
        topic: Topic,
        *,
        sender: JsonDict | None = None,
        sender_bot_id: int | None = None,
        service: JsonDict | None = None,
    ) -> None:
        """Publish a topic state change, with its service message when there is one."""
        if service is not None and sender is not None:
            self.add_message(
                chat,
                sender=sender,
                sender_bot_id=sender_bot_id,
                content=service,
                thread_id=topic.thread_id,
            )
        self.events.emit("topic", chat, topic=topic.summary())

    def delete_topic(self, chat: ChatRecord, topic: Topic) -> None:
        """Delete a topic with all its messages."""
        topic.deleted = True
        for message in chat.messages.values():
            if message.thread_id == topic.thread_id:
                message.deleted = True
        self.events.emit("topic", chat, topic=topic.summary())

    async def close(self) -> None:
        """Stop webhook workers and release every long poll."""
        self.events.close()
        for updates in self.updates.values():
            await updates.close()
