"""An operator corrects or takes back a reply (issue 10): an edit in the topic edits the
customer's copy where the messenger can (Telegram, VK), else it goes as a correction
(Viber); ``/delete`` removes it where the messenger can, or says why not."""

from __future__ import annotations

from typing import Any

from gateway.sandbox.viber import ViberEmulator
from gateway.sandbox.vk import VkEmulator
from tests.conftest import (
    CUSTOMER_TOKEN,
    OPERATOR_ID,
    STAFF_CHAT,
    StartGateway,
    World,
    eventually,
    text_of,
)
from tests.test_viber_flow import TOKEN as VIBER_TOKEN
from tests.test_viber_flow import viber, with_viber
from tests.test_vk_flow import GROUP, vk, with_vk

__all__ = ["viber", "vk"]  # fixtures of those tests, used here too


def received(world: World, user: dict[str, Any]) -> list[str]:
    """What the customer sees from the shop's bot now (deleted messages are gone)."""
    return [text_of(m) for m in world.emulator.messages(user["id"], bot_token=CUSTOMER_TOKEN)]


async def test_telegram_edits_and_deletions_reach_the_customer(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway()
    ivan = world.customer("Ivan", "ivan")
    await world.say(ivan, text="Сколько стоит?")
    asked = await world.in_staff(lambda m: text_of(m) == "Сколько стоит?")
    topic = asked["message_thread_id"]

    reply = await world.operator_says(topic, text="Цена 100 ₽")
    await eventually(lambda: "Цена 100 ₽" in received(world, ivan))
    await world.emulator.user_edits(OPERATOR_ID, STAFF_CHAT, reply["message_id"], text="Цена 200 ₽")
    await eventually(lambda: "Цена 200 ₽" in received(world, ivan))
    assert "Цена 100 ₽" not in received(world, ivan)  # edited in place, not a second message

    # An edited note stays a note.
    note = await world.operator_says(topic, text="!позвонить завтра")
    await world.emulator.user_edits(OPERATOR_ID, STAFF_CHAT, note["message_id"], text="!позвонить")

    refused = await world.operator_says(topic, text="/delete")
    assert "works as a reply to your own message" in text_of(await world.answer_to(refused))
    on_customer = await world.operator_says(
        topic, text="/delete", reply_to_message_id=asked["message_id"]
    )
    assert "your own message" in text_of(await world.answer_to(on_customer))
    deleted = await world.operator_says(
        topic, text="/delete", reply_to_message_id=reply["message_id"]
    )
    assert text_of(await world.answer_to(deleted)) == "🗑 Deleted for the customer."
    assert "Цена 200 ₽" not in received(world, ivan)
    assert not any(t.startswith("!позвонить") for t in received(world, ivan))


async def test_vk_edits_in_place_and_deletes_for_everyone(
    world: World, start_gateway: StartGateway, vk: VkEmulator
) -> None:
    await start_gateway(tweak=with_vk(vk))
    await eventually(lambda: any(s["status"] == "ok" for s in vk.callback_servers(GROUP)))
    olga = vk.create_user("Ольга", "Смирнова")
    vk.user_send(GROUP, olga, "Здравствуйте")
    topic = (await world.in_staff(lambda m: text_of(m) == "Здравствуйте"))["message_thread_id"]

    def outgoing() -> list[str]:
        return [m["text"] for m in vk.conversation(GROUP, olga) if m["out"] == 1]

    reply = await world.operator_says(topic, text="Заказ 123")
    await eventually(lambda: outgoing() == ["Заказ 123"])
    await world.emulator.user_edits(OPERATOR_ID, STAFF_CHAT, reply["message_id"], text="Заказ 124")
    await eventually(lambda: outgoing() == ["Заказ 124"])
    deleted = await world.operator_says(
        topic, text="/delete", reply_to_message_id=reply["message_id"]
    )
    assert text_of(await world.answer_to(deleted)) == "🗑 Deleted for the customer."
    assert outgoing() == []


async def test_viber_gets_a_correction_and_cannot_delete(
    world: World, start_gateway: StartGateway, viber: ViberEmulator
) -> None:
    await start_gateway(tweak=with_viber(viber))
    olga = viber.create_user("Olga")
    viber.user_send(VIBER_TOKEN, olga, "Здравствуйте")
    topic = (await world.in_staff(lambda m: text_of(m) == "Здравствуйте"))["message_thread_id"]

    def got() -> list[str]:
        return [
            m.get("text") or ""
            for m in viber.conversation(VIBER_TOKEN, olga)
            if m["direction"] == "out"
        ]

    reply = await world.operator_says(topic, text="Доставка в среду")
    await eventually(lambda: "Доставка в среду" in got())
    await world.emulator.user_edits(
        OPERATOR_ID, STAFF_CHAT, reply["message_id"], text="Доставка в четверг"
    )
    told = await world.in_staff(lambda m: "cannot edit sent messages" in text_of(m))
    assert "correction as a new message" in text_of(told)
    assert told["message_thread_id"] == topic
    assert "✏️ Correction: Доставка в четверг" in got()
    deleted = await world.operator_says(
        topic, text="/delete", reply_to_message_id=reply["message_id"]
    )
    assert "viber cannot delete sent messages" in text_of(await world.answer_to(deleted))
