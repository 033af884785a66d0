"""aiogram exceptions → the gateway's error tree (one place, as aiogram's check_response)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)

from gateway.errors import PermanentError, TopicClosed, TopicLost, TransientError
from gateway.model import Channel

CHANNEL = Channel.TELEGRAM.value


def convert(exc: BaseException) -> Exception:
    """The gateway error for an aiogram/aiohttp failure (callers ``raise … from exc``)."""
    text = getattr(exc, "message", None) or str(exc)
    match exc:
        case TelegramRetryAfter():
            return TransientError(CHANNEL, text, retry_after=float(exc.retry_after))
        case TelegramEntityTooLarge():
            return PermanentError(CHANNEL, text, reason="the file is too large for Telegram")
        case TelegramServerError() | TelegramNetworkError() | TelegramConflictError():
            return TransientError(CHANNEL, text)
        case TelegramBadRequest() if "thread not found" in text.lower():
            # Deleted topics, and old topics archived in very large forums, both answer
            # exactly this: treat it as "topic lost" and recreate.
            return TopicLost(CHANNEL, text, reason="the topic no longer exists")
        case TelegramBadRequest() if "TOPIC_CLOSED" in text:
            return TopicClosed(CHANNEL, text, reason="the topic is closed")
        case TelegramForbiddenError():
            reason = (
                "the customer blocked the bot"
                if "blocked" in text
                else "the bot may not write here"
            )
            return PermanentError(CHANNEL, text, reason=reason)
        case TelegramUnauthorizedError():
            return PermanentError(CHANNEL, text, reason="Telegram rejected the bot token")
        case TelegramMigrateToChat():
            return PermanentError(
                CHANNEL, text, reason=f"the group moved to chat {exc.migrate_to_chat_id}"
            )
        case TelegramBadRequest() | TelegramNotFound():
            return PermanentError(CHANNEL, text, reason=_short(text))
        case TelegramAPIError():
            return TransientError(CHANNEL, text)
        case aiohttp.ClientError() | asyncio.TimeoutError() | ConnectionError():
            return TransientError(CHANNEL, f"network: {type(exc).__name__}: {text}")
    return PermanentError(CHANNEL, f"{type(exc).__name__}: {text}")


@contextlib.asynccontextmanager
async def converted() -> AsyncIterator[None]:
    """Run a block of aiogram calls, re-raising failures as gateway errors."""
    try:
        yield
    except (TimeoutError, TelegramAPIError, aiohttp.ClientError, ConnectionError) as exc:
        raise convert(exc) from exc


def _short(text: str) -> str:
    return text.split(":", 2)[-1].strip() if "Bad Request" in text else text
