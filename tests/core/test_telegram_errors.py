"""Every aiogram failure maps to the gateway error type that decides what happens next."""

from __future__ import annotations

import aiohttp
import pytest
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import SendMessage

from adapters.telegram.errors import convert, converted
from gateway.errors import PermanentError, TopicClosed, TopicLost, TransientError

METHOD = SendMessage(chat_id=1, text="x")


@pytest.mark.parametrize(
    ("exc", "expected", "reason"),
    [
        (TelegramRetryAfter(METHOD, "Too Many Requests: retry after 7", 7), TransientError, None),
        (TelegramServerError(METHOD, "Internal Server Error"), TransientError, None),
        (TelegramNetworkError(METHOD, "timeout"), TransientError, None),
        (TelegramConflictError(METHOD, "Conflict"), TransientError, None),
        (aiohttp.ClientConnectionError("reset"), TransientError, None),
        (TimeoutError(), TransientError, None),
        (TelegramBadRequest(METHOD, "Bad Request: message thread not found"), TopicLost, None),
        (TelegramBadRequest(METHOD, "Bad Request: TOPIC_CLOSED"), TopicClosed, None),
        (
            TelegramForbiddenError(METHOD, "Forbidden: bot was blocked by the user"),
            PermanentError,
            "the customer blocked the bot",
        ),
        (
            TelegramUnauthorizedError(METHOD, "Unauthorized"),
            PermanentError,
            "Telegram rejected the bot token",
        ),
        (
            TelegramBadRequest(METHOD, "Bad Request: chat not found"),
            PermanentError,
            "chat not found",
        ),
    ],
)
def test_convert(exc: Exception, expected: type[Exception], reason: str | None) -> None:
    converted_exc = convert(exc)
    assert type(converted_exc) is expected
    if reason is not None:
        assert isinstance(converted_exc, PermanentError)
        assert converted_exc.reason == reason


def test_retry_after_is_kept() -> None:
    exc = convert(TelegramRetryAfter(METHOD, "Too Many Requests: retry after 7", 7))
    assert isinstance(exc, TransientError)
    assert exc.retry_after == 7


async def test_converted_chains_the_cause() -> None:
    with pytest.raises(TopicLost) as info:
        async with converted():
            raise TelegramBadRequest(METHOD, "Bad Request: message thread not found")
    assert isinstance(info.value.__cause__, TelegramBadRequest)
