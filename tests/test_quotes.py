"""Quoted replies both ways (issue 10): a customer's reply to an operator's message is a
reply to that message in the topic; a reply to a message the topic has no copy of (the
greeting) shows the quoted text inline."""

from __future__ import annotations

from typing import Any

from tests.conftest import CUSTOMER_TOKEN, StartGateway, World, text_of


def greeting(data: dict[str, Any]) -> None:
    data["channels"][0]["greeting"] = "Hello! We answer within 15 minutes."


async def test_replies_quote_their_message_or_show_it(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway(tweak=greeting)
    ivan = world.customer("Ivan", "ivan")
    await world.say(ivan, text="Где заказ?")
    topic = (await world.in_staff(lambda m: text_of(m) == "Где заказ?"))["message_thread_id"]
    hello = await world.in_private(ivan, lambda m: text_of(m).startswith("Hello!"))

    reply = await world.operator_says(topic, text="Заказ в пути")
    copy = await world.in_private(ivan, lambda m: text_of(m) == "Заказ в пути")
    await world.emulator.user_sends(
        ivan["id"],
        bot_token=CUSTOMER_TOKEN,
        text="Спасибо!",
        reply_to_message_id=copy["message_id"],
    )
    thanks = await world.in_staff(lambda m: text_of(m) == "Спасибо!")
    assert thanks["reply_to_message"]["message_id"] == reply["message_id"]

    await world.emulator.user_sends(
        ivan["id"],
        bot_token=CUSTOMER_TOKEN,
        text="Это долго?",
        reply_to_message_id=hello["message_id"],
    )
    quoted = await world.in_staff(lambda m: text_of(m).endswith("Это долго?"))
    assert text_of(quoted) == "↩️ «Hello! We answer within 15 minutes.»\nЭто долго?"
    assert quoted["message_thread_id"] == topic
