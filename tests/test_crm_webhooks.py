"""CRM webhooks end to end: the real gateway, customers writing through the Telegram
emulator, and a real aiohttp receiver on 127.0.0.1 that checks every signature and
fails on purpose (500, 429 with Retry-After, timeouts, connection resets, 4xx) before
it recovers. Nothing may be lost, nothing accepted twice, and each contact's events
must arrive in the order they were recorded."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import signal
import socket
import struct
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from gateway import process as bp
from gateway.config import parse_config
from gateway.integrations import DeadLetterError, RetryPolicy, Webhooks, signature
from gateway.integrations import keys as hk
from gateway.integrations.sender import retry_after
from gateway.store import keys
from gateway.store.events import record_event
from gateway.store.redis import close, connect
from tests.conftest import (
    Running,
    StartGateway,
    World,
    config_dict,
    eventually,
    free_port,
    spawn_gateway,
    text_of,
)

SECRETS = {"crm": "crm-secret-0123456789abcdef", "tasks": "tasks-secret-0123456789abcd"}
FAST = RetryPolicy(initial=0.05, maximum=0.4, jitter=0.05)
Rule = Callable[[str, dict[str, Any], int], Any]
"""(target, body, earlier attempts of this delivery) → "ok", "slow" (ok after
50 ms), a status, "429", "timeout", "reset" or "stall"."""


@dataclass
class Receiver:
    """A CRM: verifies the signature and the timestamp, then does what ``rule`` says."""

    rule: Rule = lambda target, body, tries: "ok"
    attempts: list[tuple[str, str, float, str]] = field(default_factory=list)
    """(target, delivery id, monotonic time, what was done) for every request."""
    accepted: dict[str, list[tuple[str, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    refused_signatures: int = 0
    url: str = ""
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        target = request.match_info["target"]
        raw = await request.read()
        stamp = request.headers.get("X-Gateway-Timestamp", "")
        expected = (
            "sha256="
            + hmac.new(
                SECRETS[target].encode(), f"{stamp}.".encode() + raw, hashlib.sha256
            ).hexdigest()
        )
        given = request.headers.get("X-Gateway-Signature", "")
        if not hmac.compare_digest(expected, given) or abs(time.time() - int(stamp)) > 300:
            self.refused_signatures += 1
            return web.Response(status=401)
        body = json.loads(raw)
        delivery = request.headers["X-Gateway-Delivery"]
        assert request.headers["X-Gateway-Event"] == body["type"]
        assert delivery == f"{target}:{body['id']}"
        tries = sum(1 for _, d, _, _ in self.attempts if d == delivery)
        action = self.rule(target, body, tries)
        self.attempts.append((target, delivery, time.monotonic(), str(action)))
        if action == "slow":
            await asyncio.sleep(0.05)
            action = "ok"
        if action == "ok":
            self.accepted[target].append((delivery, body))
            return web.Response(text="ok")
        if action == "429":
            return web.Response(status=429, headers={"Retry-After": "1"}, text="slow down")
        if action in ("timeout", "stall"):
            await asyncio.sleep(2.0 if action == "timeout" else 30.0)
            return web.Response(status=500, text="too late")  # the client gave up already
        if action == "reset":
            sock = request.transport.get_extra_info("socket") if request.transport else None
            if sock is not None:  # RST instead of FIN: a connection reset by peer
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        return web.Response(status=int(action), text=f"refused with {action}")

    def ids(self, target: str) -> list[str]:
        return [d for d, _ in self.accepted[target]]

    def tried(self, target: str) -> set[str]:
        return {d for t, d, _, _ in self.attempts if t == target}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    crm = Receiver()
    app = web.Application()
    app.router.add_post("/{target}", crm.handle)
    crm.runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await crm.runner.setup()
    site = web.TCPSite(crm.runner, "127.0.0.1", 0)
    await site.start()
    crm.url = f"http://127.0.0.1:{crm.runner.addresses[0][1]}"
    yield crm
    await crm.runner.cleanup()


def hooks(receiver: Receiver, **overrides: Any) -> Callable[[dict[str, Any]], None]:
    """A config tweak adding the targets ``crm`` (every event) and, with
    ``tasks=True``, ``tasks`` (``task.*`` only); ``crm_*`` keys override crm's fields."""

    def tweak(data: dict[str, Any]) -> None:
        crm = {"id": "crm", "url": f"{receiver.url}/crm", "secret": SECRETS["crm"]}
        crm |= {"timeout_seconds": 0.5, "retry_for_hours": 1}
        crm |= {k.removeprefix("crm_"): v for k, v in overrides.items() if k.startswith("crm_")}
        targets = [crm]
        if overrides.get("tasks"):
            targets.append(
                {
                    "id": "tasks",
                    "url": f"{receiver.url}/tasks",
                    "secret": SECRETS["tasks"],
                    "events": ["task.*"],
                    "timeout_seconds": 0.5,
                }
            )
        data["integrations"] = {"webhooks": targets}

    return tweak


async def start(start_gateway: StartGateway, receiver: Receiver, **overrides: Any) -> Running:
    mode = overrides.pop("mode", "webhook")
    running = await start_gateway(mode=mode, tweak=hooks(receiver, **overrides))
    running.app.webhooks.policy = FAST
    return running


async def recorded(running: Running, wanted: Callable[[str], bool] = lambda t: True) -> list[str]:
    """The ids of the events stream's entries of the wanted types, oldest first."""
    entries = await running.redis.xrange(keys.EVENTS)
    return [i.decode() for i, f in entries if f.get(b"type") and wanted(f[b"type"].decode())]


async def contact_of(running: Running, user: dict[str, Any]) -> str:
    found = await running.redis.get(keys.identity("tg_shop", str(user["id"])))
    assert found is not None, "the customer has no contact yet"
    return str(found.decode())


async def converse(world: World, user: dict[str, Any], words: list[str]) -> None:
    """The customer writes, the operator answers once, the customer writes again."""
    for word in words:
        await world.say(user, text=word)

    def own_topic() -> int | None:  # (other customers write the same words meanwhile)
        try:
            return world.topic_of(user["first_name"])
        except LookupError:
            return None

    await eventually(lambda: own_topic() is not None, timeout=15)
    topic = own_topic()
    await world.in_staff(
        lambda m: text_of(m) == words[-1] and m.get("message_thread_id") == topic, timeout=15
    )
    await world.operator_says(topic, text=f"hello {user['first_name']}")
    await world.in_private(user, lambda m: text_of(m) == f"hello {user['first_name']}")


def assert_in_order(receiver: Receiver, target: str, expected: list[str]) -> None:
    """Every expected event accepted exactly once, each contact's in recorded order."""
    ids = receiver.ids(target)
    twice = [d for d, n in Counter(ids).items() if n > 1]
    assert not twice, f"accepted more than once: {twice}"
    assert sorted(d.split(":", 1)[1] for d in ids) == sorted(expected)
    per_contact: dict[str, list[str]] = defaultdict(list)
    for _, body in receiver.accepted[target]:
        per_contact[body["contact"]].append(body["id"])
    for contact, got in per_contact.items():
        assert got == sorted(got, key=_stream_order), f"contact {contact} out of order: {got}"


def _stream_order(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


async def delivered_all(
    running: Running, receiver: Receiver, target: str, timeout: float = 20, **kwargs: Any
) -> list[str]:
    """Wait until the target accepted every event of the wanted types; their ids."""
    wanted = kwargs.get("wanted", lambda t: True)

    async def done() -> bool:
        expected = await recorded(running, wanted)
        return bool(expected) and {d.split(":", 1)[1] for d in receiver.ids(target)} >= set(
            expected
        )

    await eventually(done, timeout=timeout)
    return await recorded(running, wanted)


# --- delivery, signature, schema, filters, replicas --------------------------------------


async def test_events_are_delivered_signed_once_and_in_order_per_contact(
    world: World, start_gateway: StartGateway, receiver: Receiver
) -> None:
    one = await start(start_gateway, receiver, tasks=True)
    two = await start(start_gateway, receiver, tasks=True)  # a second replica, same Redis
    customers = [world.customer(name, name.lower()) for name in ("Ivan", "Petr", "Olga")]
    await asyncio.gather(*(converse(world, c, ["hi", "question", "more"]) for c in customers))

    everything = await delivered_all(one, receiver, "crm")
    assert_in_order(receiver, "crm", everything)
    tasks = await delivered_all(one, receiver, "tasks", wanted=lambda t: t.startswith("task."))
    assert_in_order(receiver, "tasks", tasks)
    # The filter: "tasks" got exactly the task.* events, crm everything.
    assert all(t.startswith("task.") for t in _types(receiver, "tasks"))
    assert len(tasks) < len(everything)
    assert any(b["type"] == "process.opened" for _, b in receiver.accepted["crm"])
    assert receiver.refused_signatures == 0
    # The documented body: every field, typed.
    contacts = {await contact_of(one, c) for c in customers}
    for _, body in receiver.accepted["crm"]:
        assert set(body) == {"id", "type", "at", "contact", "process", "task", "actor", "data"}
        assert body["contact"] in contacts and isinstance(body["data"], dict)
        assert datetime.fromisoformat(body["at"]).tzinfo is not None
        assert body["task"] is None or isinstance(body["task"], int)
    # Delivered once overall, not once per replica; the queues are empty afterwards.
    counts = [r.app.webhooks.stats.counts for r in (one, two)]
    assert sum(c["crm", "delivered"] for c in counts) == len(everything)
    assert await one.app.webhooks.backlog() == {"crm": 0, "tasks": 0}
    assert await one.redis.keys(f"{keys.PREFIX}:hook:q:*") == []
    pending = await one.redis.xpending(keys.EVENTS, hk.GROUP)
    assert pending["pending"] == 0


def _types(receiver: Receiver, target: str) -> list[str]:
    return [b["type"] for _, b in receiver.accepted[target]]


# --- faults ------------------------------------------------------------------------------


async def test_transient_failures_are_retried_until_delivered(
    world: World, start_gateway: StartGateway, receiver: Receiver
) -> None:
    """Each delivery meets, in turn, 500, 429 (Retry-After: 1), a timeout and a
    connection reset before the receiver takes it."""
    faults = ["500", "429", "timeout", "reset"]

    def rule(target: str, body: dict[str, Any], tries: int) -> Any:
        return faults[tries] if tries < len(faults) and body["type"] == "process.opened" else "ok"

    receiver.rule = rule
    running = await start(start_gateway, receiver)
    customers = [world.customer(name, None) for name in ("Ivan", "Petr")]
    await asyncio.gather(*(converse(world, c, ["hi", "there"]) for c in customers))

    expected = await delivered_all(running, receiver, "crm", timeout=30)
    assert_in_order(receiver, "crm", expected)
    for delivery in {d for _, d, _, a in receiver.attempts if a == "429"}:
        times = [(at, a) for _, d, at, a in receiver.attempts if d == delivery]
        slowed = next(i for i, (_, a) in enumerate(times) if a == "429")
        assert times[slowed + 1][0] - times[slowed][0] >= 0.95, "Retry-After not honoured"
    stats = running.app.webhooks.stats.counts
    for reason in ("5xx", "429", "timeout", "connection"):
        assert stats["crm", f"retry:{reason}"] == len(customers), (reason, stats)
    async with aiohttp.ClientSession() as http, http.get(f"{running.url}/metrics") as response:
        metrics = await response.text()
    assert 'gateway_webhook_retries_total{reason="429",target="crm"} 2.0' in metrics
    assert (
        f'gateway_webhook_deliveries_total{{result="delivered",target="crm"}} {len(expected)}'
        in (metrics)
    )
    assert "gateway_webhook_lag_seconds_bucket" in metrics
    assert (await running.app.webhooks.list_dead()).items == ()


async def test_a_failing_contact_holds_back_only_its_own_events(
    world: World, start_gateway: StartGateway, receiver: Receiver
) -> None:
    """crm answers 503 to everything of the first contact it hears of, until told to
    stop: the others' events and the other target's go on meanwhile."""
    victim: list[str] = []
    failing = [True]

    def rule(target: str, body: dict[str, Any], tries: int) -> Any:
        if target == "crm" and not victim:
            victim.append(body["contact"])
        return "503" if target == "crm" and failing[0] and body["contact"] in victim else "ok"

    receiver.rule = rule
    running = await start(start_gateway, receiver, tasks=True)
    ivan, petr = world.customer("Ivan", None), world.customer("Petr", None)
    await converse(world, ivan, ["first", "second"])
    await converse(world, petr, ["hello", "again"])
    ivan_id, petr_id = await contact_of(running, ivan), await contact_of(running, petr)
    assert victim == [ivan_id]

    async def others_flow() -> bool:
        crm = {b["id"] for _, b in receiver.accepted["crm"]}
        tasks = {b["id"] for _, b in receiver.accepted["tasks"]}
        ivan_tasks = await _of(running, ivan_id, lambda t: t.startswith("task."))
        return set(await _of(running, petr_id)) <= crm and set(ivan_tasks) <= tasks

    await eventually(others_flow, timeout=15)
    assert not [b for _, b in receiver.accepted["crm"] if b["contact"] == ivan_id]
    await eventually(lambda: running.app.webhooks.stats.counts["crm", "retry:5xx"] >= 2)
    tried = {
        d
        for t, d, _, _ in receiver.attempts
        if t == "crm" and d.split(":")[1] in await _of(running, ivan_id)
    }
    assert len(tried) == 1, "only the head of Ivan's line may be tried while it fails"

    failing[0] = False
    expected = await delivered_all(running, receiver, "crm")
    assert_in_order(receiver, "crm", expected)


async def _of(
    running: Running, contact: str, wanted: Callable[[str], bool] = lambda t: True
) -> list[str]:
    entries = await running.redis.xrange(keys.EVENTS)
    return [
        i.decode()
        for i, f in entries
        if f[b"contact"].decode() == contact and wanted(f[b"type"].decode())
    ]


# --- dead letters ------------------------------------------------------------------------


async def test_a_permanent_refusal_is_dead_lettered_at_once_and_replay_delivers_it(
    world: World, start_gateway: StartGateway, receiver: Receiver
) -> None:
    refused: dict[str, str] = {}
    """crm answers 400 to events of these types, and 422 to everything of these contacts."""

    def rule(target: str, body: dict[str, Any], tries: int) -> Any:
        if target != "crm":
            return "ok"
        return refused.get(body["type"]) or refused.get(body["contact"]) or "ok"

    receiver.rule = rule
    refused["process.opened"] = "400"
    running = await start(start_gateway, receiver)
    hooks_ = running.app.webhooks
    ivan = world.customer("Ivan", None)
    await converse(world, ivan, ["hi", "there"])
    ivan_id = await contact_of(running, ivan)
    opened = (await recorded(running, lambda t: t == "process.opened"))[0]

    # Dead at once (one attempt); Ivan's later events went on without it.
    rest = [e for e in await _of(running, ivan_id) if e != opened]
    await eventually(lambda: set(rest) <= {b["id"] for _, b in receiver.accepted["crm"]})
    page = await hooks_.list_dead()
    assert page.next_cursor is None and len(page.items) == 1
    dead = page.items[0]
    assert (dead.id, dead.target, dead.contact, dead.type) == (
        f"crm:{opened}",
        "crm",
        ivan_id,
        "process.opened",
    )
    assert dead.attempts == 1 and dead.error == "HTTP 400: refused with 400"
    assert dead.payload["id"] == opened and dead.payload["type"] == "process.opened"
    assert [d for t, d, _, _ in receiver.attempts if d == dead.id] == [dead.id]
    assert hooks_.stats.counts["crm", "dead_lettered"] == 1

    # Replayed once the CRM is fixed: delivered with the same delivery id; gone from the
    # dead letters; a second replay finds nothing.
    del refused["process.opened"]
    moved = await hooks_.replay([dead.id])
    assert moved.done == (dead.id,) and moved.missing == ()
    await eventually(lambda: dead.id in receiver.ids("crm"))
    assert (await hooks_.list_dead()).items == ()
    assert (await hooks_.replay([dead.id])).missing == (dead.id,)

    # Paging, discard, and replaying all of a target's.
    petr = world.customer("Petr", None)
    await world.say(petr, text="first")
    await world.in_staff(lambda m: text_of(m) == "first")
    petr_id = await contact_of(running, petr)
    refused[petr_id] = "422"
    await converse(world, petr, ["second", "third"])

    async def all_dead() -> list[str]:
        accepted = receiver.ids("crm")
        late = [f"crm:{e}" for e in await _of(running, petr_id) if f"crm:{e}" not in accepted]
        found = (await hooks_.list_dead(target="crm", limit=1000)).items
        return late if [d.id for d in found] == late else []

    await eventually(all_dead, timeout=15)
    late = await all_dead()
    del refused[petr_id]
    first = await hooks_.list_dead(target="crm", limit=2)
    second = await hooks_.list_dead(limit=1000, cursor=first.next_cursor)
    assert first.next_cursor is not None
    ids = [d.id for d in (*first.items, *second.items)]
    assert ids == late, "dead letters are listed oldest first"
    assert all(d.error == "HTTP 422: refused with 422" for d in first.items)
    assert (await hooks_.list_dead(target="tasks")).items == ()

    assert (await hooks_.discard([ids[0], "crm:0-0"])).done == (ids[0],)
    assert (await hooks_.discard([ids[0]])).missing == (ids[0],)
    moved = await hooks_.replay(target="crm")
    assert moved.done == tuple(ids[1:])
    await eventually(lambda: set(ids[1:]) <= set(receiver.ids("crm")))
    replayed = [d for d in receiver.ids("crm") if d in ids[1:]]
    assert replayed == ids[1:], "replayed in the order they died"
    assert ids[0] not in receiver.ids("crm")
    assert (await hooks_.list_dead()).items == ()
    assert await hooks_.backlog() == {"crm": 0}

    # Requests that cannot be done are refused with a clear error, and change nothing.
    for bad in (
        hooks_.list_dead(limit=0),
        hooks_.list_dead(limit=1001),
        hooks_.list_dead(cursor="abc"),
        hooks_.replay(),
        hooks_.replay(["crm:1-0"], target="crm"),
        hooks_.replay(target="erp"),
        hooks_.replay(["erp:1-0"]),
    ):
        with pytest.raises(DeadLetterError):
            await bad


async def test_past_the_retry_window_a_delivery_is_dead_lettered_and_the_next_goes(
    world: World, start_gateway: StartGateway, receiver: Receiver
) -> None:
    down = [True]
    receiver.rule = lambda target, body, tries: "503" if down[0] else "ok"
    running = await start(start_gateway, receiver, crm_retry_for_hours=0.0001)  # 0.36 s
    ivan = world.customer("Ivan", None)
    await world.say(ivan, text="hi")
    await world.in_staff(lambda m: text_of(m) == "hi")
    events = await recorded(running)

    async def all_dead() -> bool:
        found = (await running.app.webhooks.list_dead(limit=1000)).items
        return [d.id for d in found] == [f"crm:{e}" for e in await recorded(running)]

    await eventually(all_dead, timeout=20)
    for dead in (await running.app.webhooks.list_dead()).items:
        assert dead.attempts >= 2 and dead.error == "HTTP 503: refused with 503"
        assert 0.3 <= (dead.dead_at - dead.failing_since).total_seconds() < 2
    assert receiver.accepted["crm"] == []

    down[0] = False
    moved = await running.app.webhooks.replay(target="crm")
    assert len(moved.done) == len(await recorded(running)) >= len(events)
    expected = await delivered_all(running, receiver, "crm")
    assert_in_order(receiver, "crm", expected)


# --- crashes -------------------------------------------------------------------------------


async def test_events_a_crashed_fanout_left_pending_are_delivered_and_bad_ones_skipped(
    start_gateway: StartGateway, receiver: Receiver
) -> None:
    """Entries a replica read from the events stream but never handed on (it died) are
    claimed by the next fan-out; an entry without a type is acknowledged, not sent; data
    that is not a JSON object arrives as ``{"raw": …}``."""
    idle = await start_gateway(workers=False, tweak=hooks(receiver))  # creates the group
    at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    async with idle.redis.pipeline(transaction=True) as pipe:
        for n, kind in enumerate(("process.opened", "task.opened", "task.taken"), 1):
            record_event(pipe, "77", bp.Event(kind, at, "BP-1", 1, "700001" if n == 3 else None))
        pipe.xadd(keys.EVENTS, {"contact": "77", "data": "{}"})
        pipe.xadd(keys.EVENTS, {"type": "task.closed", "contact": "77", "task": "1", "data": "[1"})
        await pipe.execute()
    read = await idle.redis.xreadgroup(hk.GROUP, "dead-replica", {keys.EVENTS: ">"}, count=2)
    assert len(read[0][1]) == 2  # pending with a consumer that will never ack them
    # One more, pending too, then trimmed away before anyone handed it on.
    gone = await idle.redis.xadd(keys.EVENTS, {"type": "task.updated", "contact": "78"})
    await idle.redis.xreadgroup(hk.GROUP, "dead-replica", {keys.EVENTS: ">"}, count=10)
    await idle.redis.xdel(keys.EVENTS, gone)

    running = await start(start_gateway, receiver)
    expected = await delivered_all(running, receiver, "crm", wanted=lambda t: bool(t))
    assert len(expected) == 4
    assert_in_order(receiver, "crm", expected)
    bodies = [b for _, b in receiver.accepted["crm"]]
    assert [b["type"] for b in bodies] == [
        "process.opened",
        "task.opened",
        "task.taken",
        "task.closed",
    ]
    assert bodies[0]["task"] == 1 and bodies[0]["process"] == "BP-1" and bodies[0]["actor"] is None
    assert bodies[2]["actor"] == "700001" and bodies[0]["data"] == {}
    assert bodies[3]["data"] == {"raw": "[1"}
    pending = await running.redis.xpending(keys.EVENTS, hk.GROUP)
    assert pending["pending"] == 0

    # A queue entry this version cannot read is parked, not retried forever.
    await running.redis.rpush(hk.queue("crm", "79"), "{not json")
    await running.redis.zadd(hk.due("crm"), {"79": 0})

    async def parked() -> bool:
        return bool((await running.app.webhooks.list_dead()).items)

    await eventually(parked)
    (dead,) = (await running.app.webhooks.list_dead()).items
    assert dead.contact == "79" and dead.error.startswith("unreadable delivery")
    assert dead.payload == {"raw": "{not json"}
    assert await running.redis.exists(hk.queue("crm", "79")) == 0


async def test_a_gateway_killed_mid_delivery_loses_nothing(
    world: World, start_gateway: StartGateway, receiver: Receiver, redis_url: str, tmp_path: Path
) -> None:
    """A gateway process is SIGKILLed while crm hangs on its request; once crm answers
    again, another gateway delivers everything, once and in order."""
    stalling = [True]
    receiver.rule = lambda target, body, tries: "stall" if stalling[0] else "ok"
    data = config_dict(world.emulator.base_url or "", redis_url, mode="polling")
    data["server"]["listen"] = f"127.0.0.1:{free_port()}"
    data["data_dir"] = str(tmp_path / "victim")
    hooks(receiver, crm_timeout_seconds=2)(data)
    config = tmp_path / "victim.yaml"
    config.write_text(yaml.safe_dump(data))
    victim = spawn_gateway(config, tmp_path / "victim.log")
    try:
        ivan, petr = world.customer("Ivan", None), world.customer("Petr", None)
        await world.say(ivan, text="hi")
        await world.say(petr, text="hello")
        await world.in_staff(lambda m: text_of(m) == "hello", timeout=30)
        await eventually(lambda: len(receiver.attempts) >= 2, timeout=20)  # both in flight
        await world.say(ivan, text="more")
        await world.in_staff(lambda m: text_of(m) == "more", timeout=10)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        assert receiver.accepted["crm"] == []
        stalling[0] = False

        running = await start(start_gateway, receiver, mode="polling")
        expected = await delivered_all(running, receiver, "crm", timeout=30)
        assert_in_order(receiver, "crm", expected)
        assert len(expected) >= 6
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()


async def test_more_contacts_than_parallel_slots_all_flow(
    world: World, redis_url: str, receiver: Receiver
) -> None:
    """The component on its own, with two delivery slots for six contacts: the slots
    are handed round as contacts finish, and every contact keeps its order."""
    data = config_dict(world.emulator.base_url or "", redis_url)
    hooks(receiver)(data)
    settings = parse_config(yaml.safe_dump(data))
    redis = connect(redis_url)
    component = Webhooks(redis, settings, name="solo", policy=FAST, parallel=2)
    await component.prepare()
    receiver.rule = lambda target, body, tries: "slow"  # the slots stay busy a while
    running = asyncio.create_task(component.run())
    at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    try:
        for batch in range(3):  # new deliveries arrive while both slots are busy
            async with redis.pipeline(transaction=True) as pipe:
                for n in range(batch * 6, batch * 6 + 6):
                    record_event(pipe, f"c{n % 6}", bp.Event("task.updated", at, "BP-1", n + 1))
                await pipe.execute()
            await asyncio.sleep(0.07)
        await eventually(lambda: len(receiver.ids("crm")) == 18)
        for contact in range(6):
            tasks = [
                b["task"] for _, b in receiver.accepted["crm"] if b["contact"] == f"c{contact}"
            ]
            assert tasks == [contact + 1, contact + 7, contact + 13]
        assert len(set(receiver.ids("crm"))) == 18
        assert component.alive(grace=5)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await close(redis)
    assert await connect_and_get(redis_url, hk.FANOUT_LEASE) is None, "the lease is given back"


async def connect_and_get(url: str, key: str) -> bytes | None:
    redis = connect(url)
    try:
        return await redis.get(key)
    finally:
        await close(redis)


# --- the parts -------------------------------------------------------------------------------


def test_the_signature_is_the_documented_hmac() -> None:
    body = b'{"id":"1-0","type":"task.opened"}'
    digest = hmac.new(b"s" * 16, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("s" * 16, 1700000000, body) == f"sha256={digest}"


def test_retry_after_and_backoff() -> None:
    now = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC).timestamp()
    assert retry_after("120") == 120.0
    assert retry_after("Mon, 23 Nov 2026 10:00:30 GMT", now) == pytest.approx(30.0)
    assert retry_after("Mon, 23 Nov 2026 09:00:00 GMT", now) == 0.0
    assert retry_after("soon") is None and retry_after(None) is None and retry_after("") is None
    policy = RetryPolicy(initial=1.0, maximum=60.0, jitter=0.5)
    waits = [policy.wait(n) for n in range(1, 12)]
    assert 1.0 <= waits[0] <= 1.5 and 4.0 <= waits[2] <= 4.5
    assert all(w <= 60.5 for w in waits) and waits[-1] >= 60.0
