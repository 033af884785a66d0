"""The lean ``sendMessage`` sends what aiogram's ``send_message`` sends and fails the way
it fails: both talk over HTTP to one recording Bot API server, which decodes each call as
the emulator does (multipart or JSON) and answers what a test tells it to."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MessageEntity,
    ReplyParameters,
)
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.telegram import lean
from adapters.telegram.errors import convert
from gateway.errors import PermanentError, TopicLost, TransientError
from gateway.sandbox.telegram.wire import _JSON_FIELDS, read_params

TOKEN = "4242:lean-test-token"
CHAT = -1001234567890
MESSAGE = {
    "message_id": 77,
    "date": 1_790_000_000,
    "chat": {"id": CHAT, "type": "supergroup", "title": "Staff", "is_forum": True},
    "from": {"id": 4242, "is_bot": True, "first_name": "Staff bot"},
    "message_thread_id": 5,
    "is_topic_message": True,
    "text": "hello",
}


@dataclass
class Recorder:
    """A Bot API ``sendMessage`` that records parameters and answers ``answer``."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    answer: tuple[int, str] = (200, json.dumps({"ok": True, "result": MESSAGE}))
    delay: float = 0.0
    reset: bool = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        params = await read_params(request)
        self.calls.append(normalised(params.values))
        if self.reset:
            assert request.transport is not None
            request.transport.abort()  # the connection dies before an answer
        if self.delay:
            await asyncio.sleep(self.delay)
        status, body = self.answer
        return web.Response(status=status, text=body, content_type="application/json")


def normalised(values: dict[str, Any]) -> dict[str, Any]:
    """One shape for both encodings: nested objects decoded, scalars as text."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in _JSON_FIELDS and isinstance(value, str):
            value = json.loads(value)
        out[key] = value if key in _JSON_FIELDS else str(value)
    return out


@pytest.fixture
async def server() -> AsyncIterator[tuple[Recorder, Bot]]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_post(f"/bot{TOKEN}/sendMessage", recorder.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    session = AiohttpSession(
        api=TelegramAPIServer.from_base(f"http://127.0.0.1:{port}"), timeout=0.5
    )
    bot = Bot(TOKEN, session=session)
    try:
        yield recorder, bot
    finally:
        await session.close()
        await runner.cleanup()


async def both(
    recorder: Recorder, bot: Bot, **kw: Any
) -> tuple[dict[str, Any], dict[str, Any], int, int]:
    """Send once through aiogram and once through the lean path; what each sent and got."""
    reply = kw.pop("reply_to", None)
    sent = await bot.send_message(
        chat_id=kw["chat_id"],
        text=kw["text"],
        message_thread_id=kw.get("thread_id"),
        reply_parameters=(
            ReplyParameters(message_id=reply, allow_sending_without_reply=True)
            if reply is not None
            else None
        ),
        entities=kw.get("entities"),
        reply_markup=kw.get("markup"),
    )
    got = await lean.send_message(
        bot,
        lean.TextMessage(
            kw["chat_id"],
            kw["text"],
            thread_id=kw.get("thread_id"),
            reply_to=reply,
            entities=kw.get("entities"),
            markup=kw.get("markup"),
        ),
    )
    return recorder.calls[-2], recorder.calls[-1], sent.message_id, got


async def test_a_plain_text_is_sent_as_aiogram_sends_it(server: tuple[Recorder, Bot]) -> None:
    recorder, bot = server
    slow, fast, slow_id, fast_id = await both(recorder, bot, chat_id=CHAT, text="Привет 👋")
    assert fast == slow == {"chat_id": str(CHAT), "text": "Привет 👋"}
    assert fast_id == slow_id == 77


async def test_topic_reply_styles_and_buttons_are_sent_as_aiogram_sends_them(
    server: tuple[Recorder, Bot],
) -> None:
    recorder, bot = server
    entities = [
        MessageEntity(type="bold", offset=0, length=4),
        MessageEntity(type="text_link", offset=5, length=4, url="https://example.com/a?b=1"),
    ]
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="Take", callback_data="t:take:1")],
            [InlineKeyboardButton(text="Site", url="https://example.com")],
        ]
    )
    slow, fast, _, _ = await both(
        recorder,
        bot,
        chat_id=CHAT,
        text="Bold link",
        thread_id=5,
        reply_to=12,
        entities=entities,
        markup=markup,
    )
    assert fast == slow
    assert fast["reply_parameters"] == {"message_id": 12, "allow_sending_without_reply": True}
    assert fast["message_thread_id"] == "5"
    assert len(fast["entities"]) == 2 and len(fast["reply_markup"]["inline_keyboard"]) == 2


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(min_size=1, max_size=300),
    thread=st.none() | st.integers(min_value=1, max_value=2**31),
    reply=st.none() | st.integers(min_value=1, max_value=2**31),
    bold=st.booleans(),
)
async def test_any_text_is_sent_as_aiogram_sends_it(
    server: tuple[Recorder, Bot], text: str, thread: int | None, reply: int | None, bold: bool
) -> None:
    recorder, bot = server
    entities = [MessageEntity(type="bold", offset=0, length=1)] if bold else None
    slow, fast, _, _ = await both(
        recorder, bot, chat_id=CHAT, text=text, thread_id=thread, reply_to=reply, entities=entities
    )
    assert fast == slow


ERRORS: list[tuple[int, dict[str, Any], type[Exception], type[Exception]]] = [
    (
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 7",
            "parameters": {"retry_after": 7},
        },
        TelegramRetryAfter,
        TransientError,
    ),
    (
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: message thread not found"},
        TelegramBadRequest,
        TopicLost,
    ),
    (
        403,
        {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
        TelegramForbiddenError,
        PermanentError,
    ),
    (
        502,
        {"ok": False, "error_code": 502, "description": "Bad Gateway"},
        TelegramServerError,
        TransientError,
    ),
]


@pytest.mark.parametrize(("status", "body", "aiogram_error", "gateway_error"), ERRORS)
async def test_platform_errors_raise_what_aiogram_raises(
    server: tuple[Recorder, Bot],
    status: int,
    body: dict[str, Any],
    aiogram_error: type[Exception],
    gateway_error: type[Exception],
) -> None:
    recorder, bot = server
    recorder.answer = (status, json.dumps(body))
    with pytest.raises(aiogram_error) as slow:
        await bot.send_message(chat_id=CHAT, text="x")
    with pytest.raises(aiogram_error) as fast:
        await lean.send_message(bot, lean.TextMessage(CHAT, "x"))
    assert str(fast.value) == str(slow.value)
    assert type(convert(fast.value)) is gateway_error
    if isinstance(fast.value, TelegramRetryAfter):
        assert isinstance(slow.value, TelegramRetryAfter)
        assert fast.value.retry_after == slow.value.retry_after == 7


@pytest.mark.parametrize(
    "body",
    [
        "<html>502 Bad Gateway</html>",  # a proxy's page, not JSON
        json.dumps({"ok": True, "result": {"date": 1}}),  # no message_id
        json.dumps({"ok": True, "result": True}),
        json.dumps(["ok"]),
    ],
)
async def test_answers_off_the_documented_shape_fail_as_in_aiogram(
    server: tuple[Recorder, Bot], body: str
) -> None:
    recorder, bot = server
    recorder.answer = (200, body)
    with pytest.raises(ClientDecodeError):
        await bot.send_message(chat_id=CHAT, text="x")
    with pytest.raises(ClientDecodeError):
        await lean.send_message(bot, lean.TextMessage(CHAT, "x"))


async def test_an_unusual_but_valid_answer_is_read_the_long_way(
    server: tuple[Recorder, Bot],
) -> None:
    """A message id the strict check refuses (a float) is still accepted by aiogram's
    model, so both paths agree on it."""
    recorder, bot = server
    recorder.answer = (200, json.dumps({"ok": True, "result": {**MESSAGE, "message_id": 78.0}}))
    assert (await bot.send_message(chat_id=CHAT, text="x")).message_id == 78
    assert await lean.send_message(bot, lean.TextMessage(CHAT, "x")) == 78


async def test_a_reset_connection_and_a_timeout_are_network_errors(
    server: tuple[Recorder, Bot],
) -> None:
    recorder, bot = server
    recorder.reset = True
    with pytest.raises(TelegramNetworkError) as reset:
        await lean.send_message(bot, lean.TextMessage(CHAT, "x"))
    assert type(convert(reset.value)) is TransientError
    recorder.reset, recorder.delay = False, 2.0
    with pytest.raises(TelegramNetworkError, match="Request timeout error") as late:
        await lean.send_message(bot, lean.TextMessage(CHAT, "x"))
    assert isinstance(late.value, TelegramAPIError)
    assert type(convert(late.value)) is TransientError
