"""The Telegram emulator against the real aiogram client over real loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    ReplyParameters,
)
from aiohttp import ClientSession, web

from gateway.sandbox.telegram import TelegramEmulator

TOKEN = "111111:AAH-shop_bot_token"
OTHER_TOKEN = "222222:BBH-other-token"
# 2x1 PNG header: enough for the emulator to read the size.
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x02\x00\x00\x00\x01\x00" + b"\x00" * 64


class FastSession(AiohttpSession):
    """AiohttpSession without the 250 ms SSL grace sleep on close (no TLS on loopback)."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def make_bot(base_url: str, token: str = TOKEN) -> Bot:
    return Bot(token, session=FastSession(api=TelegramAPIServer.from_base(base_url)))


@pytest.fixture
async def emu() -> AsyncIterator[TelegramEmulator]:
    emulator = TelegramEmulator()
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def bot(emu: TelegramEmulator) -> AsyncIterator[Bot]:
    assert emu.base_url is not None
    client = make_bot(emu.base_url)
    yield client
    await client.session.close()


@pytest.fixture
async def other_bot(emu: TelegramEmulator) -> AsyncIterator[Bot]:
    assert emu.base_url is not None
    client = make_bot(emu.base_url, OTHER_TOKEN)
    yield client
    await client.session.close()


@pytest.fixture
async def http() -> AsyncIterator[ClientSession]:
    async with ClientSession() as session:
        yield session


async def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class Receiver:
    """A webhook endpoint answering with queued statuses (then 200) and an optional body."""

    def __init__(self, statuses: list[int] | None = None, reply: dict[str, Any] | None = None):
        self.statuses = list(statuses or [])
        self.reply = reply
        self.received: list[tuple[dict[str, str], dict[str, Any], int]] = []
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        status = self.statuses.pop(0) if self.statuses else 200
        self.received.append((dict(request.headers), await request.json(), status))
        if status == 200 and self.reply is not None:
            return web.json_response(self.reply)
        return web.json_response({}, status=status)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def accepted(self) -> list[dict[str, Any]]:
        return [body for _, body, status in self.received if status == 200]


async def with_receiver(receiver: Receiver, body: Callable[[str], Awaitable[None]]) -> None:
    url = await receiver.start()
    try:
        await body(url)
    finally:
        await receiver.stop()


# --- basics --------------------------------------------------------------------------------


async def test_get_me_tokens_and_unknown_methods(
    emu: TelegramEmulator, bot: Bot, http: ClientSession
) -> None:
    emu.set_bot_username(TOKEN, "shop_bot")
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (111111, "shop_bot", True)

    async with http.post(f"{emu.base_url}/botnot-a-token/getMe") as resp:
        assert resp.status == 401
        assert await resp.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    async with http.post(f"{emu.base_url}/bot{TOKEN}/noSuchMethod") as resp:
        assert resp.status == 404
        assert (await resp.json())["description"] == "Not Found"
    async with http.post(f"{emu.base_url}/bot{TOKEN}/GETME", json={}) as resp:
        assert (await resp.json())["result"]["username"] == "shop_bot"
    assert [c.status for c in emu.calls] == [200, 401, 404, 200]
    assert emu.calls[-1].method == "getMe"


async def test_private_text_round_trip_with_reply(emu: TelegramEmulator, bot: Bot) -> None:
    ann = emu.create_user(first_name="Ann", username="ann")
    sent = await emu.user_sends(ann["id"], bot_token=TOKEN, text="Where is my order?")
    updates = await bot.get_updates()
    assert len(updates) == 1
    incoming = updates[0].message
    assert incoming is not None and incoming.text == "Where is my order?"
    assert incoming.chat.id == ann["id"] and incoming.chat.type == "private"

    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Track", callback_data="track:1")]]
    )
    answer = await bot.send_message(
        ann["id"],
        "On its way",
        reply_parameters=ReplyParameters(message_id=sent["message_id"]),
        reply_markup=keyboard,
        parse_mode="HTML",
    )
    assert answer.reply_to_message is not None
    assert answer.reply_to_message.message_id == sent["message_id"]
    assert answer.reply_markup is not None
    assert answer.reply_markup.model_dump() == keyboard.model_dump()
    texts = [m.get("text") for m in emu.messages(ann["id"])]
    assert texts == ["Where is my order?", "On its way"]
    assert emu.calls[-1].params["reply_parameters"] == {"message_id": sent["message_id"]}

    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(-100999, "x")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(ann["id"], " ")
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(ann["id"], "x", reply_to_message_id=999)


async def test_media_upload_get_file_and_download(emu: TelegramEmulator, bot: Bot) -> None:
    ann = emu.create_user(first_name="Ann")
    await emu.user_sends(ann["id"], bot_token=TOKEN, text="/start")

    photo = await bot.send_photo(ann["id"], BufferedInputFile(PNG, "p.png"), caption="look")
    assert photo.photo is not None and len(photo.photo) >= 2
    assert (photo.photo[-1].width, photo.photo[-1].height) == (512, 256)
    assert photo.caption == "look"
    document = await bot.send_document(
        ann["id"], BufferedInputFile(b"%PDF-1.4 invoice", "invoice.pdf")
    )
    assert document.document is not None
    assert document.document.file_name == "invoice.pdf"
    assert document.document.mime_type == "application/pdf"
    voice = await bot.send_voice(ann["id"], BufferedInputFile(b"OggS" + b"v" * 9000, "v.ogg"))
    assert voice.voice is not None and voice.voice.duration >= 1

    for file_id, expected in (
        (photo.photo[-1].file_id, PNG),
        (document.document.file_id, b"%PDF-1.4 invoice"),
        (voice.voice.file_id, b"OggS" + b"v" * 9000),
    ):
        info = await bot.get_file(file_id)
        assert info.file_path and info.file_size == len(expected)
        downloaded = await bot.download(file_id)
        assert downloaded is not None and downloaded.read() == expected
        assert emu.file_bytes(file_id) == expected

    resent = await bot.send_document(ann["id"], document.document.file_id)
    assert resent.document is not None
    assert resent.document.file_unique_id == document.document.file_unique_id
    with pytest.raises(TelegramBadRequest, match="can't use file of type Document as Photo"):
        await bot.send_photo(ann["id"], document.document.file_id)


async def test_user_media_and_foreign_file_ids(
    emu: TelegramEmulator, bot: Bot, other_bot: Bot
) -> None:
    ann = emu.create_user(first_name="Ann")
    await emu.user_sends(ann["id"], bot_token=TOKEN, photo=PNG, caption="broken item")
    await emu.user_sends(ann["id"], bot_token=OTHER_TOKEN, document=("a.txt", b"hi", "text/plain"))
    (update,) = await bot.get_updates()
    assert update.message is not None and update.message.photo is not None
    mine = update.message.photo[-1].file_id
    assert update.message.caption == "broken item"
    downloaded = await bot.download(mine)
    assert downloaded is not None and downloaded.read() == PNG

    with pytest.raises(TelegramBadRequest, match="wrong file identifier/HTTP URL specified"):
        await other_bot.get_file(mine)
    with pytest.raises(TelegramBadRequest, match="wrong file identifier/HTTP URL specified"):
        await other_bot.send_photo(ann["id"], mine)
    (other_update,) = await other_bot.get_updates()
    assert other_update.message is not None and other_update.message.document is not None
    assert other_update.message.document.mime_type == "text/plain"


# --- forum topics --------------------------------------------------------------------------


async def test_forum_topics_and_deleted_topic(emu: TelegramEmulator, bot: Bot) -> None:
    staff = emu.create_user(first_name="Olga")
    group = emu.create_forum_group("Support", members=[staff["id"]], bot_tokens=[TOKEN])
    assert group["type"] == "supergroup" and group["is_forum"] is True
    assert str(group["id"]).startswith("-100")

    topic = await bot.create_forum_topic(group["id"], "Ann #1")
    created = emu.messages(group["id"], topic.message_thread_id)[0]
    assert created["message_id"] == topic.message_thread_id
    assert created["forum_topic_created"]["name"] == "Ann #1"

    posted = await bot.send_message(
        group["id"], "new ticket", message_thread_id=topic.message_thread_id
    )
    assert posted.message_thread_id == topic.message_thread_id and posted.is_topic_message

    reply = await emu.user_sends(
        staff["id"], chat_id=group["id"], text="hello", reply_to_message_id=posted.message_id
    )
    assert reply["message_thread_id"] == topic.message_thread_id
    assert reply["reply_to_message"]["message_id"] == posted.message_id
    assert "reply_to_message" not in reply["reply_to_message"]
    (update,) = await bot.get_updates()
    assert update.message is not None and update.message.text == "hello"

    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(group["id"], "x", message_thread_id=1)

    emu.delete_topic(group["id"], topic.message_thread_id)
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(group["id"], "x", message_thread_id=topic.message_thread_id)
    assert emu.topics(group["id"])[0]["deleted"] is True
    assert emu.messages(group["id"], topic.message_thread_id) == []

    second = await bot.create_forum_topic(group["id"], "Bob #2")
    assert await bot.delete_forum_topic(group["id"], second.message_thread_id)
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_photo(
            group["id"], BufferedInputFile(PNG, "p.png"), message_thread_id=second.message_thread_id
        )


async def test_closed_topic_rejects_bot_messages(emu: TelegramEmulator, bot: Bot) -> None:
    group = emu.create_forum_group("Support", bot_tokens=[TOKEN])
    topic = await bot.create_forum_topic(group["id"], "Ann")
    assert await bot.close_forum_topic(group["id"], topic.message_thread_id)
    with pytest.raises(TelegramBadRequest, match="TOPIC_CLOSED"):
        await bot.send_message(group["id"], "x", message_thread_id=topic.message_thread_id)
    assert emu.topics(group["id"])[0]["closed"] is True
    assert await bot.reopen_forum_topic(group["id"], topic.message_thread_id)
    await bot.send_message(group["id"], "back", message_thread_id=topic.message_thread_id)
    assert await bot.edit_forum_topic(group["id"], topic.message_thread_id, name="Ann (VIP)")
    assert emu.topics(group["id"])[0]["name"] == "Ann (VIP)"


# --- faults --------------------------------------------------------------------------------


async def test_injected_faults(emu: TelegramEmulator, bot: Bot) -> None:
    emu.inject_fault(method="getMe", status=429, retry_after=7, count=2)
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter) as caught:
            await bot.get_me()
        assert caught.value.retry_after == 7
        assert "Too Many Requests: retry after 7" in str(caught.value)
    await bot.get_me()
    assert emu.too_many_requests(TOKEN) == 2

    emu.inject_fault(method="sendMessage", status=500)
    await bot.get_me()  # another method: unaffected
    with pytest.raises(TelegramServerError):
        await bot.send_message(1, "x")

    emu.inject_fault(bot_token=TOKEN, reset=True)
    with pytest.raises(TelegramNetworkError):
        await bot.get_me()
    assert emu.calls[-1].status == 0

    emu.inject_fault(method="getme", delay=0.2)
    started = time.monotonic()
    assert (await bot.get_me()).id == 111111
    assert time.monotonic() - started >= 0.2


async def test_blocked_user_gives_403(emu: TelegramEmulator, bot: Bot) -> None:
    ann = emu.create_user(first_name="Ann")
    stranger = emu.create_user(first_name="Nobody")
    await emu.user_sends(ann["id"], bot_token=TOKEN, text="hi")
    emu.block_bot(ann["id"], TOKEN)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(ann["id"], "promo")
    with pytest.raises(TelegramForbiddenError, match="can't initiate conversation"):
        await bot.send_message(stranger["id"], "hi")
    await emu.user_sends(ann["id"], bot_token=TOKEN, text="I'm back")  # "Restart" unblocks
    await bot.send_message(ann["id"], "welcome back")


async def test_flood_limits(emu: TelegramEmulator, bot: Bot) -> None:
    ann = emu.create_user(first_name="Ann")
    group = emu.create_forum_group("Support", members=[ann["id"]], bot_tokens=[TOKEN])
    await emu.user_sends(ann["id"], bot_token=TOKEN, text="hi")
    emu.set_flood_limits(True)
    for i in range(20):
        await bot.send_message(group["id"], f"msg {i}")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(group["id"], "one too many")
    assert 1 <= caught.value.retry_after <= 60

    for _ in range(3):  # private chat: burst of 3, then 1 per second
        await bot.send_message(ann["id"], "burst")
    with pytest.raises(TelegramRetryAfter) as private_caught:
        await bot.send_message(ann["id"], "too fast")
    assert private_caught.value.retry_after == 1
    assert emu.too_many_requests(TOKEN) == 2 == emu.too_many_requests()

    emu.set_flood_limits(False)
    await bot.send_message(group["id"], "unthrottled")


# --- updates -------------------------------------------------------------------------------


async def test_get_updates_long_poll_offset_and_conflict(emu: TelegramEmulator, bot: Bot) -> None:
    ann = emu.create_user(first_name="Ann")
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await emu.user_sends(ann["id"], bot_token=TOKEN, text="ping")
    updates = await poll
    assert time.monotonic() - started < 1.0
    assert [u.message.text for u in updates if u.message] == ["ping"]

    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [updates[0].update_id]  # not confirmed yet
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == []
    assert emu.updates_sent(TOKEN)[0]["message"]["text"] == "ping"

    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(bot.get_updates(timeout=1))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await first
    await emu.user_sends(ann["id"], bot_token=TOKEN, text="pong")
    assert [u.message.text for u in await second if u.message] == ["pong"]

    # redelivery hands a confirmed update out once more
    pong_id = (await bot.get_updates(timeout=0))[0].update_id
    assert await bot.get_updates(offset=pong_id + 1) == []
    await emu.redeliver(TOKEN, pong_id)
    assert [u.update_id for u in await bot.get_updates(offset=pong_id + 1)] == [pong_id]
    assert await bot.get_updates(offset=pong_id + 1) == []


async def test_webhook_push_secret_retry_and_redeliver(emu: TelegramEmulator, bot: Bot) -> None:
    ann = emu.create_user(first_name="Ann")
    receiver = Receiver(statuses=[500])

    async def scenario(url: str) -> None:
        assert await bot.set_webhook(url, secret_token="s3cret")
        with pytest.raises(TelegramConflictError, match="webhook is active"):
            await bot.get_updates()
        await emu.user_sends(ann["id"], bot_token=TOKEN, text="via webhook")
        await eventually(lambda: len(receiver.accepted()) == 1)
        headers, body, status = receiver.received[0]
        assert status == 500  # first attempt refused, retried after back-off
        assert headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cret"
        assert receiver.accepted()[0] == body
        assert body["message"]["text"] == "via webhook"
        info = await bot.get_webhook_info()
        assert info.url == url and info.pending_update_count == 0
        assert (
            info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
        )

        await emu.redeliver(TOKEN, body["update_id"])
        assert [u["update_id"] for u in receiver.accepted()] == [body["update_id"]] * 2
        assert len(emu.updates_sent(TOKEN)) == 2

        # aiogram-style answer with a method: Telegram executes it
        receiver.reply = {"method": "sendMessage", "chat_id": ann["id"], "text": "auto-reply"}
        await emu.user_sends(ann["id"], bot_token=TOKEN, text="again")
        reply = await emu.wait_for(lambda m: m.get("text") == "auto-reply", chat_id=ann["id"])
        assert reply["from"]["id"] == 111111
        assert await bot.delete_webhook()
        assert (await bot.get_webhook_info()).url == ""

    await with_receiver(receiver, scenario)


async def test_edits_and_callback_buttons(emu: TelegramEmulator, bot: Bot) -> None:
    ann = emu.create_user(first_name="Ann")
    first = await emu.user_sends(ann["id"], bot_token=TOKEN, text="helo")
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Rate 5", callback_data="rate:5")]]
    )
    menu = await bot.send_message(ann["id"], "Rate us", reply_markup=markup)

    await emu.user_edits(ann["id"], ann["id"], first["message_id"], text="hello")
    query = await emu.press_button(ann["id"], ann["id"], menu.message_id, "rate:5")
    updates = await bot.get_updates()
    kinds = [u.event_type for u in updates]
    assert kinds == ["message", "edited_message", "callback_query"]
    edited, pressed = updates[1].edited_message, updates[2].callback_query
    assert edited is not None and edited.text == "hello" and edited.edit_date is not None
    assert pressed is not None and pressed.data == "rate:5" and pressed.id == query["id"]
    assert await bot.answer_callback_query(pressed.id, text="Thanks!")
    assert emu.callback_answer(pressed.id) == {"show_alert": False, "text": "Thanks!"}
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(pressed.id)

    changed = await bot.edit_message_text("Rated", chat_id=ann["id"], message_id=menu.message_id)
    assert isinstance(changed, object) and emu.messages(ann["id"])[-1]["text"] == "Rated"
    assert "reply_markup" not in emu.messages(ann["id"])[-1]  # no markup given: removed
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Rated", chat_id=ann["id"], message_id=menu.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=ann["id"], message_id=999)
    assert await bot.delete_message(ann["id"], menu.message_id)
    assert [m["text"] for m in emu.messages(ann["id"])] == ["hello"]


async def test_other_send_methods(emu: TelegramEmulator, bot: Bot) -> None:
    ann = emu.create_user(first_name="Ann")
    group = emu.create_forum_group("Support", members=[ann["id"]], bot_tokens=[TOKEN])
    source = await emu.user_sends(ann["id"], bot_token=TOKEN, location=(55.75, 37.61))
    album = await bot.send_media_group(
        ann["id"],
        [
            InputMediaPhoto(media=BufferedInputFile(PNG, "a.png"), caption="one"),
            InputMediaPhoto(media=BufferedInputFile(PNG, "b.png")),
        ],
    )
    assert len(album) == 2 and album[0].media_group_id == album[1].media_group_id
    venue = await bot.send_venue(ann["id"], 1.5, 2.5, "Shop", "Main st. 1")
    assert venue.venue is not None and venue.location is not None
    contact = await bot.send_contact(ann["id"], "+100", "Support")
    assert contact.contact is not None and contact.contact.phone_number == "+100"
    poll = await bot.send_poll(ann["id"], "Happy?", ["Yes", "No"])
    assert poll.poll is not None and [o.text for o in poll.poll.options] == ["Yes", "No"]
    copied = await bot.copy_message(group["id"], ann["id"], source["message_id"])
    copy_dict = emu.messages(group["id"])[-1]
    assert copy_dict["message_id"] == copied.message_id and "location" in copy_dict
    forwarded = await bot.forward_message(group["id"], ann["id"], album[0].message_id)
    assert forwarded.forward_origin is not None and forwarded.photo is not None
    assert await bot.send_chat_action(ann["id"], "typing")
    assert await bot.pin_chat_message(group["id"], forwarded.message_id)
    assert (await bot.get_chat(group["id"])).pinned_message is not None
    member = await bot.get_chat_member(group["id"], ann["id"])
    assert member.status == "creator"


async def test_wait_for_explains_timeout(emu: TelegramEmulator, bot: Bot) -> None:
    ann = emu.create_user(first_name="Ann")
    await emu.user_sends(ann["id"], bot_token=TOKEN, text="hi")
    waiter = asyncio.create_task(
        emu.wait_for(lambda m: m.get("text") == "reply", chat_id=ann["id"], timeout=2)
    )
    await asyncio.sleep(0.01)
    await bot.send_message(ann["id"], "reply")
    assert (await waiter)["from"]["is_bot"] is True
    with pytest.raises(TimeoutError, match="'hi'"):
        await emu.wait_for(lambda m: m.get("text") == "never", chat_id=ann["id"], timeout=0.05)


# --- hosting and control API ---------------------------------------------------------------


async def test_mounted_as_subapp() -> None:
    emulator = TelegramEmulator()
    root = web.Application()
    root.add_subapp("/sandbox/telegram", emulator.make_app())
    runner = web.AppRunner(root, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    client = make_bot(f"http://127.0.0.1:{runner.addresses[0][1]}/sandbox/telegram")
    try:
        ann = emulator.create_user(first_name="Ann")
        await emulator.user_sends(ann["id"], bot_token=TOKEN, photo=PNG)
        (update,) = await client.get_updates()
        assert update.message is not None and update.message.photo is not None
        data = await client.download(update.message.photo[-1].file_id)
        assert data is not None and data.read() == PNG
    finally:
        await client.session.close()
        await runner.cleanup()


async def test_control_api(emu: TelegramEmulator, bot: Bot, http: ClientSession) -> None:
    control = f"{emu.base_url}/_control"
    await bot.get_me()
    async with http.post(f"{control}/users", json={"first_name": "Ann"}) as resp:
        ann = await resp.json()
    async with http.post(
        f"{control}/groups", json={"title": "Staff", "members": [ann["id"]], "bot_ids": [111111]}
    ) as resp:
        group = await resp.json()
    async with http.get(f"{control}/events", params={"after": 0, "timeout": 0}) as resp:
        cursor = (await resp.json())["cursor"]

    poll = asyncio.create_task(
        http.get(f"{control}/events", params={"after": cursor, "timeout": 5})
    )
    await asyncio.sleep(0.05)
    photo = {
        "name": "p.png",
        "mime_type": "image/png",
        "content_b64": base64.b64encode(PNG).decode(),
    }
    async with http.post(
        f"{control}/send",
        json={"user_id": ann["id"], "bot_id": 111111, "kind": "photo", "file": photo},
    ) as resp:
        assert resp.status == 200
        sent = await resp.json()
    async with await poll as resp:
        events = await resp.json()
    (event,) = events["events"]
    assert event["type"] == "message" and event["chat_id"] == ann["id"]
    assert event["message"]["message_id"] == sent["message_id"]
    assert events["cursor"] == event["seq"]

    file_id = sent["photo"][-1]["file_id"]
    async with http.get(f"{control}/files/{file_id}") as resp:
        assert resp.content_type == "image/png" and await resp.read() == PNG
    (update,) = await bot.get_updates()
    assert update.message is not None and update.message.photo is not None

    async with http.get(f"{control}/state") as resp:
        state = await resp.json()
    assert state["bots"] == [{"id": 111111, "username": "bot111111", "token_hint": "111111:…"}]
    assert TOKEN not in str(state)
    assert {c["id"] for c in state["chats"]} == {group["id"], ann["id"]}
    async with http.get(f"{control}/chats/{ann['id']}/messages") as resp:
        assert [m["message_id"] for m in await resp.json()] == [sent["message_id"]]

    async with http.post(f"{control}/send", json={"user_id": ann["id"]}) as resp:
        assert resp.status == 400 and "error" in await resp.json()
    async with http.post(f"{control}/faults", json={"method": "getMe", "status": 502}) as resp:
        assert resp.status == 200
    with pytest.raises(TelegramServerError):
        await bot.get_me()
