"""Staff-group throughput at Telegram's limits (issue 7): a pool of relay bots shares
the sending, a burst waiting for budget is coalesced, card refreshes are not wasted,
and nothing ever gets a 429. The emulator enforces the per-bot group limit."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import (
    STAFF_CHAT,
    STAFF_TOKEN,
    StartGateway,
    World,
    eventually,
    text_of,
)

RELAYS = (
    "3003:relay-bot-one-cccccccccccccccccccccccccc",
    "3004:relay-bot-two-dddddddddddddddddddddddddd",
)
PER_MINUTE = 240
TIME = re.compile(r"^\d\d:\d\d:\d\d ")


def limits(world: World, *, relays: bool, coalesce: bool) -> Any:
    """Real pacing in the gateway and in the emulator (240 a minute per bot and group,
    a faster stand-in for Telegram's 20, so the test takes seconds)."""
    world.emulator.flood.group_per_minute = PER_MINUTE
    world.emulator.set_flood_limits(True)
    if relays:
        for token in RELAYS:
            world.emulator.add_member(STAFF_CHAT, bot_token=token)

    def tweak(data: dict[str, Any]) -> None:
        data["delivery"] |= {
            "flood_limits": True,
            "group_per_minute": PER_MINUTE,
            "coalesce": coalesce,
        }
        if relays:
            data["staff"]["relay_bots"] = list(RELAYS)

    return tweak


def burst_lines(world: World, topic: int) -> list[list[str]]:
    """Each staff message's lines of the burst ("12:00:01 m07" → "m07")."""
    posts = []
    for message in world.staff_messages(topic):
        lines = [TIME.sub("", line) for line in text_of(message).splitlines()]
        if lines and all(re.fullmatch(r"m\d\d", line) for line in lines):
            posts.append(lines)
    return posts


async def test_a_pool_of_bots_carries_a_burst_in_order(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway(tweak=limits(world, relays=True, coalesce=False))
    ivan = world.customer()
    burst = [f"m{i:02d}" for i in range(36)]
    sent = [await world.say(ivan, text=text) for text in burst]
    await world.in_staff(lambda m: text_of(m) == "m00")
    topic = world.topic_of("Ivan")
    await eventually(lambda: len(burst_lines(world, topic)) == len(burst), timeout=30)
    assert [post[0] for post in burst_lines(world, topic)] == burst  # one each, in order
    senders = {
        m["from"]["id"] for m in world.staff_messages(topic) if re.fullmatch(r"m\d\d", text_of(m))
    }
    assert senders == {2002, 3003, 3004}  # the staff bot and both relays
    assert world.emulator.too_many_requests() == 0
    # A customer's edit is applied by the bot that posted the copy (only it may).
    by_relay = next(
        m
        for m in world.staff_messages(topic)
        if re.fullmatch(r"m\d\d", text_of(m)) and m["from"]["id"] == 3004
    )
    original = sent[burst.index(text_of(by_relay))]
    await world.emulator.user_edits(ivan["id"], ivan["id"], original["message_id"], text="m77")
    edited = await world.in_staff(
        lambda m: m["message_id"] == by_relay["message_id"] and "m77" in text_of(m)
    )
    assert edited.get("edit_date") and "✏️ edited" in text_of(edited)
    # The card (with buttons) stays with the staff bot: presses reach only it.
    card = await world.in_staff(lambda m: text_of(m).startswith("📋"))
    assert card["from"]["id"] == 2002


async def test_a_burst_waiting_for_budget_is_coalesced(
    world: World, start_gateway: StartGateway
) -> None:
    running = await start_gateway(tweak=limits(world, relays=False, coalesce=True))
    ivan = world.customer()
    burst = [f"m{i:02d}" for i in range(30)]
    sent = [await world.say(ivan, text=text) for text in burst]
    await world.in_staff(lambda m: text_of(m) == "m00")
    topic = world.topic_of("Ivan")

    def lines() -> list[str]:
        return [line for post in burst_lines(world, topic) for line in post]

    await eventually(lambda: lines() == burst, timeout=30)
    posts = burst_lines(world, topic)
    assert len(posts) <= 10, [len(p) for p in posts]  # a few sends, not 30
    assert world.emulator.too_many_requests() == 0
    # Card refreshes superseded by a later one are not drawn: every message changed the
    # task (30 refreshes queued), a handful were drawn.
    await world.in_staff(lambda m: text_of(m).startswith("📋"))

    async def settled() -> bool:
        return await running.app.bus.depth("out:staff") == 0

    await eventually(settled, timeout=10)
    drawn = len(world.emulator.calls_of("editMessageText", STAFF_TOKEN)) + sum(
        text_of(m).startswith("📋") for m in world.staff_messages(topic)
    )
    assert drawn <= 6, drawn

    # A customer's edit of a message inside a combined copy does not clobber the others:
    # the new version is posted as a reply to the combined message.
    combined = next(
        m
        for m in world.staff_messages(topic)
        if text_of(m).count("\n") >= 1 and TIME.match(text_of(m))
    )
    inside = burst.index(TIME.sub("", text_of(combined).splitlines()[-1]))
    await world.emulator.user_edits(
        ivan["id"], ivan["id"], sent[inside]["message_id"], text="m99 (corrected)"
    )
    reply = await world.in_staff(lambda m: "m99 (corrected)" in text_of(m))
    assert reply["reply_to_message"]["message_id"] == combined["message_id"]
    assert text_of(
        next(m for m in world.staff_messages(topic) if m["message_id"] == combined["message_id"])
    ) == text_of(combined)
    # Operators' replies to a combined message still reach the customer.
    await world.emulator.user_sends(
        world.operator["id"],
        chat_id=STAFF_CHAT,
        message_thread_id=topic,
        text="got all of them",
        reply_to_message_id=combined["message_id"],
    )
    await world.in_private(ivan, lambda m: text_of(m) == "got all of them")


async def test_topics_take_turns_at_the_groups_budget(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway(tweak=limits(world, relays=False, coalesce=False))
    ivan, maria = world.customer(), world.customer("Maria", "maria")
    burst = [f"m{i:02d}" for i in range(24)]
    for n, text in enumerate(burst):
        await world.say(ivan, text=text)
        if n == 3:
            await world.say(maria, text="one question")  # behind most of Ivan's burst
    await world.in_staff(lambda m: text_of(m) == "m23", timeout=30)
    everything = [text_of(m) for m in world.staff_messages()]
    # Maria's topic (created, headed, her message) got turns between Ivan's sends: she
    # did not wait for his whole burst.
    assert everything.index("one question") < everything.index("m16"), everything
    assert world.emulator.too_many_requests() == 0


async def test_photos_waiting_for_budget_go_as_albums(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway(tweak=limits(world, relays=False, coalesce=True))
    ivan = world.customer()
    photos = [b"\x89PNG\r\n\x1a\n" + bytes([n]) * 200 for n in range(12)]
    sent = [
        await world.say(ivan, photo=photo, caption=f"p{n:02d}") for n, photo in enumerate(photos)
    ]
    await world.in_staff(lambda m: m.get("caption") == "p00")
    topic = world.topic_of("Ivan")

    def copies() -> list[dict[str, Any]]:
        return [m for m in world.staff_messages(topic) if "photo" in m]

    await eventually(lambda: len(copies()) == len(photos), timeout=30)
    got = copies()
    # Every photo arrives once, in order, with its caption and its own bytes.
    assert [m["caption"] for m in got] == [f"p{n:02d}" for n in range(12)]
    assert [world.emulator.file_bytes(m["photo"][-1]["file_id"]) for m in got] == photos
    albums = {m["media_group_id"] for m in got if "media_group_id" in m}
    assert albums, "a burst waiting for budget is grouped"
    sends = len(albums) + sum("media_group_id" not in m for m in got)
    assert sends < len(photos) // 2, sends
    assert world.emulator.too_many_requests() == 0
    # Each photo of an album still maps to its own copy: an operator's reply quoting
    # one quotes that very photo on the customer's side.
    quoted = got[-1]
    await world.emulator.user_sends(
        world.operator["id"],
        chat_id=STAFF_CHAT,
        message_thread_id=topic,
        text="this one?",
        reply_to_message_id=quoted["message_id"],
    )
    answer = await world.in_private(ivan, lambda m: text_of(m) == "this one?")
    assert answer["reply_to_message"]["message_id"] == sent[-1]["message_id"]
