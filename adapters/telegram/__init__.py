"""Telegram through aiogram: customer bots and the staff bot are both this adapter.

Point it at any Bot API server (the real one, a local ``telegram-bot-api``, or the
sandbox emulator) with ``api_server``. aiogram does not retry by itself (429 raises
``TelegramRetryAfter``); retries are the delivery layer's job, by error type.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from aiogram import Bot, methods
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods.base import Response
from aiogram.types import BufferedInputFile, ReactionTypeEmoji

from adapters.base import Answer, Batch, Capabilities, Upload
from adapters.telegram.errors import converted
from adapters.telegram.parse import parse_update
from adapters.telegram.send import keyboard, send_album, send_content
from adapters.telegram.styles import to_entities
from gateway.config import DeliverySettings, TelegramEndpoint
from gateway.errors import PermanentError, Unauthorized
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

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
# Bot API getFile: "bots can download files of up to 20MB in size"
# (https://core.telegram.org/bots/api#getfile); a local Bot API server lifts it.
DOWNLOAD_LIMIT = 20 * 1024 * 1024
# Group sends are spaced 3% wider than 60/20 s: Telegram counts on its own clock, and a
# 429 costs far more time than the margin.
GROUP_MARGIN_SECONDS = 1.0
# aiogram parses each answer with pydantic's ``Response[T]``, whose parametrised classes
# pydantic caches only weakly: garbage collection drops them and every later call pays
# ~4 ms to rebuild one (a fifth of staff delivery's CPU in bench.pipeline). Holding the
# ones our calls use keeps them built.
_RESPONSES = tuple(
    Response[returning]  # type: ignore[valid-type]
    for returning in {
        method.__returning__
        for method in (
            methods.AnswerCallbackQuery,
            methods.CloseForumTopic,
            methods.CreateForumTopic,
            methods.DeleteMessage,
            methods.DeleteWebhook,
            methods.EditMessageCaption,
            methods.EditMessageText,
            methods.GetFile,
            methods.GetMe,
            methods.GetUpdates,
            methods.GetUserProfilePhotos,
            methods.PinChatMessage,
            methods.ReopenForumTopic,
            methods.SendAnimation,
            methods.SendAudio,
            methods.SendContact,
            methods.SendDocument,
            methods.SendLocation,
            methods.SendMediaGroup,
            methods.SendMessage,
            methods.SendPhoto,
            methods.SendSticker,
            methods.SendVenue,
            methods.SendVideo,
            methods.SendVideoNote,
            methods.SendVoice,
            methods.SetMessageReaction,
            methods.SetWebhook,
        )
    }
)
GROUP_BURST = 3
# message_reaction comes only when named (https://core.telegram.org/bots/api#update).
ALLOWED_UPDATES = [
    "message",
    "edited_message",
    "callback_query",
    "my_chat_member",
    "message_reaction",
]


class TelegramAdapter:
    """One bot token: a customer-facing bot or the staff bot."""

    channel = Channel.TELEGRAM
    ack = Answer()
    reply_window: timedelta | None = None
    media_by_url = False
    # https://core.telegram.org/bots/api#deletemessage: "A message can only be deleted
    # if it was sent less than 48 hours ago"; reactions: setMessageReaction.
    capabilities = Capabilities(
        edit=True,
        delete=True,
        edit_within=timedelta(hours=48),
        reactions_in=True,
        reactions_out=True,
        albums=True,
        delivery_receipts=False,
        reply_to=True,
        max_text=4096,
        max_file_mb=50,
        formatting="entities",
    )
    read_receipts = False
    """The Bot API has no way for a bot to mark a user's messages read (only business
    connections can: ``readBusinessMessage``), so the customer sees no receipt."""

    def __init__(
        self,
        account: str,
        settings: TelegramEndpoint,
        limits: DeliverySettings | None = None,
    ) -> None:
        self.account = AccountId(account)
        self.settings = settings
        self.limits = limits or DeliverySettings()
        request_timeout = self.limits.request_timeout_seconds
        token = settings.token.get_secret_value()
        self.bot_id = int(token.split(":", 1)[0])
        self._local_server = str(settings.api_server).rstrip("/") != "https://api.telegram.org"
        session = AiohttpSession(
            api=TelegramAPIServer.from_base(str(settings.api_server).rstrip("/")),
            timeout=request_timeout,
        )
        self.bot = Bot(token, session=session)

    @property
    def file_scope(self) -> str:
        return f"telegram:{self.bot_id}"

    def buckets(self, destination: Destination) -> list[Bucket]:
        # https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this
        # ~1 message/s per chat, 20 messages/minute per group, ~30 messages/s per bot.
        limits = self.limits
        chat = f"tg:{self.bot_id}:{destination.chat_id}"
        bot = Bucket.per_second(f"tg:{self.bot_id}", limits.bot_per_second, burst=10)
        if not destination.chat_id.startswith("-"):
            return [Bucket.per_second(chat, limits.private_per_second, burst=3), bot]
        # A group: never more than group_per_minute in any minute (a sliding window, with
        # a second of margin for network jitter: ~98% of the budget), paced at that rate
        # with a small burst, so that a backlog is spread out (and coalesced) rather
        # than spent at once and then stuck for a minute.
        per_minute = limits.group_per_minute
        return [
            Bucket.per_minute(f"{chat}:pace", per_minute, burst=GROUP_BURST),
            Bucket.window(chat, per_minute, 60 + GROUP_MARGIN_SECONDS),
            bot,
        ]

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        secret = self.settings.webhook_secret
        if secret is None:
            raise Unauthorized(f"account {self.account} does not take webhooks (polling mode)")
        given = headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.get_secret_value().encode()):
            raise Unauthorized("wrong or missing X-Telegram-Bot-Api-Secret-Token")

    def challenge(self, query: Mapping[str, str]) -> Answer:
        raise Unauthorized("this platform verifies webhooks without a GET request")

    def handshake(self, payload: Mapping[str, Any]) -> Answer | None:
        return None  # Telegram sends no set-up requests to a webhook

    def parse(self, payload: Mapping[str, Any], received_at: datetime) -> Sequence[InboundEvent]:
        return parse_update(
            payload, account=self.account, bot_id=self.bot_id, received_at=received_at
        )

    async def enrich(self, events: Sequence[InboundEvent]) -> Sequence[InboundEvent]:
        return events  # updates carry the sender's name and username

    def event_id(self, payload: Mapping[str, Any]) -> str:
        return f"update:{payload.get('update_id')}"

    async def start(self) -> None:
        if self.settings.mode == "polling":
            async with converted():
                # getUpdates answers 409 while a webhook is set.
                await self.bot.delete_webhook(drop_pending_updates=False)

    async def stop(self) -> None:
        await self.bot.session.close()

    async def set_webhook(self, url: str) -> None:
        secret = self.settings.webhook_secret
        async with converted():
            await self.bot.set_webhook(
                url,
                secret_token=secret.get_secret_value() if secret else None,
                allowed_updates=ALLOWED_UPDATES,
            )

    async def poll(self, cursor: int | None, timeout: float) -> Batch:
        async with converted():
            updates = await self.bot.get_updates(
                offset=cursor,
                timeout=int(timeout),
                allowed_updates=ALLOWED_UPDATES,
                request_timeout=int(timeout) + 10,
            )
        raw = [u.model_dump(mode="json", by_alias=True, exclude_none=True) for u in updates]
        next_cursor = updates[-1].update_id + 1 if updates else cursor
        return Batch(updates=raw, cursor=next_cursor)

    async def send(
        self,
        destination: Destination,
        content: Content,
        upload: Upload | None = None,
        *,
        key: str | None = None,
        author: str | None = None,
    ) -> Sent:
        # The Bot API has no idempotent send: delivery's done-marker prevents doubles.
        file: str | BufferedInputFile | None = None
        if upload is not None:
            file = BufferedInputFile(upload.data, filename=upload.file_name)
        elif content.attachment is not None:
            file = content.attachment.file_id
        async with converted():
            ids = await send_content(self.bot, destination, content, file)
        return Sent(message_ids=tuple(MessageId(str(i)) for i in ids))

    async def send_album(
        self, destination: Destination, items: Sequence[tuple[Content, Upload | None]]
    ) -> Sent:
        files: list[tuple[Content, str | BufferedInputFile]] = []
        for content, upload in items:
            if upload is not None:
                files.append((content, BufferedInputFile(upload.data, filename=upload.file_name)))
            elif content.attachment is not None:
                files.append((content, content.attachment.file_id))
        async with converted():
            ids = await send_album(self.bot, destination, files)
        return Sent(message_ids=tuple(MessageId(str(i)) for i in ids))

    async def edit_text(self, chat_id: ChatId, message_id: MessageId, content: Content) -> None:
        async with converted():
            try:
                if content.attachment is not None:
                    await self.bot.edit_message_caption(
                        chat_id=int(chat_id),
                        message_id=int(message_id),
                        caption=content.text,
                        caption_entities=to_entities(content),
                    )
                else:
                    await self.bot.edit_message_text(
                        text=content.text or "…",
                        chat_id=int(chat_id),
                        message_id=int(message_id),
                        entities=to_entities(content),
                        reply_markup=keyboard(content),
                    )
            except Exception as exc:
                if "message is not modified" in str(exc):
                    return  # the same text again: nothing to do
                raise

    async def react(self, chat_id: ChatId, message_id: MessageId, emoji: str) -> None:
        # https://core.telegram.org/bots/api#setmessagereaction: bots set at most one
        # reaction, from the standard emoji list; the new one replaces the old, and an
        # empty list takes it away.
        async with converted():
            await self.bot.set_message_reaction(
                chat_id=int(chat_id),
                message_id=int(message_id),
                reaction=[ReactionTypeEmoji(emoji=emoji)] if emoji else [],
            )

    async def answer_callback(self, callback_id: str, text: str, *, alert: bool = False) -> None:
        async with converted():
            await self.bot.answer_callback_query(callback_id, text=text[:200], show_alert=alert)

    async def download(self, attachment: Attachment) -> Upload:
        if (
            attachment.size is not None
            and attachment.size > DOWNLOAD_LIMIT
            and not self._local_server
        ):
            raise PermanentError(
                self.channel.value,
                f"file of {attachment.size} bytes",
                reason="the file is larger than the 20 MB a bot may download",
            )
        async with converted():
            file = await self.bot.get_file(attachment.file_id)
            if file.file_path is None:
                raise PermanentError(self.channel.value, "getFile returned no file_path")
            data = await self.bot.download_file(file.file_path)
        if data is None:  # pragma: no cover - aiogram returns a buffer when none is given
            raise PermanentError(self.channel.value, "download returned nothing")
        name = attachment.file_name or file.file_path.rsplit("/", 1)[-1] or "file"
        return Upload(data=data.read(), file_name=name)

    async def avatar(self, user_id: str) -> Upload | None:
        # https://core.telegram.org/bots/api#getuserprofilephotos: sizes small → large.
        async with converted():
            photos = await self.bot.get_user_profile_photos(int(user_id), limit=1)
        if not photos.photos or not photos.photos[0]:
            return None
        largest = photos.photos[0][-1]
        upload = await self.download(
            Attachment(account=self.account, file_id=largest.file_id, size=largest.file_size)
        )
        return Upload(data=upload.data, file_name="avatar.jpg")

    async def username(self) -> str | None:
        async with converted():
            me = await self.bot.me()  # getMe, cached by aiogram
        return me.username

    async def mark_read(self, chat_id: ChatId, message_id: MessageId) -> None:
        raise PermanentError(self.channel.value, "mark_read", reason="bots have no read receipts")

    async def delete(self, chat_id: ChatId, message_id: MessageId) -> None:
        async with converted():
            await self.bot.delete_message(chat_id=int(chat_id), message_id=int(message_id))

    async def create_topic(self, chat_id: ChatId, name: str) -> TopicId:
        async with converted():
            topic = await self.bot.create_forum_topic(chat_id=int(chat_id), name=name[:128])
        return TopicId(topic.message_thread_id)

    async def reopen_topic(self, chat_id: ChatId, topic: TopicId) -> None:
        async with converted():
            await self.bot.reopen_forum_topic(chat_id=int(chat_id), message_thread_id=topic)

    async def rename_topic(self, chat_id: ChatId, topic: TopicId, name: str) -> None:
        async with converted():
            try:
                await self.bot.edit_forum_topic(
                    chat_id=int(chat_id), message_thread_id=topic, name=name[:128]
                )
            except Exception as exc:
                if "TOPIC_NOT_MODIFIED" in str(exc):
                    return  # it has that name already
                raise

    async def close_topic(self, chat_id: ChatId, topic: TopicId) -> None:
        async with converted():
            try:
                await self.bot.close_forum_topic(chat_id=int(chat_id), message_thread_id=topic)
            except Exception as exc:
                if "TOPIC_NOT_MODIFIED" in str(exc):
                    return  # closed already
                raise

    async def typing(self, chat_id: ChatId, topic: TopicId) -> None:
        # https://core.telegram.org/bots/api#sendchataction: shown for 5 s or until the
        # bot's next message; message_thread_id puts it in the topic.
        async with converted():
            await self.bot.send_chat_action(
                chat_id=int(chat_id), action="typing", message_thread_id=topic
            )

    async def pin(self, chat_id: ChatId, message_id: MessageId) -> None:
        async with converted():
            await self.bot.pin_chat_message(
                chat_id=int(chat_id), message_id=int(message_id), disable_notification=True
            )
