"""End to end with a Viber bot: the Viber emulator ↔ gateway (viberbot, real Redis) ↔
staff forum in the Telegram emulator. Outbound files are served by the gateway's own
signed /media URLs, which the emulator fetches like Viber does."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from gateway.sandbox.viber import ViberEmulator
from gateway.store import keys
from tests.conftest import STAFF_CHAT, StartGateway, World, eventually, text_of

TOKEN = "4f1b2c3d4e5f6a7b-viber-flow-token"
PNG = b"\x89PNG\r\n\x1a\n" + b"b" * 300


@pytest.fixture
async def viber() -> AsyncIterator[ViberEmulator]:
    emulator = ViberEmulator()
    await emulator.start()
    emulator.create_bot(TOKEN, "Shop")
    try:
        yield emulator
    finally:
        await emulator.stop()


def with_viber(viber: ViberEmulator) -> Callable[[dict[str, Any]], None]:
    def tweak(data: dict[str, Any]) -> None:
        data["channels"].append(
            {
                "id": "viber_shop",
                "kind": "viber",
                "token": TOKEN,
                "name": "Shop",
                "api_server": viber.base_url,
                "welcome": "Здравствуйте! Напишите, чем помочь.",
            }
        )

    return tweak


def outgoing(viber: ViberEmulator, user: str) -> list[dict[str, Any]]:
    return [m for m in viber.conversation(TOKEN, user) if m["direction"] == "out"]


async def test_a_viber_conversation_end_to_end(
    world: World, start_gateway: StartGateway, viber: ViberEmulator
) -> None:
    running = await start_gateway(tweak=with_viber(viber))
    assert viber.webhook_of(TOKEN) == f"{running.url}/webhook/viber/viber_shop"
    ivan = viber.create_user("Ivan Petrov", avatar=PNG)

    viber.user_open(TOKEN, ivan)  # the welcome is the answer to conversation_started
    await eventually(
        lambda: any("Напишите" in (m.get("text") or "") for m in outgoing(viber, ivan))
    )
    viber.user_send(TOKEN, ivan, "Здравствуйте! Где заказ?")
    await world.in_staff(lambda m: text_of(m) == "Здравствуйте! Где заказ?")
    topic = world.topic_of("Ivan Petrov · Viber")
    header = [m for m in world.staff_messages(topic) if "👤 Ivan Petrov" in text_of(m)]
    assert header and "photo" in header[0]  # the Viber avatar heads the topic

    viber.user_send(TOKEN, ivan, picture=PNG)
    await world.in_staff(
        lambda m: "photo" in m and m.get("message_thread_id") == topic and "👤" not in text_of(m)
    )
    viber.user_send(TOKEN, ivan, contact=("Ivan", "+79161234567"))
    await eventually(lambda: running.redis.exists(keys.phone("+79161234567")))

    reply = await world.operator_says(topic, text="Заказ в пути")
    await eventually(lambda: any(m.get("text") == "Заказ в пути" for m in outgoing(viber, ivan)))
    await eventually(lambda: world.reactions(reply["message_id"]) == ["👌"])  # delivered
    sent = next(m for m in outgoing(viber, ivan) if m.get("text") == "Заказ в пути")
    viber.user_sees(TOKEN, ivan, sent["message_token"])
    await eventually(lambda: world.reactions(reply["message_id"])[-1:] == ["👀"])

    await world.operator_says(topic, photo=PNG, caption="трек")
    await eventually(
        lambda: any(m["type"] == "picture" and m.get("media_bytes") for m in outgoing(viber, ivan))
    )
    picture = next(m for m in outgoing(viber, ivan) if m["type"] == "picture")
    assert picture["media"].startswith(f"{running.url}/media/")  # served by the gateway
    assert picture["media_bytes"] == PNG


async def test_unsubscribed_customers_are_shown_and_replies_fail_visibly(
    world: World, start_gateway: StartGateway, viber: ViberEmulator
) -> None:
    running = await start_gateway(tweak=with_viber(viber))
    olga = viber.create_user("Olga")
    viber.user_send(TOKEN, olga, "Здравствуйте")
    await world.in_staff(lambda m: text_of(m) == "Здравствуйте")
    topic = world.topic_of("Olga · Viber")
    viber.user_unsubscribe(TOKEN, olga)
    await world.in_staff(lambda m: "denied messages" in text_of(m))
    await world.operator_says(topic, text="Ответ")
    failed = await world.in_staff(lambda m: "Not delivered" in text_of(m))
    assert "not subscribed" in text_of(failed)
    # Writing first is refused with Viber's rule until they subscribe again.
    contact = await running.app.pipeline.contacts.of_identity("viber_shop", olga)
    start = await world.emulator.user_sends(
        world.operator["id"], chat_id=STAFF_CHAT, text=f"/new #{contact}"
    )
    refused = text_of(await world.answer_to(start))
    assert "Cannot start it" in refused and "unsubscribed from the bot" in refused


async def test_webhook_signatures_and_duplicates(
    world: World, start_gateway: StartGateway, viber: ViberEmulator
) -> None:
    running = await start_gateway(tweak=with_viber(viber), workers=False)
    url = f"{running.url}/webhook/viber/viber_shop"
    event = {
        "event": "message",
        "timestamp": 1795460000123,
        "chat_hostname": "SN-CHAT-05_",
        "message_token": 5741311803571721087,
        "sender": {"id": "01234567890A=", "name": "Ivan"},
        "message": {"type": "text", "text": "hi"},
    }
    body = json.dumps(event).encode()
    good = hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    async with aiohttp.ClientSession() as http:

        async def post(data: bytes, signature: str) -> int:
            headers = {"X-Viber-Content-Signature": signature}
            async with http.post(url, data=data, headers=headers) as response:
                return response.status

        assert await post(body, "0" * 64) == 401
        assert await post(body, "") == 401
        assert await running.app.bus.depth(keys.INBOUND) == 0
        assert await post(body, good) == 200
        assert await post(body, good) == 200  # Viber retried: stored once
        assert await running.app.bus.depth(keys.INBOUND) == 1
        broken = b'{"event": "message", "message_token": "x"}'
        signed = hmac.new(TOKEN.encode(), broken, hashlib.sha256).hexdigest()
        assert await post(broken, signed) == 400
