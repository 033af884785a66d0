"""Customers' reactions (issue 10): a WhatsApp reaction to an operator's reply appears
as the staff bot's reaction on that reply in the topic (a reaction Telegram's list
lacks is said in text; one taken back is taken away), and it changes nothing in the
task."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from gateway.sandbox.viber import ViberEmulator
from gateway.sandbox.whatsapp import WhatsAppEmulator
from tests.conftest import CUSTOMER_TOKEN, STAFF_CHAT, StartGateway, World, eventually, text_of
from tests.test_viber_flow import TOKEN as VIBER_TOKEN
from tests.test_viber_flow import outgoing, viber, with_viber
from tests.test_whatsapp_flow import NUMBER, wa, wa_says, with_wa

__all__ = ["viber", "wa"]  # fixtures of the Viber and WhatsApp tests, used here too


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
    ivan, asked = await wa_says(world, wa, "Где заказ?")
    topic = asked["message_thread_id"]
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


def wa_and_viber(wa: WhatsAppEmulator, viber: ViberEmulator) -> Callable[[dict[str, Any]], None]:
    """A config tweak adding both a WhatsApp number and a Viber bot."""

    def both(data: dict[str, Any]) -> None:
        with_wa(wa)(data)
        with_viber(viber)(data)

    return both


def customer_bot_reactions(world: World, chat_id: int, message_id: int) -> list[list[Any]]:
    """Every reaction list the customer bot set on a customer's message, in order."""
    found = []
    for call in world.emulator.calls_of("setMessageReaction", CUSTOMER_TOKEN):
        params = call.params
        if call.status == 200 and (int(params["chat_id"]), int(params["message_id"])) == (
            chat_id,
            message_id,
        ):
            reaction = params.get("reaction")
            found.append(json.loads(reaction) if isinstance(reaction, str) else reaction or [])
    return found


async def test_an_operators_reaction_reaches_the_telegram_customer(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway()
    ivan = world.customer("Ivan", "ivan")
    asked = await world.say(ivan, text="Можно оплатить картой?")
    copy = await world.in_staff(lambda m: text_of(m) == "Можно оплатить картой?")
    card = await world.in_staff(lambda m: text_of(m).startswith("📋"))
    operator = world.operator["id"]

    async def react(message: dict[str, Any], emoji: str, user: int = operator) -> None:
        await world.emulator.user_reacts(user, STAFF_CHAT, message["message_id"], emoji)

    await react(copy, "👍")
    await eventually(
        lambda: (
            customer_bot_reactions(world, ivan["id"], asked["message_id"])
            == [[{"type": "emoji", "emoji": "👍"}]]
        )
    )
    await react(copy, "")  # taken back
    await eventually(
        lambda: customer_bot_reactions(world, ivan["id"], asked["message_id"])[-1] == []
    )

    # Reactions on the gateway's own messages, by someone who is not an operator, or on
    # an operator's reply stay in the staff group.
    mallory = world.emulator.create_user(first_name="Mallory")
    world.emulator.add_member(STAFF_CHAT, mallory["id"])
    await react(copy, "🔥", user=mallory["id"])
    await react(card, "🔥")
    reply = await world.operator_says(copy["message_thread_id"], text="Да")
    await world.in_private(ivan, lambda m: text_of(m) == "Да")
    await react(reply, "🔥")
    await world.say(ivan, text="Спасибо")  # a marker: everything before it was handled
    await world.in_staff(lambda m: text_of(m) == "Спасибо")
    await asyncio.sleep(0.3)
    calls = world.emulator.calls_of("setMessageReaction", CUSTOMER_TOKEN)
    assert len(calls) == 2


async def test_an_operators_reaction_on_whatsapp_and_its_text_fallback_on_viber(
    world: World, start_gateway: StartGateway, wa: WhatsAppEmulator, viber: ViberEmulator
) -> None:
    await start_gateway(tweak=wa_and_viber(wa, viber))
    ivan, copy = await wa_says(world, wa, "Привезёте завтра?")
    asked = next(m for m in wa.conversation(NUMBER, ivan) if m.get("body") == "Привезёте завтра?")
    await world.emulator.user_reacts(world.operator["id"], STAFF_CHAT, copy["message_id"], "❤")

    def wa_reactions() -> list[dict[str, Any]]:
        return [m["payload"] for m in wa.conversation(NUMBER, ivan) if m["type"] == "reaction"]

    await eventually(lambda: wa_reactions() == [{"message_id": asked["id"], "emoji": "❤"}])

    # Viber bots cannot react: the customer gets the emoji as a short reply instead.
    olga = viber.create_user("Olga")
    viber.user_send(VIBER_TOKEN, olga, "Спасибо!")
    thanks = await world.in_staff(lambda m: text_of(m) == "Спасибо!")
    await world.emulator.user_reacts(world.operator["id"], STAFF_CHAT, thanks["message_id"], "🙏")
    await eventually(lambda: [m.get("text") for m in outgoing(viber, olga)] == ["🙏"])
    await world.emulator.user_reacts(world.operator["id"], STAFF_CHAT, thanks["message_id"], "")
    await asyncio.sleep(0.3)
    assert [m.get("text") for m in outgoing(viber, olga)] == ["🙏"]  # nothing to take back
