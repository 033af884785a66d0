"""Working hours end to end: deadlines count only the account's working time."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from gateway.config import parse_config
from gateway.errors import ConfigError
from tests.conftest import Clock, StartGateway, World, eventually, text_of

MSK = ZoneInfo("Europe/Moscow")
OFFICE = {
    "week": {day: ["09:00-13:00", "14:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["2026-12-31"],
}


async def test_a_friday_evening_message_is_due_on_monday_morning(
    world: World, start_gateway: StartGateway
) -> None:
    clock = Clock(datetime(2026, 11, 27, 19, 0, tzinfo=MSK))  # Friday, after hours

    def hours(data: dict[str, Any]) -> None:
        data["channels"][0]["working_hours"] = OFFICE

    await start_gateway(clock=clock, tweak=hours)
    ivan = world.customer()
    await world.say(ivan, text="Здравствуйте, вы работаете?")
    hello = await world.in_staff(lambda m: text_of(m) == "Здравствуйте, вы работаете?")
    asked = await world.operator_says(hello["message_thread_id"], text="/task")
    card = text_of(await world.answer_to(asked))
    assert "Respond by: 30.11 09:15" in card, card  # 15 working minutes: Monday 09:15


def test_working_hours_are_validated_with_their_paths() -> None:
    channel = {"id": "tg_shop", "kind": "telegram", "token": "2:b"}
    for hours, path in (
        ({"week": {"mon": ["18:00-09:00"]}}, "channels[0].working_hours.week"),
        ({"week": {"monday": ["09:00-18:00"]}}, "channels[0].working_hours.week.monday"),
        ({"timezone": "Mars/Base"}, "channels[0].working_hours.timezone"),
        ({"holidays": ["31.12.2026"]}, "channels[0].working_hours.holidays[0]"),
    ):
        text = yaml.safe_dump(
            {
                "staff": {"token": "1:a", "chat_id": -1001},
                "channels": [channel | {"working_hours": hours}],
            }
        )
        with pytest.raises(ConfigError) as info:
            parse_config(text)
        assert path in dict(info.value.errors), (path, info.value.errors)


async def test_greeting_once_and_the_away_message_once_per_process(
    world: World, start_gateway: StartGateway
) -> None:
    clock = Clock(datetime(2026, 11, 27, 19, 0, tzinfo=MSK))  # Friday, after hours

    def hours(data: dict[str, Any]) -> None:
        data["channels"][0] |= {
            "working_hours": OFFICE,
            "greeting": "Здравствуйте! Спасибо, что написали.",
            "away_message": "Мы работаем пн–пт 9–18, ответим утром.",
        }

    await start_gateway(clock=clock, tweak=hours)
    ivan = world.customer()

    def received(text: str) -> int:
        return sum(text_of(m) == text for m in world.emulator.messages(ivan["id"]))

    await world.say(ivan, text="Вы тут?")
    await world.in_private(ivan, lambda m: text_of(m).startswith("Мы работаем"))
    await world.say(ivan, text="Алло")
    await world.in_staff(lambda m: text_of(m) == "Алло")
    note = await world.in_staff(lambda m: text_of(m).startswith("🤖 Sent the away message"))
    assert note["message_thread_id"] == world.topic_of("Ivan")
    clock.now = datetime(2026, 11, 28, 11, 0, tzinfo=MSK)  # Saturday: a new process
    await world.say(ivan, text="Суббота")
    await world.in_staff(lambda m: text_of(m) == "Суббота")
    await eventually(lambda: received("Мы работаем пн–пт 9–18, ответим утром.") == 2)
    clock.now = datetime(2026, 11, 30, 10, 0, tzinfo=MSK)  # Monday, open
    await world.say(ivan, text="Понедельник")
    await world.in_staff(lambda m: text_of(m) == "Понедельник")
    assert received("Здравствуйте! Спасибо, что написали.") == 1  # the first message only
    assert received("Мы работаем пн–пт 9–18, ответим утром.") == 2  # Friday and Saturday
