"""A reply the messenger refused (issue 10): the operator's message gets 💔 and a notice
naming the reason with [Retry], [Send as file] (media) and [Via <channel>] (another
identity of the person) — end to end through the Telegram and WhatsApp emulators, for
refusals at send time and for failures a receipt reports later."""

from __future__ import annotations

from typing import Any

from gateway.sandbox.whatsapp import WhatsAppEmulator
from gateway.store import keys
from tests.conftest import (
    CUSTOMER_TOKEN,
    STAFF_CHAT,
    StartGateway,
    World,
    answer_of,
    eventually,
    text_of,
)
from tests.test_reactions import bot_reactions
from tests.test_whatsapp_flow import NUMBER, wa, wa_says, with_wa

__all__ = ["wa"]  # a fixture of the WhatsApp tests, used here too
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def buttons(message: dict[str, Any]) -> dict[str, str]:
    """A message's inline buttons: text → callback data."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return {b["text"]: b["callback_data"] for row in rows for b in row}


async def press(world: World, message: dict[str, Any], data: str) -> dict[str, Any]:
    query = await world.emulator.press_button(
        world.operator["id"], STAFF_CHAT, message["message_id"], data
    )
    return await answer_of(world, query)


def to_customer(world: World, user: dict[str, Any]) -> list[dict[str, Any]]:
    return world.emulator.messages(user["id"], bot_token=CUSTOMER_TOKEN)


async def failure_under(world: World, sent: dict[str, Any]) -> dict[str, Any]:
    """The failure notice answering the operator's message ``sent``."""

    def under(message: dict[str, Any]) -> bool:
        answered = (message.get("reply_to_message") or {}).get("message_id")
        return answered == sent["message_id"] and "Not delivered" in text_of(message)

    return await world.in_staff(under)


def live(world: World, message_id: int) -> bool:
    return any(m["message_id"] == message_id for m in world.staff_messages())


async def test_a_refused_reply_is_marked_and_can_be_retried_or_sent_as_a_file(
    world: World, start_gateway: StartGateway
) -> None:
    running = await start_gateway()
    ivan = world.customer()
    await world.say(ivan, text="Где заказ?")
    topic = (await world.in_staff(lambda m: text_of(m) == "Где заказ?"))["message_thread_id"]

    world.emulator.block_bot(ivan["id"], CUSTOMER_TOKEN)
    reply = await world.operator_says(topic, text="Заказ в пути")
    notice = await failure_under(world, reply)
    assert "blocked" in text_of(notice)
    assert buttons(notice) == {"🔁 Retry": f"d:retry:{reply['message_id']}"}  # one identity
    await eventually(lambda: world.reactions(reply["message_id"]) == ["💔"])

    # The customer unblocks the bot; [Retry] gets the very message through.
    world.emulator.block_bot(ivan["id"], CUSTOMER_TOKEN, blocked=False)
    answer = await press(world, notice, buttons(notice)["🔁 Retry"])
    assert answer["text"] == "Sending it again…" and not answer.get("show_alert")
    await eventually(lambda: any(text_of(m) == "Заказ в пути" for m in to_customer(world, ivan)))
    await eventually(lambda: not live(world, notice["message_id"]))  # the notice goes
    await eventually(lambda: bot_reactions(world, reply["message_id"])[-1] == [])  # and 💔

    # A notice that could not be removed (older than 48 hours): pressed again, it
    # sends nothing twice.
    world.emulator.block_bot(ivan["id"], CUSTOMER_TOKEN)
    second = await world.operator_says(topic, text="Вы получили?")
    stuck = await failure_under(world, second)
    world.emulator.block_bot(ivan["id"], CUSTOMER_TOKEN, blocked=False)
    world.emulator.inject_fault(
        "deleteMessage", status=400, description="Bad Request: message can't be deleted"
    )
    await press(world, stuck, buttons(stuck)["🔁 Retry"])
    await eventually(lambda: any(text_of(m) == "Вы получили?" for m in to_customer(world, ivan)))
    again = await press(world, stuck, buttons(stuck)["🔁 Retry"])
    assert again.get("show_alert") and "Already sent again" in again["text"]
    assert sum(text_of(m) == "Вы получили?" for m in to_customer(world, ivan)) == 1

    # A photo Telegram cannot process as a photo goes through as a file.
    world.emulator.inject_fault(
        "sendPhoto", CUSTOMER_TOKEN, status=400, description="Bad Request: IMAGE_PROCESS_FAILED"
    )
    photo = await world.operator_says(topic, photo=("scan.png", PNG, "image/png"), caption="Чек")
    failed = await failure_under(world, photo)
    assert "IMAGE_PROCESS_FAILED" in text_of(failed)
    assert set(buttons(failed)) == {"🔁 Retry", "📎 Send as file"}
    answer = await press(world, failed, buttons(failed)["📎 Send as file"])
    assert answer["text"] == "Sending it as a file…"
    await eventually(lambda: any("document" in m for m in to_customer(world, ivan)))
    document = next(m for m in to_customer(world, ivan) if "document" in m)
    assert document.get("caption") == "Чек"
    assert world.emulator.file_bytes(document["document"]["file_id"]) == PNG

    # Telegram has no receipts: a delivered reply is never kept; a pressed one is forgotten.
    for sent in (reply, second, photo):
        assert not await running.redis.exists(
            keys.undelivered(str(STAFF_CHAT), str(sent["message_id"]))
        )


async def test_a_refused_reply_goes_through_the_persons_other_messenger(
    world: World, start_gateway: StartGateway, wa: WhatsAppEmulator
) -> None:
    await start_gateway(tweak=with_wa(wa))
    olga_wa = wa.create_user("Olga", "79161234567")
    wa.user_send(NUMBER, olga_wa, "Здравствуйте")
    topic = (await world.in_staff(lambda m: text_of(m) == "Здравствуйте"))["message_thread_id"]
    # The same person on Telegram shares her phone: one contact, one topic.
    olga = world.customer("Olga", "olga")
    own = {"phone_number": "+79161234567", "first_name": "Olga", "user_id": olga["id"]}
    await world.say(olga, contact=own)
    await world.say(olga, text="Это я же, из Телеграма")
    said = await world.in_staff(lambda m: text_of(m).endswith("Это я же, из Телеграма"))
    assert said["message_thread_id"] == topic

    world.emulator.block_bot(olga["id"], CUSTOMER_TOKEN)  # answers go to Telegram: refused
    reply = await world.operator_says(topic, text="Ваш заказ готов")
    notice = await world.in_staff(lambda m: "Not delivered" in text_of(m))
    assert buttons(notice) == {
        "🔁 Retry": f"d:retry:{reply['message_id']}",
        "↪️ Via Whatsapp (wa_shop)": f"d:via:{reply['message_id']}:0",
    }
    answer = await press(world, notice, buttons(notice)["↪️ Via Whatsapp (wa_shop)"])
    assert answer["text"] == "Sending it via wa_shop…"
    await eventually(
        lambda: any(m.get("body") == "Ваш заказ готов" for m in wa.conversation(NUMBER, olga_wa))
    )
    await eventually(lambda: world.reactions(reply["message_id"])[-1:] == ["👌"])  # delivered


async def test_a_failure_reported_later_by_receipt_gets_the_same_buttons(
    world: World, start_gateway: StartGateway, wa: WhatsAppEmulator
) -> None:
    running = await start_gateway(tweak=with_wa(wa))
    ivan, asked = await wa_says(world, wa, "Где заказ?", number="79160000001")
    topic = asked["message_thread_id"]
    # Meta accepts a message past the 24-hour window and fails it afterwards (131047).
    wa.window_errors = "async"
    wa.advance(25 * 3600)
    reply = await world.operator_says(topic, text="Вы тут?")
    notice = await failure_under(world, reply)
    assert buttons(notice) == {"🔁 Retry": f"d:retry:{reply['message_id']}"}
    await eventually(lambda: world.reactions(reply["message_id"])[-1:] == ["💔"])
    kept = keys.undelivered(str(STAFF_CHAT), str(reply["message_id"]))
    assert 6 * 86400 < await running.redis.ttl(kept) <= 7 * 86400  # kept for the buttons

    # A delivered reply is forgotten at its receipt: nothing kept for nothing.
    wa.window_errors = "sync"
    wa.user_send(NUMBER, ivan, "Да")
    await world.in_staff(lambda m: text_of(m) == "Да")
    fine = await world.operator_says(topic, text="Отлично")
    await eventually(lambda: world.reactions(fine["message_id"])[-1:] == ["👌"])
    fine_kept = keys.undelivered(str(STAFF_CHAT), str(fine["message_id"]))
    assert not await running.redis.exists(fine_kept)

    # [Retry] now, inside the new window, gets the first reply through.
    answer = await press(world, notice, buttons(notice)["🔁 Retry"])
    assert answer["text"] == "Sending it again…"

    def statuses() -> list[str]:
        sent = [m for m in wa.conversation(NUMBER, ivan) if m.get("body") == "Вы тут?"]
        return [m["status"] for m in sent]

    await eventually(lambda: statuses() == ["failed", "delivered"])
    assert not await running.redis.exists(kept)


async def test_a_file_bigger_than_the_messenger_takes_is_refused_before_fetching_it(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway()
    ivan = world.customer()
    await world.say(ivan, text="Пришлите каталог")
    topic = (await world.in_staff(lambda m: text_of(m) == "Пришлите каталог"))["message_thread_id"]
    big = b"%PDF-1.4" + b"\x00" * (51 * 2**20)
    catalog = await world.operator_says(topic, document=("catalog.pdf", big, "application/pdf"))
    notice = await failure_under(world, catalog)
    assert "51.0 MB and telegram takes at most 50 MB" in text_of(notice)
    assert not world.emulator.calls_of("getFile")  # not even fetched
