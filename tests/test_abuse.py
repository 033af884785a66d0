"""Abuse protection (issue 10): a ban across a person's merged messengers (kept, not
posted, no task, a daily reply, shown in /contact, lifted by /unban), spam rules into
the Spam topic, and flood protection holding a minute's excess for one staff message."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.store import keys
from tests.conftest import (
    CUSTOMER_TOKEN,
    STAFF_CHAT,
    Clock,
    Running,
    StartGateway,
    World,
    eventually,
    text_of,
)
from tests.test_export import SUPPORT_TOKEN, _settled, merged_on_two_bots

MSK = ZoneInfo("Europe/Moscow")


def two_bots(data: dict[str, Any]) -> None:
    shop = data["channels"][0]
    data["channels"].append({**shop, "id": "tg_support", "token": SUPPORT_TOKEN})
    data["antispam"] = {"ban_reply": "Мы больше не отвечаем в этом чате."}


async def command(world: World, topic: int, text: str) -> str:
    sent = await world.operator_says(topic, text=text)
    return text_of(await world.answer_to(sent))


async def history_texts(running: Running, contact: str) -> list[str]:
    records = await running.app.pipeline.history.of_person(contact, limit=100)
    return [r.text for r in records]


async def test_a_ban_covers_every_messenger_of_the_person(
    world: World, start_gateway: StartGateway
) -> None:
    running = await start_gateway(tweak=two_bots)
    ivan = world.customer("Ivan", "ivan")
    first = await merged_on_two_bots(world, ivan, ivan)  # the same user, two bots
    assert "Closed" in await command(world, first, "/close")
    contact = await running.app.pipeline.contacts.of_identity("tg_shop", str(ivan["id"]))
    assert contact is not None
    before = await running.app.processes.current(contact)
    assert before is not None and not before.task.is_open

    said = await command(world, first, "/ban insults")
    assert "is banned: insults" in said
    assert "🚫 Banned since" in await command(world, first, "/contact")
    assert "banned already" in await command(world, first, "/ban")

    posted = len(world.staff_messages())
    await world.say(ivan, text="spam one")
    await world.emulator.user_sends(ivan["id"], bot_token=SUPPORT_TOKEN, text="spam two")
    await world.say(ivan, text="spam three")
    await eventually(lambda: _has(history_texts(running, contact), "spam three"))
    await _settled(running)
    assert len(world.staff_messages()) == posted  # nothing posted, no card refreshed
    after = await running.app.processes.current(contact)
    assert after == before  # no task opened
    # The ban reply: once a day per person, through the messenger they wrote from.
    replies = [
        m
        for token in (CUSTOMER_TOKEN, SUPPORT_TOKEN)
        for m in world.emulator.messages(ivan["id"], bot_token=token)
        if text_of(m) == "Мы больше не отвечаем в этом чате."
    ]
    assert len(replies) == 1
    assert "contact.banned" in await running.event_types()

    assert "no longer banned" in await command(world, first, "/unban")
    await world.emulator.user_sends(ivan["id"], bot_token=SUPPORT_TOKEN, text="sorry")
    back = await world.in_staff(lambda m: text_of(m).endswith("sorry"))
    assert back["message_thread_id"] == first
    assert "contact.unbanned" in await running.event_types()


async def _has(texts: Any, wanted: str) -> bool:
    return wanted in await texts


async def test_spam_rules_send_messages_to_the_spam_topic(
    world: World, start_gateway: StartGateway
) -> None:
    def rules(data: dict[str, Any]) -> None:
        data["antispam"] = {"rules": [{"name": "casino", "pattern": "(?i)casino|bonus"}]}

    running = await start_gateway(tweak=rules)
    bot = world.customer("Spammy", "spammy")
    await world.say(bot, text="Best CASINO in town, 200% bonus!")
    caught = await world.in_staff(lambda m: "Spam (casino)" in text_of(m))
    assert "Best CASINO in town" in text_of(caught)
    spam_topic = next(t for t in world.emulator.topics(STAFF_CHAT) if t["name"] == "🚫 Spam")
    assert caught["message_thread_id"] == spam_topic["message_thread_id"]
    contact = await running.app.pipeline.contacts.of_identity("tg_shop", str(bot["id"]))
    assert contact is not None
    assert await running.app.processes.current(contact) is None  # no task opened
    assert "Best CASINO in town, 200% bonus!" in await history_texts(running, contact)
    # Anything else from them is a normal message in a topic of their own.
    await world.say(bot, text="where is my order?")
    normal = await world.in_staff(lambda m: text_of(m) == "where is my order?")
    assert normal["message_thread_id"] != spam_topic["message_thread_id"]


async def test_flood_protection_holds_the_rest_of_the_minute(
    world: World, start_gateway: StartGateway
) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, 5, tzinfo=MSK))

    def limit(data: dict[str, Any]) -> None:
        data["antispam"] = {"max_messages_per_minute": 3}

    running = await start_gateway(tweak=limit, clock=clock)
    ivan = world.customer("Ivan", "ivan")
    for n in range(1, 7):
        await world.say(ivan, text=f"message {n}")
    await world.in_staff(lambda m: text_of(m) == "message 3")
    contact = await running.app.pipeline.contacts.of_identity("tg_shop", str(ivan["id"]))
    assert contact is not None
    await eventually(lambda: _has(history_texts(running, contact), "message 6"))
    await _settled(running)
    texts = [text_of(m) for m in world.staff_messages()]
    assert "message 3" in texts and not any(t.endswith("message 4") for t in texts)

    clock.at(10, 1)  # the minute is over
    await running.app.scheduler.tick()
    held = await world.in_staff(lambda m: text_of(m).startswith("🌊 3 more message(s)"))
    assert "over 3 a minute" in text_of(held)
    assert [line[9:] for line in text_of(held).splitlines()[1:]] == [
        "message 4",
        "message 5",
        "message 6",
    ]
    assert not await running.redis.exists(keys.flood_held(contact))
    # A new minute: posted one by one again.
    await world.say(ivan, text="message 7")
    await world.in_staff(lambda m: text_of(m) == "message 7")
