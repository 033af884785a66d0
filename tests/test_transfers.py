"""Transfers (issue 6): the choice buttons with everyone's load, a transfer to a role
(waits in /queue, members mentioned), a transfer to an operator (mentioned, their
load), the freed capacity handed a waiting task, and the assignee told privately."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.staff.presence import Presence
from tests.conftest import (
    OPERATOR_ID,
    STAFF_CHAT,
    STAFF_TOKEN,
    StartGateway,
    World,
    answer_of,
    buttons_of,
    text_of,
)

BORIS, VERA = 700002, 700003


def team(data: dict[str, Any]) -> None:
    data["staff"]["operators"] = [
        {"id": OPERATOR_ID, "name": "Anna", "roles": ["sales"], "max_chats": 1},
        {"id": BORIS, "name": "Boris", "roles": ["sales"]},
        {"id": VERA, "name": "Vera", "roles": ["service"]},
    ]
    data["staff"]["roles"] = [
        {"name": "sales", "title": "Sales"},
        {"name": "service", "title": "Service"},
    ]
    data["staff"]["notify_privately"] = True
    data["channels"][0]["responsible"] = {"role": "sales"}


def mentioned(message: dict[str, Any]) -> list[int]:
    return [e["user"]["id"] for e in message.get("entities", []) if e["type"] == "text_mention"]


async def test_transfer_to_a_role_and_to_an_operator(
    world: World, start_gateway: StartGateway
) -> None:
    for user_id, name in ((BORIS, "Boris"), (VERA, "Vera")):
        world.emulator.create_user(first_name=name, user_id=user_id)
        world.emulator.add_member(STAFF_CHAT, user_id)
    running = await start_gateway(tweak=team)
    presence = Presence(running.redis, running.settings)

    async def says(user: int, text: str, topic: int | None = None) -> str:
        extra = {"message_thread_id": topic} if topic else {}
        sent = await world.emulator.user_sends(user, chat_id=STAFF_CHAT, text=text, **extra)
        return text_of(await world.answer_to(sent))

    # Anna opens a private chat with the staff bot (so it may write to her) and goes online.
    await world.emulator.user_sends(OPERATOR_ID, bot_token=STAFF_TOKEN, text="/online")
    await world.in_private(world.operator, lambda m: text_of(m).startswith("Anna is online"))
    ivan = world.customer("Ivan", "ivan")
    await world.say(ivan, text="I want to buy")
    ivan_topic = (await world.in_staff(lambda m: text_of(m) == "I want to buy"))[
        "message_thread_id"
    ]
    await world.in_staff(
        lambda m: m.get("message_thread_id") == ivan_topic and text_of(m) == "📌 Assigned to Anna."
    )
    # Told privately too, with a link that opens the topic.
    told = await world.in_private(world.operator, lambda m: "assigned to you" in text_of(m))
    assert text_of(told).endswith(f"https://t.me/c/{str(STAFF_CHAT)[4:]}/{ivan_topic}")

    # Anna is full (1/1) and Boris offline: Maria's task waits.
    maria = world.customer("Maria", "maria")
    await world.say(maria, text="me too")
    maria_topic = (await world.in_staff(lambda m: text_of(m) == "me too"))["message_thread_id"]
    await presence.set(str(BORIS), True, datetime.now(UTC))

    # /transfer with no name: online colleagues with their load, and the roles.
    offer_sent = await world.operator_says(ivan_topic, text="/transfer")
    offer = await world.answer_to(offer_sent)
    assert text_of(offer) == "Transfer to whom?"
    labels = {b["text"]: b["callback_data"] for b in buttons_of(offer)}
    assert labels == {
        "🟢 Boris · 0/5": f"t:transfer:{BORIS}",
        "👥 Sales · 1 free": "t:transfer:sales",  # Boris (Anna is full)
        "👥 Service · 0 free": "t:transfer:service",
    }
    query = await world.emulator.press_button(
        OPERATOR_ID, STAFF_CHAT, offer["message_id"], "t:transfer:sales"
    )
    assert "handed to the Sales role" in (await answer_of(world, query))["text"]
    handed = await world.in_staff(lambda m: "handed to the Sales role" in text_of(m))
    assert text_of(handed) == (
        "🔁 BP-"
        + text_of(handed).split("BP-")[1].split(",")[0]
        + ", task 1 handed to the Sales role; it waits to be taken. Boris: please /take it."
    )
    assert mentioned(handed) == [BORIS]

    # Anna has room again: the waiting task is hers.
    await world.in_staff(
        lambda m: (
            m.get("message_thread_id") == maria_topic
            and text_of(m) == "📌 Assigned to Anna (had room again)."
        )
    )
    queue = await says(OPERATOR_ID, "/queue")
    assert "[sales] Ivan" in queue and "Maria" not in queue

    # Boris takes it; then hands it to Vera by name: she is mentioned and it counts for her.
    assert "Boris took" in await says(BORIS, "/take", ivan_topic)
    to_vera = await world.answer_to(
        await world.emulator.user_sends(
            BORIS, chat_id=STAFF_CHAT, message_thread_id=ivan_topic, text="/transfer vera"
        )
    )
    assert text_of(to_vera).endswith("handed to Vera; it waits to be taken. Vera: please /take it.")
    assert mentioned(to_vera) == [VERA]
    status = await says(OPERATOR_ID, "/status")
    assert "Vera: offline · tasks 1/5" in status and "Boris: online" in status
    assert "tasks 0/5" in status.split("Boris")[1].splitlines()[0]
    assert await says(OPERATOR_ID, "/queue") == "✅ No task is waiting for an owner."
    again = await says(BORIS, "/transfer Vera", ivan_topic)
    assert again == "⚠️ It is already waiting for them."
    unknown = await says(BORIS, "/transfer marketing", ivan_topic)
    assert unknown == "⚠️ No operator or role called 'marketing'."
