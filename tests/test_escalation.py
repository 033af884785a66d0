"""Timers about people (issue 6): a task nobody takes in time escalates to its role
and the department head, once per wait; an idle operator goes offline; an operator
outside their working hours gets no new tasks. Real Redis, the emulator, a clock the
test moves (no sleeping)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.staff.presence import Presence
from gateway.store import keys
from tests.conftest import (
    OPERATOR_ID,
    STAFF_CHAT,
    STAFF_TOKEN,
    Clock,
    StartGateway,
    World,
    eventually,
    text_of,
)

MSK = ZoneInfo("Europe/Moscow")
BORIS, VERA = 700002, 700003
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=MSK)


def team(data: dict[str, Any]) -> None:
    data["staff"]["operators"] = [
        {"id": OPERATOR_ID, "name": "Anna", "roles": ["sales"]},
        {"id": BORIS, "name": "Boris", "roles": ["sales"]},
        {"id": VERA, "name": "Vera", "department": "shop"},
    ]
    data["staff"]["departments"] = [{"name": "shop", "title": "Shop", "head": VERA}]
    data["sla"] = {"take_within_minutes": 10}
    data["channels"][0] |= {"responsible": {"role": "sales"}, "department": "shop"}


def mentioned(message: dict[str, Any]) -> list[int]:
    return [e["user"]["id"] for e in message.get("entities", []) if e["type"] == "text_mention"]


async def test_a_task_nobody_takes_escalates_once_per_wait(
    world: World, start_gateway: StartGateway
) -> None:
    world.emulator.create_user(first_name="Boris", user_id=BORIS)
    world.emulator.add_member(STAFF_CHAT, BORIS)
    clock = Clock(MONDAY)
    running = await start_gateway(clock=clock, tweak=team)
    presence = Presence(running.redis, running.settings)
    await presence.set(str(BORIS), True, MONDAY)
    ivan = world.customer()
    await world.say(ivan, text="hello?")
    topic = (await world.in_staff(lambda m: text_of(m) == "hello?"))["message_thread_id"]
    await world.in_staff(lambda m: text_of(m) == "📌 Assigned to Boris.")

    def escalations() -> list[dict[str, Any]]:
        return [m for m in world.staff_messages(topic) if text_of(m).startswith("⏱")]

    async def at(hour: int, minute: int) -> None:
        clock.at(hour, minute)
        await running.app.scheduler.tick()

    await at(10, 9)
    assert escalations() == []
    await at(10, 10)
    first = await world.in_staff(lambda m: text_of(m).startswith("⏱"))
    # Assigned but not taken: the assignee, the role's online members, the head.
    assert text_of(first) == (
        "⏱ BP-20261123-0001, task 1 was not taken within 10 min. Boris, Vera, "
        "please /take it or /transfer it."
    )
    assert mentioned(first) == [BORIS, VERA]
    await at(10, 30)
    await at(11, 0)
    await asyncio.sleep(0.2)
    assert len(escalations()) == 1  # once per wait

    # A transfer to the role starts a new wait: nobody of it online → all members.
    await presence.set(str(BORIS), False, clock())
    clock.at(11, 5)
    sent = await world.operator_says(topic, text="/transfer sales")
    handed = text_of(await world.answer_to(sent))
    assert handed.endswith("Nobody of the role is available now: it waits in /queue.")
    await at(11, 14)
    assert len(escalations()) == 1
    await at(11, 15)
    await eventually(lambda: len(escalations()) == 2)
    assert mentioned(escalations()[1]) == [OPERATOR_ID, BORIS, VERA]

    # Taken: the timer is gone and nothing more comes.
    await world.operator_says(topic, text="/take")
    await world.in_staff(lambda m: "Anna took" in text_of(m))
    assert await running.redis.zscore(keys.TIMERS, f"{keys.TAKE}:1") is None
    await at(12, 0)
    await asyncio.sleep(0.2)
    assert len(escalations()) == 2
    assert (await running.event_types()).count("task.escalated") == 2


async def test_idle_operators_go_offline_and_are_told(
    world: World, start_gateway: StartGateway
) -> None:
    clock = Clock(MONDAY)

    def idle(data: dict[str, Any]) -> None:
        data["staff"]["idle_offline_minutes"] = 30

    running = await start_gateway(clock=clock, tweak=idle)
    presence = Presence(running.redis, running.settings)
    anna = str(OPERATOR_ID)
    await world.emulator.user_sends(OPERATOR_ID, bot_token=STAFF_TOKEN, text="/online")
    await world.in_private(world.operator, lambda m: text_of(m).startswith("Anna is online"))

    async def at(hour: int, minute: int) -> None:
        clock.at(hour, minute)
        await running.app.scheduler.tick()

    # Activity at 10:20 (a command in the group) moves the idle deadline to 10:50.
    clock.at(10, 20)
    sent = await world.emulator.user_sends(OPERATOR_ID, chat_id=STAFF_CHAT, text="/status")
    await world.answer_to(sent)
    await at(10, 31)
    assert await presence.online([anna]) == {anna}
    await at(10, 50)
    told = await world.in_private(world.operator, lambda m: text_of(m).startswith("⚪️"))
    assert "nothing from you in the staff group for 30 min" in text_of(told)
    assert await presence.online([anna]) == frozenset()
    # Offline operators are left alone: no second notice.
    await at(12, 0)
    await asyncio.sleep(0.2)
    private = world.emulator.messages(OPERATOR_ID, bot_token=STAFF_TOKEN)
    assert sum(text_of(m).startswith("⚪️") for m in private) == 1


async def test_no_new_tasks_outside_an_operators_working_hours(
    world: World, start_gateway: StartGateway
) -> None:
    clock = Clock(datetime(2026, 11, 23, 20, 0, tzinfo=MSK))  # Monday evening

    def shifts(data: dict[str, Any]) -> None:
        data["timezone"] = "Europe/Moscow"
        data["staff"]["operators"] = [
            {
                "id": OPERATOR_ID,
                "name": "Anna",
                "roles": ["sales"],
                "working_hours": {"week": {"mon": ["09:00-18:00"], "tue": ["09:00-18:00"]}},
            }
        ]
        data["channels"][0]["responsible"] = {"role": "sales"}

    await start_gateway(clock=clock, tweak=shifts)
    sent = await world.emulator.user_sends(OPERATOR_ID, chat_id=STAFF_CHAT, text="/online")
    assert text_of(await world.answer_to(sent)) == (
        "Anna is online (0 open task(s); outside your working hours no new tasks come to you)."
    )
    ivan = world.customer()
    await world.say(ivan, text="evening question")
    await world.in_staff(lambda m: text_of(m) == "evening question")
    # Next morning, on shift: /online hands her the task that waited overnight.
    clock.now = datetime(2026, 11, 24, 9, 0, tzinfo=MSK)
    sent = await world.emulator.user_sends(OPERATOR_ID, chat_id=STAFF_CHAT, text="/online")
    assert text_of(await world.answer_to(sent)) == (
        "Anna is online (1 open task(s); 1 waiting task(s) handed to you)."
    )
    assert not [m for m in world.staff_messages() if text_of(m) == "📌 Assigned to Anna."]
