"""``sendMessage`` without aiogram's model round trip: every text the gateway sends.

aiogram builds a pydantic ``SendMessage``, serialises it as ``multipart/form-data`` and
validates the whole answer into a ``Message`` (chat, sender, entities…) — about a third
of a staff delivery's CPU in ``bench.pipeline``, for the one number delivery keeps: the
new message's id. Here the request is the same call as JSON (the Bot API takes
``application/json`` for any method without a file upload:
https://core.telegram.org/bots/api#making-requests), sent through the bot's own aiogram
session (its aiohttp client, API server, token and timeout), and a successful answer is
read for ``result.message_id`` only.

Anything else — a non-200 status, ``ok: false``, an answer that is not what the Bot API
documents — goes to aiogram's own ``check_response`` with the equivalent
``SendMessage``, so errors are aiogram's exceptions exactly as before (``retry_after``,
``thread not found``, blocked…), and network failures raise aiogram's
``TelegramNetworkError`` as its session does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import pydantic_core
from aiogram import Bot
from aiogram.exceptions import ClientDecodeError, TelegramNetworkError
from aiogram.methods import SendMessage
from aiogram.types import InlineKeyboardMarkup, MessageEntity, ReplyParameters

_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class TextMessage:
    """The parameters of one ``sendMessage``."""

    chat_id: int
    text: str
    thread_id: int | None = None
    reply_to: int | None = None
    entities: list[MessageEntity] | None = None
    markup: InlineKeyboardMarkup | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON body (absent parameters left out, as aiogram does)."""
        body: dict[str, Any] = {"chat_id": self.chat_id, "text": self.text}
        if self.thread_id is not None:
            body["message_thread_id"] = self.thread_id
        if self.reply_to is not None:
            # As reply_parameters() (a reply to a deleted message goes as a plain one),
            # written out: the model's defaults would need the bot's to be resolved.
            body["reply_parameters"] = {
                "message_id": self.reply_to,
                "allow_sending_without_reply": True,
            }
        if self.entities:
            body["entities"] = [e.model_dump(mode="json", exclude_none=True) for e in self.entities]
        if self.markup is not None:
            body["reply_markup"] = self.markup.model_dump(mode="json", exclude_none=True)
        return body

    def method(self) -> SendMessage:
        """The same call as aiogram's model (for aiogram's error handling)."""
        return SendMessage(
            chat_id=self.chat_id,
            text=self.text,
            message_thread_id=self.thread_id,
            reply_parameters=reply_parameters(self.reply_to),
            entities=self.entities,
            reply_markup=self.markup,
        )


def reply_parameters(message_id: int | None) -> ReplyParameters | None:
    """A reply to ``message_id``, sent as a plain message if that one was deleted."""
    if message_id is None:
        return None
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


def message_id(status: int, raw: bytes) -> int | None:
    """The new message's id from a successful answer; ``None`` for anything else."""
    if status != 200:
        return None
    try:
        answer = pydantic_core.from_json(raw)  # C; anything odd takes aiogram's path
    except ValueError:
        return None
    if not isinstance(answer, dict) or answer.get("ok") is not True:
        return None
    result = answer.get("result")
    if not isinstance(result, dict):
        return None
    found = result.get("message_id")
    return found if type(found) is int else None


async def send_message(bot: Bot, message: TextMessage) -> int:
    """Send one text message; the id Telegram gave it. Raises what aiogram raises."""
    session = bot.session
    client = await session.create_session()  # type: ignore[attr-defined]
    url = session.api.api_url(token=bot.token, method="sendMessage")
    data = pydantic_core.to_json(message.payload())  # compact UTF-8 JSON, in C
    timeout = aiohttp.ClientTimeout(total=session.timeout)
    try:
        async with client.post(url, data=data, headers=_JSON, timeout=timeout) as resp:
            status, raw = resp.status, await resp.read()
    except TimeoutError as exc:  # asyncio.TimeoutError too, since Python 3.11
        raise TelegramNetworkError(message.method(), "Request timeout error") from exc
    except aiohttp.ClientError as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise TelegramNetworkError(message.method(), error) from exc
    found = message_id(status, raw)
    if found is not None:
        return found
    content = raw.decode("utf-8", errors="replace")
    # Raises the right aiogram exception; an answer it accepts is read the long way.
    sent = session.check_response(bot, message.method(), status, content)
    if sent.result is None:  # "ok" with no message: not what sendMessage answers
        raise ClientDecodeError("Failed to deserialize object", ValueError("no result"), content)
    return sent.result.message_id


__all__ = ["TextMessage", "message_id", "reply_parameters", "send_message"]
