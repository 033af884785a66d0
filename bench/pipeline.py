"""End-to-end pipeline throughput: webhook → Redis → worker → staff topic, with 1 and with
2 gateway processes, against a bare pipeline with the same Redis requests. One
command, one run, one machine:

    python -m bench.pipeline [--quick] [--contacts K] [--messages M] [--connections C]
                             [--no-bare] [--json PATH] [--profile PATH] [-v]

Every part is an OS process of its own, forked by a multiprocessing *forkserver* that
imported aiogram & co. once:

- **the gateway** (1 or 2 processes): the real app (``App(settings, workers=True)``,
  webhooks + inbound workers + delivery), consuming the same ``redis-server`` (AOF on,
  ``appendfsync everysec``), ``delivery.flood_limits: false``;
- **the Telegram emulator** (:class:`gateway.sandbox.telegram.TelegramEmulator`), flood
  limits off, playing the Bot API for the staff bot; it timestamps every staff-topic
  message that carries a benchmark marker the moment it stores it;
- **the load generator**: a raw-socket HTTP/1.1 client (keep-alive, closed loop, C
  connections spread over the gateway processes, every request prebuilt) posting
  realistic Telegram ``message`` updates straight to the webhooks.

A run: K contacts each send a first message (contact, business process, topic, pinned
card: the warm-up, not measured), the queues drain, then M messages (round-robin over
the contacts) are posted as fast as the webhooks take them. The rate is M / (time of the
last of them stored in the staff forum − time the first webhook was sent), both taken
on the machine's monotonic clock in their own processes.

The **baseline** runs the same load through a *bare* pipeline in as many processes,
with the gateway's Redis client and group commit (every script call of both goes out
in shared batches): an aiohttp webhook doing the same publish-once script, workers
reading the same partitioned streams (``XREADGROUP``), the inbound handler making as
many Redis requests per message as the gateway's (counted in the 1-process gateway run,
a script call in a group commit as one; a no-op script fills what it does not need)
ending in one script (job + XACK + XDEL), and the staff worker doing as many as the
gateway's delivery around one JSON ``sendMessage`` into the contact's topic on the same
emulator, ending in one script (done marker + XACK + XDEL). It is the floor the
architecture allows on this machine; its own 2-vs-1 scaling shows what the machine
allows at all.

The emulator's maximum rate alone (``sendMessage`` from the same load generator) is
measured first, so that the report shows whether it could be the bottleneck. It is a
measurement: the targets are printed with PASS/MISS and the exit status is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import cProfile
import gc
import json
import logging
import math
import multiprocessing
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

if __package__ in (None, ""):  # `python bench/pipeline.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import redis.asyncio as aioredis
import structlog
import yaml
from aiohttp import web
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError

import adapters.telegram  # noqa: F401 - aiogram: the slow import, preloaded by the forkserver
from bench import ingest
from bench._common import (
    ACCOUNT,
    CUSTOMER_TOKEN,
    FIRST_NAMES,
    OPERATOR_ID,
    PARTITIONS,
    SECRET_HEADER,
    STAFF_CHAT,
    STAFF_TOKEN,
    TEXTS,
    WEBHOOK_SECRET,
    cpu_seconds,
    free_port,
    gateway_config,
    note,
    set_verbose,
)
from gateway import logging as gateway_logging
from gateway.app import App, tune_gc
from gateway.bus import PUBLISH_ONCE, Entry, partition
from gateway.config import parse_config
from gateway.sandbox.telegram import TelegramEmulator
from gateway.sandbox.telegram.wire import Params
from gateway.store import keys
from gateway.store.batch import GroupCommit, batched
from gateway.store.redis import EmbeddedRedis, connect
from gateway.web import make_web_app

TARGET_SCALING = 1.6
TARGET_RATE_2 = 2000.0
HOST = "127.0.0.1"
LEASE_SECONDS = 3.0
"""``bus.lease_seconds`` of the gateway processes: leases are renewed (and partitions
rebalanced) every second instead of every 5 s, so two processes share the partitions
sooner. It changes nothing per message."""
USER_BASE = 300_000_000
MARK = re.compile(r"\[([wmx])([a-j]+)\]")
"""The marker in every benchmark text: w = warm-up, m = measured, x = emulator alone;
then the message's number in letters (:func:`mark`), so that the marker adds no digits:
a text's digits decide whether the gateway scans it for phone numbers."""


def mark(tag: str, seq: int) -> str:
    """``[m` + ``seq`` with the digits 0-9 written as the letters a-j ``]``."""
    return f"[{tag}{str(seq).translate(_LETTERS)}]"


def marked(found: re.Match[str]) -> tuple[str, int]:
    """The tag and number of a :data:`MARK` match."""
    return found.group(1), int(found.group(2).translate(_DIGITS))


_LETTERS = str.maketrans("0123456789", "abcdefghij")
_DIGITS = str.maketrans("abcdefghij", "0123456789")
PLAIN_TEXTS = [(t, e) for t, e in TEXTS if not t.startswith("/")]
"""Customer texts (commands left out: they are not ordinary messages)."""


# === child processes =========================================================================


def child_main(conn: Connection, log_path: str) -> None:
    """The ``multiprocessing.Process`` target: the first command says what to be."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        command: dict[str, Any] = conn.recv()
    except EOFError:
        return
    asyncio.run(_play(command, conn))
    sys.stdout.flush()


async def _play(command: dict[str, Any], conn: Connection) -> None:
    roles: dict[str, Callable[[dict[str, Any], Inbox], Awaitable[None]]] = {
        "gateway": gateway_role,
        "bare": bare_role,
        "emulator": emulator_role,
        "load": load_role,
    }
    await roles[command["mode"]](command, Inbox(conn))


class Inbox:
    """The child's end of its pipe, read without blocking the event loop."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            message: dict[str, Any] | None = self.conn.recv()
        except (EOFError, OSError):
            message = None  # the benchmark went away: stop
            self._loop.remove_reader(self.conn.fileno())
        self._queue.put_nowait(message)

    async def recv(self) -> dict[str, Any] | None:
        return await self._queue.get()

    def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(message)

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self.conn.fileno())


# --- Redis requests, by handler -------------------------------------------------------------

_STAGE: contextvars.ContextVar[str] = contextvars.ContextVar("stage", default="other")
BATCHES = "group commit"
"""The stage the group commit's own round trips are counted under: a script call in it
counts as one request of its caller's stage, the batch it went in as one round trip."""


class TripCounter:
    """Redis requests by the stage they were made in: a command or a pipeline sent on its
    own is one (one round trip); a script call queued for a group commit is one, and the
    group commit's batches are counted apart, under :data:`BATCHES`."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def install(self) -> TripCounter:
        send, call, run = AbstractConnection.send_packed_command, GroupCommit.call, GroupCommit._run
        counts = self.counts

        async def counting(conn: AbstractConnection, *args: Any, **kwargs: Any) -> None:
            counts[_STAGE.get()] += 1
            await send(conn, *args, **kwargs)

        def queued(group: GroupCommit, *args: Any) -> Any:
            counts[_STAGE.get()] += 1
            return call(group, *args)

        async def batch(group: GroupCommit, *args: Any, **kwargs: Any) -> Any:
            token = _STAGE.set(BATCHES)
            try:
                return await run(group, *args, **kwargs)
            finally:
                _STAGE.reset(token)

        AbstractConnection.send_packed_command = counting  # type: ignore[method-assign,assignment]
        GroupCommit.call = queued  # type: ignore[method-assign]
        GroupCommit._run = batch  # type: ignore[method-assign]
        return self


def staged(stage: str, handler: Callable[[Entry], Awaitable[None]]) -> Callable[..., Any]:
    """``handler`` with its Redis requests counted under ``stage``."""

    async def run(entry: Entry) -> None:
        token = _STAGE.set(stage)
        try:
            await handler(entry)
        finally:
            _STAGE.reset(token)

    return run


async def _command_loop(
    inbox: Inbox, trips: TripCounter, profiler: cProfile.Profile | None = None
) -> None:
    """Answer ``trips`` snapshots (and switch the profiler on) until told to stop."""
    while True:
        command = await inbox.recv()
        if command is None:
            return
        if command.get("mode") == "stop":
            inbox.send({"trips": dict(trips.counts)})
            return
        if command.get("op") == "profile_on" and profiler is not None:
            profiler.enable()
        inbox.send({"trips": dict(trips.counts)})


# --- the real gateway ------------------------------------------------------------------------


async def gateway_role(command: dict[str, Any], inbox: Inbox) -> None:
    settings = parse_config(command["config"])
    # As `gateway run` does: JSON logs at the configured level (to the log file).
    gateway_logging.configure(settings.log.level, settings.log.format, settings.secrets())
    gateway = App(settings, workers=True)
    runner = web.AppRunner(make_web_app(gateway), access_log=None, handle_signals=False)
    await runner.setup()  # starts the gateway (Redis, adapters, consumer groups)
    trips = TripCounter().install()
    # Count each handler's round trips apart (instance attributes, read by go_live).
    setattr(gateway.pipeline, "handle", staged("in", gateway.pipeline.handle))  # noqa: B010
    delivery = gateway.delivery
    setattr(delivery, "handle_staff", staged("out:staff", delivery.handle_staff))  # noqa: B010
    setattr(delivery, "handle_customer", staged("out:customer", delivery.handle_customer))  # noqa: B010
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    profile: str | None = command.get("profile")
    profiler = cProfile.Profile() if profile else None
    try:
        await gateway.go_live(None)  # workers on; no setWebhook: the load posts directly
        tune_gc()  # as `gateway run` does once live
        inbox.send({"port": int(runner.addresses[0][1]), "pid": os.getpid()})
        await _command_loop(inbox, trips, profiler)
    finally:
        if profiler is not None and profile:
            profiler.disable()
            profiler.dump_stats(profile)
        inbox.close()
        await runner.cleanup()


# --- the bare pipeline -------------------------------------------------------------------------

DEDUP_TTL = 8 * 86400
# A handler's closing writes as one script, as the gateway's Bus.apply runs them.
_CLOSE = """
if ARGV[1] == 'xadd' then
  redis.call('XADD', KEYS[1], '*', 'e', ARGV[2], 'k', ARGV[6])
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[4])
end
redis.call('XACK', KEYS[2], ARGV[5], ARGV[3])
redis.call('XDEL', KEYS[2], ARGV[3])
return 1
"""
_NOOP = "return 1"


class Filler:
    """``per`` requests per call on average, as whole numbers (3.4 → 3, 4, 3, 4, 3…)."""

    def __init__(self, per: float) -> None:
        self.per = max(0.0, per)
        self.owed = 0.0

    def take(self) -> int:
        self.owed += self.per
        whole = int(self.owed)
        self.owed -= whole
        return whole


class BarePipeline:
    """The minimum per message with the gateway's shape and Redis round trips.

    Every script call goes through the gateway's group commit
    (:func:`gateway.store.batch.batched`), as the gateway's do. Webhook: check the
    secret, ``json.loads``, the publish-once script. Inbound worker: ``json.loads``,
    filler script calls, then one script (job XADD + XACK + XDEL). Staff worker:
    ``json.loads``, the topic ``GET`` (created once per contact), filler script calls,
    ``sendMessage`` to the emulator as JSON (as the gateway sends texts), then one script
    (done marker + XACK + XDEL). Partitions are split statically between processes.
    """

    def __init__(self, command: dict[str, Any]) -> None:
        self.redis = connect(command["redis_url"], max_connections=256)  # the gateway's client
        self.api = f"{command['api']}/bot{STAFF_TOKEN}"
        self.partitions = [p for p in range(PARTITIONS) if p % command["of"] == command["index"]]
        self.name = f"bare-{os.getpid()}"
        # The handler's own calls are 1 (in: the closing script) and 2 (staff: topic GET
        # + the closing script); filler calls make up the gateway's counted requests.
        self.fill_in = Filler(float(command["trips_in"]) - 1)
        self.fill_out = Filler(float(command["trips_out"]) - 2)
        self.topics: dict[str, int] = {}
        self.session: aiohttp.ClientSession | None = None
        self._publish_once = self.redis.register_script(PUBLISH_ONCE)  # the gateway's
        self._close = self.redis.register_script(_CLOSE)
        self._noop = self.redis.register_script(_NOOP)

    async def start(self) -> None:
        for script in (PUBLISH_ONCE, _CLOSE, _NOOP):
            await self.redis.script_load(script)
        for family in (keys.INBOUND, keys.STAFF_OUT):
            for p in range(PARTITIONS):
                with contextlib.suppress(ResponseError):  # BUSYGROUP: the other process
                    await self.redis.xgroup_create(
                        keys.stream(family, p), keys.GROUP, id="0", mkstream=True
                    )
        connector = aiohttp.TCPConnector(limit=100)
        self.session = aiohttp.ClientSession(connector=connector)

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        await self.redis.aclose()

    @staticmethod
    def partition(routing_key: str) -> int:
        return partition(routing_key, PARTITIONS)

    # webhook -----------------------------------------------------------------------

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get(SECRET_HEADER) != WEBHOOK_SECRET:
            return web.Response(status=401)
        message = json.loads(body)["message"]
        chat = message["chat"]["id"]
        dedup = keys.seen(f"tg:bare:{chat}:{message['message_id']}")
        route = f"{ACCOUNT}:{chat}"
        stream = keys.stream(keys.INBOUND, self.partition(route))
        await batched(self._publish_once, keys=(dedup, stream), args=(DEDUP_TTL, body, route))
        return web.Response(text='{"ok": true}', content_type="application/json")

    # workers -----------------------------------------------------------------------

    async def serve(
        self, stream: str, handle: Callable[[str, bytes, bytes], Awaitable[None]]
    ) -> None:
        while True:
            reply: Any = await self.redis.xreadgroup(
                keys.GROUP, self.name, {stream: ">"}, count=64, block=1000
            )
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    await handle(stream, entry_id, fields[b"e"])

    async def inbound(self, stream: str, entry_id: bytes, payload: bytes) -> None:
        token = _STAGE.set("in")
        try:
            message = json.loads(payload)["message"]
            contact = str(message["chat"]["id"])
            job = json.dumps(
                {
                    "contact": contact,
                    "key": f"{contact}:{message['message_id']}",
                    "text": message.get("text", ""),
                },
                ensure_ascii=False,
            )
            for _ in range(self.fill_in.take()):
                await batched(self._noop)
            out = keys.stream(keys.STAFF_OUT, self.partition(contact))
            args = ("xadd", job, entry_id, 0, keys.GROUP, contact)
            await batched(self._close, keys=(out, stream), args=args)
        finally:
            _STAGE.reset(token)

    async def staff(self, stream: str, entry_id: bytes, payload: bytes) -> None:
        token = _STAGE.set("out:staff")
        try:
            job = json.loads(payload)
            contact = job["contact"]
            topic_key = keys.topic(STAFF_CHAT, contact)
            stored = await self.redis.get(topic_key)
            if stored is None:
                topic = await self._create_topic(contact)
                await self.redis.set(topic_key, topic)
            else:
                topic = int(stored)
            for _ in range(self.fill_out.take()):
                await batched(self._noop)
            form = {"chat_id": STAFF_CHAT, "message_thread_id": topic, "text": job["text"]}
            sent = await self._call("sendMessage", form, as_json=True)
            done = keys.done(f"post:{job['key']}")
            args = ("set", json.dumps([sent["message_id"]]), entry_id, DEDUP_TTL, keys.GROUP)
            await batched(self._close, keys=(done, stream), args=args)
        finally:
            _STAGE.reset(token)

    async def _create_topic(self, contact: str) -> int:
        made = await self._call("createForumTopic", {"chat_id": STAFF_CHAT, "name": contact})
        return int(made["message_thread_id"])

    async def _call(
        self, method: str, form: dict[str, Any], *, as_json: bool = False
    ) -> dict[str, Any]:
        assert self.session is not None
        if as_json:  # what the gateway sends texts as (adapters.telegram.lean)
            body, kind = json.dumps(form).encode(), "application/json"
        else:  # what aiogram sends other calls as: form fields
            body, kind = urlencode(form).encode(), "application/x-www-form-urlencoded"
        headers = {"Content-Type": kind}
        async with self.session.post(f"{self.api}/{method}", data=body, headers=headers) as r:
            answer: dict[str, Any] = await r.json()
        if not answer.get("ok"):
            raise RuntimeError(f"{method}: {answer}")
        result: dict[str, Any] = answer["result"]
        return result


async def bare_role(command: dict[str, Any], inbox: Inbox) -> None:
    trips = TripCounter().install()
    bare = BarePipeline(command)
    await bare.start()
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/webhook/{channel}/{account}", bare.webhook)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, HOST, 0).start()
    tasks = [
        asyncio.create_task(bare.serve(keys.stream(family, p), handle))
        for family, handle in ((keys.INBOUND, bare.inbound), (keys.STAFF_OUT, bare.staff))
        for p in bare.partitions
    ]
    try:
        tune_gc()  # the gateway's garbage-collector set-up: like with like
        inbox.send({"port": int(runner.addresses[0][1]), "pid": os.getpid()})
        await _command_loop(inbox, trips)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        inbox.close()
        await runner.cleanup()
        await bare.stop()


# --- the Telegram emulator ---------------------------------------------------------------------


def user_id(contact: int) -> int:
    return USER_BASE + contact


def person(contact: int) -> dict[str, Any]:
    """A customer as Telegram describes them (the same in the emulator and the updates)."""
    return {
        "first_name": FIRST_NAMES[contact % len(FIRST_NAMES)],
        "last_name": f"Bench{contact}",
        "username": f"bench_customer_{contact}",
    }


class MarkerFeed:
    """Times every staff-forum message carrying a marker, inside the emulator's event
    feed (``world.events.emit``, which every stored message passes through)."""

    def __init__(self, emulator: TelegramEmulator) -> None:
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.seen: dict[str, set[int]] = {"w": set(), "m": set(), "x": set()}
        self.repeats: Counter[str] = Counter()
        events = emulator.world.events
        original: Callable[..., dict[str, Any]] = events.emit

        def emit(kind: str, chat: Any, **fields: Any) -> dict[str, Any]:
            if kind == "message" and getattr(chat, "id", None) == STAFF_CHAT:
                stored = fields.get("message") or {}
                found = MARK.search(stored.get("text") or stored.get("caption") or "")
                if found is not None:
                    self.arrived(*marked(found))
            return original(kind, chat, **fields)

        setattr(events, "emit", emit)  # noqa: B010 - an instance-level hook, on purpose

    def arrived(self, tag: str, seq: int) -> None:
        now = time.monotonic()
        seen = self.seen[tag]
        if seq in seen:
            self.repeats[tag] += 1
            return
        seen.add(seq)
        self.first.setdefault(tag, now)
        self.last[tag] = now


async def emulator_role(command: dict[str, Any], inbox: Inbox) -> None:
    logging.disable(logging.CRITICAL)
    emulator = TelegramEmulator()
    await emulator.start(HOST, 0)
    try:
        emulator.set_flood_limits(False)
        emulator.create_user(first_name="Anna", username="anna_op", user_id=OPERATOR_ID)
        emulator.create_forum_group(
            title="Staff", members=[OPERATOR_ID], bot_tokens=[STAFF_TOKEN], chat_id=STAFF_CHAT
        )
        emulator.set_bot_username(CUSTOMER_TOKEN, "shop_bot")
        emulator.set_bot_username(STAFF_TOKEN, "staff_bot")
        for i in range(int(command.get("contacts", 0))):
            emulator.create_user(**person(i), language_code="ru", user_id=user_id(i))
        feed = MarkerFeed(emulator)
        tune_gc()  # as in `gateway sandbox`, where the emulators share the gateway's process
        assert emulator.base_url is not None
        port = int(emulator.base_url.rsplit(":", 1)[1])
        inbox.send({"port": port, "pid": os.getpid(), "flood_limits": emulator.flood.enabled})
        mark = 0
        while True:
            message = await inbox.recv()
            if message is None or message.get("mode") == "stop":
                inbox.send({})
                return
            op = message.get("op")
            if op == "mark":
                mark = len(emulator.world.calls)
            elif op == "topics":
                bot = emulator.world.bot(STAFF_TOKEN)
                threads = []
                for i in range(int(message["count"])):
                    params = Params({"chat_id": STAFF_CHAT, "name": f"Topic {i}"})
                    outcome = await emulator.api.call(bot, "createForumTopic", params)
                    if outcome is None or outcome[0] != 200:
                        raise RuntimeError(f"createForumTopic: {outcome}")
                    threads.append(int(outcome[1]["result"]["message_thread_id"]))
                inbox.send({"threads": threads})
                continue
            stats: dict[str, Any] = {
                "count": {tag: len(seqs) for tag, seqs in feed.seen.items()},
                "first": dict(feed.first),
                "last": dict(feed.last),
                "repeats": dict(feed.repeats),
                "too_many": emulator.too_many_requests(),
                "flood_limits": emulator.flood.enabled,
            }
            if op == "calls":  # Bot API calls since the mark, by method (and error status)
                calls = Counter(
                    c.method + ("" if c.status == 200 else f" ({c.status})")
                    for c in emulator.world.calls[mark:]
                )
                stats["calls"] = dict(calls)
            inbox.send(stats)
    finally:
        inbox.close()
        await emulator.stop()


# --- the load generator ------------------------------------------------------------------------


def webhook_requests(first: int, count: int, contacts: int, tag: str) -> list[bytes]:
    """Telegram ``message`` updates, message ``seq`` from contact ``seq % contacts``, each
    with a new update_id and message_id, the text ending in its marker."""
    out = []
    now = int(time.time())
    for seq in range(first, first + count):
        contact = seq % contacts
        who = {"id": user_id(contact), **person(contact)}
        text, entities = PLAIN_TEXTS[seq % len(PLAIN_TEXTS)]
        message: dict[str, Any] = {
            "message_id": seq + 1,
            "from": {**who, "is_bot": False, "language_code": "ru"},
            "chat": {**who, "type": "private"},
            "date": now,
            "text": f"{text} {mark(tag, seq)}",  # appended: entity offsets stay right
        }
        if entities:
            message["entities"] = entities
        body = json.dumps(
            {"update_id": 10_000_000 + seq, "message": message},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        out.append(
            (
                f"POST /webhook/telegram/{ACCOUNT} HTTP/1.1\r\nHost: {HOST}\r\n"
                f"Content-Type: application/json\r\n{SECRET_HEADER}: {WEBHOOK_SECRET}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
    return out


def api_requests(count: int, threads: list[int]) -> list[bytes]:
    """``sendMessage`` calls of the staff bot into forum topics, encoded as aiogram does."""
    out = []
    for seq in range(count):
        text, _ = PLAIN_TEXTS[seq % len(PLAIN_TEXTS)]
        form = {
            "chat_id": STAFF_CHAT,
            "message_thread_id": threads[seq % len(threads)],
            "text": f"{text} {mark('x', seq)}",
        }
        body = urlencode(form).encode()
        out.append(
            (
                f"POST /bot{STAFF_TOKEN}/sendMessage HTTP/1.1\r\nHost: {HOST}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
    return out


async def drive(ports: list[int], requests: list[bytes], connections: int) -> dict[str, Any]:
    """Closed loop over ``connections`` keep-alive connections (spread over ``ports``):
    each sends the next prebuilt request when its previous answer is in."""
    opened = [
        await asyncio.open_connection(HOST, ports[i % len(ports)]) for i in range(connections)
    ]
    queue = iter(requests)
    statuses: Counter[int] = Counter()

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for request in queue:
            writer.write(request)
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                raise RuntimeError(f"no Content-Length in {head!r}")
            length = int(head[at + 17 : head.index(b"\r\n", at + 2)])
            if length:
                await reader.readexactly(length)
            statuses[int(head[9:12])] += 1

    cpu0 = time.process_time()
    t0 = time.monotonic()
    try:
        await asyncio.gather(*(worker(r, w) for r, w in opened))
    finally:
        t1 = time.monotonic()
        cpu = time.process_time() - cpu0
        for _, writer in opened:
            writer.close()
    return {"t0": t0, "t1": t1, "statuses": dict(statuses), "cpu": cpu}


async def load_role(command: dict[str, Any], inbox: Inbox) -> None:
    gc.collect()
    gc.freeze()
    inbox.send({"pid": os.getpid()})
    requests: list[bytes] = []
    try:
        while (message := await inbox.recv()) is not None:
            if message.get("mode") == "stop":
                inbox.send({})
                return
            if message["op"] == "webhooks":  # built before the clock starts
                requests = webhook_requests(
                    message["first"], message["count"], message["contacts"], message["tag"]
                )
                inbox.send({"requests": len(requests)})
            elif message["op"] == "api":
                requests = api_requests(message["count"], message["threads"])
                inbox.send({"requests": len(requests)})
            else:  # go
                inbox.send(await drive(message["ports"], requests, message["connections"]))
    finally:
        inbox.close()


# === the benchmark process ======================================================================

_CTX = multiprocessing.get_context("forkserver")


class Child(ingest.Child):
    """A child of this benchmark (see :func:`child_main`)."""

    @classmethod
    def spawn(cls, role: str, workdir: Path) -> Child:
        log = workdir / f"{role}.log"
        ours, theirs = _CTX.Pipe()
        process = _CTX.Process(
            target=child_main, args=(theirs, str(log)), name=f"bench-{role}", daemon=True
        )
        process.start()
        theirs.close()
        return cls(role, process, ours, log)


@dataclass
class Run:
    label: str
    kind: str
    """``gateway`` or ``bare``."""
    processes: int
    messages: int
    delivered: int
    seconds: float
    """First webhook sent → last measured message stored in the staff forum."""
    rate: float
    webhooks_seconds: float
    """First webhook sent → last webhook answered."""
    statuses: dict[str, int]
    repeats: int
    """Measured messages stored in the staff forum more than once."""
    cpu_pct: dict[str, float | None]
    """Over the measured phase, % of one core: gateway (all its processes), redis,
    emulator, load, bench (this process), others (the rest of the machine)."""
    cpu_us_per_message: dict[str, float | None]
    trips_per_message: dict[str, float]
    """Redis requests per measured message by stage (summed over the processes)."""
    calls_per_message: dict[str, float]
    """Bot API calls the emulator served per measured message, by method."""
    commands_per_message: dict[str, tuple[float, float]]
    """Commands Redis executed per measured message and the server's µs in them per
    message (``INFO commandstats``; a script's own ``redis.call`` commands are counted
    and their time is also inside ``evalsha``'s), by command."""
    warmup_seconds: float
    too_many: int
    emulator_flood_limits: bool
    load_cpu_us_per_request: float


@dataclass
class EmulatorAlone:
    calls: int
    connections: int
    rate: float
    cpu_pct: dict[str, float | None]
    statuses: dict[str, int]
    stored: int


@dataclass
class Context:
    args: argparse.Namespace
    workdir: Path
    redis: EmbeddedRedis
    client: aioredis.Redis
    redis_pid: int | None
    load: Child
    trips_in: float = 3.0
    trips_out: float = 4.0
    children: list[Child] = field(default_factory=list)


def _pids_cpu(pids: dict[str, list[int | None]]) -> dict[str, float | None]:
    now: dict[str, float | None] = {"bench": time.process_time()}
    for name, group in pids.items():
        values = [cpu_seconds(p) if p is not None else None for p in group]
        now[name] = None if any(v is None for v in values) else sum(v or 0.0 for v in values)
    now["machine"] = ingest.machine_busy_seconds()
    return now


def _cpu_delta(
    before: dict[str, float | None], after: dict[str, float | None]
) -> dict[str, float | None]:
    used: dict[str, float | None] = {}
    for name, a in before.items():
        b = after.get(name)
        used[name] = None if a is None or b is None else b - a
    machine = used.pop("machine", None)
    if machine is not None and all(v is not None for v in used.values()):
        used["others"] = max(0.0, machine - sum(v or 0.0 for v in used.values()))
    return used


async def spawn(ctx: Context, role: str) -> Child:
    child = await asyncio.to_thread(Child.spawn, role, ctx.workdir)
    ctx.children.append(child)
    return child


async def stop(ctx: Context, *children: Child) -> list[dict[str, Any] | None]:
    answers = []
    for child in children:
        answer = None
        if not child.conn.closed and child.process.exitcode is None:
            with contextlib.suppress(RuntimeError, OSError):
                answer = await child.request({"mode": "stop"}, timeout=30)
        child.port = 0  # told already: Child.stop only closes the pipe and joins
        await child.stop()  # closes the pipe, joins (escalating if needed)
        if child in ctx.children:
            ctx.children.remove(child)
        answers.append(answer)
    return answers


async def start_emulator(ctx: Context, label: str, contacts: int) -> Child:
    emulator = await spawn(ctx, f"emulator-{label}")
    info = await emulator.request({"mode": "emulator", "contacts": contacts})
    emulator.port = int(info["port"])
    if info["flood_limits"]:
        raise RuntimeError("the emulator's flood limits are on")
    return emulator


async def wait_stats(
    emulator: Child, tag: str, count: int, timeout: float, poll: float = 0.02
) -> dict[str, Any]:
    """Poll the emulator until ``count`` messages with ``tag`` are in the staff forum."""
    deadline = time.monotonic() + timeout
    while True:
        stats = await emulator.request({"op": "stats"})
        if stats["count"][tag] >= count or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(poll)


async def wait_balanced(ctx: Context, processes: int, timeout: float = 30) -> None:
    """Until every inbound and staff partition is leased, evenly, by ``processes``
    gateway processes (a joining replica gets its share within a few lease rounds)."""
    names = [
        keys.lease(f"{f}:{p}") for f in (keys.INBOUND, keys.STAFF_OUT) for p in range(PARTITIONS)
    ]
    share = math.ceil(PARTITIONS / processes)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owners = await ctx.client.mget(names)
        if all(o is not None for o in owners):
            families = [Counter(owners[:PARTITIONS]), Counter(owners[PARTITIONS:])]
            if all(len(c) == processes and max(c.values()) <= share for c in families):
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the partitions were not shared by {processes} processes in time")


async def wait_drained(ctx: Context, timeout: float = 60) -> None:
    """Until the inbound and outbound streams are empty (twice in a row)."""
    names = [keys.stream(f, p) for f in keys.FAMILIES for p in range(PARTITIONS)]
    deadline = time.monotonic() + timeout
    empty = 0
    while time.monotonic() < deadline:
        async with ctx.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.xlen(name)
            depth = sum(await pipe.execute())
        empty = empty + 1 if depth == 0 else 0
        if empty >= 2:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the queues did not drain after the warm-up")


async def measure_emulator(ctx: Context) -> EmulatorAlone:
    """The emulator's own maximum ``sendMessage`` rate, driven by the load generator."""
    args = ctx.args
    emulator = await start_emulator(ctx, "alone", 0)
    try:
        threads = (await emulator.request({"op": "topics", "count": 50}))["threads"]
        go = {"op": "go", "ports": [emulator.port], "connections": args.connections}
        await ctx.load.request({"op": "api", "threads": threads, "count": 300})
        await ctx.load.request(go)  # warm-up
        await ctx.load.request({"op": "api", "threads": threads, "count": args.emulator_calls})
        before = _pids_cpu({"emulator": [emulator.pid]})
        sent = await ctx.load.request(go, timeout=300)
        after = _pids_cpu({"emulator": [emulator.pid]})
        stats = await emulator.request({"op": "stats"})
    finally:
        await stop(ctx, emulator)
    seconds = sent["t1"] - sent["t0"]
    used = _cpu_delta(before, after)
    used["load"] = sent["cpu"]
    return EmulatorAlone(
        calls=args.emulator_calls,
        connections=args.connections,
        rate=args.emulator_calls / seconds,
        cpu_pct={k: None if v is None else 100 * v / seconds for k, v in used.items()},
        statuses={str(k): v for k, v in sent["statuses"].items()},
        stored=stats["count"]["x"],
    )


async def measure_run(
    ctx: Context, kind: str, processes: int, *, profile: Path | None = None
) -> Run:
    args = ctx.args
    label = f"{kind}-{processes}" + ("-profiled" if profile else "")
    contacts, messages = args.contacts, args.messages
    await ctx.client.flushall()
    emulator = await start_emulator(ctx, label, contacts)
    api = f"http://{HOST}:{emulator.port}"
    workers = [await spawn(ctx, f"{label}-{i}") for i in range(processes)]
    try:
        commands: list[dict[str, Any]] = []
        for i in range(processes):
            if kind == "gateway":
                data = ctx.workdir / f"data-{label}-{i}"
                config = gateway_config(ctx.redis.url, api, data, args.log_level)
                config["bus"]["lease_seconds"] = LEASE_SECONDS
                commands.append(
                    {
                        "mode": "gateway",
                        "config": yaml.safe_dump(config),
                        "profile": str(profile) if profile else None,
                    }
                )
            else:
                commands.append(
                    {
                        "mode": "bare",
                        "redis_url": ctx.redis.url,
                        "api": api,
                        "index": i,
                        "of": processes,
                        "trips_in": ctx.trips_in,
                        "trips_out": ctx.trips_out,
                    }
                )
        answers = await asyncio.gather(
            *(w.request(c) for w, c in zip(workers, commands, strict=True))
        )
        for worker, answer in zip(workers, answers, strict=True):
            worker.port = int(answer["port"])
        ports = [w.port for w in workers]
        if kind == "gateway":
            await wait_balanced(ctx, processes)
        note(f"{label}: up on ports {ports}")

        # Warm-up: every contact's first message (contact, process, topic, card).
        go = {"op": "go", "ports": ports, "connections": args.connections}
        webhooks = {"op": "webhooks", "contacts": contacts}
        await ctx.load.request({**webhooks, "first": 0, "count": contacts, "tag": "w"})
        started = time.monotonic()
        await ctx.load.request(go, timeout=300)
        warm = await wait_stats(emulator, "w", contacts, timeout=120)
        if warm["count"]["w"] < contacts:
            raise RuntimeError(f"{label}: warm-up incomplete {warm['count']}")
        await wait_drained(ctx)
        warmup_seconds = time.monotonic() - started
        note(f"{label}: warmed up in {warmup_seconds:.1f} s")

        # The measurement.
        await ctx.load.request({**webhooks, "first": contacts, "count": messages, "tag": "m"})
        await emulator.request({"op": "mark"})
        if profile is not None:
            await workers[0].request({"op": "profile_on"})
        trips_before = [(await w.request({"op": "trips"}))["trips"] for w in workers]
        await ctx.client.config_resetstat()
        pids: dict[str, list[int | None]] = {
            kind: [w.pid for w in workers],
            "redis": [ctx.redis_pid],
            "emulator": [emulator.pid],
            "load": [ctx.load.pid],
        }
        before = _pids_cpu(pids)
        t_before = time.monotonic()
        sending = asyncio.create_task(ctx.load.request(go, timeout=600))
        stats = await wait_stats(emulator, "m", messages, timeout=max(60.0, messages / 20))
        after = _pids_cpu(pids)
        window = time.monotonic() - t_before
        sent = await sending
        commandstats = await ctx.client.info("commandstats")
        trips_after = [(await w.request({"op": "trips"}))["trips"] for w in workers]
        stats["calls"] = (await emulator.request({"op": "calls"}))["calls"]
        note(f"{label}: measured")
    finally:
        await stop(ctx, *workers)
        await stop(ctx, emulator)

    delivered = int(stats["count"]["m"])
    seconds = stats["last"].get("m", sent["t1"]) - sent["t0"]
    used = _cpu_delta(before, after)
    trips: Counter[str] = Counter()
    for b, a in zip(trips_before, trips_after, strict=True):
        for stage, n in a.items():
            trips[stage] += n - b.get(stage, 0)
    calls = {m: n / messages for m, n in sorted(stats["calls"].items(), key=lambda x: -x[1])}
    return Run(
        label=label,
        kind=kind,
        processes=processes,
        messages=messages,
        delivered=delivered,
        seconds=seconds,
        rate=delivered / seconds if seconds > 0 else float("nan"),
        webhooks_seconds=sent["t1"] - sent["t0"],
        statuses={str(k): v for k, v in sent["statuses"].items()},
        repeats=int(stats["repeats"].get("m", 0)),
        cpu_pct={k: None if v is None else 100 * v / window for k, v in used.items()},
        cpu_us_per_message={
            k: None if v is None else 1e6 * v / max(1, delivered) for k, v in used.items()
        },
        trips_per_message={k: v / messages for k, v in sorted(trips.items())},
        calls_per_message=calls,
        commands_per_message={
            name.removeprefix("cmdstat_"): (
                int(stat["calls"]) / messages,
                float(stat["usec"]) / messages,
            )
            for name, stat in sorted(commandstats.items(), key=lambda x: -int(x[1]["calls"]))
        },
        warmup_seconds=warmup_seconds,
        too_many=int(stats["too_many"]),
        emulator_flood_limits=bool(stats["flood_limits"]),
        load_cpu_us_per_request=1e6 * sent["cpu"] / messages,
    )


# --- report --------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def report_emulator(alone: EmulatorAlone) -> None:
    cpu = alone.cpu_pct
    print(
        f"\nTelegram emulator alone: {alone.rate:,.0f} sendMessage/s into forum topics "
        f"({alone.calls} calls, {alone.connections} connections; CPU: emulator "
        f"{_pct(cpu.get('emulator'))}, load generator {_pct(cpu.get('load'))}, others "
        f"{_pct(cpu.get('others'))})"
    )
    bad = {k: v for k, v in alone.statuses.items() if k != "200"}
    if bad or alone.stored != alone.calls:
        print(f"  ! non-200 answers {bad}, {alone.stored} of {alone.calls} stored")


def report_runs(runs: list[Run], alone: EmulatorAlone | None) -> dict[str, Any]:
    r0 = runs[0]
    print(
        f"\nEnd to end: webhook → Redis → worker → staff topic — {r0.messages} messages from "
        "the contacts (after their first messages), as fast as the webhooks take them"
    )
    print(
        f"  {'run':<10}{'procs':>6}{'msg/s':>8}{'s':>7}{'webhooks s':>11}"
        f"{'CPU%: pipeline':>16}{'redis':>7}{'emulator':>9}{'load':>6}{'others':>8}"
        f"{'µs/msg: pipeline':>18}{'redis':>7}{'emulator':>9}"
    )
    for r in runs:
        cpu, us = r.cpu_pct, r.cpu_us_per_message
        print(
            f"  {r.kind:<10}{r.processes:>6}{r.rate:>8.0f}{r.seconds:>7.2f}"
            f"{r.webhooks_seconds:>11.2f}{_pct(cpu.get(r.kind)):>16}{_pct(cpu.get('redis')):>7}"
            f"{_pct(cpu.get('emulator')):>9}{_pct(cpu.get('load')):>6}"
            f"{_pct(cpu.get('others')):>8}{_us(us.get(r.kind)):>18}{_us(us.get('redis')):>7}"
            f"{_us(us.get('emulator')):>9}"
        )
    for r in runs:
        problems = []
        bad = {k: v for k, v in r.statuses.items() if k != "200"}
        if bad:
            problems.append(f"non-200 webhook answers {bad}")
        if r.delivered < r.messages:
            problems.append(f"only {r.delivered} of {r.messages} reached the staff topics")
        if r.repeats:
            problems.append(f"{r.repeats} stored twice")
        if r.too_many:
            problems.append(f"{r.too_many} answers 429 from the emulator")
        if problems:
            print(f"  ! {r.label}: " + "; ".join(problems))

    gw = {r.processes: r for r in runs if r.kind == "gateway"}
    bare = {r.processes: r for r in runs if r.kind == "bare"}
    g1 = gw.get(1)
    if g1 is not None:
        t = g1.trips_per_message
        print(
            "  Redis requests per message (gateway, 1 process; a script call in a group "
            f"commit is one): inbound handler {t.get('in', 0):.2f}, staff delivery "
            f"{t.get('out:staff', 0):.2f}, the rest (webhook publishes, stream reads, leases) "
            f"{t.get('other', 0):.2f}; group commits (round trips) {t.get(BATCHES, 0):.2f}"
        )
        calls = ", ".join(f"{m} {n:.2f}" for m, n in g1.calls_per_message.items())
        print(f"  Bot API calls per message at the emulator (gateway): {calls}")
        commands = ", ".join(
            f"{c} {n:.2f} ({us:.0f} µs)"
            for c, (n, us) in g1.commands_per_message.items()
            if n >= 0.05
        )
        print(
            "  Redis commands executed per message, and the server's time in them (gateway, "
            f"1 process; evalsha's time includes its scripts' commands): {commands}"
        )
    b1 = bare.get(1)
    if b1 is not None:
        t = b1.trips_per_message
        print(
            f"  bare pipeline, the same counted: inbound {t.get('in', 0):.2f}, staff "
            f"{t.get('out:staff', 0):.2f}, the rest {t.get('other', 0):.2f}; group commits "
            f"{t.get(BATCHES, 0):.2f}"
        )
    others = max((r.cpu_pct.get("others") or 0.0) for r in runs)
    if others > 20:
        print(
            f"  note: other processes on the machine used up to {others:.0f}% of a core during "
            "the runs: absolute rates are depressed and the scaling is noisy; run it again on "
            "an idle machine before drawing conclusions."
        )
    flood = any(r.emulator_flood_limits for r in runs)
    print(
        f"  flood limits: gateway off (delivery.flood_limits: false), emulator "
        f"{'ON (!)' if flood else 'off'}; 429 answers: {sum(r.too_many for r in runs)}"
    )
    load_us = max(r.load_cpu_us_per_request for r in runs)
    fastest_webhooks = max(r.messages / r.webhooks_seconds for r in runs)
    print(
        f"  load generator: ≤ {load_us:.0f} µs CPU per webhook (one core ≈ "
        f"{1e6 / load_us:,.0f} req/s); the webhooks were all answered in "
        f"{min(r.webhooks_seconds / r.seconds for r in runs) * 100:.0f}–"
        f"{max(r.webhooks_seconds / r.seconds for r in runs) * 100:.0f}% of each run "
        f"(up to {fastest_webhooks:,.0f} req/s)"
    )
    if alone is not None:
        top = max(r.rate * sum(r.calls_per_message.values()) for r in runs)
        print(
            f"  emulator: at most {top:,.0f} Bot API calls/s during the runs vs "
            f"{alone.rate:,.0f}/s alone"
        )

    summary: dict[str, Any] = {}
    g2 = gw.get(2)
    if g1 is not None and g2 is not None:
        scaling = g2.rate / g1.rate
        summary["scaling"] = scaling
        summary["scaling_pass"] = scaling >= TARGET_SCALING
        summary["rate_2"] = g2.rate
        summary["rate_2_pass"] = g2.rate >= TARGET_RATE_2
        print(
            f"\n  scaling, gateway 2 vs 1 processes = {scaling:.2f}   target ≥ "
            f"{TARGET_SCALING:g}   {ingest.verdict(scaling >= TARGET_SCALING)}"
        )
        print(
            f"  gateway, 2 processes = {g2.rate:,.0f} msg/s   target ≥ {TARGET_RATE_2:,.0f} "
            f"(on 2 cores)   {ingest.verdict(g2.rate >= TARGET_RATE_2)}"
        )
        us1, us2 = g1.cpu_us_per_message.get("gateway"), g2.cpu_us_per_message.get("gateway")
        if us1 and us2:
            summary["scaling_cpu"] = 2 * us1 / us2
            print(
                f"  gateway CPU per message: 1 process {us1:.0f} µs, 2 processes {us2:.0f} µs — "
                f"with a core for each process the scaling would be ≈ {2 * us1 / us2:.2f} "
                "(CPU time depends less than msg/s on what else the machine runs)"
            )
    for n in sorted(gw):
        if n in bare:
            ratio = gw[n].rate / bare[n].rate
            summary[f"ratio_{n}"] = ratio
            print(
                f"  gateway / bare, {n} process{'es' if n > 1 else ''} = {ratio:.2f} "
                f"({gw[n].rate:,.0f} vs {bare[n].rate:,.0f} msg/s)"
            )
    if 1 in bare and 2 in bare:
        summary["bare_scaling"] = bare[2].rate / bare[1].rate
        print(
            f"  bare scaling 2 vs 1 = {summary['bare_scaling']:.2f} (what this machine "
            "allows the minimal pipeline with the emulator, Redis and the load beside it)"
        )
    if g2 is not None:
        per = g2.cpu_us_per_message.get("gateway")
        redis_us = g2.cpu_us_per_message.get("redis")
        if per:
            summary["projected_2"] = 2e6 / per
            print(
                f"  CPU per message, 2 gateway processes: gateway {per:.0f} µs, Redis "
                f"{_us(redis_us)} µs — with a whole core for each gateway process (Redis, "
                f"emulator and load elsewhere) 2 processes would reach ≈ {2e6 / per:,.0f} "
                "msg/s (an estimate from CPU time, not a measurement)"
            )
    return summary


# --- profile -------------------------------------------------------------------------------------


async def profile_gateway(ctx: Context) -> dict[str, Any]:
    path = ctx.args.profile.resolve()
    run = await measure_run(ctx, "gateway", 1, profile=path)
    groups, top = ingest.summarise_profile(path, top=30)
    print(
        f"\nProfile of one gateway process over the measured phase ({run.rate:,.0f} msg/s under "
        "cProfile), own time by library:"
    )
    for name, share in groups:
        print(f"  {name:<28}{share:>6.1f}%")
    print(f"  stats: {path}  (python -m pstats {path})")
    print(top)
    return {"path": str(path), "rate_profiled": run.rate, "own_time_pct": dict(groups)}


# --- main ----------------------------------------------------------------------------------------


def source_state() -> str:
    """The commit measured, and whether the working tree differs from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "gateway", "adapters"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
    except OSError:
        return "unknown"
    if not head:
        return "unknown"
    return head + (f" + uncommitted changes in {len(changed)} file(s)" if changed else "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline",
        description="End-to-end msg/s with 1 and 2 gateway processes, vs a bare pipeline.",
    )
    parser.add_argument("--contacts", type=int, help="customers (200; quick 50)")
    parser.add_argument("--messages", type=int, help="measured messages per run (4000; quick 800)")
    parser.add_argument("--connections", type=int, default=64, help="load generator (64)")
    parser.add_argument(
        "--emulator-calls", type=int, help="sendMessage calls of the emulator-alone run (5000)"
    )
    parser.add_argument(
        "--log-level", default="info", help="the gateway's log level (info, as shipped)"
    )
    parser.add_argument("--no-bare", action="store_true", help="skip the bare baseline")
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument(
        "--profile",
        type=Path,
        help="afterwards, one more 1-process gateway run under cProfile; stats go here",
    )
    parser.add_argument(
        "--logs", type=Path, help="keep the working directory (children's logs) here"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    args = parser.parse_args(argv)
    quick = args.quick
    args.contacts = args.contacts or (50 if quick else 200)
    args.messages = args.messages or (800 if quick else 4000)
    args.emulator_calls = args.emulator_calls or (1500 if quick else 5000)
    if min(args.contacts, args.messages, args.connections, args.emulator_calls) < 1:
        parser.error("--contacts, --messages, --connections and --emulator-calls must be ≥ 1")
    return args


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    results: dict[str, Any] = {
        "machine": {
            "cpus": cores,
            "usable_cpus": usable,
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "targets": {"scaling": TARGET_SCALING, "rate_2": TARGET_RATE_2},
        "source": source_state(),
    }
    print(
        f"bench.pipeline — {cores} CPUs ({usable} usable), Python {platform.python_version()}, "
        f"{'quick' if args.quick else 'full'} run: {args.contacts} contacts, {args.messages} "
        f"messages per run, {args.connections} connections; source {results['source']}"
    )
    if usable < 2:
        print(
            f"  note: only {usable} usable core: 2 processes cannot run in parallel here, "
            "the scaling figure says little (run anyway)."
        )
    elif usable < 6:
        print(
            f"  note: {usable} cores for everything — the gateway processes, Redis, the "
            "emulator and the load generator all share them (see the CPU columns)."
        )
    with contextlib.ExitStack() as scratch:
        if args.logs is not None:  # kept: the children's logs, Redis's files
            workdir = args.logs.resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        redis_server = EmbeddedRedis(workdir / "redis", port=free_port())  # AOF everysec
        redis_server.start()
        client = aioredis.Redis.from_url(redis_server.url)
        ctx: Context | None = None
        try:
            await redis_server.wait_ready()
            info = await client.info("server")
            redis_pid = int(info["process_id"]) if "process_id" in info else None
            _CTX.set_forkserver_preload(["bench._server", "bench.ingest"])
            load = await asyncio.to_thread(Child.spawn, "load", workdir)
            ctx = Context(args, workdir, redis_server, client, redis_pid, load)
            ctx.children.append(load)
            await load.request({"mode": "load"})
            note("load generator up")

            alone = await measure_emulator(ctx)
            report_emulator(alone)
            results["emulator_alone"] = asdict(alone)

            runs = [await measure_run(ctx, "gateway", 1)]
            trips = runs[0].trips_per_message
            ctx.trips_in = trips.get("in", 3.0)
            ctx.trips_out = trips.get("out:staff", 4.0)
            order = [("gateway", 2)] if args.no_bare else [("bare", 1), ("bare", 2), ("gateway", 2)]
            for kind, processes in order:
                runs.append(await measure_run(ctx, kind, processes))
            runs.sort(key=lambda r: (r.processes, r.kind != "gateway"))
            results["runs"] = [asdict(r) for r in runs]
            results["summary"] = report_runs(runs, alone)
            if args.profile is not None:
                results["profile"] = await profile_gateway(ctx)
        finally:
            if ctx is not None:
                for child in list(ctx.children):
                    await child.stop()
            await client.aclose()
            redis_server.stop()
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(f"\ndone in {results['wall_seconds']:.0f} s")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_verbose(args.verbose)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    results = asyncio.run(run(args))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
        print(f"numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
