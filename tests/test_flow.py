"""End to end: customer ↔ Telegram emulator ↔ gateway (real Redis, real aiogram) ↔ staff."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import (
    CUSTOMER_TOKEN,
    STAFF_CHAT,
    STAFF_TOKEN,
    StartGateway,
    World,
    eventually,
    text_of,
)


async def test_first_message_opens_topic_with_pinned_card(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway()
    ivan = world.customer("Ivan", "ivan")
    await world.say(ivan, text="Hello, is the shop open?")

    hello = await world.in_staff(lambda m: text_of(m) == "Hello, is the shop open?")
    topic = world.topic_of("Ivan · Telegram")
    assert hello["message_thread_id"] == topic
    card = world.staff_messages(topic)
    texts = [text_of(m) for m in card]
    assert any("👤 Ivan (@ivan)" in t and "Telegram · tg_shop" in t for t in texts), texts
    assert any(call.method.lower() == "pinchatmessage" for call in world.emulator.calls)


async def test_every_kind_reaches_the_topic(world: World, start_gateway: StartGateway) -> None:
    await start_gateway()
    ivan = world.customer()
    photo = b"\x89PNG\r\n\x1a\n" + b"p" * 300
    await world.say(ivan, photo=photo, caption="my receipt")
    await world.say(ivan, document=("invoice.pdf", b"%PDF-1.4 invoice", "application/pdf"))
    await world.say(ivan, audio=b"ID3 song")
    await world.say(ivan, voice=b"OggS voice")
    await world.say(ivan, video=b"mp4 video")
    await world.say(ivan, video_note=b"mp4 round")
    await world.say(ivan, animation=b"gif anim")
    await world.say(ivan, sticker="😀")
    await world.say(ivan, location=(55.75, 37.62))
    await world.say(
        ivan, venue={"latitude": 55.7, "longitude": 37.6, "title": "Shop", "address": "Tverskaya 1"}
    )
    await world.say(ivan, contact={"phone_number": "+79161234567", "first_name": "Ivan"})
    await world.say(ivan, poll={"question": "Which colour?", "options": ["red", "blue"]})
    await world.say(ivan, dice="🎲")
    await world.say(ivan, text="last")

    await world.in_staff(lambda m: text_of(m) == "last", timeout=15)
    topic = world.topic_of("Ivan")
    got = world.staff_messages(topic)
    kinds = [
        k
        for m in got
        for k in (
            "photo",
            "document",
            "audio",
            "voice",
            "video",
            "video_note",
            "animation",
            "sticker",
            "venue",
            "location",
            "contact",
        )
        if k in m
    ]
    for kind in (
        "photo",
        "document",
        "audio",
        "voice",
        "video",
        "video_note",
        "animation",
        "sticker",
        "venue",
        "location",
        "contact",
    ):
        assert kind in kinds, (kind, kinds)
    photo_msg = next(m for m in got if "photo" in m)
    assert photo_msg["caption"] == "my receipt"
    # Another bot's file id cannot be reused: the bytes were downloaded and re-uploaded.
    assert world.emulator.file_bytes(photo_msg["photo"][-1]["file_id"]) == photo
    doc = next(m for m in got if "document" in m and "animation" not in m)
    assert doc["document"]["file_name"] == "invoice.pdf"
    texts = [text_of(m) for m in got]
    assert any("📊 Which colour?" in t and "• blue" in t for t in texts), texts
    assert any("not supported" in t for t in texts), texts
    # Order per contact is kept.
    order = [i for i, m in enumerate(got) if "photo" in m or text_of(m) == "last"]
    assert order == sorted(order)


async def test_operator_reply_goes_back_with_reply_link(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway()
    ivan = world.customer()
    question = await world.say(ivan, text="Do you deliver?")
    staff_copy = await world.in_staff(lambda m: text_of(m) == "Do you deliver?")
    topic = world.topic_of("Ivan")

    await world.operator_says(
        topic, text="Yes, tomorrow.", reply_to_message_id=staff_copy["message_id"]
    )
    answer = await world.in_private(ivan, lambda m: text_of(m) == "Yes, tomorrow.")
    assert answer["reply_to_message"]["message_id"] == question["message_id"]

    # The customer answers the operator's message: it quotes the operator's staff message.
    await world.say(ivan, text="Great", reply_to_message_id=answer["message_id"])
    quoted = await world.in_staff(lambda m: text_of(m) == "Great")
    op_msg = next(m for m in world.staff_messages(topic) if text_of(m) == "Yes, tomorrow.")
    assert quoted["reply_to_message"]["message_id"] == op_msg["message_id"]


async def test_operator_media_reaches_customer(world: World, start_gateway: StartGateway) -> None:
    await start_gateway()
    ivan = world.customer()
    await world.say(ivan, text="Send me the price list")
    await world.in_staff(lambda m: text_of(m) == "Send me the price list")
    topic = world.topic_of("Ivan")
    await world.operator_says(
        topic, document=("prices.pdf", b"%PDF prices", "application/pdf"), caption="Here"
    )
    got = await world.in_private(ivan, lambda m: "document" in m)
    assert got["caption"] == "Here"
    assert world.emulator.file_bytes(got["document"]["file_id"]) == b"%PDF prices"


async def test_notes_and_commands_are_not_sent(world: World, start_gateway: StartGateway) -> None:
    await start_gateway()
    ivan = world.customer()
    await world.say(ivan, text="hi")
    await world.in_staff(lambda m: text_of(m) == "hi")
    topic = world.topic_of("Ivan")
    await world.operator_says(topic, text="! he called yesterday too")
    await world.operator_says(topic, text="/help")
    await world.operator_says(topic, text="/nonsense")
    await world.in_staff(lambda m: "Unknown command /nonsense" in text_of(m))
    await world.in_staff(lambda m: "internal note" in text_of(m) and "/help" in text_of(m))
    await world.operator_says(topic, text="real answer")
    await world.in_private(ivan, lambda m: text_of(m) == "real answer")
    private = [text_of(m) for m in world.emulator.messages(ivan["id"])]
    assert "! he called yesterday too" not in private
    assert not any(t.startswith("/") for t in private)


async def test_second_customer_gets_second_topic(world: World, start_gateway: StartGateway) -> None:
    await start_gateway()
    ivan, maria = world.customer("Ivan"), world.customer("Maria", "maria")
    await world.say(ivan, text="from ivan")
    await world.say(maria, text="from maria")
    a = await world.in_staff(lambda m: text_of(m) == "from ivan")
    b = await world.in_staff(lambda m: text_of(m) == "from maria")
    assert a["message_thread_id"] != b["message_thread_id"]
    await world.say(ivan, text="ivan again")
    again = await world.in_staff(lambda m: text_of(m) == "ivan again")
    assert again["message_thread_id"] == a["message_thread_id"]
    # Replies go to the right person.
    await world.operator_says(b["message_thread_id"], text="for maria")
    await world.in_private(maria, lambda m: text_of(m) == "for maria")
    assert "for maria" not in [text_of(m) for m in world.emulator.messages(ivan["id"])]


async def test_customer_edit_updates_staff_copy(world: World, start_gateway: StartGateway) -> None:
    await start_gateway()
    ivan = world.customer()
    sent = await world.say(ivan, text="I want 2 boxes")
    await world.in_staff(lambda m: text_of(m) == "I want 2 boxes")
    await world.emulator.user_edits(
        ivan["id"], ivan["id"], sent["message_id"], text="I want 3 boxes"
    )
    edited = await world.in_staff(
        lambda m: text_of(m).startswith("I want 3 boxes") and "✏️ edited" in text_of(m)
    )
    assert edited.get("edit_date")


async def test_deleted_topic_is_recreated(world: World, start_gateway: StartGateway) -> None:
    running = await start_gateway()
    ivan = world.customer()
    await world.say(ivan, text="one")
    first = await world.in_staff(lambda m: text_of(m) == "one")
    await world.in_staff(  # its task card is there before the topic goes
        lambda m: (
            text_of(m).startswith("📋") and m.get("message_thread_id") == first["message_thread_id"]
        )
    )
    world.emulator.delete_topic(STAFF_CHAT, first["message_thread_id"])
    await world.say(ivan, text="two")
    second = await world.in_staff(lambda m: text_of(m) == "two")
    assert second["message_thread_id"] != first["message_thread_id"]
    assert world.topic_of("Ivan") == second["message_thread_id"]
    # The task card went with the old topic: it is drawn again (pinned) in the new one,
    # although the second message changed nothing on it.
    card = await world.in_staff(
        lambda m: (
            text_of(m).startswith("📋")
            and m.get("message_thread_id") == second["message_thread_id"]
        )
    )
    await world.in_staff(
        lambda m: (m.get("pinned_message") or {}).get("message_id") == card["message_id"]
    )
    # Operators reply in the new topic and it reaches the customer.
    await world.operator_says(second["message_thread_id"], text="we are here")
    await world.in_private(ivan, lambda m: text_of(m) == "we are here")
    assert running.app.metrics.topics_recreated._value.get() == 1


async def test_429_delays_but_delivers(world: World, start_gateway: StartGateway) -> None:
    await start_gateway()
    ivan = world.customer()
    await world.say(ivan, text="warm up")
    await world.in_staff(lambda m: text_of(m) == "warm up")
    world.emulator.inject_fault(
        method="sendMessage", bot_token=None, status=429, retry_after=1, count=2
    )
    await world.say(ivan, text="after the flood")
    await world.in_staff(lambda m: text_of(m) == "after the flood", timeout=15)
    assert world.emulator.too_many_requests() >= 2
    assert [text_of(m) for m in world.staff_messages()].count("after the flood") == 1


async def test_server_errors_are_retried(world: World, start_gateway: StartGateway) -> None:
    await start_gateway()
    ivan = world.customer()
    await world.say(ivan, text="first")
    topic = (await world.in_staff(lambda m: text_of(m) == "first"))["message_thread_id"]
    world.emulator.inject_fault(method="sendMessage", status=502, count=2)
    await world.operator_says(topic, text="through the 502s")
    await world.in_private(ivan, lambda m: text_of(m) == "through the 502s", timeout=15)


async def test_redelivered_update_is_processed_once(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway()
    ivan = world.customer()
    await world.say(ivan, text="only once")
    await world.in_staff(lambda m: text_of(m) == "only once")
    update = world.emulator.updates_sent(CUSTOMER_TOKEN)[-1]
    await world.emulator.redeliver(CUSTOMER_TOKEN, update["update_id"])
    await world.say(ivan, text="marker")
    await world.in_staff(lambda m: text_of(m) == "marker")
    assert [text_of(m) for m in world.staff_messages()].count("only once") == 1


async def test_blocked_customer_is_reported_in_topic(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway()
    ivan = world.customer()
    await world.say(ivan, text="bye")
    topic = (await world.in_staff(lambda m: text_of(m) == "bye"))["message_thread_id"]
    world.emulator.block_bot(ivan["id"], CUSTOMER_TOKEN)
    op = await world.operator_says(topic, text="are you there?")
    notice = await world.in_staff(lambda m: "Not delivered" in text_of(m))
    assert "blocked the bot" in text_of(notice)
    assert notice["reply_to_message"]["message_id"] == op["message_id"]


async def test_only_operators_in_the_staff_group_are_obeyed(
    world: World, start_gateway: StartGateway
) -> None:
    running = await start_gateway()
    ivan = world.customer()
    await world.say(ivan, text="hello")
    topic = (await world.in_staff(lambda m: text_of(m) == "hello"))["message_thread_id"]
    stranger = world.emulator.create_user(first_name="Mallory")
    world.emulator.add_member(STAFF_CHAT, stranger["id"])
    await world.emulator.user_sends(
        stranger["id"], chat_id=STAFF_CHAT, message_thread_id=topic, text="from a stranger"
    )
    await world.operator_says(topic, text="from the operator")
    await world.in_private(ivan, lambda m: text_of(m) == "from the operator")
    assert "from a stranger" not in [text_of(m) for m in world.emulator.messages(ivan["id"])]
    sent = running.app.metrics.outbound.labels("customer", "telegram", "tg_shop", "sent")

    async def counted_once() -> bool:
        return bool(sent._value.get() == 1)

    await eventually(counted_once)


@pytest.mark.parametrize("mode", ["polling"])
async def test_polling_mode(world: World, start_gateway: StartGateway, mode: str) -> None:
    await start_gateway(mode=mode)
    ivan = world.customer()
    await world.say(ivan, text="polled")
    topic = (await world.in_staff(lambda m: text_of(m) == "polled"))["message_thread_id"]
    await world.operator_says(topic, text="polled back")
    await world.in_private(ivan, lambda m: text_of(m) == "polled back")


async def test_queue_depth_drains_to_zero(world: World, start_gateway: StartGateway) -> None:
    running = await start_gateway()
    ivan = world.customer()
    for i in range(10):
        await world.say(ivan, text=f"m{i}")
    await world.in_staff(lambda m: text_of(m) == "m9")

    async def drained() -> bool:
        return all(
            [await running.app.bus.depth(f) == 0 for f in ("in", "out:staff", "out:customer")]
        )

    await eventually(drained)
    texts = [text_of(m) for m in world.staff_messages() if text_of(m).startswith("m")]
    assert texts == [f"m{i}" for i in range(10)]


async def test_real_group_limit_is_kept_without_429(
    world: World, start_gateway: StartGateway
) -> None:
    """Telegram's 20 messages/minute per group, enforced by the emulator: the gateway
    paces itself (default limits) and never triggers a 429."""
    world.emulator.set_flood_limits(True)
    await start_gateway(tweak=lambda d: d["delivery"].update(flood_limits=True))
    ivan = world.customer()
    await world.say(ivan, text="one")
    await world.say(ivan, text="two")
    await world.in_staff(lambda m: text_of(m) == "two", timeout=20)
    assert world.emulator.too_many_requests() == 0


async def test_operator_sends_every_kind(world: World, start_gateway: StartGateway) -> None:
    await start_gateway()
    ivan = world.customer()
    await world.say(ivan, text="show me")
    topic = (await world.in_staff(lambda m: text_of(m) == "show me"))["message_thread_id"]
    await world.operator_says(topic, photo=b"\x89PNG op photo", caption="the photo")
    await world.operator_says(topic, voice=b"OggS op voice")
    await world.operator_says(topic, video=b"op video")
    await world.operator_says(topic, audio=b"op audio")
    await world.operator_says(topic, animation=b"op gif")
    await world.operator_says(topic, sticker="👍")
    await world.operator_says(topic, location=(59.93, 30.31))
    await world.operator_says(
        topic, venue={"latitude": 59.9, "longitude": 30.3, "title": "Office", "address": "Nevsky 1"}
    )
    await world.operator_says(
        topic, contact={"phone_number": "+78120000000", "first_name": "Office"}
    )
    await world.operator_says(topic, text="done")
    await world.in_private(ivan, lambda m: text_of(m) == "done", timeout=15)
    got = world.emulator.messages(ivan["id"])
    for kind in (
        "photo",
        "voice",
        "video",
        "audio",
        "animation",
        "sticker",
        "venue",
        "location",
        "contact",
    ):
        assert any(kind in m for m in got), kind
    photo = next(m for m in got if "photo" in m)
    assert photo["caption"] == "the photo"
    assert world.emulator.file_bytes(photo["photo"][-1]["file_id"]) == b"\x89PNG op photo"


async def test_a_reply_in_a_topic_of_no_customer_is_not_silently_lost(
    world: World, start_gateway: StartGateway
) -> None:
    """A topic staff made by hand (or an orphan left by a topic creation whose answer
    came too late): an operator writing there is told nothing was sent."""
    await start_gateway()
    ivan = world.customer()
    await world.say(ivan, text="hello")
    await world.in_staff(lambda m: text_of(m) == "hello")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{world.emulator.base_url}/bot{STAFF_TOKEN}/createForumTopic",
            json={"chat_id": STAFF_CHAT, "name": "Ivan · Telegram"},
        ) as response,
    ):
        orphan = (await response.json())["result"]["message_thread_id"]
    sent = await world.operator_says(orphan, text="are you still there?")
    told = await world.answer_to(sent)
    assert told["message_thread_id"] == orphan
    assert text_of(told).startswith("⚠️ Not sent: this topic belongs to no customer.")
    await world.operator_says(orphan, text="!a note to self")  # notes stay quiet
    await world.operator_says(world.topic_of("Ivan"), text="here")
    await world.in_private(ivan, lambda m: text_of(m) == "here")
    assert sum("belongs to no customer" in text_of(m) for m in world.staff_messages()) == 1
    assert not any(
        text_of(m) == "are you still there?" for m in world.emulator.messages(ivan["id"])
    )
