"""The customer-satisfaction survey end to end: real Redis, the Telegram and Viber
emulators, a controllable clock; plus what counts as a rating (pure)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway import process as bp
from gateway.bus import Bus, Entry
from gateway.config import parse_config
from gateway.config.integrations import CsatSettings
from gateway.contacts import Contacts
from gateway.csat import Csat
from gateway.csat.answers import NUMBER_HINT, parse_press, press_data, question, rating_of
from gateway.model import (
    AccountId,
    Channel,
    ChatId,
    ContactId,
    Content,
    InboundCallback,
    InboundMessage,
    Kind,
    MessageId,
    PlatformUserId,
    Sender,
)
from gateway.sandbox.viber import ViberEmulator
from gateway.store import keys
from gateway.store.processes import PROCESS, ProcessStore
from gateway.store.redis import RETRYABLE, close, connect
from gateway.store.topics import Topics
from gateway.store.writes import Writes
from tests.conftest import (
    CUSTOMER_TOKEN,
    STAFF_CHAT,
    Clock,
    Running,
    StartGateway,
    World,
    answer_of,
    buttons_of,
    config_dict,
    eventually,
    free_port,
    text_of,
)

MSK = ZoneInfo("Europe/Moscow")
QUESTION = "How did we do? Please rate our answer from 1 to 5."
VIBER_TOKEN = "4f1b2c3d4e5f6a7b-csat-flow-token"


def surveyed(data: dict[str, Any]) -> None:
    data["channels"][0]["csat"] = {"enabled": True, "wait_hours": 2, "thanks": "Спасибо!"}
    data["processes"] = {"auto_close_after_minutes": 30}


async def _events(running: Running, kind: str) -> list[dict[str, str]]:
    found = []
    for _, fields in await running.redis.xrange(keys.EVENTS):
        event = {k.decode(): v.decode() for k, v in fields.items()}
        if event["type"] == kind:
            found.append(event)
    return found


async def _ratings(running: Running) -> list[tuple[str, str, str]]:
    """(process, task, rating) of every ``task.rated`` event, oldest first."""
    return [
        (e["process"], e["task"], json.loads(e["data"])["rating"])
        for e in await _events(running, "task.rated")
    ]


async def _conversation(world: World, clock: Clock, running: Running) -> tuple[Any, int]:
    """Ivan writes, Anna answers: returns Ivan and his topic."""
    ivan = world.customer()
    await world.say(ivan, text="hello")
    topic = (await world.in_staff(lambda m: text_of(m) == "hello"))["message_thread_id"]
    clock.now += timedelta(minutes=1)
    await world.operator_says(topic, text="Здравствуйте, чем помочь?")
    await world.in_private(ivan, lambda m: text_of(m) == "Здравствуйте, чем помочь?")
    return ivan, topic


async def _close(world: World, topic: int, expected: str = "✅ Closed") -> None:
    sent = await world.operator_says(topic, text="/close")
    assert text_of(await world.answer_to(sent)).startswith(expected)


def _surveys(world: World, user: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in world.emulator.messages(user["id"]) if text_of(m) == QUESTION]


async def _press(world: World, user: dict[str, Any], survey: dict[str, Any], data: str) -> Any:
    return await world.emulator.press_button(
        user["id"], user["id"], survey["message_id"], data, bot_token=CUSTOMER_TOKEN
    )


async def test_telegram_customer_rates_with_a_button(
    world: World, start_gateway: StartGateway
) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))
    running = await start_gateway(clock=clock, tweak=surveyed)
    ivan, topic = await _conversation(world, clock, running)

    await _close(world, topic)
    survey = await world.in_private(ivan, lambda m: text_of(m) == QUESTION)
    labels = [b["text"] for b in buttons_of(survey)]
    assert labels == ["1 ⭐", "2 ⭐", "3 ⭐", "4 ⭐", "5 ⭐"]
    four = buttons_of(survey)[3]["callback_data"]
    assert four == "csat:4:BP-20261123-0001/1"
    # Staff see that the survey went out.
    await world.in_staff(lambda m: text_of(m).startswith("🤖 Sent the satisfaction survey"))

    clock.now += timedelta(minutes=5)
    query = await _press(world, ivan, survey, four)
    assert (await answer_of(world, query))["text"] == "⭐⭐⭐⭐ Thank you!"  # spinner stops
    notice = await world.in_staff(lambda m: text_of(m).startswith("⭐ 4/5"))
    assert text_of(notice) == "⭐ 4/5 from the customer for task BP-20261123-0001/1"
    assert notice["message_thread_id"] == topic
    await world.in_private(ivan, lambda m: text_of(m) == "Спасибо!")
    process = await running.app.processes.current("1")
    assert process is not None and len(process.tasks) == 1  # a press opens nothing
    assert process.task.rating == 4 and process.task.rated_at == clock.now
    assert await _ratings(running) == [("BP-20261123-0001", "1", "4")]
    card = await world.in_staff(lambda m: "Customer's rating: ⭐ 4/5" in text_of(m))
    assert text_of(card).startswith("📋 BP-20261123-0001")

    # Pressed again (another query): answered, counted once, nothing else changes.
    again = await _press(world, ivan, survey, buttons_of(survey)[0]["callback_data"])
    assert "already closed" in (await answer_of(world, again))["text"]
    assert await _ratings(running) == [("BP-20261123-0001", "1", "4")]
    counts = running.app.pipeline.csat.counts
    assert (counts["rated"], counts["rated:4"], counts["closed"]) == (1, 1, 1)
    history = await world.operator_says(topic, text="/history")
    assert "⭐ 4/5" in text_of(await world.answer_to(history))


async def test_text_ratings_a_new_task_between_and_a_new_day(
    world: World, start_gateway: StartGateway
) -> None:
    clock = Clock(datetime(2026, 11, 23, 23, 0, tzinfo=MSK))
    running = await start_gateway(clock=clock, tweak=surveyed)
    store = running.app.processes
    ivan, topic = await _conversation(world, clock, running)
    card = await world.in_staff(lambda m: text_of(m).startswith("📋"))
    operator = world.operator["id"]
    pressed = await world.emulator.press_button(operator, STAFF_CHAT, card["message_id"], "t:close")
    await answer_of(world, pressed)  # closed with the card's button: asked too
    await world.in_private(ivan, lambda m: text_of(m) == QUESTION)

    # Not a rating: an ordinary message, which opens a new task; the survey still waits.
    clock.now += timedelta(minutes=2)
    await world.say(ivan, text="а где мой заказ?")
    await world.in_staff(lambda m: text_of(m) == "а где мой заказ?")
    process = await store.current("1")
    assert process is not None and len(process.tasks) == 2 and process.task.is_open

    # After midnight a new message opens the next day's process: the rated one is archived.
    clock.now = datetime(2026, 11, 24, 0, 10, tzinfo=MSK)
    await world.say(ivan, text="ау")
    await world.in_staff(lambda m: text_of(m) == "ау")
    clock.now += timedelta(minutes=1)
    await world.say(ivan, text="5⭐")
    await world.in_staff(lambda m: text_of(m).startswith("⭐ 5/5"))
    await world.in_private(ivan, lambda m: text_of(m) == "Спасибо!")
    archived = (await store.archive("1"))[0]
    assert archived.number == "BP-20261123-0001"
    assert [t.rating for t in archived.tasks] == [5, None]
    assert archived.tasks[1].close_reason == "carried_over"
    assert len(_surveys(world, ivan)) == 1  # the carry-over at midnight asked nothing
    current = await store.current("1")
    assert current is not None and current.number == "BP-20261124-0001"
    assert len(current.tasks) == 1  # the rating opened nothing
    assert not any(text_of(m) == "5⭐" for m in world.staff_messages(topic))
    assert await _ratings(running) == [("BP-20261123-0001", "1", "5")]

    # The survey is answered: another rating-shaped text is an ordinary message.
    await world.say(ivan, text="3")
    await world.in_staff(lambda m: text_of(m) == "3")
    assert await _ratings(running) == [("BP-20261123-0001", "1", "5")]


async def test_rating_after_an_operator_answered_a_newer_task_is_a_message(
    world: World, start_gateway: StartGateway
) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))
    running = await start_gateway(clock=clock, tweak=surveyed)
    ivan, topic = await _conversation(world, clock, running)
    await _close(world, topic)
    survey = await world.in_private(ivan, lambda m: text_of(m) == QUESTION)
    clock.now += timedelta(minutes=1)
    await world.say(ivan, text="ещё вопрос")
    await world.in_staff(lambda m: text_of(m) == "ещё вопрос")
    clock.now += timedelta(minutes=1)
    await world.operator_says(topic, text="Сколько штук?")
    await world.in_private(ivan, lambda m: text_of(m) == "Сколько штук?")
    await world.say(ivan, text="2")  # an answer to the operator, not a rating
    await world.in_staff(lambda m: text_of(m) == "2")
    assert await _ratings(running) == []
    # The button still rates: a press is unambiguous.
    query = await _press(world, ivan, survey, buttons_of(survey)[4]["callback_data"])
    await answer_of(world, query)
    await eventually(lambda: _has_ratings(running, [("BP-20261123-0001", "1", "5")]))


async def _has_ratings(running: Running, expected: list[tuple[str, str, str]]) -> bool:
    return await _ratings(running) == expected


async def test_system_closes_do_not_ask_and_silence_is_recorded(
    world: World, start_gateway: StartGateway
) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))
    running = await start_gateway(clock=clock, tweak=surveyed)
    scheduler, store = running.app.scheduler, running.app.processes
    ivan, topic = await _conversation(world, clock, running)

    clock.now += timedelta(minutes=31)  # auto-close: the system's close, nobody asks
    await scheduler.tick()
    await world.in_staff(lambda m: "closed automatically" in text_of(m))
    # A new task, closed by an operator: asked; then reopened and closed again: asked again.
    await world.say(ivan, text="и ещё")
    await world.in_staff(lambda m: text_of(m) == "и ещё")
    await _close(world, topic)
    await world.in_private(ivan, lambda m: text_of(m) == QUESTION)
    reopen = await world.operator_says(topic, text="/reopen")
    await world.answer_to(reopen)
    clock.now += timedelta(minutes=10)
    await _close(world, topic)
    await eventually(lambda: len(_surveys(world, ivan)) == 2)
    # Only operators' closes ask: the system's (auto, carried over, merged) never do.
    csat = running.app.pipeline.csat
    at = clock.now
    for actor, reason, asks in ((bp.SYSTEM, bp.AUTO, False), ("700001", None, True)):
        writes = Writes()
        closed = bp.close(_open_process(), at, actor, reason)
        csat.ask(writes, ContactId("9"), closed, "tg_shop", "9")
        assert bool(writes.commands) is asks

    # Nobody answers: after wait_hours the timer records it, once, at the due time.
    asked_at = clock.now
    clock.now += timedelta(hours=2, minutes=1)
    await scheduler.tick()
    await eventually(lambda: _has_ratings(running, [("BP-20261123-0001", "2", "none")]))
    rated = (await _events(running, "task.rated"))[0]
    assert datetime.fromisoformat(rated["at"]) == asked_at + timedelta(hours=2)
    assert rated["actor"] == "system"
    process = await store.current("1")
    assert process is not None and [t.rating for t in process.tasks] == [None, 0]
    assert running.app.pipeline.csat.counts["none"] == 1
    await scheduler.tick()  # the timer is gone: nothing more
    assert not await running.redis.exists(keys.csat_pending("1"))
    assert await running.redis.zscore(keys.TIMERS, f"{keys.CSAT}:1") is None

    # Too late to rate: "5" is an ordinary message, a new task.
    await world.say(ivan, text="5")
    await world.in_staff(lambda m: text_of(m) == "5")
    process = await store.current("1")
    assert process is not None and len(process.tasks) == 3
    assert len(await _ratings(running)) == 1


async def test_redelivered_rating_counts_once(world: World, start_gateway: StartGateway) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))
    running = await start_gateway(clock=clock, tweak=surveyed)
    ivan, topic = await _conversation(world, clock, running)
    await _close(world, topic)
    await world.in_private(ivan, lambda m: text_of(m) == QUESTION)
    # The inbound entry of a "⭐⭐⭐" handled twice, as after a worker lost its lease.
    rating = InboundMessage(
        key="tg:test:csat:1",
        sender=Sender(
            account=AccountId("tg_shop"),
            channel=Channel.TELEGRAM,
            user_id=PlatformUserId(str(ivan["id"])),
            chat_id=ChatId(str(ivan["id"])),
            display_name="Ivan",
        ),
        message_id=MessageId("999"),
        sent_at=clock.now,
        received_at=clock.now,
        content=Content(kind=Kind.TEXT, text="⭐⭐⭐"),
    )
    payload = rating.model_dump_json().encode()
    pipeline = running.app.pipeline
    for n in range(2):
        entry = Entry(stream=keys.stream(keys.INBOUND, 0), id=f"1-{n}", payload=payload)
        await pipeline.handle(entry)
    await world.in_staff(lambda m: text_of(m).startswith("⭐ 3/5"))
    assert await _ratings(running) == [("BP-20261123-0001", "1", "3")]
    assert (pipeline.csat.counts["rated"], pipeline.csat.counts["repeated"]) == (1, 1)
    process = await running.app.processes.current("1")
    assert process is not None and len(process.tasks) == 1


async def test_disabled_by_default(world: World, start_gateway: StartGateway) -> None:
    running = await start_gateway()
    ivan = world.customer()
    await world.say(ivan, text="hello")
    topic = (await world.in_staff(lambda m: text_of(m) == "hello"))["message_thread_id"]
    await _close(world, topic)
    await world.say(ivan, text="5")
    await world.in_staff(lambda m: text_of(m) == "5")  # an ordinary message
    process = await running.app.processes.current("1")
    assert process is not None and len(process.tasks) == 2
    assert _surveys(world, ivan) == [] and await _ratings(running) == []


async def test_forged_presses_change_nothing(world: World, start_gateway: StartGateway) -> None:
    """Callback data comes from the client, which may send anything (MTProto lets it):
    a press must name a survey of the very chat it comes from."""
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))
    running = await start_gateway(clock=clock, tweak=surveyed)
    ivan, topic = await _conversation(world, clock, running)
    await _close(world, topic)
    survey = await world.in_private(ivan, lambda m: text_of(m) == QUESTION)
    pipeline = running.app.pipeline
    mallory = "700555"
    for n, data in enumerate(("csat:9", "x:1", "csat:4:BP-20261123-0001/1", "csat:5")):
        press = InboundCallback(
            key=f"tgcb:test:{n}",
            sender=Sender(
                account=AccountId("tg_shop"),
                channel=Channel.TELEGRAM,
                user_id=PlatformUserId(mallory),
                chat_id=ChatId(mallory),
                display_name="Mallory",
            ),
            callback_id=f"forged-{n}",
            data=data,
            message_id=MessageId(str(survey["message_id"])),
            received_at=clock.now,
        )
        entry = Entry(
            stream=keys.stream(keys.INBOUND, 1),
            id=f"2-{n}",
            payload=press.model_dump_json().encode(),
        )
        await pipeline.handle(entry)  # answered (politely), acknowledged, nothing else
    assert await _ratings(running) == []
    assert pipeline.csat.counts["closed"] == 1  # "csat:5": no survey waits in her chat
    # Ivan's survey is untouched: he can still answer it.
    query = await _press(world, ivan, survey, buttons_of(survey)[1]["callback_data"])
    await answer_of(world, query)
    await eventually(lambda: _has_ratings(running, [("BP-20261123-0001", "1", "2")]))


@pytest.fixture
async def viber() -> AsyncIterator[ViberEmulator]:
    emulator = ViberEmulator()
    await emulator.start()
    emulator.create_bot(VIBER_TOKEN, "Shop")
    try:
        yield emulator
    finally:
        await emulator.stop()


async def test_viber_customer_rates_with_a_reply_button(
    world: World, start_gateway: StartGateway, viber: ViberEmulator
) -> None:
    def tweak(data: dict[str, Any]) -> None:
        data["channels"].append(
            {
                "id": "viber_shop",
                "kind": "viber",
                "token": VIBER_TOKEN,
                "name": "Shop",
                "api_server": viber.base_url,
                "csat": {"enabled": True, "question": "Оцените нас от 1 до 5"},
            }
        )

    running = await start_gateway(tweak=tweak)
    ivan = viber.create_user("Ivan Petrov")
    viber.user_send(VIBER_TOKEN, ivan, "Где заказ?")
    await world.in_staff(lambda m: text_of(m) == "Где заказ?")
    topic = world.topic_of("Ivan Petrov · Viber")
    await _close(world, topic)

    def asked() -> list[dict[str, Any]]:
        return [
            m
            for m in viber.conversation(VIBER_TOKEN, ivan)
            if m["direction"] == "out" and m.get("text") == "Оцените нас от 1 до 5"
        ]

    await eventually(lambda: bool(asked()))
    keyboard = asked()[0]["keyboard"]
    bodies = [b["ActionBody"] for b in keyboard["Buttons"]]
    assert bodies == ["1 ⭐", "2 ⭐", "3 ⭐", "4 ⭐", "5 ⭐"]
    viber.user_send(VIBER_TOKEN, ivan, bodies[1])  # the reply button sends its body
    await world.in_staff(lambda m: text_of(m).startswith("⭐ 2/5"))
    process = await running.app.processes.current("1")
    assert process is not None and process.task.rating == 2
    assert await _ratings(running) == [(process.number, "1", "2")]


async def test_texts_that_cannot_be_ratings_cost_no_redis_call(redis_url: str) -> None:
    """The check runs on every customer message: with Redis unreachable, texts that
    cannot be ratings still pass through (no call was made); a rating-shaped one tries."""
    settings = parse_config(json.dumps(config_dict("http://127.0.0.1:9", redis_url)))
    dead = connect(f"redis://127.0.0.1:{free_port()}/0")
    try:
        bus = Bus(dead, partitions=4, dedup_ttl_seconds=86400)
        processes = ProcessStore(dead, settings)
        csat = Csat(settings, bus, Contacts(dead), Topics(dead, STAFF_CHAT), processes)
        entry = Entry(stream=keys.stream(keys.INBOUND, 0), id="1-0", payload=b"")
        for said in ("hello", "спасибо", "55", "order 12345, please", "5 stars, thank you!"):
            assert await csat.answered(_message(said), entry) is False
        with pytest.raises(RETRYABLE):
            await csat.answered(_message("5"), entry)
    finally:
        await close(dead)


def _message(said: str) -> InboundMessage:
    at = datetime(2026, 11, 23, 10, 0, tzinfo=MSK)
    return InboundMessage(
        key=f"tg:test:{said}",
        sender=Sender(
            account=AccountId("tg_shop"),
            channel=Channel.TELEGRAM,
            user_id=PlatformUserId("42"),
            chat_id=ChatId("42"),
            display_name="Ivan",
        ),
        message_id=MessageId("1"),
        sent_at=at,
        received_at=at,
        content=Content(kind=Kind.TEXT, text=said),
    )


@pytest.mark.parametrize(
    ("said", "rating"),
    [
        ("5", 5),
        (" 4 ", 4),
        ("5⭐", 5),
        ("5 ⭐", 5),
        ("⭐ 2", 2),
        ("⭐️⭐️⭐️", 3),  # with emoji variation selectors
        ("★★★★★", 5),
        ("1/5", 1),
        ("3 / 5", 3),
        ("0", None),
        ("6", None),
        ("55", None),
        ("5/10", None),
        ("⭐⭐⭐⭐⭐⭐", None),
        ("5 stars, thank you very much", None),
        ("", None),
        (None, None),
    ],
)
def test_what_counts_as_a_rating(said: str | None, rating: int | None) -> None:
    assert rating_of(said) == rating


def test_survey_per_messenger_and_its_buttons() -> None:
    settings = CsatSettings(enabled=True)
    whatsapp = question(Channel.WHATSAPP, settings, "BP-1/1")
    assert whatsapp.buttons == () and whatsapp.text is not None
    assert whatsapp.text.endswith(NUMBER_HINT)  # three reply buttons are too few
    vk = question(Channel.VK, settings, "BP-1/1")
    assert [(b.text, b.data) for b in vk.buttons[0]][::4] == [("1 ⭐", "1 ⭐"), ("5 ⭐", "5 ⭐")]
    assert all(rating_of(b.text) == n for n, b in enumerate(vk.buttons[0], 1))
    assert press_data(5, "x" * 80) == "csat:5"  # too long for Telegram: the chat's latest
    assert parse_press("csat:5") == (5, None)
    assert parse_press("csat:3:BP-1/2") == (3, "BP-1/2")
    for forged in ("csat:0", "csat:6:BP-1/1", "csat:", "csat:55", "t:close", ""):
        assert parse_press(forged) is None
    assert bp.rate(_closed_process(), 1, 4, datetime(2026, 1, 1, tzinfo=MSK)) is not None
    assert bp.rate(_closed_process(), 7, 4, datetime(2026, 1, 1, tzinfo=MSK)) is None
    with pytest.raises(ValueError, match="1 to 5"):
        bp.rate(_closed_process(), 1, 6, datetime(2026, 1, 1, tzinfo=MSK))


def _open_process(status: bp.Status = bp.Status.IN_WORK) -> bp.Process:
    at = datetime(2026, 1, 1, 10, tzinfo=MSK)
    task = bp.Task(number=1, status=status, opened_at=at, respond_by=at, awaiting_reply=False)
    return bp.Process(number="BP-1", day=at.date(), opened_at=at, tasks=(task,))


def _closed_process() -> bp.Process:
    return _open_process(bp.Status.CLOSED)


def test_processes_stored_before_ratings_still_load() -> None:
    stored = json.loads(PROCESS.dump_json(_closed_process()))
    for task in stored["tasks"]:
        del task["rating"], task["rated_at"]
    loaded = PROCESS.validate_json(json.dumps(stored))
    assert loaded.task.rating is None and loaded.task.rated_at is None
