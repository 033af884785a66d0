"""One person across messengers: dedup by phone, merging with open tasks on both
sides, contact commands and their bad input — real Redis, two customer bots in the
emulator, a controllable clock."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import process as bp
from gateway.config import parse_config
from gateway.contacts import Contacts
from gateway.jobs import StaffNotice
from gateway.model import AccountId, Channel, ChatId, ContactId, PlatformUserId, Sender
from gateway.store import keys
from gateway.store.merge import Merger
from gateway.store.processes import ProcessStore
from gateway.store.redis import close, connect, text
from tests.conftest import (
    STAFF_CHAT,
    Clock,
    StartGateway,
    World,
    answer_of,
    buttons_of,
    config_dict,
    eventually,
    text_of,
)

MSK = ZoneInfo("Europe/Moscow")
SUPPORT_TOKEN = "1003:support-bot-token-cccccccccccccccccccc"
PHONE = "+79161234567"


def two_bots(data: dict[str, Any]) -> None:
    shop = data["channels"][0]
    data["channels"].append({**shop, "id": "tg_support", "token": SUPPORT_TOKEN})


async def _support_says(world: World, user: dict[str, Any], **content: Any) -> None:
    await world.emulator.user_sends(user["id"], bot_token=SUPPORT_TOKEN, **content)


def _own_contact(user: dict[str, Any], phone: str) -> dict[str, Any]:
    return {"phone_number": phone, "first_name": user["first_name"], "user_id": user["id"]}


async def test_a_shared_phone_makes_two_messengers_one_person(
    world: World, start_gateway: StartGateway
) -> None:
    running = await start_gateway(tweak=two_bots)
    ivan = world.customer("Ivan")
    await world.say(ivan, text="hi from the shop bot")
    topic = (await world.in_staff(lambda m: text_of(m) == "hi from the shop bot"))[
        "message_thread_id"
    ]
    # Ivan shares his phone, written the Russian way.
    await world.say(ivan, contact=_own_contact(ivan, "8 (916) 123-45-67"))
    await world.in_staff(lambda m: "contact" in m and m["message_thread_id"] == topic)
    # The same person on another messenger (here: another bot) shares the same phone.
    other = world.customer("Ivan P.", "ivan_p")
    await _support_says(world, other, contact=_own_contact(other, "+7 916 123 45 67"))
    await _support_says(world, other, text="and now from support")
    # One topic, two messengers: each forwarded message says which one it came from.
    later = await world.in_staff(lambda m: text_of(m) == "✈️ tg_support\nand now from support")
    assert later["message_thread_id"] == topic  # the same topic: one person
    assert len([m for m in world.staff_messages(topic) if "contact" in m]) == 2
    assert await running.redis.get(keys.CONTACT_SEQ) == b"1"  # no second contact
    assert await running.redis.get(keys.phone(PHONE)) == b"1"

    # A reply goes to the messenger the person wrote from last.
    await world.operator_says(topic, text="hello Ivan")
    await world.in_private(other, lambda m: text_of(m) == "hello Ivan")
    sent = await world.operator_says(topic, text="/contact")
    card = await world.answer_to(sent)
    assert f"tg_shop:{ivan['id']}" in text_of(card)
    assert f"tg_support:{other['id']}" in text_of(card)
    assert f"Phones: {PHONE}" in text_of(card)

    # /via switches the messenger; a reply to a forwarded message goes back through
    # that message's messenger.
    sent = await world.operator_says(topic, text="/via tg_shop")
    switched = await world.answer_to(sent)
    assert "Replies now go via tg_shop" in text_of(switched)
    await world.operator_says(topic, text="via the shop")
    await world.in_private(ivan, lambda m: text_of(m) == "via the shop")
    await world.operator_says(
        topic, text="answering your support message", reply_to_message_id=later["message_id"]
    )
    answer = await world.in_private(other, lambda m: text_of(m) == "answering your support message")
    assert answer.get("reply_to_message", {}).get("text") == "and now from support"
    sent = await world.operator_says(topic, text="/via tg_nowhere")
    refused = await world.answer_to(sent)
    assert "Replies can go via: tg_shop, tg_support" in text_of(refused)


async def test_merge_with_open_tasks_on_both_sides(
    world: World, start_gateway: StartGateway
) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))
    running = await start_gateway(tweak=two_bots, clock=clock)
    ivan, other = world.customer("Ivan"), world.customer("Ivan P.", "ivan_p")
    await world.say(ivan, text="first")
    first = (await world.in_staff(lambda m: text_of(m) == "first"))["message_thread_id"]
    clock.now += timedelta(minutes=5)
    await _support_says(world, other, text="second")
    second = (await world.in_staff(lambda m: text_of(m) == "second"))["message_thread_id"]
    assert first != second

    sent = await world.operator_says(first, text=f"/merge https://t.me/c/5550000001/{second}")
    welcome = await world.in_staff(lambda m: "is merged into this one" in text_of(m))
    assert welcome["message_thread_id"] == first
    assert (welcome.get("reply_to_message") or {}).get("message_id") == sent["message_id"]
    farewell = await world.in_staff(lambda m: "Merged into contact #1" in text_of(m))
    assert farewell["message_thread_id"] == second
    assert f"https://t.me/c/5550000001/{first}" in text_of(farewell)

    async def closed() -> bool:
        return any(
            t["message_thread_id"] == second and t.get("closed")
            for t in world.emulator.topics(STAFF_CHAT)
        )

    await eventually(closed)

    # One open task: the survivor's, under the earlier deadline; the other closed.
    process = await running.app.processes.current("1")
    assert process is not None and process.task.is_open and process.task.awaiting_reply
    assert process.task.respond_by == datetime(2026, 11, 23, 10, 15, tzinfo=MSK)
    archived = await running.app.processes.archive("1")
    assert [p.task.close_reason for p in archived] == [bp.MERGED]
    assert await running.app.processes.current("2") is None
    timers = {m.decode() for m in await running.redis.zrange(keys.TIMERS, 0, -1)}
    assert not any(t.endswith(":2") for t in timers)
    assert "contact.merged" in await running.event_types()

    # Every later message of the absorbed identity lands in the surviving topic.
    await _support_says(world, other, text="third")
    third = await world.in_staff(lambda m: text_of(m) == "✈️ tg_support\nthird")
    assert third["message_thread_id"] == first
    # Something still queued for the absorbed contact goes to the person's topic; the
    # absorbed topic stays closed.
    late = StaffNotice(out_id="late-notice", contact_id=ContactId("2"), text="late news")
    bus = running.app.bus
    await bus.commit(lambda pipe: bus.add(pipe, keys.STAFF_OUT, "2", late.model_dump_json()))
    redirected = await world.in_staff(lambda m: text_of(m) == "late news")
    assert redirected["message_thread_id"] == first
    assert await closed()
    # A merge twice is refused clearly.
    sent = await world.operator_says(first, text="/merge 2")
    again = await world.answer_to(sent)
    assert "already merged into #1" in text_of(again)

    # Unmerge: the messenger goes back to its own contact and topic (reopened).
    sent = await world.operator_says(first, text="/unmerge tg_support")
    split = await world.answer_to(sent)
    assert f"tg_support:{other['id']} is split out into contact #2" in text_of(split)
    await world.in_staff(lambda m: "Split out of contact #1" in text_of(m))
    await _support_says(world, other, text="fourth")
    fourth = await world.in_staff(lambda m: text_of(m) == "fourth")
    assert fourth["message_thread_id"] == second
    assert not await running.redis.hexists(keys.contact("2"), "merged_into")
    unmerged = next(
        f
        for _, f in await running.redis.xrevrange(keys.EVENTS)
        if f[b"type"] == b"contact.unmerged"
    )
    assert unmerged[b"contact"] == b"1" and unmerged[b"actor"] == str(world.operator["id"]).encode()
    sent = await world.operator_says(first, text="/unmerge tg_shop")
    only = await world.answer_to(sent)
    assert "only messenger" in text_of(only)


@pytest.mark.parametrize("policy", ["exact", "suggest"])
async def test_phone_and_email_commands(
    world: World, start_gateway: StartGateway, policy: str
) -> None:
    def config(data: dict[str, Any]) -> None:
        two_bots(data)
        data["dedup"] = {"auto_merge": policy}

    running = await start_gateway(tweak=config)
    ivan, other = world.customer("Ivan"), world.customer("Ivan", "ivan2")
    await world.say(ivan, text="one")
    first = (await world.in_staff(lambda m: text_of(m) == "one"))["message_thread_id"]
    await _support_says(world, other, text="two")
    second = (await world.in_staff(lambda m: text_of(m) == "two"))["message_thread_id"]

    async def command(topic: int, text: str) -> str:
        sent = await world.operator_says(topic, text=text)
        answer = await world.answer_to(sent)
        return text_of(answer)

    # Bad input: a clear answer, nothing stored.
    assert "is not a phone number" in await command(first, "/phone call me maybe")
    assert "is not a valid phone number" in await command(first, "/phone 12")
    assert "is not an e-mail address" in await command(first, "/email ivan@")
    assert await running.redis.exists(keys.contact_phones("1"), keys.contact_emails("1")) == 0
    # The same name alone never merges anything.
    assert await running.app.processes.current("2") is not None

    assert await command(first, "/phone 8 (916) 123-45-67") == f"📞 {PHONE} saved."
    assert await command(first, "/email Ivan@Mail.RU") == "✉️ ivan@mail.ru saved."
    if policy == "suggest":
        answer = await command(second, "/email IVAN@mail.ru")
        assert "contact #1 Ivan has it too: see the suggestion" in answer
        assert not await running.redis.hexists(keys.contact("2"), "merged_into")
        in_first = await world.in_staff(
            lambda m: text_of(m).startswith("🧩") and m["message_thread_id"] == first
        )
        in_second = await world.in_staff(
            lambda m: text_of(m).startswith("🧩") and m["message_thread_id"] == second
        )
        assert "ivan@mail.ru also belongs to contact #2 Ivan" in text_of(in_first)
        assert [b["text"] for b in buttons_of(in_second)] == ["Merge", "Not the same"]
        operator = world.operator["id"]
        query = await world.emulator.press_button(
            operator, STAFF_CHAT, in_first["message_id"], "c:distinct:2"
        )
        assert (await answer_of(world, query))["text"] == "Noted: different people."
        assert await running.redis.sismember(keys.contact_distinct("2"), "1")
        # Asked once: the phone they also share suggests nothing new.
        assert "marked as another person" in await command(second, "/phone +7 916 123-45-67")
        # Staff can still merge them on purpose, from the other suggestion.
        query = await world.emulator.press_button(
            operator, STAFF_CHAT, in_second["message_id"], "c:merge:1"
        )
        assert (await answer_of(world, query))["text"] == "🔗 Merged."
        await world.in_staff(lambda m: "is merged into this one" in text_of(m))
        assert await running.redis.hget(keys.contact("2"), "merged_into") == b"1"
        return
    await world.operator_says(second, text="/email ivan@mail.ru")
    await world.in_staff(lambda m: "is merged into this one" in text_of(m))
    assert await running.redis.hget(keys.contact("2"), "merged_into") == b"1"


async def test_concurrent_first_messages_of_one_person_make_one_contact(redis_url: str) -> None:
    redis = await connect(redis_url)
    try:
        await redis.flushdb()
        contacts = Contacts(redis)
        at = datetime(2026, 11, 23, 10, 0, tzinfo=MSK)

        def sender(account: str, user: str) -> Sender:
            return Sender(
                account=AccountId(account),
                channel=Channel.TELEGRAM,
                user_id=PlatformUserId(user),
                chat_id=ChatId(user),
                display_name="Ivan",
            )

        # Someone already has the phone; two new identities bring it at once.
        await contacts.resolve(sender("tg_shop", "1"), at, phone=PHONE)
        results = await asyncio.gather(
            *(contacts.resolve(sender(f"acc{i}", str(100 + i)), at, phone=PHONE) for i in range(8))
        )
        assert {r.contact.id for r in results} == {"1"}
        assert all(r.joined and not r.created for r in results)
        _, phones, _ = await contacts.details(results[0].contact.id)
        assert phones == [PHONE]
        # Without a phone, two identities are two contacts, whatever their names.
        lone = await contacts.resolve(sender("tg_other", "9"), at)
        assert lone.created and lone.contact.id == "2"
    finally:
        await redis.flushdb()
        await close(redis)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.sampled_from(["tg_a", "tg_b", "vk", "viber"]), min_size=1, max_size=3, unique=True),
    st.lists(st.sampled_from(["tg_c", "wa", "vk2"]), min_size=1, max_size=3, unique=True),
)
def test_merge_then_unmerge_restores_who_is_who(
    redis_url: str, left: list[str], right: list[str]
) -> None:
    asyncio.run(_merge_round_trip(redis_url, left, right))


async def _merge_round_trip(redis_url: str, left: list[str], right: list[str]) -> None:
    redis = await connect(redis_url)
    try:
        await redis.flushdb()
        contacts = Contacts(redis)
        at = datetime(2026, 11, 23, 10, 0, tzinfo=MSK)
        senders = [
            Sender(
                account=AccountId(account),
                channel=Channel.TELEGRAM,
                user_id=PlatformUserId(str(100 + i)),
                chat_id=ChatId(str(100 + i)),
                display_name=side,
            )
            for side, accounts in (("A", left), ("B", right))
            for i, account in enumerate(accounts, start=10 * len(side) * (side == "B"))
        ]
        first = {}
        for sender in senders:
            # The first of each side makes its contact; the others join it by phone.
            phone = "+79160000001" if sender.display_name == "A" else "+79160000002"
            first[sender] = (await contacts.resolve(sender, at, phone=phone)).contact.id
        before = {s: first[s] for s in senders}
        a, b = before[senders[0]], before[senders[-1]]
        assert a != b
        settings = parse_config(yaml.safe_dump(config_dict("http://127.0.0.1:1", redis_url)))
        merger = Merger(redis, ProcessStore(redis, settings))
        await merger.merge(a, b, at, "test")
        for s in senders:
            assert await redis.get(keys.identity(s.account, s.user_id)) == a.encode()
        for s in senders[len(left) :]:
            await merger.unmerge(a, f"{s.account}:{s.user_id}", at)
        after = {s: text(await redis.get(keys.identity(s.account, s.user_id))) for s in senders}
        assert after == before
        assert not await redis.hexists(keys.contact(b), "merged_into")
    finally:
        await redis.flushdb()
        await close(redis)


async def test_history_timeline_across_messengers_and_find(
    world: World, start_gateway: StartGateway
) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))
    await start_gateway(tweak=two_bots, clock=clock)
    ivan, other = world.customer("Ivan", "ivan"), world.customer("Ivan P.", "ivan_p")
    await world.say(ivan, text="where is my order?")
    topic = (await world.in_staff(lambda m: text_of(m) == "where is my order?"))[
        "message_thread_id"
    ]
    clock.at(10, 5)
    await world.operator_says(topic, text="on its way")
    await world.in_private(ivan, lambda m: text_of(m) == "on its way")
    clock.at(10, 7)
    await _support_says(world, other, text="it is me again, from support")
    await world.in_staff(lambda m: text_of(m) == "it is me again, from support")

    async def command(thread: int | None, text: str) -> str:
        if thread is None:
            sent = await world.emulator.user_sends(
                world.operator["id"], chat_id=STAFF_CHAT, text=text
            )
        else:
            sent = await world.operator_says(thread, text=text)
        answer = await world.answer_to(sent)
        return text_of(answer)

    await command(topic, "/phone +79161234567")
    await command(topic, "/merge 2")
    history = await command(topic, "/history")
    assert "BP-20261123-0001 — 23.11.2026" in history
    assert "23.11 10:00 ← telegram · tg_shop: where is my order?" in history
    assert "23.11 10:05 → Anna: on its way" in history
    assert "23.11 10:07 ← telegram · tg_support: it is me again, from support" in history
    # The absorbed contact's process (closed as merged) is listed too.
    assert "BP-20261123-0002" in history and "merged" in history

    # Files of both messengers, with links to their copies in the topic.
    await world.say(ivan, photo=("receipt.jpg", b"\xff\xd8 jpeg bytes", "image/jpeg"))
    await _support_says(world, other, document=("invoice.pdf", b"%PDF-1.4", "application/pdf"))
    await world.in_staff(lambda m: "document" in m and m["message_thread_id"] == topic)
    files = await command(topic, "/attachments")
    assert files.startswith("📎 2 files, newest first:")
    assert "← document (tg_support)" in files and "← photo (tg_shop)" in files
    copies = [m["message_id"] for m in world.staff_messages(topic) if "photo" in m]
    assert f"https://t.me/c/5550000001/{topic}/{copies[0]}" in files
    assert (await command(topic, "/attachments photo")).startswith("📎 1 photo")
    assert "Kinds here: document, photo" in await command(topic, "/attachments video")

    link = f"https://t.me/c/5550000001/{topic}"
    for query in ("8 (916) 123-45-67", "+7 916 123 45 67", "ivan", "@IVAN", "Ivan P"):
        found = await command(None, f"/find {query}")
        assert "#1 Ivan" in found and link in found, (query, found)
    assert "Nothing found" in await command(None, "/find nobody at all")
    assert "Nothing found" in await command(None, "/find +79990000000")


async def test_similar_names_are_suggested_never_merged(
    world: World, start_gateway: StartGateway
) -> None:
    def config(data: dict[str, Any]) -> None:
        two_bots(data)
        data["dedup"] = {"suggest_by_name": True, "name_threshold": 85}

    running = await start_gateway(tweak=config)
    ivan = world.customer("Ivan Petrov", "ivan")
    await world.say(ivan, text="one")
    first = (await world.in_staff(lambda m: text_of(m) == "one"))["message_thread_id"]
    # The same words in another order (and another messenger): suggested.
    other = world.emulator.create_user(first_name="Petrov", last_name="Ivan", username="ip")
    await _support_says(world, other, text="two")
    second = (await world.in_staff(lambda m: text_of(m) == "two"))["message_thread_id"]
    suggestion = await world.in_staff(
        lambda m: text_of(m).startswith("🧩") and m["message_thread_id"] == second
    )
    assert "Contact #1 Ivan Petrov has a similar name" in text_of(suggestion)
    await world.in_staff(lambda m: text_of(m).startswith("🧩") and m["message_thread_id"] == first)
    # Someone else entirely: nothing.
    maria = world.customer("Maria Sidorova", "maria")
    await world.say(maria, text="three")
    await world.in_staff(lambda m: text_of(m) == "three")
    await asyncio.sleep(0.3)
    assert len([m for m in world.staff_messages() if text_of(m).startswith("🧩")]) == 2
    assert not await running.redis.hexists(keys.contact("2"), "merged_into")


async def test_accounts_that_do_not_create_clients_make_leads(
    world: World, start_gateway: StartGateway
) -> None:
    def config(data: dict[str, Any]) -> None:
        two_bots(data)
        data["channels"][1]["create_clients"] = False

    running = await start_gateway(tweak=config)
    ivan, stranger = world.customer("Ivan"), world.customer("Stranger", "stranger")
    await world.say(ivan, text="a customer")
    await world.in_staff(lambda m: text_of(m) == "a customer")  # Ivan is contact #1
    await _support_says(world, stranger, text="just asking")
    await world.in_staff(lambda m: "Contact #1 · client" in text_of(m))
    lead = await world.in_staff(lambda m: "Contact #2 · lead" in text_of(m))
    assert "Channel: ✈️ Telegram · tg_support" in text_of(lead)
    assert await running.redis.hget(keys.contact("2"), "kind") == b"lead"


async def test_the_header_shows_the_avatar_fetched_once(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway()
    ivan = world.customer("Ivan")
    world.emulator.set_profile_photo(ivan["id"], b"\xff\xd8 a face")
    await world.say(ivan, text="hello")
    await world.say(ivan, text="again")
    await world.in_staff(lambda m: text_of(m) == "again")
    header = next(m for m in world.staff_messages() if text_of(m).startswith("👤 Ivan"))
    assert "photo" in header
    file_id = header["photo"][-1]["file_id"]
    assert world.emulator.file_bytes(file_id) == b"\xff\xd8 a face"
    asked = [c for c in world.emulator.calls if c.method.lower() == "getuserprofilephotos"]
    assert len(asked) == 1


async def test_a_phone_written_in_a_message_is_saved_once_staff_confirm(
    world: World, start_gateway: StartGateway
) -> None:
    running = await start_gateway(tweak=two_bots)
    ivan = world.customer("Ivan")
    await world.say(ivan, text="call me at 8 (916) 123-45-67 after six")
    offer = await world.in_staff(lambda m: text_of(m).startswith("The customer wrote a phone"))
    assert [b["callback_data"] for b in buttons_of(offer)] == [f"c:phone:{PHONE}"]
    assert not await running.redis.exists(keys.contact_phones("1"))  # not before a person says so
    query = await world.emulator.press_button(
        world.operator["id"], STAFF_CHAT, offer["message_id"], f"c:phone:{PHONE}"
    )
    assert (await answer_of(world, query))["text"] == f"📞 {PHONE} saved."
    await eventually(
        lambda: not any(m["message_id"] == offer["message_id"] for m in world.staff_messages())
    )
    assert await running.redis.get(keys.phone(PHONE)) == b"1"
    # Written again: nothing to offer, it is theirs already.
    await world.say(ivan, text="again: +7 916 123 45 67")
    await world.in_staff(lambda m: text_of(m) == "again: +7 916 123 45 67")
    await asyncio.sleep(0.3)
    offers = [m for m in world.staff_messages() if text_of(m).startswith("The customer wrote")]
    assert offers == []


async def test_find_messages_and_page_through_results(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway()
    ivan = world.customer("Ivan")
    for n in range(12):
        await world.say(ivan, text=f"where is parcel number {n}?")
    topic = (await world.in_staff(lambda m: text_of(m) == "where is parcel number 11?"))[
        "message_thread_id"
    ]
    await world.say(ivan, text="unrelated words")
    await world.in_staff(lambda m: text_of(m) == "unrelated words")
    sent = await world.emulator.user_sends(
        world.operator["id"], chat_id=STAFF_CHAT, text="/find Parcel Number"
    )
    first = await world.answer_to(sent)
    body = text_of(first)
    assert body.startswith("🔎 “Parcel Number”: 12 found, page 1 of 2")
    assert "#1 Ivan ← where is parcel number 11?" in body  # newest first
    copy = next(
        m for m in world.staff_messages(topic) if text_of(m) == "where is parcel number 11?"
    )
    assert f"https://t.me/c/5550000001/{topic}/{copy['message_id']}" in body
    assert "unrelated" not in body
    assert [b["callback_data"][-2:] for b in buttons_of(first)] == [":1"]

    query = await world.emulator.press_button(
        world.operator["id"], STAFF_CHAT, first["message_id"], buttons_of(first)[0]["callback_data"]
    )
    assert (await answer_of(world, query))["text"] == "Page 2"

    def page() -> dict[str, Any]:
        return next(m for m in world.staff_messages() if m["message_id"] == first["message_id"])

    await eventually(lambda: "page 2 of 2" in text_of(page()))
    assert "where is parcel number 0?" in text_of(page())
    assert [b["text"] for b in buttons_of(page())] == ["◀"]
