"""Live topic status (issue 10): a topic's title starts with its task's state and is
renamed only when that state changes — 🟢 new, 🔴 overdue, 🟡 in work, ✅ closed."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tests.conftest import STAFF_CHAT, STAFF_TOKEN, Clock, StartGateway, World, eventually, text_of
from tests.test_export import _settled

MSK = ZoneInfo("Europe/Moscow")


def title(world: World, topic: int) -> str:
    found = next(t for t in world.emulator.topics(STAFF_CHAT) if t["message_thread_id"] == topic)
    return str(found["name"])


def renames(world: World) -> int:
    return len(
        [c for c in world.emulator.calls_of("editForumTopic", STAFF_TOKEN) if c.status == 200]
    )


async def test_the_title_follows_the_task(world: World, start_gateway: StartGateway) -> None:
    clock = Clock(datetime(2026, 11, 24, 10, 0, tzinfo=MSK))
    running = await start_gateway(clock=clock)
    ivan = world.customer("Ivan", "ivan")
    await world.say(ivan, text="Здравствуйте")
    topic = (await world.in_staff(lambda m: text_of(m) == "Здравствуйте"))["message_thread_id"]
    assert title(world, topic) == "🟢 Ivan · Telegram"
    await world.say(ivan, text="Алло?")  # still new: the title stays, no rename spent
    await world.in_staff(lambda m: text_of(m) == "Алло?")
    await _settled(running)
    assert renames(world) == 0

    clock.at(10, 16)  # past the 15-minute deadline: the reminder, and the title turns red
    await running.app.scheduler.tick()
    await eventually(lambda: title(world, topic) == "🔴 Ivan · Telegram")
    await world.operator_says(topic, text="Добрый день!")
    await eventually(lambda: title(world, topic) == "🟡 Ivan · Telegram")
    closed = await world.operator_says(topic, text="/close")
    await world.answer_to(closed)
    await eventually(lambda: title(world, topic) == "✅ Ivan · Telegram")
    await _settled(running)
    assert renames(world) == 3


async def test_plain_titles_when_switched_off(world: World, start_gateway: StartGateway) -> None:
    def off(data: dict[str, Any]) -> None:
        data["staff"]["topic_status"] = False

    running = await start_gateway(tweak=off)
    ivan = world.customer("Ivan", "ivan")
    await world.say(ivan, text="Здравствуйте")
    topic = (await world.in_staff(lambda m: text_of(m) == "Здравствуйте"))["message_thread_id"]
    await world.operator_says(topic, text="Добрый день!")
    await world.in_private(ivan, lambda m: text_of(m) == "Добрый день!")
    await _settled(running)
    assert title(world, topic) == "Ivan · Telegram" and renames(world) == 0
