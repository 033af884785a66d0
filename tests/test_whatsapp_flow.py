"""End to end with WhatsApp: the Cloud API emulator ↔ gateway (aiohttp, real Redis) ↔
staff forum in the Telegram emulator, including the 24-hour window and templates."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from gateway.jobs import CustomerSend
from gateway.model import AccountId, ChatId, ContactId, Content, Destination, Kind, MessageId
from gateway.sandbox.whatsapp import WhatsAppEmulator
from gateway.store import keys
from gateway.store.messages import MessageRef
from tests.conftest import STAFF_CHAT, Clock, StartGateway, World, eventually, text_of

NUMBER = "106540352242922"
TOKEN = "EAAG-wa-test-token"
APP_SECRET = "wa-app-secret"
VERIFY = "wa-verify-token"
PNG = b"\x89PNG\r\n\x1a\n" + b"w" * 300
MSK = ZoneInfo("Europe/Moscow")


@pytest.fixture
async def wa() -> AsyncIterator[WhatsAppEmulator]:
    emulator = WhatsAppEmulator()
    await emulator.start()
    emulator.create_number(NUMBER, "15550783881", TOKEN, app_secret=APP_SECRET)
    emulator.create_template("order_ready", "en_US", "Hello {{1}}, your order {{2}} is ready")
    try:
        yield emulator
    finally:
        await emulator.stop()


def with_wa(wa: WhatsAppEmulator) -> Callable[[dict[str, Any]], None]:
    def tweak(data: dict[str, Any]) -> None:
        data["channels"].append(
            {
                "id": "wa_shop",
                "kind": "whatsapp",
                "token": TOKEN,
                "phone_number_id": NUMBER,
                "app_secret": APP_SECRET,
                "verify_token": VERIFY,
                "api_server": wa.base_url,
                "templates": [
                    {
                        "name": "order_ready",
                        "parameters": 2,
                        "text": "Hello {{1}}, your order {{2}} is ready",
                    }
                ],
            }
        )

    return tweak


async def wa_says(
    world: World, wa: WhatsAppEmulator, text: str, name: str = "Ivan", number: str = "79161234567"
) -> tuple[str, dict[str, Any]]:
    """A new WhatsApp customer writes ``text``: their id, and its copy in the staff topic."""
    user = wa.create_user(name, number)
    wa.user_send(NUMBER, user, text)
    return user, await world.in_staff(lambda m: text_of(m) == text)


def subscribed(wa: WhatsAppEmulator) -> None:
    """go_live pointed the number's webhooks at the gateway (after Meta's GET check)."""
    [override] = wa.calls_of("number_update")
    assert override["webhook_configuration"]["override_callback_uri"].endswith(
        "/webhook/whatsapp/wa_shop"
    )


async def test_a_whatsapp_conversation_with_marks_and_media(
    world: World, start_gateway: StartGateway, wa: WhatsAppEmulator
) -> None:
    running = await start_gateway(tweak=with_wa(wa))
    subscribed(wa)
    ivan = wa.create_user("Ivan Petrov", "79161234567")

    wa.user_send(NUMBER, ivan, "Здравствуйте! Где заказ?")
    await world.in_staff(lambda m: text_of(m) == "Здравствуйте! Где заказ?")
    topic = world.topic_of("Ivan Petrov · WhatsApp")
    contact = await running.redis.get(keys.phone("+79161234567"))
    assert contact is not None  # the wa_id is a phone: it is the contact's

    wa.user_send(NUMBER, ivan, image=PNG, caption="чек")
    await world.in_staff(lambda m: "photo" in m and text_of(m) == "чек")

    reply = await world.operator_says(topic, text="Заказ в пути")
    await eventually(
        lambda: any(m.get("body") == "Заказ в пути" for m in wa.conversation(NUMBER, ivan))
    )
    sent = next(m for m in wa.conversation(NUMBER, ivan) if m.get("body") == "Заказ в пути")
    await eventually(lambda: world.reactions(reply["message_id"]) == ["👌"])  # delivered
    # Answering read the customer's messages: blue ticks on their latest one.
    await eventually(lambda: len(wa.read_marks(NUMBER)) == 1)
    wa.user_reads(NUMBER, ivan, sent["id"])
    await eventually(lambda: world.reactions(reply["message_id"])[-1:] == ["👀"])

    await world.operator_says(topic, photo=PNG, caption="трек")
    await eventually(
        lambda: any(
            m.get("type") == "image" and m.get("direction") == "out"
            for m in wa.conversation(NUMBER, ivan)
        )
    )


async def test_the_24_hour_window_and_templates(
    world: World, start_gateway: StartGateway, wa: WhatsAppEmulator
) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))
    await start_gateway(tweak=with_wa(wa), clock=clock)
    subscribed(wa)
    olga = wa.create_user("Olga", "79031112233")
    wa.user_send(NUMBER, olga, "Здравствуйте")
    await world.in_staff(lambda m: text_of(m) == "Здравствуйте")
    topic = world.topic_of("Olga · WhatsApp")

    clock.now += timedelta(hours=25)
    wa.advance(25 * 3600)

    def sends() -> int:
        return sum(1 for body in wa.calls_of("messages") if "type" in body)

    before = sends()
    await world.operator_says(topic, text="Вы тут?")
    refused = await world.in_staff(lambda m: "Not delivered" in text_of(m))
    assert "24 hours" in text_of(refused) and "order_ready" in text_of(refused)
    assert sends() == before  # refused before calling the API

    listing = await world.operator_says(topic, text="/template")
    answer = await world.answer_to(listing)
    assert "/template order_ready <1> <2>" in text_of(answer)
    wrong = await world.operator_says(topic, text="/template order_ready Olga")
    assert "takes 2 parameter(s)" in text_of(await world.answer_to(wrong))
    await world.operator_says(topic, text='/template order_ready Olga "48213 (2 шт.)"')
    await eventually(
        lambda: any(m.get("type") == "template" for m in wa.conversation(NUMBER, olga))
    )
    template = next(m for m in wa.conversation(NUMBER, olga) if m.get("type") == "template")
    assert template["template"]["name"] == "order_ready"
    assert template["template"]["params"] == ["Olga", "48213 (2 шт.)"]


async def test_webhook_verification_and_signatures(
    world: World, start_gateway: StartGateway, wa: WhatsAppEmulator
) -> None:
    running = await start_gateway(tweak=with_wa(wa), workers=False)
    url = f"{running.url}/webhook/whatsapp/wa_shop"
    body = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
    good = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    async with aiohttp.ClientSession() as http:
        query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": VERIFY}
        async with http.get(url, params=query) as response:
            assert response.status == 200 and await response.text() == "1158201444"
        async with http.get(url, params=query | {"hub.verify_token": "wrong"}) as response:
            assert response.status == 403
        async with http.post(url, data=body, headers={"X-Hub-Signature-256": "sha256=00"}) as r:
            assert r.status == 401
        async with http.post(url, data=body, headers={"X-Hub-Signature-256": good}) as r:
            assert r.status == 200
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": NUMBER},
            "contacts": [{"profile": {"name": "Ivan"}, "wa_id": "79161234567"}],
            "messages": [
                {
                    "from": "79161234567",
                    "id": "wamid.DUP",
                    "timestamp": "1795460000",
                    "type": "text",
                    "text": {"body": "hi"},
                }
            ],
        }
        change = {"field": "messages", "value": value}
        once = json.dumps(
            {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}
        ).encode()
        sign_once = "sha256=" + hmac.new(APP_SECRET.encode(), once, hashlib.sha256).hexdigest()
        for _ in range(2):  # Meta retries for days: the second delivery is a duplicate
            async with http.post(url, data=once, headers={"X-Hub-Signature-256": sign_once}) as r:
                assert r.status == 200
        assert await running.app.bus.depth(keys.INBOUND) == 1
        bad = b'{"object": "page"}'
        sign = "sha256=" + hmac.new(APP_SECRET.encode(), bad, hashlib.sha256).hexdigest()
        async with http.post(url, data=bad, headers={"X-Hub-Signature-256": sign}) as r:
            assert r.status == 400
    assert await running.app.bus.depth(keys.INBOUND) == 1  # only the good one, once


async def test_a_status_that_overtakes_the_send_is_parked_then_shown(
    world: World, start_gateway: StartGateway, wa: WhatsAppEmulator
) -> None:
    running = await start_gateway(tweak=with_wa(wa))
    ivan = wa.create_user("Ivan", "79161234567")
    wa.user_send(NUMBER, ivan, "Здравствуйте")
    hello = await world.in_staff(lambda m: text_of(m) == "Здравствуйте")
    status = {
        "id": "wamid.NOT-LINKED-YET",
        "status": "delivered",
        "timestamp": "1795460000",
        "recipient_id": ivan,
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": NUMBER},
        "statuses": [status],
    }
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }
    app = running.app
    await app.ingest.accept(app.customers["wa_shop"], payload)
    key = keys.message("wa_shop", ivan, "wamid.NOT-LINKED-YET")
    await eventually(lambda: app.redis.hexists(key, "parked"))

    # Delivery now stores the send's link (as after a real send), then applies it.
    customer = MessageRef(AccountId("wa_shop"), ChatId(ivan), MessageId("wamid.NOT-LINKED-YET"))
    staff = MessageRef(
        AccountId("staff"), ChatId(str(STAFF_CHAT)), MessageId(str(hello["message_id"]))
    )
    await app.redis.hset(
        key, mapping={"account": "staff", "chat": staff.chat_id, "message": staff.message_id}
    )
    contact = ContactId((await app.redis.get(keys.identity("wa_shop", ivan))).decode())
    job = CustomerSend(
        out_id="reply:test",
        contact_id=contact,
        destination=Destination(account=AccountId("wa_shop"), chat_id=ChatId(ivan)),
        content=Content(kind=Kind.TEXT, text="x"),
        staff_chat=str(STAFF_CHAT),
        staff_message=staff.message_id,
        operator_id="1",
        created_at=0,
    )
    await app.delivery._parked_receipt(customer, staff, job)
    await eventually(lambda: world.reactions(hello["message_id"]) == ["👌"])
    assert not await app.redis.hexists(key, "parked")
