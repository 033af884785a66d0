"""Reminders for overdue tasks, end to end: real Redis, the emulator, a controllable
clock (no sleeping), the reminder's buttons, and timers surviving a gateway restart."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.store import keys
from tests.conftest import (
    OPERATOR_ID,
    STAFF_CHAT,
    Clock,
    StartGateway,
    World,
    answer_of,
    buttons_of,
    eventually,
    text_of,
)

MSK = ZoneInfo("Europe/Moscow")
BORIS = 700002
TOPIC_LINK = f"https://t.me/c/{str(STAFF_CHAT)[4:]}"


def two_operators(data: dict[str, Any]) -> None:
    # A non-BMP emoji in the first name shifts the second name's UTF-16 offset by two.
    data["staff"]["operators"] = [
        {"id": OPERATOR_ID, "name": "Anna 🌸"},
        {"id": BORIS, "name": "Борис"},
    ]


def _mentioned(message: dict[str, Any]) -> list[tuple[str, int]]:
    """(text the entity covers, user id) for each text_mention, cut in UTF-16 units as
    Telegram counts them."""
    units = text_of(message).encode("utf-16-le")
    return [
        (
            units[2 * e["offset"] : 2 * (e["offset"] + e["length"])].decode("utf-16-le"),
            e["user"]["id"],
        )
        for e in message.get("entities", [])
        if e["type"] == "text_mention"
    ]


def _reminders(world: World, topic: int) -> list[dict[str, Any]]:
    return [m for m in world.staff_messages(topic) if text_of(m).startswith("⏰")]


async def test_reminders_mention_link_replace_and_go_away(
    world: World, start_gateway: StartGateway
) -> None:
    world.emulator.create_user(first_name="Boris", user_id=BORIS)
    world.emulator.add_member(STAFF_CHAT, BORIS)
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))
    running = await start_gateway(clock=clock, tweak=two_operators)
    scheduler = running.app.scheduler
    ivan = world.customer()
    await world.say(ivan, text="hello?")
    topic = (await world.in_staff(lambda m: text_of(m) == "hello?"))["message_thread_id"]
    card = await world.in_staff(lambda m: text_of(m).startswith("📋"))

    async def at(hour: int, minute: int) -> None:
        clock.at(hour, minute)
        await scheduler.tick()

    await at(10, 14)
    await at(10, 16)  # past the 10:15 deadline
    first = await world.in_staff(lambda m: text_of(m).startswith("⏰"))
    assert text_of(first) == (
        "⏰ BP-20261123-0001, task 1: the customer has been waiting 1 min past the "
        "deadline. Anna 🌸, Борис, please answer."
    )
    # Nobody has the task: the line's operators are mentioned (notified by name).
    assert _mentioned(first) == [("Anna 🌸", OPERATOR_ID), ("Борис", BORIS)]
    buttons = {b["text"]: b for b in buttons_of(first)}
    assert buttons["Go to chat"]["url"] == f"{TOPIC_LINK}/{topic}"
    assert buttons["Go to task"]["url"] == f"{TOPIC_LINK}/{topic}/{card['message_id']}"
    assert buttons["Mark read"]["callback_data"] == "r:read"
    assert buttons["Dismiss"]["callback_data"] == "r:dismiss"

    await at(10, 20)
    await at(10, 30)  # not again within the 15-minute interval
    assert len(_reminders(world, topic)) == 1
    await at(10, 32)
    second = await world.in_staff(lambda m: "waiting 17 min" in text_of(m))
    # The new reminder replaces the old one: a topic shows one at a time.
    await eventually(
        lambda: [m["message_id"] for m in _reminders(world, topic)] == [second["message_id"]]
    )

    # A long pause (downtime): one reminder, not one per missed interval.
    await at(15, 0)
    await world.in_staff(lambda m: "waiting 285 min" in text_of(m))
    await eventually(lambda: len(_reminders(world, topic)) == 1)

    # Once someone has the task, only they are mentioned.
    await world.operator_says(topic, text="/take")
    await world.in_staff(lambda m: "took BP-20261123-0001" in text_of(m))
    await at(15, 16)
    taken = await world.in_staff(lambda m: "waiting 301 min" in text_of(m))
    assert _mentioned(taken) == [("Anna 🌸", OPERATOR_ID)]

    # An answer cancels them, and the shown reminder goes away.
    await world.operator_says(topic, text="sorry, here now")
    await world.in_private(ivan, lambda m: text_of(m) == "sorry, here now")
    await eventually(lambda: _reminders(world, topic) == [])
    await at(16, 0)
    await at(17, 0)
    await asyncio.sleep(0.3)
    assert _reminders(world, topic) == []
    assert (await running.event_types()).count("reminder.sent") == 4
    assert await running.redis.get(keys.reminder(STAFF_CHAT, "1")) is None


async def test_reminder_buttons(world: World, start_gateway: StartGateway) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))
    running = await start_gateway(clock=clock)
    ivan = world.customer()
    await world.say(ivan, text="anyone there?")
    topic = (await world.in_staff(lambda m: text_of(m) == "anyone there?"))["message_thread_id"]
    card = await world.in_staff(lambda m: text_of(m).startswith("📋"))
    clock.at(10, 16)
    await running.app.scheduler.tick()
    reminder = await world.in_staff(lambda m: text_of(m).startswith("⏰"))
    operator = world.operator["id"]

    async def press(data: str, user: int = operator) -> dict[str, Any]:
        query = await world.emulator.press_button(user, STAFF_CHAT, reminder["message_id"], data)
        return await answer_of(world, query)

    def card_text() -> str:
        return text_of(
            next(m for m in world.staff_messages() if m["message_id"] == card["message_id"])
        )

    # Not an operator: refused, nothing changes.
    mallory = world.emulator.create_user(first_name="Mallory")
    world.emulator.add_member(STAFF_CHAT, mallory["id"])
    for data in ("r:read", "r:dismiss"):
        refused = await press(data, user=mallory["id"])
        assert refused.get("show_alert") and "Only operators" in refused["text"]
    assert len(_reminders(world, topic)) == 1

    # Mark read: recorded on the task and shown on the card; the deadline still runs.
    clock.at(10, 17)
    read = await press("r:read")
    assert read["text"] == "👁 Marked as read." and not read.get("show_alert")
    await eventually(lambda: "👁 Seen by Anna at 23.11 10:17" in card_text())
    assert "⏰ overdue" in card_text()
    process = await running.app.processes.current("1")
    assert process is not None and process.task.seen_by == str(operator)
    assert process.task.awaiting_reply
    again = await press("r:read")
    assert again.get("show_alert") and "Nothing unread" in again["text"]
    raw = await running.redis.xrange(keys.EVENTS)
    updates = [f for _, f in raw if f[b"type"] == b"task.updated"]
    assert json.loads(updates[-1][b"data"]) == {"read": "true"}
    assert updates[-1][b"actor"] == str(operator).encode()

    # The customer writes again: unread again, so the card drops the "seen" line.
    clock.at(10, 20)
    await world.say(ivan, text="hello??")
    await world.in_staff(lambda m: text_of(m) == "hello??")
    await eventually(lambda: "Seen by" not in card_text())

    # Dismiss deletes the reminder message.
    dismissed = await press("r:dismiss")
    assert dismissed["text"] == "Dismissed."
    await eventually(lambda: _reminders(world, topic) == [])
    assert await running.redis.get(keys.reminder(STAFF_CHAT, "1")) is None
    # Nothing was sent to the customer (Telegram bots have no read receipts).
    assert [text_of(m) for m in world.emulator.messages(ivan["id"])] == [
        "anyone there?",
        "hello??",
    ]


async def test_timers_survive_a_gateway_restart(world: World, start_gateway: StartGateway) -> None:
    """Timers live in Redis: a gateway stopped and started again (a deploy) still
    reminds and auto-closes, on time, once."""
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))
    first = await start_gateway(clock=clock)
    ivan = world.customer()
    await world.say(ivan, text="ping")
    topic = (await world.in_staff(lambda m: text_of(m) == "ping"))["message_thread_id"]
    await first.stop()

    clock.at(10, 30)  # the deadline passed while no gateway ran
    second = await start_gateway(clock=clock)
    await second.app.scheduler.tick()
    await world.in_staff(lambda m: "waiting 15 min past the deadline" in text_of(m))
    await world.operator_says(topic, text="pong")
    await world.in_private(ivan, lambda m: text_of(m) == "pong")
    await second.stop()

    clock.at(11, 31)  # an hour of silence after the answer, again with no gateway
    third = await start_gateway(clock=clock)
    await third.app.scheduler.tick()
    await world.in_staff(lambda m: "closed automatically" in text_of(m))
    process = await third.app.processes.current("1")
    assert process is not None and process.task.close_reason == "auto"
    types = await third.event_types()
    assert types.count("reminder.sent") == 1 and types.count("task.closed") == 1
    assert await third.redis.zcard(keys.TIMERS) == 0
