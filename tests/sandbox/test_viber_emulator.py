"""The Viber emulator's REST API over real loopback HTTP: the webhook and its check,
tokens, every message type of ``send_message``, its validation and statuses, users."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import pytest

from gateway.sandbox.viber import ViberEmulator
from tests.sandbox.viber_kit import (
    OTHER,
    PNG,
    SENDER,
    TOKEN,
    Api,
    Webhook,
    connected,
    subscriber,
)

# --- webhook ------------------------------------------------------------------------------


async def test_set_webhook_checks_the_url_with_a_signed_callback(
    viber: ViberEmulator, viber_api: Api, bot_server: Webhook
) -> None:
    url = await bot_server.start()
    answer = await viber_api.ok("set_webhook", url=url, event_types=["delivered", "seen"])
    assert answer["event_types"] == ["delivered", "seen", "subscribed", "unsubscribed"]
    [check] = bot_server.received
    assert check["event"] == "webhook" and check["chat_hostname"]
    assert check["message_token"] > 2**53 and check["timestamp"] > 1_600_000_000_000
    webhook = viber.webhook_settings(TOKEN)
    assert webhook is not None and (webhook.url, webhook.send_name) == (url, False)
    assert viber.webhook_of(TOKEN) == url
    info = await viber_api.ok("get_account_info")
    assert (info["name"], info["webhook"], info["id"][:3]) == ("Shop", url, "pa:")
    assert (await viber_api.ok("set_webhook", url=""))["event_types"] == []
    assert viber.webhook_of(TOKEN) is None


async def test_set_webhook_refuses_urls_that_do_not_answer_200(
    viber: ViberEmulator, viber_api: Api, bot_server: Webhook, viber_http: aiohttp.ClientSession
) -> None:
    url = await bot_server.start()
    bot_server.answer("webhook", (500, "oops"))
    refused = await viber_api("set_webhook", url=url)
    assert (refused["status"], refused["status_message"]) == (1, "invalidUrl")
    assert "500" in refused["details"]
    nobody = f"{bot_server.base}/nothing-here"  # 404 from the bot's server
    assert (await viber_api("set_webhook", url=nobody))["status"] == 1
    assert (await viber_api("set_webhook", url="https://example.com/hook"))["status"] == 1
    assert (await viber_api("set_webhook", url="not a url"))["status"] == 1
    assert (await viber_api("set_webhook"))["status"] == 4  # url missing
    assert (await viber_api("set_webhook", url=url, event_types=["typing"]))["status"] == 3
    assert viber.webhook_of(TOKEN) is None
    assert len(bot_server.events("webhook")) == 1  # remote and malformed URLs are never called


async def test_tokens_in_body_or_header(
    viber: ViberEmulator, viber_api: Api, viber_http: Any
) -> None:
    base = viber_api.base
    async with viber_http.post(f"{base}/get_account_info", data="{}") as response:
        assert json.loads(await response.text())["status"] == 2
    headers = {"X-Viber-Auth-Token": OTHER}
    async with viber_http.post(f"{base}/get_account_info", data="{}", headers=headers) as response:
        assert json.loads(await response.text())["name"] == "Other"
    body = json.dumps({"auth_token": TOKEN})  # the body wins over the header
    async with viber_http.post(f"{base}/get_account_info", data=body, headers=headers) as response:
        assert json.loads(await response.text())["name"] == "Shop"
    async with viber_http.post(
        f"{base}/get_account_info", data="{oops", headers=headers
    ) as response:
        assert json.loads(await response.text())["status"] == 3
    async with viber_http.post(f"{base}/no_such_endpoint", data=body) as response:
        assert response.status == 404
    assert all("auth_token" not in call.params for call in viber.calls)
    assert [c.status for c in viber.calls] == [2, 0, 0, 3]


# --- sending ------------------------------------------------------------------------------


async def test_every_message_type_is_accepted_and_delivered(
    viber: ViberEmulator, viber_api: Api, bot_server: Webhook
) -> None:
    await connected(viber_api, bot_server)
    user_id = await subscriber(viber)
    media = f"{bot_server.base}/media"
    keyboard = {"Type": "keyboard", "Buttons": [{"ActionType": "reply", "ActionBody": "yes"}]}
    messages: list[dict[str, Any]] = [
        {"type": "text", "text": "Hi " * 100, "tracking_data": "t1", "keyboard": keyboard},
        {"type": "picture", "text": "Look", "media": f"{media}/photo.png", "thumbnail": None},
        {"type": "video", "media": f"{media}/photo.png", "size": len(PNG), "duration": 3},
        {"type": "file", "media": f"{media}/doc.pdf", "size": 13, "file_name": "doc.pdf"},
        {"type": "sticker", "sticker_id": 46105},
        {"type": "contact", "contact": {"name": "Anna", "phone_number": "+79161234567"}},
        {"type": "location", "location": {"lat": 55.75, "lon": 37.61}},
        {"type": "url", "media": "https://example.com/order/42"},
        {"type": "rich_media", "rich_media": {"Type": "rich_media", "Buttons": [{"Text": "A"}]}},
        {"keyboard": keyboard, "min_api_version": 3},  # viberbot's KeyboardMessage: no type
    ]
    tokens = []
    for message in messages:
        answer = await viber_api.send(user_id, **message)
        assert (answer["status"], answer["chat_hostname"]) == (0, "SN-CHAT-05_"), answer
        tokens.append(answer["message_token"])
    await viber.callbacks_idle()
    sent = [m for m in viber.conversation(TOKEN, user_id) if m["direction"] == "out"]
    assert [m["message_token"] for m in sent] == tokens
    assert [m["type"] for m in sent] == [*(m.get("type") for m in messages[:-1]), "keyboard"]
    assert all(m["status"] == "delivered" for m in sent)
    assert sent[0]["keyboard"] == keyboard and sent[0]["tracking_data"] == "t1"
    assert sent[0]["sender"] == SENDER
    assert sent[1]["media_bytes"] == PNG and sent[3]["media_bytes"] == b"%PDF-1.4 fake"
    assert sent[5]["contact"] == messages[5]["contact"]
    assert sorted(d["message_token"] for d in bot_server.events("delivered")) == sorted(tokens)
    # tracking_data comes back with the customer's reply
    viber.user_send(TOKEN, user_id, "Yes")
    await viber.callbacks_idle()
    assert bot_server.events("message")[-1]["message"]["tracking_data"] == "t1"


async def test_message_tokens_are_big_integers_written_exactly(
    viber: ViberEmulator, viber_api: Api, bot_server: Webhook
) -> None:
    await connected(viber_api, bot_server)
    user_id = await subscriber(viber)
    status, text = await viber_api.raw("send_message", receiver=user_id, sender=SENDER, type="text",
                                 text="x")  # fmt: skip
    digits = re.search(r'"message_token": ?(\d+)', text)
    assert status == 200 and digits is not None
    token = json.loads(text)["message_token"]
    assert isinstance(token, int) and token > 2**53 and digits.group(1) == str(token)
    callback = bot_server.events("message")[0]
    raw_token = re.search(r'"message_token": ?(\d+)', callback["_raw"])
    assert raw_token is not None and int(raw_token.group(1)) == callback["message_token"] > 2**53


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ({"type": "text", "text": "x" * 7001}, "longer than 7000"),
        ({"type": "text"}, "text is required"),
        ({"type": "text", "text": ""}, "text must not be empty"),
        ({"type": "text", "text": "x", "sender": None}, "sender must be an object"),
        ({"type": "text", "text": "x", "sender": {"name": "N" * 29}}, "sender.name is longer"),
        ({"type": "text", "text": "x", "sender": {"avatar": "x"}}, "sender.name is required"),
        ({"type": "gif", "text": "x"}, "type must be one of"),
        ({"text": "x"}, "type is required"),
        ({"type": "picture", "text": "x"}, "media is required"),
        ({"type": "picture", "media": "ftp://x/y.png"}, "absolute http(s) URL"),
        ({"type": "picture", "media": "http://x/y.png", "text": "d" * 121}, "longer than 120"),
        ({"type": "video", "media": "http://x/v.mp4"}, "size is required"),
        ({"type": "file", "media": "http://x/a.exe", "size": 1, "file_name": "a.exe"}, ".exe"),
        ({"type": "sticker", "sticker_id": "smile"}, "sticker_id must be an integer"),
        ({"type": "contact", "contact": {"name": "A"}}, "contact.phone_number is required"),
        ({"type": "location", "location": {"lat": 91, "lon": 0}}, "location.lat"),
        ({"type": "rich_media", "rich_media": {"Buttons": []}}, "Buttons must be a non-empty"),
        ({"type": "text", "text": "x", "keyboard": {"Type": "keyboard"}}, "keyboard.Buttons"),
        ({"type": "text", "text": "x", "tracking_data": "t" * 4097}, "tracking_data"),
    ],
)
async def test_send_message_validation(
    viber: ViberEmulator, viber_api: Api, bot_server: Webhook, message: dict[str, Any], words: str
) -> None:
    await connected(viber_api, bot_server)
    user_id = await subscriber(viber)
    answer = await viber_api("send_message", receiver=user_id, **{"sender": SENDER, **message})
    assert (answer["status"], answer["status_message"]) == (3, "badData"), answer
    assert words in answer["details"]
    assert [m["direction"] for m in viber.conversation(TOKEN, user_id)] == ["in"]


async def test_receiver_and_webhook_statuses(
    viber: ViberEmulator, viber_api: Api, bot_server: Webhook
) -> None:
    stranger = viber.create_user("Stranger")
    text = {"type": "text", "text": "Hi"}
    assert (await viber_api.send(stranger, **text))["status"] == 10  # no webhook yet
    await connected(viber_api, bot_server)
    assert (await viber_api("send_message", sender=SENDER, **text))["status"] == 4
    unknown = await viber_api.send("AAAAAAAAAAAAAAAAAAAAAA==", **text)
    assert (unknown["status"], unknown["status_message"]) == (5, "receiverNotRegistered")
    viber.user_open(TOKEN, stranger)  # opening the chat does not subscribe
    refused = await viber_api.send(stranger, **text)
    assert (refused["status"], refused["status_message"]) == (6, "receiverNotSubscribed")
    user_id = await subscriber(viber)
    assert (await viber_api.send(user_id, **text))["status"] == 0
    viber.user_unsubscribe(TOKEN, user_id)
    assert (await viber_api.send(user_id, **text))["status"] == 6
    viber.user_send(TOKEN, user_id, "I'm back")  # writing subscribes again
    assert (await viber_api.send(user_id, **text))["status"] == 0
    old = viber.create_user("Old phone", api_version=2)
    viber.user_send(TOKEN, old, "hi")
    too_new = await viber_api.send(old, min_api_version=7, **text)
    assert (too_new["status"], too_new["status_message"]) == (13, "apiVersionNotSupported")


async def test_users_details_and_online(viber: ViberEmulator, viber_api: Api) -> None:
    user_id = viber.create_user("Olga", avatar=PNG, country="UA", language="uk")
    details = (await viber_api.ok("get_user_details", id=user_id))["user"]
    assert (details["id"], details["name"], details["country"]) == (user_id, "Olga", "UA")
    assert {"primary_device_os", "viber_version", "device_type", "api_version"} <= set(details)
    assert viber.file_bytes(details["avatar"]) == PNG
    assert (await viber_api("get_user_details", id="nobody"))["status"] == 5
    assert (await viber_api("get_user_details"))["status"] == 4
    viber.world.user(user_id).online = False
    online = (await viber_api.ok("get_online", ids=[user_id, "nobody"]))["users"]
    assert [u["online_status"] for u in online] == [1, 3] and "last_online" in online[0]
    assert len(user_id) == 24 and user_id.endswith("==")


async def test_request_size_limit(
    viber: ViberEmulator, viber_api: Api, bot_server: Webhook
) -> None:
    await connected(viber_api, bot_server)
    user_id = await subscriber(viber)
    cyrillic = {"type": "text", "text": "Я" * 7000}  # 42 KB as viberbot escapes it: accepted
    assert (await viber_api.send(user_id, **cyrillic))["status"] == 0
    buttons = [{"ActionBody": "x" * 1000, "Text": "y"} for _ in range(31)]
    rich = {"type": "rich_media", "rich_media": {"Type": "rich_media", "Buttons": buttons}}
    too_big = await viber_api.send(user_id, **rich)
    assert (too_big["status"], too_big["details"]) == (3, "the request is larger than 30 KB")


async def test_without_a_required_webhook_unit_tests_can_send() -> None:
    emulator = ViberEmulator(require_webhook=False, receipt_delay=0.5)
    emulator.create_bot(TOKEN, "Shop")
    base = await emulator.start()
    try:
        user_id = emulator.create_user("Olga")
        emulator.user_subscribe(TOKEN, user_id)  # no webhook: the callback goes nowhere
        async with aiohttp.ClientSession() as http:
            answer = await Api(http, base).send(user_id, type="text", text="Hi")
        assert answer["status"] == 0
        assert emulator.conversation(TOKEN, user_id)[-1]["status"] == "sent"  # for half a second
        delivered = await emulator.wait_for(
            lambda m: m["status"] == "delivered", token=TOKEN, user_id=user_id
        )
        assert delivered["message_token"] == answer["message_token"]
        assert emulator.callback_log == []
    finally:
        await emulator.stop()
