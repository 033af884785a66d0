"""Operators' availability and load: /online, /offline, /status (issue 6, first part)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tests.conftest import STAFF_CHAT, STAFF_TOKEN, Clock, StartGateway, World, text_of

MSK = ZoneInfo("Europe/Moscow")


async def test_availability_and_load_follow_the_tasks(
    world: World, start_gateway: StartGateway
) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))

    def capacity(data: dict[str, Any]) -> None:
        data["staff"]["operators"] = [
            {"id": world.operator["id"], "name": "Anna", "max_chats": 2},
            {"id": 700002, "name": "Boris"},
        ]

    await start_gateway(clock=clock, tweak=capacity)

    async def in_general(text: str) -> str:
        sent = await world.emulator.user_sends(world.operator["id"], chat_id=STAFF_CHAT, text=text)
        return text_of(await world.answer_to(sent))

    status = await in_general("/status")
    assert "⚪️ Anna: offline · tasks 0/2" in status and "⚪️ Boris: offline · tasks 0/5" in status
    assert await in_general("/online") == "Anna is online (0 open task(s))."

    topics = []
    for name in ("Ivan", "Maria"):
        customer = world.customer(name, name.lower())
        await world.say(customer, text=f"hello from {name}")
        said = await world.in_staff(lambda m, n=name: text_of(m) == f"hello from {n}")
        topics.append(said["message_thread_id"])
        take = await world.operator_says(said["message_thread_id"], text="/take")
        await world.answer_to(take)
    status = await in_general("/status")
    assert "🟢 Anna: online since 23.11 10:00 · tasks 2/2 · at capacity" in status, status

    close = await world.operator_says(topics[0], text="/close")
    await world.answer_to(close)
    in_topic = await world.operator_says(topics[1], text="/offline")
    assert text_of(await world.answer_to(in_topic)) == "Anna is offline (1 open task(s))."
    assert "⚪️ Anna: offline since 23.11 10:00 · tasks 1/2" in await in_general("/status")


async def test_operators_say_online_in_a_private_chat_with_the_staff_bot(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway()
    operator = world.operator["id"]
    await world.emulator.user_sends(operator, bot_token=STAFF_TOKEN, text="/online")
    answer = await world.in_private(
        world.operator, lambda m: text_of(m).startswith("Anna is online"), timeout=10
    )
    assert text_of(answer) == "Anna is online (0 open task(s))."
    await world.emulator.user_sends(operator, bot_token=STAFF_TOKEN, text="/status")
    await world.in_private(world.operator, lambda m: "🟢 Anna: online since" in text_of(m))
    stranger = world.customer("Mallory", "mallory")
    await world.emulator.user_sends(stranger["id"], bot_token=STAFF_TOKEN, text="/online")
    await world.emulator.user_sends(operator, bot_token=STAFF_TOKEN, text="/offline")
    await world.in_private(world.operator, lambda m: text_of(m).startswith("Anna is offline"))
    assert not world.emulator.messages(stranger["id"], bot_token=STAFF_TOKEN)[1:]
