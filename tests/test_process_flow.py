"""The business-process rule running in the gateway: real Redis, the emulator, a
controllable clock (no sleeping), and two steps racing on one contact."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway import process as bp
from gateway.config import parse_config
from gateway.store import keys, processes
from gateway.store.processes import ContactMerged, ProcessStore
from gateway.store.redis import close, connect
from tests.conftest import STAFF_CHAT, Clock, StartGateway, World, config_dict, text_of

MSK = ZoneInfo("Europe/Moscow")


async def _events(running: Any) -> list[dict[str, str]]:
    raw = await running.redis.xrange(keys.EVENTS)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in raw]


async def test_rule_runs_on_messages_and_replies(world: World, start_gateway: StartGateway) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))
    running = await start_gateway(clock=clock)
    store = running.app.processes
    ivan = world.customer()

    await world.say(ivan, text="hello")
    topic = (await world.in_staff(lambda m: text_of(m) == "hello"))["message_thread_id"]
    contact = "1"
    process = await store.current(contact)
    assert process is not None and process.number == "BP-20261123-0001"
    assert process.task.status is bp.Status.NEW
    assert process.task.respond_by == clock.now + timedelta(minutes=15)

    clock.now += timedelta(minutes=5)
    await world.operator_says(topic, text="hi, how can I help?")
    await world.in_private(ivan, lambda m: text_of(m) == "hi, how can I help?")
    process = await store.current(contact)
    assert process is not None
    assert process.task.status is bp.Status.IN_WORK
    assert process.task.responsible == str(world.operator["id"])
    assert not process.task.awaiting_reply

    clock.now += timedelta(minutes=10)
    await world.say(ivan, text="one more thing")
    await world.in_staff(lambda m: text_of(m) == "one more thing")
    process = await store.current(contact)
    assert process is not None and process.number == "BP-20261123-0001"
    assert process.task.respond_by == clock.now + timedelta(minutes=30)

    # After midnight: the next day's process; yesterday's task carried over.
    clock.now = datetime(2026, 11, 24, 0, 5, tzinfo=MSK)
    await world.say(ivan, text="good morning")
    await world.in_staff(lambda m: text_of(m) == "good morning")
    process = await store.current(contact)
    assert process is not None and process.number == "BP-20261124-0001"
    yesterday = (await store.archive(contact))[0]
    assert yesterday.task.close_reason == "carried_over"
    assert yesterday.task.continued_in == "BP-20261124-0001"

    types = [e["type"] for e in await _events(running)]
    assert [t for t in types if not t.startswith("message.")] == [
        "process.opened",
        "task.opened",  # hello
        "task.taken",
        "task.updated",  # the operator's answer
        "task.updated",  # one more thing
        "task.closed",
        "process.opened",
        "task.opened",  # after midnight
    ]
    # Every message is an event too, in the same commit as what it changed.
    assert [t for t in types if t.startswith("message.")] == [
        "message.inbound",  # hello
        "message.outbound",
        "message.inbound",  # one more thing
        "message.inbound",  # good morning
    ]
    answer = next(
        json.loads(e["data"])
        for e in await _events(running)
        if e["type"] == "task.updated" and "answered" in e["data"]
    )
    assert answer["first_response_seconds"].isdigit()  # for the statistics and webhooks
    event = [e for e in await _events(running) if e["type"] == "task.opened"][-1]
    assert event["contact"] == contact and json.loads(event["data"]) == {
        "carried_from": "BP-20261123-0001"
    }


async def test_redelivered_message_does_not_open_a_second_task(
    redis_url: str, world: World
) -> None:
    settings = parse_config(json.dumps(config_dict(world.emulator.base_url or "", redis_url)))
    redis = connect(redis_url)
    store = ProcessStore(redis, settings)
    at = datetime(2026, 11, 23, 10, 0, tzinfo=MSK)

    def inbound(current: bp.Process | None, number_for: bp.NumberFor) -> bp.Transition:
        return bp.inbound(current, at, zone=store.zone, sla=store.sla, number_for=number_for)

    try:
        await store.apply("7", at, inbound, once="tg:1:7:1", may_open=True)
        await store.apply("7", at, lambda c, n: bp.close(c, at, "anna", "done"), once="close-1")
        # The first message is handled again (redelivered after a lost reply).
        assert await store.apply("7", at, inbound, once="tg:1:7:1", may_open=True) is None
        process = await store.current("7")
        assert process is not None and len(process.tasks) == 1 and not process.task.is_open
    finally:
        await close(redis)


async def test_two_workers_racing_on_one_contact_open_one_process(
    redis_url: str, world: World
) -> None:
    """Messages and replies for one contact applied concurrently through two separate
    Redis clients (two workers): never two processes, never two open tasks."""
    settings = parse_config(json.dumps(config_dict(world.emulator.base_url or "", redis_url)))
    clients = [connect(redis_url), connect(redis_url)]
    stores = [ProcessStore(c, settings) for c in clients]
    at = datetime(2026, 11, 23, 10, 0, tzinfo=MSK)

    async def customer(i: int) -> None:
        store = stores[i % 2]
        await store.apply(
            "42",
            at + timedelta(seconds=i),
            lambda c, n: bp.inbound(
                c, at + timedelta(seconds=i), zone=store.zone, sla=store.sla, number_for=n
            ),
            once=f"msg-{i}",
            may_open=True,
        )

    async def operator(i: int) -> None:
        store = stores[(i + 1) % 2]

        def step(c: bp.Process | None, _: bp.NumberFor) -> bp.Transition | None:
            try:
                return bp.close(c, at + timedelta(seconds=i), "anna", "done")
            except bp.RuleError:
                return None

        await store.apply("42", at + timedelta(seconds=i), step, once=f"close-{i}")

    try:
        await asyncio.gather(
            *(customer(i) for i in range(30)), *(operator(i) for i in range(0, 30, 3))
        )
        process = await stores[0].current("42")
        assert process is not None and process.number == "BP-20261123-0001"
        assert all(not t.is_open for t in process.tasks[:-1])
        assert await clients[0].llen(keys.process_archive("42")) == 0  # one process only
        raw = await clients[0].xrange(keys.EVENTS)
        opened = [f for _, f in raw if f[b"type"] == b"process.opened"]
        assert len(opened) == 1
        tasks_opened = [f for _, f in raw if f[b"type"] == b"task.opened"]
        assert len(tasks_opened) == len(process.tasks)
    finally:
        for c in clients:
            await close(c)


@pytest.mark.parametrize(
    ("number_format", "expected"),
    [
        (None, "BP-{day}-{n}"),
        # Quotes and a backslash are escaped in the stored JSON: the read script then
        # finds the day by decoding it, not by its quick match.
        ('No "{date:%Y%m%d}" \\ {n:04d}', 'No "{day}" \\ {n}'),
    ],
)
async def test_numbers_count_per_day_across_contacts(
    redis_url: str, world: World, number_format: str | None, expected: str
) -> None:
    config = config_dict(world.emulator.base_url or "", redis_url)
    if number_format is not None:
        config["processes"] = {"number_format": number_format}
    settings = parse_config(json.dumps(config))
    redis = connect(redis_url)
    await redis.flushdb()
    store = ProcessStore(redis, settings)
    at = datetime(2026, 11, 23, 10, 0, tzinfo=MSK)

    async def message(contact: str, at: datetime) -> str:
        await store.apply(
            contact,
            at,
            lambda c, n: bp.inbound(c, at, zone=store.zone, sla=store.sla, number_for=n),
            may_open=True,
        )
        process = await store.current(contact)
        assert process is not None
        return process.number

    try:
        numbers = [await message(c, at) for c in ("a", "b", "c")]
        # A second message the same day is in the same process and takes no number.
        numbers += [await message("a", at + timedelta(hours=1)), await message("d", at)]
        assert numbers == [
            expected.format(day="20261123", n=n) for n in ("0001", "0002", "0003", "0001", "0004")
        ]
        assert await message("a", at + timedelta(days=1)) == expected.format(
            day="20261124", n="0001"
        )
    finally:
        await close(redis)


async def test_task_commands_in_the_topic(world: World, start_gateway: StartGateway) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))

    def reasons(data: dict[str, Any]) -> None:
        data["channels"][0] |= {"close_reasons": ["sold", "spam"], "require_close_reason": True}

    running = await start_gateway(clock=clock, tweak=reasons)
    ivan = world.customer()
    await world.say(ivan, text="hi")
    topic = (await world.in_staff(lambda m: text_of(m) == "hi"))["message_thread_id"]

    async def command(text: str, expect: str) -> str:
        sent = await world.operator_says(topic, text=text)
        answer = await world.answer_to(sent)
        assert expect in text_of(answer), (text, text_of(answer))
        return text_of(answer)

    card = await command("/task", "BP-20261123-0001 · task 1")
    assert "🟢 new" in card and "Respond by: 23.11 10:15" in card
    # A command for another bot in the group is neither ours nor for the customer.
    await world.operator_says(topic, text="/take@crm_bot")
    await command("/take@staff_bot", "Anna took BP-20261123-0001, task 1")
    events = [e["type"] for e in await _events(running)]
    assert events.count("task.taken") == 1
    await command("/close", "A reason is required to close this task: sold, spam")
    await command("/close bored", "Unknown reason 'bored'")
    await command("/close sold", "✅ Closed BP-20261123-0001, task 1: sold")
    await command("/close sold", "There is no open task")
    await command("/reopen", "Reopened BP-20261123-0001, task 1")
    await command("/transfer Boris", "No operator or role called 'Boris'")
    await command("/transfer anna", "handed to Anna")
    await command("/rename Order 42", "is now called “Order 42”")
    history = await command("/history", "BP-20261123-0001 “Order 42”")
    assert "🔁 returned" in history
    process = await running.app.processes.current("1")
    assert process is not None and process.title == "Order 42"
    assert process.task.status is bp.Status.RETURNED
    # Nothing of this reached the customer.
    assert [text_of(m) for m in world.emulator.messages(ivan["id"]) if text_of(m) != "hi"] == []


async def test_auto_close_after_silence(world: World, start_gateway: StartGateway) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))
    running = await start_gateway(clock=clock)
    ivan = world.customer()
    await world.say(ivan, text="is it in stock?")
    topic = (await world.in_staff(lambda m: text_of(m) == "is it in stock?"))["message_thread_id"]
    timers = running.redis
    auto = f"{keys.AUTO_CLOSE}:1"
    assert await timers.zscore(keys.TIMERS, auto) is None  # nobody answered yet

    clock.now += timedelta(minutes=2)
    await world.operator_says(topic, text="yes, 3 left")
    await world.in_private(ivan, lambda m: text_of(m) == "yes, 3 left")
    due = await timers.zscore(keys.TIMERS, auto)
    assert due == (clock.now + timedelta(minutes=60)).timestamp() * 1000

    clock.now += timedelta(minutes=59)
    await running.app.scheduler.tick()
    assert (await running.app.processes.current("1")).task.is_open  # type: ignore[union-attr]

    clock.now += timedelta(minutes=2)
    await running.app.scheduler.tick()
    notice = await world.in_staff(lambda m: "closed automatically" in text_of(m))
    assert notice["message_thread_id"] == topic
    process = await running.app.processes.current("1")
    assert process is not None and process.task.close_reason == "auto"
    assert await timers.zcard(keys.TIMERS) == 0  # no auto-close, no reminder left

    # The customer writes again: a new task in the same process, history intact.
    await world.say(ivan, text="I'll take two")
    await world.in_staff(lambda m: text_of(m) == "I'll take two")
    process = await running.app.processes.current("1")
    assert process is not None and len(process.tasks) == 2 and process.task.is_open


async def test_customer_reply_cancels_auto_close(world: World, start_gateway: StartGateway) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))
    running = await start_gateway(clock=clock)
    ivan = world.customer()
    await world.say(ivan, text="q")
    topic = (await world.in_staff(lambda m: text_of(m) == "q"))["message_thread_id"]
    await world.operator_says(topic, text="a")
    await world.in_private(ivan, lambda m: text_of(m) == "a")
    auto = f"{keys.AUTO_CLOSE}:1"
    assert await running.redis.zscore(keys.TIMERS, auto) is not None
    await world.say(ivan, text="thanks, one more question")
    await world.in_staff(lambda m: text_of(m) == "thanks, one more question")
    assert await running.redis.zscore(keys.TIMERS, auto) is None


async def test_overdue_digest_and_commands_outside_a_topic(
    world: World, start_gateway: StartGateway
) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=MSK))
    await start_gateway(clock=clock)
    ivan, maria = world.customer("Ivan"), world.customer("Maria", "maria")
    await world.say(ivan, text="where is my order?")
    ivan_topic = (await world.in_staff(lambda m: text_of(m) == "where is my order?"))[
        "message_thread_id"
    ]
    clock.now += timedelta(minutes=5)
    await world.say(maria, text="hello")
    maria_topic = (await world.in_staff(lambda m: text_of(m) == "hello"))["message_thread_id"]
    await world.operator_says(maria_topic, text="hi Maria")
    await world.in_private(maria, lambda m: text_of(m) == "hi Maria")

    async def in_general(text: str) -> str:
        sent = await world.emulator.user_sends(world.operator["id"], chat_id=STAFF_CHAT, text=text)
        answer = await world.answer_to(sent)
        assert not answer.get("is_topic_message")
        return text_of(answer)

    assert await in_general("/overdue") == "✅ No overdue tasks."
    clock.now = datetime(2026, 11, 23, 10, 40, tzinfo=MSK)
    digest = await in_general("/overdue")
    assert "Overdue tasks (1)" in digest
    assert "• Ivan — BP-20261123-0001, task 1, 25 min late, nobody" in digest
    assert f"https://t.me/c/{str(STAFF_CHAT)[4:]}/{ivan_topic}" in digest
    assert "Maria" not in digest
    assert "works in a customer's topic" in await in_general("/take")
    assert "/overdue" in await in_general("/help")


class _Reads:
    """Counts the process store's read scripts (its other call is the commit)."""

    def __init__(self, store: ProcessStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = processes.batched

        def counting(script: Any, **kwargs: Any) -> Any:
            if script is store._read:
                self.count += 1
            return real(script, **kwargs)

        monkeypatch.setattr(processes, "batched", counting)


async def test_a_contacts_next_message_commits_without_reading_and_stays_correct(
    redis_url: str, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = parse_config(json.dumps(config_dict(world.emulator.base_url or "", redis_url)))
    mine, other = connect(redis_url), connect(redis_url)
    store, replica = ProcessStore(mine, settings), ProcessStore(other, settings)
    reads = _Reads(store, monkeypatch)
    at = datetime(2026, 11, 23, 10, 0, tzinfo=MSK)

    def inbound(at: datetime) -> Any:
        return lambda c, n: bp.inbound(c, at, zone=store.zone, sla=store.sla, number_for=n)

    try:
        await store.apply("7", at, inbound(at), once="m1", may_open=True)
        await store.apply("7", at + timedelta(minutes=1), inbound(at), once="m2", may_open=True)
        assert reads.count == 1  # the second message: remembered, only the commit

        # Another replica closes the task: what this store remembers is now stale.
        def closing(current: bp.Process | None, _: bp.NumberFor) -> bp.Transition:
            return bp.close(current, at + timedelta(minutes=2), "anna", "done")

        await replica.apply("7", at, closing, once="close-1")
        later = at + timedelta(minutes=3)
        await store.apply("7", later, inbound(later), once="m3", may_open=True)
        assert reads.count == 2  # the commit found out, the step ran again on a read
        process = await store.current("7")
        assert process is not None and process.number == "BP-20261123-0001"
        assert [t.status for t in process.tasks] == [bp.Status.CLOSED, bp.Status.NEW]
        # A redelivered message is still applied once, remembered state or not.
        assert await store.apply("7", later, inbound(later), once="m3", may_open=True) is None
        assert len((await store.current("7") or process).tasks) == 2
        # The store closes task 2 and remembers it closed; the replica's message opens a
        # third. A close refused on the memory ("no open task") is decided on a read.
        await store.apply("7", later, closing, once="close-2")
        await replica.apply("7", later, inbound(later), once="m4", may_open=True)
        assert await store.apply("7", later, closing, once="close-3") is not None
        process = await store.current("7")
        assert process is not None and [t.number for t in process.tasks] == [1, 2, 3]
        assert not process.task.is_open
        # Merged away meanwhile: the commit refuses, the read says where it went.
        await mine.hset(keys.contact("7"), "merged_into", "9")
        with pytest.raises(ContactMerged):
            await store.apply("7", later, inbound(later), once="m5", may_open=True)
    finally:
        await close(mine)
        await close(other)


async def test_a_store_remembers_a_bounded_number_of_contacts(
    redis_url: str, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = parse_config(json.dumps(config_dict(world.emulator.base_url or "", redis_url)))
    redis = connect(redis_url)
    store = ProcessStore(redis, settings)
    reads = _Reads(store, monkeypatch)
    monkeypatch.setattr(processes, "REMEMBERED", 2)
    at = datetime(2026, 11, 23, 10, 0, tzinfo=MSK)

    async def message(contact: str) -> None:
        def step(current: bp.Process | None, number_for: bp.NumberFor) -> bp.Transition:
            return bp.inbound(current, at, zone=store.zone, sla=store.sla, number_for=number_for)

        await store.apply(contact, at, step, may_open=True)

    try:
        for contact in ("a", "b", "c"):
            await message(contact)
        assert reads.count == 3
        await message("c")  # among the two most recent: no read
        assert reads.count == 3
        await message("a")  # the least recent was forgotten
        assert reads.count == 4
    finally:
        await close(redis)


async def test_a_card_refresh_is_queued_only_when_what_it_shows_changes(
    redis_url: str, world: World
) -> None:
    settings = parse_config(json.dumps(config_dict(world.emulator.base_url or "", redis_url)))
    redis = connect(redis_url)
    store = ProcessStore(redis, settings, card_stream=lambda contact: f"cards:{contact}")
    at = datetime(2026, 11, 23, 10, 0, tzinfo=MSK)

    async def message(minutes: int) -> None:
        when = at + timedelta(minutes=minutes)
        await store.apply(
            "7",
            when,
            lambda c, n: bp.inbound(c, when, zone=store.zone, sla=store.sla, number_for=n),
            may_open=True,
        )

    try:
        await message(0)  # opens the process: a card
        await message(1)  # still waiting for an answer: only the latest message's time moved
        await message(2)
        assert await redis.xlen("cards:7") == 1
        await store.apply("7", at, lambda c, n: bp.close(c, at + timedelta(minutes=3), "anna", "x"))
        assert await redis.xlen("cards:7") == 2  # closed: the card changes
        await message(4)  # a new task: the card changes again
        assert await redis.xlen("cards:7") == 3
    finally:
        await close(redis)
