"""The :class:`TelegramEmulator` facade: HTTP app, server lifecycle and the Python API.

Tests and ``gateway sandbox`` drive the emulated Telegram from the same event loop: they
play users (send, edit, press buttons), inject faults and inspect what bots did, while
bots talk to the emulator over real HTTP with an unmodified aiogram client.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterable

from aiohttp import web

from ..common.faults import RANDOM_KINDS, RandomFaulting
from ..common.server import EmulatorServer
from . import actions, control
from .api import ApiServer, add_routes
from .ctx import checked_entities
from .faults import FaultInjector, FloodLimiter
from .models import BotAccount, Call, JsonDict, describe
from .state import World
from .webhook import WebhookPoster
from .wire import MAX_BODY, Params


class TelegramEmulator(EmulatorServer, RandomFaulting):
    """An in-memory Telegram with a Bot API server; see the package docstring."""

    name = "TelegramEmulator"

    def __init__(
        self, *, topic_reply_quirk: bool = True, allow_remote_webhooks: bool = False
    ) -> None:
        """``topic_reply_quirk``: messages in a topic carry ``reply_to_message`` = the
        topic's creation message, as real Telegram does. ``allow_remote_webhooks``: allow
        non-loopback webhook URLs (off: the emulator only talks to this machine)."""
        super().__init__()
        self._webhooks = WebhookPoster(self._execute_reply)
        self.world = World(
            self._webhooks.post,
            topic_reply_quirk=topic_reply_quirk,
            allow_remote_webhooks=allow_remote_webhooks,
        )
        self.faults = FaultInjector()
        self.flood = FloodLimiter()
        self._closing = asyncio.Event()
        self.api = ApiServer(self.world, self.faults, self.flood, self._closing)
        self.on_stop(release=self._closing.set)
        self.on_stop(release=self.world.close, close=self._webhooks.close)

    # --- server ---------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """An aiohttp app serving Bot API, files and ``/_control``; mountable as a sub-app."""
        app = self._new_app(MAX_BODY)
        add_routes(app, self.api)
        control.add_routes(app, self)
        return app

    async def _execute_reply(self, bot: BotAccount, method: str, params: Params) -> None:
        await self.api.call(bot, method, params)

    # --- accounts and chats ---------------------------------------------------------------

    def set_bot_username(
        self, token: str, username: str, first_name: str | None = None
    ) -> JsonDict:
        """Name a bot (created if new); returns it as a Bot API User."""
        bot = self.world.bot(token)
        bot.username = username.lstrip("@")
        if first_name is not None:
            bot.first_name = first_name
        return bot.user_dict()

    def create_user(
        self,
        first_name: str = "User",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
        user_id: int | None = None,
        is_bot: bool = False,
    ) -> JsonDict:
        """Register a person; returns the Bot API User."""
        user = self.world.create_user(
            user_id,
            first_name=first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
            is_bot=is_bot,
        )
        return user.user_dict()

    def set_profile_photo(self, user_id: int, data: bytes) -> None:
        """The user sets a profile photo (it becomes the current one)."""
        stored = self.world.files.add("photo", data, width=640, height=640)
        self.world.users[user_id].profile_photos.insert(0, stored)

    def create_forum_group(
        self,
        title: str = "Staff",
        members: Iterable[int] = (),
        bot_tokens: Iterable[str] = (),
        chat_id: int | None = None,
    ) -> JsonDict:
        """A forum supergroup with these users and (admin) bots; returns the Bot API Chat."""
        bot_ids = [self.world.bot(token).id for token in bot_tokens]
        chat = self.world.create_forum_group(title, list(members), bot_ids, chat_id)
        return chat.chat_dict()

    def add_member(
        self, chat_id: int, user_id: int | None = None, *, bot_token: str | None = None
    ) -> None:
        """Add a user (or, with ``bot_token``, an admin bot) to an existing group."""
        chat = self.world.groups.get(chat_id)
        if chat is None:
            raise ValueError(f"unknown group {chat_id}")
        if user_id is not None and self.world.user(user_id).id not in chat.member_ids:
            chat.member_ids.append(user_id)
        if bot_token is not None and (bot_id := self.world.bot(bot_token).id) not in chat.bot_ids:
            chat.bot_ids.append(bot_id)

    def block_bot(self, user_id: int, bot_token: str, blocked: bool = True) -> None:
        """The user blocks (or unblocks) the bot: the bot's sends then fail with 403."""
        user = self.world.user(user_id)
        bot = self.world.bot(bot_token)
        if blocked:
            user.blocked_bots.add(bot.id)
        else:
            user.blocked_bots.discard(bot.id)

    def delete_topic(self, chat_id: int, message_thread_id: int) -> None:
        """Staff deleted a topic in the Telegram app."""
        chat = self.world.groups.get(chat_id)
        topic = chat.topics.get(message_thread_id) if chat else None
        if chat is None or topic is None:
            raise ValueError(f"no topic {message_thread_id} in chat {chat_id}")
        self.world.delete_topic(chat, topic)

    # --- user actions ---------------------------------------------------------------------

    async def user_sends(
        self,
        user_id: int,
        *,
        bot_token: str | None = None,
        chat_id: int | None = None,
        message_thread_id: int | None = None,
        text: str | None = None,
        caption: str | None = None,
        photo: actions.FileArg | None = None,
        document: actions.FileArg | None = None,
        audio: actions.FileArg | None = None,
        voice: actions.FileArg | None = None,
        video: actions.FileArg | None = None,
        video_note: actions.FileArg | None = None,
        animation: actions.FileArg | None = None,
        sticker: str | None = None,
        location: tuple[float, float] | None = None,
        venue: JsonDict | None = None,
        contact: JsonDict | None = None,
        poll: JsonDict | None = None,
        dice: str | None = None,
        reply_to_message_id: int | None = None,
        media_group_id: str | None = None,
        entities: list[JsonDict] | None = None,
    ) -> JsonDict:
        """A user sends a message to a bot (``bot_token``) or into a group (``chat_id``).

        Files are bytes or ``(name, bytes, mime)``; ``sticker`` is the sticker's emoji;
        ``entities`` format the text (or the caption), offsets in UTF-16 code units.
        Returns the Message in the neutral view (file ids usable with file_bytes()).
        """
        content = actions.build_user_content(
            self.world,
            text=text,
            caption=caption,
            files={
                "photo": photo,
                "document": document,
                "audio": audio,
                "voice": voice,
                "video": video,
                "video_note": video_note,
                "animation": animation,
            },
            sticker=sticker,
            location=location,
            venue=venue,
            contact=contact,
            poll=poll,
            dice=dice,
            media_group_id=media_group_id,
        )
        if entities:
            formatted = "text" if text is not None else "caption"
            checked = checked_entities(content.get(formatted) or "", entities)
            content["entities" if formatted == "text" else "caption_entities"] = checked
        message = actions.send(
            self.world,
            user_id,
            content,
            bot_token=bot_token,
            chat_id=chat_id,
            message_thread_id=message_thread_id,
            reply_to_message_id=reply_to_message_id,
        )
        await asyncio.sleep(0)  # let webhook workers pick the update up
        return message

    async def user_edits(
        self,
        user_id: int,
        chat_id: int,
        message_id: int,
        *,
        text: str | None = None,
        caption: str | None = None,
        bot_token: str | None = None,
    ) -> JsonDict:
        """A user edits their text or caption; bots get ``edited_message``."""
        edited = actions.edit(
            self.world,
            user_id,
            chat_id,
            message_id,
            text=text,
            caption=caption,
            bot_token=bot_token,
        )
        await asyncio.sleep(0)
        return edited

    async def user_reacts(
        self,
        user_id: int,
        chat_id: int,
        message_id: int,
        emoji: str,
        *,
        bot_token: str | None = None,
    ) -> JsonDict:
        """A user reacts to a message in their private chat with a bot or in a group
        (``""``: takes the reaction back); the bots get ``message_reaction`` if they asked
        for it."""
        update = actions.react(self.world, user_id, chat_id, message_id, emoji, bot_token=bot_token)
        await asyncio.sleep(0)
        return update

    async def press_button(
        self,
        user_id: int,
        chat_id: int,
        message_id: int,
        callback_data: str,
        *,
        bot_token: str | None = None,
    ) -> JsonDict:
        """A user presses an inline button; returns the CallbackQuery the bot receives."""
        query = actions.press(
            self.world, user_id, chat_id, message_id, callback_data, bot_token=bot_token
        )
        await asyncio.sleep(0)
        return query

    def callback_answer(self, callback_query_id: str) -> JsonDict | None:
        """What the bot answered to a callback query (``None`` while unanswered)."""
        record = self.world.callbacks.get(callback_query_id)
        if record is None:
            raise ValueError(f"unknown callback query {callback_query_id}")
        answer: JsonDict | None = record.get("answer")
        return answer

    # --- inspection -----------------------------------------------------------------------

    def messages(
        self, chat_id: int, message_thread_id: int | None = None, *, bot_token: str | None = None
    ) -> list[JsonDict]:
        """Live messages of a chat in order (all topics unless ``message_thread_id``;
        1 = General). For a user id, their private chats (with ``bot_token``: that one)."""
        bot_id = self.world.bot(bot_token).id if bot_token else None
        chats = self.world.chats_with_id(chat_id, bot_id)
        found = self.world.visible_messages(chats, message_thread_id)
        return [copy.deepcopy(message.data) for message in found]

    def topics(self, chat_id: int) -> list[JsonDict]:
        """All topics of a forum ever created, with ``closed``/``deleted`` flags."""
        chat = self.world.groups.get(chat_id)
        if chat is None:
            raise ValueError(f"unknown group {chat_id}")
        return [topic.summary() for topic in chat.topics.values()]

    async def wait_for(
        self,
        predicate: Callable[[JsonDict], bool],
        *,
        chat_id: int,
        timeout: float = 5.0,
        bot_token: str | None = None,
    ) -> JsonDict:
        """The first message (existing, arriving or edited) of the chat matching."""
        bot_id = self.world.bot(bot_token).id if bot_token else None
        cursor = self.world.events.cursor
        for message in self.messages(chat_id, bot_token=bot_token):
            if predicate(message):
                return message

        def pick(event: JsonDict) -> JsonDict | None:
            if (
                event["type"] in ("message", "edit")
                and event["chat_id"] == chat_id
                and (bot_id is None or event.get("bot_id") in (None, bot_id))
                and predicate(event["message"])
            ):
                copied: JsonDict = copy.deepcopy(event["message"])
                return copied
            return None

        found = await self.world.events.first_after(cursor, pick, timeout)
        if found is not None:
            return found
        shown = [describe(m) for m in self.messages(chat_id, bot_token=bot_token)[-20:]]
        raise TimeoutError(
            f"no matching message in chat {chat_id} within {timeout} s; it has "
            f"{len(shown)} recent message(s):\n  " + "\n  ".join(shown or ["(none)"])
        )

    @property
    def calls(self) -> list[Call]:
        """Every Bot API call so far, in order."""
        return self.world.calls

    def calls_of(self, method: str, bot_token: str | None = None) -> list[Call]:
        """Calls of one method (case-insensitive), optionally by one bot."""
        bot_id = self.world.bot(bot_token).id if bot_token else None
        return [
            call
            for call in self.world.calls
            if call.method.lower() == method.lower() and (bot_id is None or call.bot_id == bot_id)
        ]

    def file_bytes(self, file_id: str) -> bytes:
        """The content behind any file id (of any bot or the neutral view)."""
        try:
            return self.world.files.resolve(file_id, None).data
        except Exception:
            raise ValueError(f"unknown file id {file_id!r}") from None

    def updates_sent(self, bot_token: str) -> list[JsonDict]:
        """Updates delivered to the bot (webhook 2xx or getUpdates), duplicates included."""
        return list(self.world.updates[self.world.bot(bot_token).id].sent)

    async def redeliver(self, bot_token: str, update_id: int, timeout: float = 5.0) -> None:
        """Deliver an already delivered update again. With a webhook, returns once the
        receiver took it; with getUpdates, once it is queued for the next poll."""
        updates = self.world.updates[self.world.bot(bot_token).id]
        done = updates.redeliver(update_id)
        if updates.webhook is None:
            return
        await asyncio.wait_for(asyncio.shield(done), timeout)

    # --- faults ---------------------------------------------------------------------------

    def inject_fault(
        self,
        method: str | None = None,
        bot_token: str | None = None,
        status: int | None = None,
        retry_after: int | None = None,
        description: str | None = None,
        count: int = 1,
        delay: float = 0.0,
        reset: bool = False,
    ) -> None:
        """Make the next ``count`` matching calls fail (FIFO among faults). ``status=None``
        with ``delay`` only slows the call down; ``reset`` drops the connection."""
        self.faults.add(
            method=method,
            bot_id=self.world.bot(bot_token).id if bot_token else None,
            status=status,
            retry_after=retry_after,
            description=description,
            count=count,
            delay=delay,
            reset=reset,
        )

    def clear_faults(self) -> None:
        """Forget faults not yet consumed (random faults go on: :meth:`clear_fault_rates`)."""
        self.faults.clear()

    def set_fault_rate(
        self,
        probability: float,
        *,
        methods: Iterable[str] | None = None,
        bot_token: str | None = None,
        kinds: Iterable[str] = RANDOM_KINDS,
        retry_after: int = 1,
        delay: float = 1.0,
        seed: int | None = None,
    ) -> None:
        """Fail calls at random, for chaos tests: each call of ``methods`` (any when
        ``None``) by the bot (any when ``None``) fails with ``probability``, as one of
        ``kinds`` drawn uniformly — "429" (``retry_after``), "500", "502", "503",
        "delay" (answered ``delay`` seconds late and done anyway; past the client's
        timeout it looks failed though it happened, as on real Telegram) or "reset" (the
        connection drops before the call is done). Queued faults go first; the newest
        rate matching a call decides; ``seed`` makes the draws reproducible."""
        self.faults.set_rate(
            probability,
            methods=methods,
            bot_id=self.world.bot(bot_token).id if bot_token else None,
            kinds=kinds,
            retry_after=retry_after,
            delay=delay,
            seed=seed,
        )

    def set_flood_limits(self, enabled: bool) -> None:
        """Switch Telegram's sending limits on or off (history restarts either way)."""
        self.flood.enabled = enabled
        self.flood.reset()

    def too_many_requests(self, bot_token: str | None = None) -> int:
        """How many 429 answers a bot (or all bots) got."""
        if bot_token is None:
            return sum(self.world.too_many.values())
        return self.world.too_many[self.world.bot(bot_token).id]
