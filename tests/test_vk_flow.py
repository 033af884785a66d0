"""End to end with a VK community: VK emulator ↔ gateway (vk_api, real Redis) ↔ staff
forum in the Telegram emulator. The Callback API is registered by the gateway itself."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from gateway.cli import set_webhooks
from gateway.sandbox.vk import VkEmulator
from gateway.store import keys
from tests.conftest import STAFF_CHAT, Running, StartGateway, World, eventually, text_of

GROUP = 229000001
TOKEN = "vk1.a.flow-token"
SECRET = "vk-callback-secret"
PNG = b"\x89PNG\r\n\x1a\n" + b"v" * 300


@pytest.fixture
async def vk() -> AsyncIterator[VkEmulator]:
    emulator = VkEmulator()
    await emulator.start()
    emulator.create_group(GROUP, TOKEN, "Shop", confirmation="c0nf1rm")
    try:
        yield emulator
    finally:
        await emulator.stop()


def with_vk(vk: VkEmulator, mode: str = "webhook") -> Callable[[dict[str, Any]], None]:
    def tweak(data: dict[str, Any]) -> None:
        channel = {
            "id": "vk_shop",
            "kind": "vk",
            "token": TOKEN,
            "group_id": GROUP,
            "api_server": vk.base_url,
            "mode": mode,
            "close_reasons": ["Solved"],
        }
        if mode == "webhook":
            channel["secret"] = SECRET
        data["channels"].append(channel)

    return tweak


async def inbound_count(running: Running) -> int:
    return await running.app.bus.depth(keys.INBOUND)


async def test_a_vk_conversation_end_to_end(
    world: World, start_gateway: StartGateway, vk: VkEmulator
) -> None:
    running = await start_gateway(tweak=with_vk(vk))
    await eventually(lambda: any(s["status"] == "ok" for s in vk.callback_servers(GROUP)))
    ivan = vk.create_user("Иван", "Петров", screen_name="ivan_p", photo=PNG)

    vk.user_send(GROUP, ivan, "Здравствуйте! Где мой заказ?")
    hello = await world.in_staff(lambda m: text_of(m) == "Здравствуйте! Где мой заказ?")
    topic = world.topic_of("Иван Петров · VK")
    assert hello["message_thread_id"] == topic
    header = [m for m in world.staff_messages(topic) if "👤 Иван Петров (@ivan_p)" in text_of(m)]
    assert header and "photo" in header[0]  # the VK avatar heads the topic
    assert f"https://vk.com/id{ivan}" in text_of(header[0])

    vk.user_send(GROUP, ivan, "вот чек", photo=PNG)
    receipt = await world.in_staff(lambda m: "photo" in m and text_of(m) == "вот чек")
    assert receipt["message_thread_id"] == topic

    vk.fail("messages.send", 10)  # VK's "internal server error", then a proxy's 502
    vk.fail_http("messages.send", 502)
    await world.operator_says(topic, text="Добрый день! Заказ в пути.")
    await eventually(
        lambda: any(m["text"] == "Добрый день! Заказ в пути." for m in vk.conversation(GROUP, ivan))
    )
    await world.operator_says(topic, photo=PNG, caption="трек-номер")
    await eventually(
        lambda: any(
            m["out"] == 1 and [a["type"] for a in m["attachments"]] == ["photo"]
            for m in vk.conversation(GROUP, ivan)
        )
    )
    outgoing = [m for m in vk.conversation(GROUP, ivan) if m["out"] == 1]
    assert len(outgoing) == 2  # each reply exactly once
    # Answering read the customer's messages (messages.markAsRead up to the latest).
    latest = max(m["id"] for m in vk.conversation(GROUP, ivan) if m["out"] == 0)
    await eventually(lambda: vk.read_up_to(GROUP, ivan) == latest)
    assert not await running.redis.exists(keys.dead_letters(keys.CUSTOMER_OUT))


async def test_denied_messages_are_shown_and_replies_not_lost_silently(
    world: World, start_gateway: StartGateway, vk: VkEmulator
) -> None:
    running = await start_gateway(tweak=with_vk(vk))
    await eventually(lambda: any(s["status"] == "ok" for s in vk.callback_servers(GROUP)))
    olga = vk.create_user("Ольга", "Смирнова")
    vk.user_send(GROUP, olga, "Здравствуйте")
    await world.in_staff(lambda m: text_of(m) == "Здравствуйте")
    topic = world.topic_of("Ольга Смирнова")

    vk.user_deny(GROUP, olga)
    await world.in_staff(lambda m: "denied messages" in text_of(m))
    await world.operator_says(topic, text="Ответ")
    failed = await world.in_staff(lambda m: "Not delivered" in text_of(m))
    assert "not allowed messages from the community" in text_of(failed)
    assert failed["message_thread_id"] == topic

    # Writing first (/new, the API) is refused with VK's rule while they deny it.
    contact = await running.app.pipeline.contacts.of_identity("vk_shop", str(olga))
    start = await world.emulator.user_sends(
        world.operator["id"], chat_id=STAFF_CHAT, text=f"/new #{contact}"
    )
    refused = text_of(await world.answer_to(start))
    assert "Cannot start it" in refused and "message_deny" in refused

    vk.user_allow(GROUP, olga)
    await world.in_staff(lambda m: "allowed messages" in text_of(m))
    await world.operator_says(topic, text="Ответ ещё раз")
    await eventually(
        lambda: any(m["text"] == "Ответ ещё раз" for m in vk.conversation(GROUP, olga))
    )
    start = await world.emulator.user_sends(
        world.operator["id"], chat_id=STAFF_CHAT, text=f"/new #{contact}"
    )
    assert f"t.me/c/5550000001/{topic}" in text_of(await world.answer_to(start))


async def test_callback_webhook_rejects_what_vk_did_not_send(
    world: World, start_gateway: StartGateway, vk: VkEmulator
) -> None:
    running = await start_gateway(tweak=with_vk(vk), workers=False)
    url = f"{running.url}/webhook/vk/vk_shop"
    event = {
        "type": "message_new",
        "event_id": "e1",
        "v": "5.199",
        "group_id": GROUP,
        "object": {
            "message": {"date": 1795460000, "from_id": 5, "id": 1, "peer_id": 5, "text": "hi"},
            "client_info": {},
        },
    }
    async with aiohttp.ClientSession() as http:

        async def post(body: Any, raw: bytes | None = None) -> tuple[int, str]:
            data = raw if raw is not None else json.dumps(body).encode()
            async with http.post(url, data=data) as response:
                return response.status, await response.text()

        assert await post({"type": "confirmation", "group_id": GROUP}) == (200, "c0nf1rm")
        assert (await post({**event, "secret": "wrong"}))[0] == 401
        assert (await post(event))[0] == 401  # no secret at all
        assert (await post({**event, "secret": SECRET, "group_id": 1}))[0] == 401
        assert (await post(None, b"{not json"))[0] == 400
        bad = {**event, "secret": SECRET, "object": {"message": {"from_id": "x"}}}
        assert (await post(bad))[0] == 400
        assert await inbound_count(running) == 0  # nothing enqueued by any of those
        assert await post({**event, "secret": SECRET}) == (200, "ok")
        assert await post({**event, "secret": SECRET}) == (200, "ok")  # VK retried it
        assert await inbound_count(running) == 1
        async with http.post(f"{running.url}/webhook/vk/nobody", data=b"{}") as response:
            assert response.status == 404


async def test_long_poll_mode_resumes_where_it_stopped(
    world: World, start_gateway: StartGateway, vk: VkEmulator
) -> None:
    first = await start_gateway(tweak=with_vk(vk, "polling"))
    # VK's long poll delivers what comes after the first getLongPollServer.
    await eventually(lambda: bool(vk.calls_of("groups.getLongPollServer")))
    nina = vk.create_user("Нина")
    vk.user_send(GROUP, nina, "первое")
    await world.in_staff(lambda m: text_of(m) == "первое")
    await first.stop()

    vk.user_send(GROUP, nina, "пока вы спали")  # the gateway is down
    await start_gateway(tweak=with_vk(vk, "polling"))
    await world.in_staff(lambda m: text_of(m) == "пока вы спали", timeout=15)
    assert [text_of(m) for m in world.staff_messages() if text_of(m) == "первое"] == ["первое"]


async def test_set_webhooks_registers_every_webhook_account_once(
    world: World, start_gateway: StartGateway, vk: VkEmulator
) -> None:
    running = await start_gateway(tweak=with_vk(vk))  # registered on start already
    await eventually(lambda: any(s["status"] == "ok" for s in vk.callback_servers(GROUP)))
    settings = running.settings.model_copy(
        update={"server": running.settings.server.model_copy(update={"public_url": running.url})}
    )
    ok, lines = await set_webhooks(settings)
    assert ok, lines
    assert f"vk_shop: {running.url}/webhook/vk/vk_shop" in lines
    assert f"tg_shop: {running.url}/webhook/telegram/tg_shop" in lines
    [server] = vk.callback_servers(GROUP)  # the same server again, not a second one
    assert server["url"] == f"{running.url}/webhook/vk/vk_shop" and server["status"] == "ok"
