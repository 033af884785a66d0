"""Customers' reactions (issue 10): a WhatsApp reaction to an operator's reply appears
as the staff bot's reaction on that reply in the topic (a reaction Telegram's list
lacks is said in text; one taken back is taken away), and it changes nothing in the
task."""

from __future__ import annotations

import json
from typing import Any

from gateway.sandbox.whatsapp import WhatsAppEmulator
from tests.conftest import CUSTOMER_TOKEN, StartGateway, World, eventually, text_of
from tests.test_whatsapp_flow import NUMBER, wa, with_wa

__all__ = ["wa"]  # a fixture of the WhatsApp tests, used here too


def bot_reactions(world: World, message_id: int) -> list[list[dict[str, Any]]]:
    """Every reaction list the staff bot set on a message, in order."""
    found = []
    for call in world.emulator.calls:
        if call.method.lower() != "setmessagereaction" or call.status != 200:
            continue
        if int(call.params.get("message_id", 0)) == message_id:
            reaction = call.params.get("reaction")
            found.append(json.loads(reaction) if isinstance(reaction, str) else reaction or [])
    return found


async def test_whatsapp_reactions_land_on_the_reply_in_the_topic(
    world: World, start_gateway: StartGateway, wa: WhatsAppEmulator
) -> None:
    running = await start_gateway(tweak=with_wa(wa))
    ivan = wa.create_user("Ivan", "79161234567")
    wa.user_send(NUMBER, ivan, "Где заказ?")
    topic = (await world.in_staff(lambda m: text_of(m) == "Где заказ?"))["message_thread_id"]
    reply = await world.operator_says(topic, text="Заказ в пути")
    await eventually(
        lambda: any(m.get("body") == "Заказ в пути" for m in wa.conversation(NUMBER, ivan))
    )
    sent = next(m for m in wa.conversation(NUMBER, ivan) if m.get("body") == "Заказ в пути")
    contact = await running.app.pipeline.contacts.of_identity("wa_shop", ivan)
    assert contact is not None
    before = await running.app.processes.current(contact)

    wa.user_send(NUMBER, ivan, reaction=(sent["id"], "❤️"))  # WhatsApp's heart has a VS16
    await eventually(
        lambda: [{"type": "emoji", "emoji": "❤"}] in bot_reactions(world, reply["message_id"])
    )
    wa.user_send(NUMBER, ivan, reaction=(sent["id"], "🫶"))  # not a reaction a bot may set
    said = await world.in_staff(lambda m: text_of(m) == "🫶 (a reaction)")
    assert (said.get("reply_to_message") or {}).get("message_id") == reply["message_id"]
    wa.user_send(NUMBER, ivan, reaction=(sent["id"], ""))  # taken back
    await eventually(lambda: bot_reactions(world, reply["message_id"])[-1] == [])
    assert await running.app.processes.current(contact) == before  # the task did not move


async def test_telegram_reactions_are_asked_for_and_shown(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway()
    ivan = world.customer("Ivan", "ivan")
    await world.say(ivan, text="Где заказ?")
    topic = (await world.in_staff(lambda m: text_of(m) == "Где заказ?"))["message_thread_id"]
    reply = await world.operator_says(topic, text="Заказ в пути")
    copy = await world.in_private(ivan, lambda m: text_of(m) == "Заказ в пути")
    await world.emulator.user_reacts(
        ivan["id"], ivan["id"], copy["message_id"], "🔥", bot_token=CUSTOMER_TOKEN
    )
    await eventually(
        lambda: [{"type": "emoji", "emoji": "🔥"}] in bot_reactions(world, reply["message_id"])
    )
