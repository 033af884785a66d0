"""The Viber adapter (viberbot in worker threads) against the Viber emulator."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from adapters.base import Upload
from adapters.viber import ViberAdapter
from gateway.config import DeliverySettings, ViberChannel
from gateway.errors import PermanentError, TransientError, Unauthorized
from gateway.model import (
    AccountId,
    Attachment,
    Button,
    ChatId,
    Content,
    Destination,
    Kind,
    Location,
    MessageId,
    SharedContact,
)
from gateway.sandbox.viber import ViberEmulator

TOKEN = "4f1b2c3d4e5f6a7b-viber-bot-token"
ACCOUNT = AccountId("viber_shop")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 300


@pytest.fixture
async def viber() -> AsyncIterator[ViberEmulator]:
    emulator = ViberEmulator()
    await emulator.start()
    emulator.create_bot(TOKEN, "Shop")
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest.fixture
async def files() -> AsyncIterator[tuple[str, dict[str, bytes]]]:
    """A tiny server standing in for the gateway's /media route."""
    served: dict[str, bytes] = {}

    async def get(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in served:
            return web.Response(status=404)
        return web.Response(body=served[name])

    async def hook(_: web.Request) -> web.Response:
        return web.Response(text="ok")  # Viber checks the webhook answers 200

    app = web.Application()
    app.router.add_get("/media/{name}", get)
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/media", served
    finally:
        await runner.cleanup()


@pytest.fixture
async def adapter(
    viber: ViberEmulator, files: tuple[str, dict[str, bytes]]
) -> AsyncIterator[ViberAdapter]:
    settings = ViberChannel(
        id=ACCOUNT,
        kind="viber",
        token=TOKEN,
        name="Shop",
        api_server=viber.base_url,
        welcome="Здравствуйте! Напишите нам.",
    )
    adapter = ViberAdapter(ACCOUNT, settings, DeliverySettings(request_timeout_seconds=5))
    hook = files[0].removesuffix("/media") + "/hook"
    await adapter.set_webhook(hook)
    assert viber.webhook_of(TOKEN) == hook
    try:
        yield adapter
    finally:
        await adapter.stop()


def to(user: str) -> Destination:
    return Destination(account=ACCOUNT, chat_id=ChatId(user))


def signed(body: bytes, token: str = TOKEN) -> dict[str, str]:
    signature = hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Viber-Content-Signature": signature}


def test_signatures_are_checked_on_the_raw_body(adapter: ViberAdapter) -> None:
    body = json.dumps({"event": "webhook", "timestamp": 1, "message_token": 1}).encode()
    adapter.verify(signed(body), body)
    for headers in ({}, signed(body, "other-token"), signed(body + b" ")):
        with pytest.raises(Unauthorized):
            adapter.verify(headers, body)


def test_the_welcome_answers_conversation_started(adapter: ViberAdapter) -> None:
    answer = adapter.handshake({"event": "conversation_started", "message_token": 1})
    assert answer is not None
    welcome = json.loads(answer.body)
    assert welcome["type"] == "text" and welcome["text"] == "Здравствуйте! Напишите нам."
    assert welcome["sender"]["name"] == "Shop"
    assert adapter.handshake({"event": "message"}) is None


async def test_sends_text_picture_file_location_contact_and_keyboard(
    viber: ViberEmulator, adapter: ViberAdapter, files: tuple[str, dict[str, bytes]]
) -> None:
    base, served = files
    user = viber.create_user("Ivan")
    viber.user_subscribe(TOKEN, user)
    served["p.png"], served["price.pdf"] = PNG, b"%PDF-1.4"

    long_text = "Добрый день! " * 700  # above Viber's 7000 characters: two messages
    sent = await adapter.send(to(user), Content(kind=Kind.TEXT, text=long_text))
    assert len(sent.message_ids) == 2 and all(int(t) > 2**53 for t in sent.message_ids)
    photo = Content(
        kind=Kind.PHOTO, text="каталог", attachment=Attachment(account="tg", file_id="x")
    )
    await adapter.send(to(user), photo, Upload(data=PNG, file_name="p.png", url=f"{base}/p.png"))
    doc = Content(kind=Kind.DOCUMENT, attachment=Attachment(account="tg", file_id="y"))
    await adapter.send(
        to(user), doc, Upload(data=b"%PDF-1.4", file_name="price.pdf", url=f"{base}/price.pdf")
    )
    where = Content(kind=Kind.LOCATION, location=Location(latitude=55.75, longitude=37.62))
    await adapter.send(to(user), where)
    card = SharedContact(phone="+79161234567", first_name="Anna", last_name="Shop")
    await adapter.send(to(user), Content(kind=Kind.CONTACT, contact=card))
    choose = Content(
        kind=Kind.TEXT,
        text="Выберите",
        buttons=((Button(text="Да", data="yes"), Button(text="Сайт", url="https://example.com")),),
    )
    await adapter.send(to(user), choose)

    out = [m for m in viber.conversation(TOKEN, user) if m["direction"] == "out"]
    assert [m["type"] for m in out] == [
        "text",
        "text",
        "picture",
        "file",
        "location",
        "contact",
        "text",
    ]
    assert out[2]["text"] == "каталог" and out[3]["file_name"] == "price.pdf"
    assert out[0]["sender"]["name"] == "Shop"
    buttons = out[6]["keyboard"]["Buttons"]
    assert [(b["ActionType"], b["ActionBody"]) for b in buttons] == [
        ("reply", "yes"),
        ("open-url", "https://example.com"),
    ]
    await viber.wait_for(
        lambda m: m.get("media_bytes") == b"%PDF-1.4", token=TOKEN, user_id=user
    )  # Viber fetched the file from our URL


async def test_platform_errors_map_to_permanent_and_transient(
    viber: ViberEmulator, adapter: ViberAdapter
) -> None:
    stranger = viber.create_user("Stranger")
    hello = Content(kind=Kind.TEXT, text="hello")
    with pytest.raises(PermanentError) as not_subscribed:
        await adapter.send(to(stranger), hello)
    assert "not subscribed" in not_subscribed.value.reason
    viber.user_subscribe(TOKEN, stranger)
    viber.fail("send_message", 12)
    with pytest.raises(TransientError):
        await adapter.send(to(stranger), hello)
    viber.fail_http("send_message", 502)
    with pytest.raises(TransientError):
        await adapter.send(to(stranger), hello)
    viber.fail("send_message", 2)
    with pytest.raises(PermanentError) as token:
        await adapter.send(to(stranger), hello)
    assert "token" in token.value.reason
    huge = Upload(data=b"\x00" * (50 * 1024 * 1024 + 1), file_name="big.zip", url="http://x/y")
    doc = Content(kind=Kind.DOCUMENT, attachment=Attachment(account="tg", file_id="y"))
    with pytest.raises(PermanentError) as too_large:
        await adapter.send(to(stranger), doc, huge)
    assert "50 MB" in too_large.value.reason
    with pytest.raises(PermanentError):
        await adapter.edit_text(ChatId(stranger), MessageId("1"), hello)
    assert (await adapter.send(to(stranger), hello)).message_ids


async def test_customers_files_download_and_avatars(
    viber: ViberEmulator, adapter: ViberAdapter
) -> None:
    user = viber.create_user("Olga", avatar=PNG)
    said = viber.user_send(TOKEN, user, picture=PNG)
    got = await adapter.download(Attachment(account=ACCOUNT, file_id=said["media"]))
    assert got.data == PNG
    avatar = await adapter.avatar(user)
    assert avatar is not None and avatar.data == PNG
    plain = viber.create_user("Nina")
    assert await adapter.avatar(plain) is None


async def test_the_operator_can_be_the_sender(viber: ViberEmulator, adapter: ViberAdapter) -> None:
    user = viber.create_user("Ivan")
    viber.user_subscribe(TOKEN, user)
    hello = Content(kind=Kind.TEXT, text="hello")
    await adapter.send(to(user), hello, author="Anna from support, evening shift")
    adapter.settings = adapter.settings.model_copy(update={"operator_as_sender": True})
    await adapter.send(to(user), hello, author="Anna from support, evening shift")
    await adapter.send(to(user), hello)  # no known author: the bot's name
    names = [m["sender"]["name"] for m in viber.conversation(TOKEN, user)]
    assert names == ["Shop", "Anna from support, evening s", "Shop"]  # 28 characters
