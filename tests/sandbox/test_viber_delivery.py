"""What happens after ``send_message`` and what people do, in the Viber emulator: media
downloads and receipts, opening the chat and the welcome message, subscriptions, retried
callbacks, faults, the viberbot client itself, and the console's control API."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from viberbot import Api as ViberbotApi
from viberbot import BotConfiguration
from viberbot.api.messages import ContactMessage, PictureMessage, TextMessage
from viberbot.api.messages.data_types.contact import Contact

from gateway.sandbox.viber import ViberEmulator, sign
from tests.sandbox.viber_kit import (
    PNG,
    TOKEN,
    Api,
    Webhook,
    connected,
    subscriber,
)

# --- media --------------------------------------------------------------------------------


async def test_media_is_fetched_then_delivered(
    viber: ViberEmulator, viber_api: Api, bot_server: Webhook, viber_http: aiohttp.ClientSession
) -> None:
    await connected(viber_api, bot_server)
    user_id = await subscriber(viber)
    media = f"{bot_server.base}/media/photo.png"
    token = (await viber_api.send(user_id, type="picture", text="Your order", media=media))[
        "message_token"
    ]
    delivered = await viber.wait_for(
        lambda m: m["message_token"] == token and m["status"] == "delivered",
        token=TOKEN,
        user_id=user_id,
    )
    assert delivered["media"] == media and delivered["media_bytes"] == PNG
    async with viber_http.get(delivered["local_url"]) as response:  # the console shows this copy
        assert response.status == 200 and await response.read() == PNG
    await viber.callbacks_idle()
    [receipt] = bot_server.events("delivered")
    assert (receipt["message_token"], receipt["user_id"]) == (token, user_id)


async def test_failed_media_downloads_become_failed_callbacks(
    viber: ViberEmulator, viber_api: Api, bot_server: Webhook
) -> None:
    await connected(viber_api, bot_server)
    user_id = await subscriber(viber)
    viber.callbacks.media_timeout = 0.2
    urls = {
        "missing": f"{bot_server.base}/media/gone.png",
        "slow": f"{bot_server.base}/media/slow.png",
        "remote": "https://cdn.example.com/photo.png",
    }
    tokens = {}
    for name, url in urls.items():
        tokens[name] = (await viber_api.send(user_id, type="picture", media=url))["message_token"]
    await viber.callbacks_idle()
    failed = {f["message_token"]: f for f in bot_server.events("failed")}
    assert "HTTP 404" in failed[tokens["missing"]]["desc"]
    assert "timed out" in failed[tokens["slow"]]["desc"]
    assert "only downloads from this machine" in failed[tokens["remote"]]["desc"]
    assert all(f["user_id"] == user_id for f in failed.values())
    assert bot_server.events("delivered") == []
    statuses = [m["status"] for m in viber.conversation(TOKEN, user_id) if m["direction"] == "out"]
    assert statuses == ["failed"] * 3


# --- people -------------------------------------------------------------------------------


async def test_conversation_started_and_the_welcome_message(
    viber: ViberEmulator, viber_api: Api, bot_server: Webhook
) -> None:
    await connected(viber_api, bot_server)
    welcome = {"type": "text", "text": "Welcome to the shop!", "sender": {"name": "Shop"}}
    invalid = {"type": "text", "sender": {"name": "Shop"}}
    bot_server.answer(
        "conversation_started", (200, json.dumps(welcome)), (200, json.dumps(invalid))
    )
    user_id = viber.create_user("Olga")
    sent = viber.user_open(TOKEN, user_id, context="ad-42")
    await viber.callbacks_idle()
    [callback] = bot_server.events("conversation_started")
    assert callback["message_token"] == sent["message_token"] > 2**53
    assert (callback["type"], callback["context"], callback["subscribed"]) == (
        "open",
        "ad-42",
        False,
    )
    assert callback["user"]["id"] == user_id and callback["user"]["name"] == "Olga"
    [stored] = viber.conversation(TOKEN, user_id)
    assert (stored["direction"], stored["text"], stored["welcome"]) == (
        "out",
        "Welcome to the shop!",
        True,
    )
    viber.user_open(TOKEN, user_id)  # the second answer is not a valid message
    await viber.callbacks_idle()
    assert len(viber.conversation(TOKEN, user_id)) == 1
    assert "text is required" in viber.callback_log[-1]["error"]
    assert not viber.is_subscribed(TOKEN, user_id)


async def test_subscribe_unsubscribe_and_seen(
    viber: ViberEmulator, viber_api: Api, bot_server: Webhook
) -> None:
    await connected(viber_api, bot_server)
    user_id = viber.create_user("Olga", avatar=PNG)
    viber.user_subscribe(TOKEN, user_id)
    with pytest.raises(ValueError, match="already subscribed"):
        viber.user_subscribe(TOKEN, user_id)
    token = (await viber_api.send(user_id, type="text", text="Thanks!"))["message_token"]
    await viber.callbacks_idle()
    seen = viber.user_sees(TOKEN, user_id, token)
    assert seen["status"] == "seen"
    viber.user_unsubscribe(TOKEN, user_id)
    await viber.callbacks_idle()
    events = [body["event"] for body in bot_server.received]
    assert events == ["webhook", "subscribed", "delivered", "seen", "unsubscribed"]
    subscribed, unsubscribed = (
        bot_server.events("subscribed")[0],
        bot_server.events("unsubscribed")[0],
    )
    assert subscribed["user"]["id"] == user_id and viber.file_bytes(subscribed["user"]["avatar"])
    assert subscribed["message_token"] > 2**53 and unsubscribed["user_id"] == user_id
    assert bot_server.events("seen")[0]["message_token"] == token
    with pytest.raises(ValueError, match="not subscribed"):
        viber.user_unsubscribe(TOKEN, user_id)


async def test_without_auto_deliver_seen_reports_delivered_first(
    viber: ViberEmulator, viber_api: Api, bot_server: Webhook
) -> None:
    await connected(viber_api, bot_server)
    user_id = await subscriber(viber)
    viber.auto_deliver = False
    token = (await viber_api.send(user_id, type="text", text="Hi"))["message_token"]
    await viber.callbacks_idle()
    assert viber.conversation(TOKEN, user_id)[-1]["status"] == "sent"
    viber.user_sees(TOKEN, user_id, token)
    await viber.callbacks_idle()
    assert [b["event"] for b in bot_server.received[-2:]] == ["delivered", "seen"]


async def test_names_and_photos_only_when_the_webhook_asks(
    viber: ViberEmulator, viber_api: Api, bot_server: Webhook
) -> None:
    await viber_api.ok("set_webhook", url=await bot_server.start())  # as viberbot sets it
    user_id = viber.create_user("Olga", avatar=PNG)
    viber.user_send(TOKEN, user_id, "Hello")
    await viber.callbacks_idle()
    sender = bot_server.events("message")[0]["sender"]
    assert sender["name"] == "Subscriber" and "avatar" not in sender


async def test_customers_media_are_served_by_the_emulator(
    viber: ViberEmulator, viber_api: Api, bot_server: Webhook, viber_http: aiohttp.ClientSession
) -> None:
    await connected(viber_api, bot_server)
    user_id = viber.create_user("Olga")
    viber.user_send(TOKEN, user_id, "My receipt", picture=PNG)
    viber.user_send(TOKEN, user_id, file=("invoice.pdf", b"%PDF"))
    viber.user_send(TOKEN, user_id, contact=("Anna", "+79160000000"))
    viber.user_send(TOKEN, user_id, location=(55.75, 37.61))
    viber.user_send(TOKEN, user_id, sticker_id=40100)
    viber.user_send(TOKEN, user_id, rich_media=True)
    await viber.callbacks_idle()
    bodies = [b["message"] for b in bot_server.events("message")]
    assert [b["type"] for b in bodies] == [
        "picture",
        "file",
        "contact",
        "location",
        "sticker",
        "rich_media",
    ]
    async with viber_http.get(bodies[0]["media"]) as response:
        assert await response.read() == PNG
    assert (bodies[0]["text"], bodies[0]["size"]) == ("My receipt", len(PNG))
    assert (bodies[1]["file_name"], bodies[1]["size"]) == ("invoice.pdf", 4)
    assert viber.file_bytes(bodies[1]["media"]) == b"%PDF"
    assert bodies[2]["contact"] == {"name": "Anna", "phone_number": "+79160000000"}
    assert bodies[3]["location"] == {"lat": 55.75, "lon": 37.61}
    assert bodies[4]["sticker_id"] == 40100 and bodies[4]["media"].endswith(".png")
    with pytest.raises(ValueError, match="one kind of message"):
        viber.user_send(TOKEN, user_id, picture=PNG, sticker_id=1)


# --- delivery, faults ---------------------------------------------------------------------


async def test_callbacks_are_retried_until_200(
    viber: ViberEmulator, viber_api: Api, bot_server: Webhook
) -> None:
    await connected(viber_api, bot_server)
    bot_server.answer("message", (500, "busy"), (503, "busy"), (200, ""), *[(502, "down")] * 4)
    user_id = viber.create_user("Olga")
    first = viber.user_send(TOKEN, user_id, "first")  # accepted at the third attempt
    second = viber.user_send(TOKEN, user_id, "second")  # refused four times: dropped
    third = viber.user_send(TOKEN, user_id, "third")
    await viber.callbacks_idle()
    attempts = [
        (e["message_token"], e["attempt"], e["status"])
        for e in viber.callback_log
        if e["event"] == "message"
    ]
    tokens = [m["message_token"] for m in (first, second, third)]
    assert attempts == [
        (tokens[0], 1, 500),
        (tokens[0], 2, 503),
        (tokens[0], 3, 200),
        *[(tokens[1], n, 502) for n in range(1, 5)],
        (tokens[2], 1, 200),
    ]
    for entry in viber.callback_log:
        raw = json.dumps(entry["payload"], ensure_ascii=False).encode()
        assert entry["signature"] == sign(TOKEN, raw)


async def test_injected_statuses_http_errors_and_rate_limit(
    viber: ViberEmulator, viber_api: Api, bot_server: Webhook
) -> None:
    await connected(viber_api, bot_server)
    user_id = await subscriber(viber)
    text = {"type": "text", "text": "Hi"}
    viber.fail("send_message", 12, times=2)
    for _ in range(2):
        busy = await viber_api.send(user_id, **text)
        assert (busy["status"], busy["status_message"]) == (12, "tooManyRequests")
    assert (await viber_api.send(user_id, **text))["status"] == 0
    viber.fail_http("*", 502)
    status, page = await viber_api.raw("get_account_info")
    assert status == 502 and "<html>" in page
    viber.rate_limit = 1
    answers = [(await viber_api("get_account_info"))["status"] for _ in range(3)]
    assert answers[0] == 0 and 12 in answers[1:]
    viber.rate_limit = None
    with pytest.raises(ValueError, match="Viber error status"):
        viber.fail("send_message", 0)
    assert [c["receiver"] for c in viber.calls_of("send_message")] == [user_id] * 3


async def test_viberbot_client_against_the_emulator(
    viber: ViberEmulator, bot_server: Webhook
) -> None:
    url = await bot_server.start()
    bot = ViberbotApi(BotConfiguration(auth_token=TOKEN, name="Shop", avatar=None))
    assert viber.base_url is not None
    bot._request_sender._viber_bot_api_url = viber.base_url
    events = await asyncio.to_thread(bot.set_webhook, url, ["delivered", "failed"])
    assert "delivered" in events
    user_id = await subscriber(viber)
    [callback] = bot_server.events("message")
    assert bot.verify_signature(callback["_raw"].encode(), callback["_signature"])
    request = bot.parse_request(callback["_raw"])
    assert (request.sender.id, request.message.text) == (user_id, "Hello")
    messages = [
        TextMessage(text="Hello, Olga"),
        PictureMessage(media=f"{bot_server.base}/media/photo.png", text="Photo"),
        ContactMessage(contact=Contact(name="Shop", phone_number="+78000000000")),
    ]
    tokens = await asyncio.to_thread(bot.send_messages, user_id, messages)
    await viber.callbacks_idle()
    out = [m for m in viber.conversation(TOKEN, user_id) if m["direction"] == "out"]
    assert [m["message_token"] for m in out] == tokens
    assert [m["status"] for m in out] == ["delivered"] * 3
    assert out[1]["media_bytes"] == PNG
    details = await asyncio.to_thread(bot.get_user_details, user_id)
    assert details["name"] == "Olga"


async def test_control_api_for_the_console(
    viber: ViberEmulator, viber_api: Api, bot_server: Webhook, viber_http: aiohttp.ClientSession
) -> None:
    await connected(viber_api, bot_server)
    control = f"{viber_api.base}/_control"
    async with viber_http.get(f"{control}/state") as response:
        state = await response.json()
    assert TOKEN not in json.dumps(state)
    bot_id = state["bots"][0]["id"]
    async with viber_http.post(f"{control}/users", json={"name": "Olga"}) as response:
        user_id = (await response.json())["id"]
    for route, body in [
        ("open", {}),
        ("subscribe", {}),
        ("send", {"text": "Hi"}),
        ("send", {"contact": {"name": "Olga", "phone_number": "+7916"}}),
        ("send", {"kind": "picture", "file": {"name": "p.png", "content_b64": "iVBORw=="}}),
    ]:
        async with viber_http.post(
            f"{control}/{route}", json={"bot_id": bot_id, "user_id": user_id, **body}
        ) as response:
            assert response.status == 200, await response.text()
    token = (await viber_api.send(user_id, type="text", text="Hello"))["message_token"]
    await viber.callbacks_idle()
    seen = {"bot_id": bot_id, "user_id": user_id, "message_token": str(token)}
    async with viber_http.post(f"{control}/seen", json=seen) as response:
        assert (await response.json())["status"] == "seen"
    query = {"bot_id": bot_id, "user_id": user_id}
    async with viber_http.get(f"{control}/conversation", params=query) as response:
        chat = await response.json()
    assert chat["subscribed"] and chat["opened"]
    assert chat["messages"][-1]["message_token_str"] == str(token)
    assert [m["type"] for m in chat["messages"]] == ["text", "contact", "picture", "text"]
    async with viber_http.get(
        f"{control}/events", params={"after": "0", "timeout": "0"}
    ) as response:
        kinds = {event["type"] for event in (await response.json())["events"]}
    assert {"webhook", "conversation_started", "subscribed", "message", "status"} <= kinds
    async with viber_http.post(f"{control}/send", json={**query, "sticker_id": "x"}) as response:
        assert response.status == 400
