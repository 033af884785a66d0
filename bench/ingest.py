"""Ingest benchmark: webhook throughput against a bare aiohttp baseline, and end-to-end
latency customer → staff topic. One command, one run, one machine:

    python -m bench.ingest [--quick] [--duration S] [--connections N] [--rate R]
                           [--customers K] [--json PATH] [--profile PATH] [-v]

(a) **Throughput.** One load generator (an aiohttp client in this process, N keep-alive
    connections, closed loop, every request a unique Telegram private-text update from
    one of thousands of users) drives a bare aiohttp app that answers 200 and the
    gateway's real webhook (``App(settings, workers=False)``: verify, parse, durable
    append, 200 only after Redis has it), alternately (A B B A …) so that background
    load hits both alike. Each server is a process of its own; the gateway uses a
    ``redis-server`` started here with AOF on (``appendfsync everysec``, as the embedded
    one in production). Only requests completed inside the windows count. Afterwards the
    number of 200s is checked against what the inbound streams hold.
(b) **Latency.** The Telegram emulator (in this process) plays Telegram; the gateway (own
    process, workers on, ``delivery.flood_limits: false``) has its webhooks registered on
    it. Customers send at a fixed rate (open loop); a message's latency runs from just
    before ``emulator.user_sends`` to the moment the staff bot's copy is stored in the
    staff forum (timed inside the emulator's event feed). First messages (which create
    the topic and pin a card) are reported separately; a warm-up follows them.
(c) **Breakdown.** The per-update CPU cost of each ingest step alone, in a process of
    its own, to explain (a).

Child processes come from a multiprocessing *forkserver* that imports aiogram & co. once
(:mod:`bench._server`), so they start in well under a second. It is a measurement: the
targets are printed with PASS/MISS and the exit status is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import platform
import pstats
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/ingest.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import redis.asyncio as aioredis
import structlog
import yaml

from bench import _child, _common
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
    UNUSED_API,
    WEBHOOK_SECRET,
    UpdateFactory,
    cpu_seconds,
    free_port,
    gateway_config,
    note,
    percentile,
    set_verbose,
)
from gateway.sandbox.telegram import TelegramEmulator
from gateway.store import keys
from gateway.store.redis import EmbeddedRedis

TARGET_RATIO = 0.5
SETTLE = 1.0
"""Seconds between the gateway going live and the first message of (b): its consumers
take their partitions first, so "first msg" measures topic creation, not start-up."""
TARGET_P99_MS = 50.0


# --- child processes ---------------------------------------------------------------------------

_FORKSERVER = multiprocessing.get_context("forkserver")


def start_forkserver() -> None:
    """Children fork from a server that imported aiogram & co. once (see bench._server)."""
    _FORKSERVER.set_forkserver_preload(["bench._server"])


class Child:
    """A :mod:`bench._server` process: spawned early, told later what to do."""

    def __init__(self, role: str, process: BaseProcess, conn: Connection, log: Path) -> None:
        self.role = role
        self.process = process
        self.conn = conn
        self.log = log
        self.port = 0

    @classmethod
    def spawn(cls, role: str, workdir: Path) -> Child:
        log = workdir / f"{role}.log"
        ours, theirs = _FORKSERVER.Pipe()
        process = _FORKSERVER.Process(
            target=_child.main, args=(theirs, str(log)), name=f"bench-{role}", daemon=True
        )
        process.start()
        theirs.close()
        return cls(role, process, ours, log)

    async def request(self, command: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        """Send ``command`` and wait for the child's answer."""
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()
        fd = self.conn.fileno()

        def wake() -> None:
            if not readable.done():
                readable.set_result(None)

        try:
            self.conn.send(command)
            loop.add_reader(fd, wake)
            try:
                await asyncio.wait_for(readable, timeout)
            finally:
                loop.remove_reader(fd)
            answer: dict[str, Any] = self.conn.recv()
            return answer
        except (TimeoutError, EOFError, OSError) as exc:
            raise RuntimeError(
                f"{self.role}: no answer to {command['mode']!r} ({exc!r}); its log:\n"
                f"{self.log_tail()}"
            ) from exc

    async def serve(
        self,
        mode: str,
        *,
        config: Mapping[str, Any] | None = None,
        workers: bool = False,
        register_webhooks: bool = False,
        profile: Path | None = None,
        gc_freeze: bool = False,
    ) -> Child:
        command: dict[str, Any] = {
            "mode": mode,
            "workers": workers,
            "register_webhooks": register_webhooks,
            "profile": str(profile) if profile is not None else None,
            "gc_freeze": gc_freeze,
        }
        if config is not None:
            command["config"] = yaml.safe_dump(dict(config))
        answer = await self.request(command)
        self.port = int(answer["port"])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def stop(self) -> dict[str, Any] | None:
        """Stop it gracefully (escalating to SIGTERM and SIGKILL); a server answers with
        its garbage-collection record, returned here."""
        stats: dict[str, Any] | None = None
        if not self.conn.closed:
            if self.port and self.process.exitcode is None:
                with contextlib.suppress(RuntimeError):
                    stats = (await self.request({"mode": "stop"}, timeout=15)).get("gc")
            self.conn.close()
        for escalate in (self.process.terminate, self.process.kill):
            await asyncio.to_thread(self.process.join, 15)
            if self.process.exitcode is not None:
                return stats
            escalate()
        await asyncio.to_thread(self.process.join)
        return stats


# --- (a) throughput -------------------------------------------------------------------------


def machine_busy_seconds() -> float | None:
    """CPU-seconds all processes of the machine used so far (Linux /proc/stat)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, first[1:9])
    return (user + nice + system + irq + softirq + steal) / _common.CLK_TCK


@dataclass
class Target:
    """One server under load, with its own client session, updates and tallies."""

    label: str
    server: Child
    pids: dict[str, int | None]
    factory: UpdateFactory
    session: aiohttp.ClientSession
    statuses: Counter[str] = field(default_factory=Counter)


@dataclass
class Segment:
    seconds: float
    ok: int
    errors: int
    latencies: list[float]
    cpu: dict[str, float | None]
    """CPU-seconds used during the segment: client, server, redis, machine."""


async def drive(target: Target, *, connections: int, seconds: float) -> Segment:
    """N closed-loop workers POST unique updates over the target's keep-alive connections.

    Requests that complete inside the window count; the ones in flight at its end are
    finished (their answers tallied) but not counted.
    """
    url = f"{target.server.url}/webhook/telegram/{ACCOUNT}"
    headers = {"Content-Type": "application/json", SECRET_HEADER: WEBHOOK_SECRET}
    latencies: list[float] = []
    tally = {"ok": 0, "errors": 0}
    session, factory, statuses = target.session, target.factory, target.statuses

    def snapshot() -> dict[str, float | None]:
        now: dict[str, float | None] = {"client": time.process_time()}
        for name, pid in target.pids.items():
            now[name] = cpu_seconds(pid) if pid is not None else None
        now["machine"] = machine_busy_seconds()
        return now

    before = snapshot()
    t0 = time.perf_counter()
    t1 = t0 + seconds

    async def worker() -> None:
        while (start := time.perf_counter()) < t1:
            body = factory()
            status = "error"
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = str(response.status)
            except (aiohttp.ClientError, TimeoutError):
                pass
            end = time.perf_counter()
            statuses[status] += 1
            if end < t1:
                if status == "200":
                    tally["ok"] += 1
                    latencies.append(end - start)
                else:
                    tally["errors"] += 1

    async def sampler() -> dict[str, float | None]:
        await asyncio.sleep(max(0.0, t1 - time.perf_counter()))
        return snapshot()

    workers = asyncio.gather(*(worker() for _ in range(connections)))
    after = await sampler()
    await workers
    cpu: dict[str, float | None] = {}
    for name, a in before.items():
        b = after.get(name)
        cpu[name] = None if a is None or b is None else b - a
    return Segment(seconds, tally["ok"], tally["errors"], latencies, cpu)


@dataclass
class Throughput:
    label: str
    connections: int
    seconds: float
    segments: int
    requests: int
    """200 answers completed inside the measuring windows."""
    errors: int
    """Other answers and failed requests inside the windows."""
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_pct: dict[str, float | None]
    """Average CPU use over the windows in % of one core: client (this process), server,
    redis, others (every other process on the machine, e.g. a concurrent test run)."""
    server_cpu_us_per_request: float | None
    statuses: dict[str, int]
    """Every answer of the run (warm-up included) by status; "error" = no answer."""
    stored: int | None = None
    """Entries in the inbound streams after the gateway run (must equal statuses["200"])."""
    gc: dict[str, Any] | None = None
    """The server's garbage collections while serving (warm-up included)."""


def combine(target: Target, segments: list[Segment], connections: int) -> Throughput:
    seconds = sum(s.seconds for s in segments)
    ok = sum(s.ok for s in segments)
    latencies = sorted(x for s in segments for x in s.latencies)
    used: dict[str, float | None] = {}
    for name in segments[0].cpu:
        values = [s.cpu[name] for s in segments]
        used[name] = None if any(v is None for v in values) else sum(v or 0.0 for v in values)
    ours = [used.get(k) for k in ("client", *target.pids)]
    machine = used.pop("machine", None)
    if machine is not None and all(v is not None for v in ours):
        used["others"] = max(0.0, machine - sum(v or 0.0 for v in ours))
    cpu_pct = {k: None if v is None else 100 * v / seconds for k, v in used.items()}
    server = used.get("server")
    return Throughput(
        label=target.label,
        connections=connections,
        seconds=seconds,
        segments=len(segments),
        requests=ok,
        errors=sum(s.errors for s in segments),
        rps=ok / seconds,
        p50_ms=1000 * percentile(latencies, 50),
        p99_ms=1000 * percentile(latencies, 99),
        cpu_pct=cpu_pct,
        server_cpu_us_per_request=1e6 * server / ok if server is not None and ok else None,
        statuses=dict(target.statuses),
    )


@contextlib.asynccontextmanager
async def load_target(
    label: str, server: Child, pids: dict[str, int | None], connections: int, seed: int
) -> AsyncIterator[Target]:
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        yield Target(label, server, pids, UpdateFactory(seed=seed), session)


async def inbound_depth(client: aioredis.Redis) -> int:
    total = 0
    for p in range(PARTITIONS):
        total += int(await client.xlen(keys.stream(keys.INBOUND, p)))
    return total


async def measure_throughput(
    args: argparse.Namespace,
    workdir: Path,
    redis_server: EmbeddedRedis,
    redis_pid: int | None,
    servers: tuple[Child, Child],
) -> list[Throughput]:
    """Both servers run side by side; the load alternates between them (A B B A …) in
    ``rounds`` windows each, so background load and drift hit both alike."""
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()
    config = gateway_config(redis_server.url, UNUSED_API, workdir / "data-ingest")
    n = args.connections
    try:
        async with contextlib.AsyncExitStack() as stack:
            bare, gateway = await asyncio.gather(
                servers[0].serve("bare", gc_freeze=args.gc_freeze),
                servers[1].serve("gateway", config=config, gc_freeze=args.gc_freeze),
            )
            note("(a) servers up")
            a = await stack.enter_async_context(
                load_target("bare aiohttp 200", bare, {"server": bare.pid}, n, seed=1)
            )
            b = await stack.enter_async_context(
                load_target(
                    "gateway webhook", gateway, {"server": gateway.pid, "redis": redis_pid}, n, 2
                )
            )
            for target in (a, b):
                await drive(target, connections=n, seconds=args.warmup)
            note("(a) warmed up")
            segments: dict[str, list[Segment]] = {a.label: [], b.label: []}
            window = args.duration / args.rounds
            for r in range(args.rounds):
                for target in (a, b) if r % 2 == 0 else (b, a):
                    segments[target.label].append(
                        await drive(target, connections=n, seconds=window)
                    )
            results = [combine(t, segments[t.label], n) for t in (a, b)]
            results[1].stored = await inbound_depth(client)
        note("(a) measured")
        results[0].gc, results[1].gc = await asyncio.gather(bare.stop(), gateway.stop())
        note("(a) servers stopped")
    finally:
        await client.flushall()
        await client.aclose()
    return results


# --- (b) end-to-end latency -----------------------------------------------------------------


class StaffFeed:
    """Times each expected text the moment the emulator stores it in the staff chat.

    Hooks the emulator's event feed (``world.events.emit``, which every stored message
    passes through) so that the time is taken inside the emulator, not after a wake-up.
    """

    def __init__(self, emulator: TelegramEmulator, chat_id: int) -> None:
        self.chat_id = chat_id
        self.sent_at: dict[str, float] = {}
        self.arrived_at: dict[str, float] = {}
        self._changed = asyncio.Event()
        events = emulator.world.events
        original: Callable[..., dict[str, Any]] = events.emit

        def emit(kind: str, chat: Any, **fields: Any) -> dict[str, Any]:
            now = time.perf_counter()
            if kind == "message" and getattr(chat, "id", None) == self.chat_id:
                text = fields.get("message", {}).get("text")
                if text in self.sent_at and text not in self.arrived_at:
                    self.arrived_at[text] = now
                    self._changed.set()
            return original(kind, chat, **fields)

        setattr(events, "emit", emit)  # noqa: B010 - an instance-level hook, on purpose

    def expect(self, text: str) -> None:
        self.sent_at[text] = time.perf_counter()

    async def wait_all(self, texts: list[str], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(t not in self.arrived_at for t in texts):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def latencies_ms(self, texts: list[str]) -> list[float]:
        return sorted(
            1000 * (self.arrived_at[t] - self.sent_at[t]) for t in texts if t in self.arrived_at
        )

    def slowest(self, texts: list[str], count: int = 5) -> list[tuple[float, float]]:
        """(sent at, seconds into the run; latency ms) of the slowest messages."""
        if not texts:
            return []
        start = self.sent_at[texts[0]]
        timed = [
            (self.sent_at[t] - start, 1000 * (self.arrived_at[t] - self.sent_at[t]))
            for t in texts
            if t in self.arrived_at
        ]
        return sorted(timed, key=lambda x: -x[1])[:count]


async def send_at_rate(
    emulator: TelegramEmulator,
    feed: StaffFeed,
    customers: list[dict[str, Any]],
    *,
    rate: float,
    count: int,
    tag: str,
) -> tuple[list[str], float]:
    """Open loop: message i is due at start + i/rate, whatever happened before it."""
    texts: list[str] = []
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        user = customers[i % len(customers)]
        text = f"{tag} #{i}: {TEXTS[i % len(TEXTS)][0]}"
        feed.expect(text)
        await emulator.user_sends(user["id"], bot_token=CUSTOMER_TOKEN, text=text)
        texts.append(text)
    return texts, time.perf_counter() - start


@dataclass
class Latency:
    rate: float
    seconds: float
    customers: int
    sent: int
    delivered: int
    achieved_rate: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    first_sent: int
    first_delivered: int
    first_p50_ms: float
    first_max_ms: float
    cpu_pct: dict[str, float | None]
    """Over the measured phase, % of one core: bench (emulator), gateway, redis."""
    slowest: list[tuple[float, float]] = field(default_factory=list)
    """(seconds into the measured phase it was sent, latency ms) of the slowest five."""
    gc: dict[str, Any] | None = None
    """The gateway's garbage collections while serving (all phases)."""


def _summary(values: list[float]) -> tuple[float, float, float, float, float]:
    if not values:
        nan = float("nan")
        return nan, nan, nan, nan, nan
    mean = sum(values) / len(values)
    return (
        percentile(values, 50),
        percentile(values, 90),
        percentile(values, 99),
        values[-1],
        mean,
    )


async def measure_latency(
    args: argparse.Namespace,
    workdir: Path,
    redis_server: EmbeddedRedis,
    redis_pid: int | None,
    server: Child,
) -> Latency:
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()
    emulator = TelegramEmulator()
    await emulator.start("127.0.0.1", 0)
    try:
        assert emulator.base_url is not None
        emulator.set_flood_limits(False)
        emulator.create_user(first_name="Anna", username="anna_op", user_id=OPERATOR_ID)
        emulator.create_forum_group(
            title="Staff", members=[OPERATOR_ID], bot_tokens=[STAFF_TOKEN], chat_id=STAFF_CHAT
        )
        emulator.set_bot_username(CUSTOMER_TOKEN, "shop_bot")
        emulator.set_bot_username(STAFF_TOKEN, "staff_bot")
        customers = [
            emulator.create_user(
                first_name=FIRST_NAMES[i % len(FIRST_NAMES)],
                last_name=f"Bench{i}",
                username=f"bench_customer_{i}",
                language_code="ru",
            )
            for i in range(args.customers)
        ]
        feed = StaffFeed(emulator, STAFF_CHAT)
        config = gateway_config(redis_server.url, emulator.base_url, workdir / "data-e2e")
        await server.serve(
            "gateway", config=config, workers=True, register_webhooks=True, gc_freeze=args.gc_freeze
        )
        note("(b) gateway up")
        await asyncio.sleep(SETTLE)
        # 1. First messages: contact + topic + pinned card, reported separately.
        first, _ = await send_at_rate(
            emulator, feed, customers, rate=args.rate, count=len(customers), tag="hello"
        )
        await feed.wait_all(first, timeout=30)
        first_ms = feed.latencies_ms(first)
        note("(b) topics created")
        # 2. Warm-up at the measured rate (not reported).
        warm, _ = await send_at_rate(
            emulator,
            feed,
            customers,
            rate=args.rate,
            count=max(1, round(args.rate * args.e2e_warmup)),
            tag="warm-up",
        )
        await feed.wait_all(warm, timeout=30)
        note("(b) warmed up")
        # 3. The measurement.
        pids = {"gateway": server.pid, "redis": redis_pid}
        before = {name: cpu_seconds(pid) if pid else None for name, pid in pids.items()}
        bench_before = time.process_time()
        count = max(1, round(args.rate * args.duration))
        texts, spent = await send_at_rate(
            emulator, feed, customers, rate=args.rate, count=count, tag="measure"
        )
        await feed.wait_all(texts, timeout=15)
        note("(b) measured")
        elapsed = spent
        cpu_pct: dict[str, float | None] = {
            "bench": 100 * (time.process_time() - bench_before) / elapsed
        }
        for name, pid in pids.items():
            after = cpu_seconds(pid) if pid else None
            start = before[name]
            cpu_pct[name] = (
                None if after is None or start is None else 100 * (after - start) / elapsed
            )
        if len(feed.latencies_ms(texts)) < len(texts):
            print(f"  (gateway log tail)\n{server.log_tail(10)}", file=sys.stderr)
    finally:
        gc_record = await server.stop()  # before the emulator: it would retry against it
        note("(b) gateway stopped")
        await emulator.stop()
        await client.flushall()
        await client.aclose()

    values = feed.latencies_ms(texts)
    p50, p90, p99, worst, mean = _summary(values)
    nan = float("nan")
    return Latency(
        rate=args.rate,
        seconds=args.duration,
        customers=len(customers),
        sent=len(texts),
        delivered=len(values),
        achieved_rate=len(texts) / spent if spent > 0 else nan,
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        max_ms=worst,
        mean_ms=mean,
        first_sent=len(first),
        first_delivered=len(first_ms),
        first_p50_ms=percentile(first_ms, 50) if first_ms else nan,
        first_max_ms=first_ms[-1] if first_ms else nan,
        cpu_pct=cpu_pct,
        slowest=feed.slowest(texts),
        gc=gc_record,
    )


# --- profile -------------------------------------------------------------------------------------

_GROUPS = (
    # (where: "file" path part or "builtin" function text, needle, label); first match wins
    ("builtin", "_socket.socket", "socket send/recv (syscalls)"),
    ("builtin", "select.epoll", "epoll wait (idle)"),
    ("builtin", "pydantic_core", "pydantic / pydantic_core"),
    ("file", "/aiogram/", "aiogram (Update types)"),
    ("file", "/pydantic", "pydantic / pydantic_core"),
    ("file", "/redis/", "redis-py client"),
    ("file", "/aiohttp/", "aiohttp server"),
    ("file", "/structlog/", "structlog"),
    ("file", "/prometheus_client/", "prometheus_client"),
    ("file", "/gateway/", "gateway code"),
    ("file", "/adapters/", "adapters code"),
    ("file", "/asyncio/", "asyncio event loop"),
)


def summarise_profile(path: Path, top: int = 25) -> tuple[list[tuple[str, float]], str]:
    """(own time by library, sorted) and the top functions by own time, as text."""
    stats = pstats.Stats(str(path))
    by_group: Counter[str] = Counter()
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    for (filename, _, function), (_, _, tottime, _, _) in raw.items():
        label = "other (stdlib, builtins)"
        for where, needle, name in _GROUPS:
            text = function if filename == "~" else filename
            if (where == "builtin") == (filename == "~") and needle in text:
                label = name
                break
        by_group[label] += tottime
    total = sum(by_group.values()) or 1.0
    groups = [(name, 100 * t / total) for name, t in by_group.most_common()]
    out = _Capture()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    return groups, out.text()


class _Capture:
    def __init__(self) -> None:
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def text(self) -> str:
        return "".join(self._parts)


# --- statistics and report ----------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report_throughput(runs: list[Throughput]) -> tuple[float | None, float | None]:
    """Prints the table; returns (throughput ratio, server-CPU-per-request ratio)."""
    r0 = runs[0]
    print(
        f"\n(a) Webhook ingest throughput — {r0.seconds:g} s per server in {r0.segments} "
        f"alternating window(s), {r0.connections} keep-alive connections, closed loop"
    )
    print(
        f"  {'server':<18}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}"
        f"{'CPU%: client':>14}{'server':>7}{'redis':>7}{'others':>8}{'server µs/req':>15}"
    )
    for r in runs:
        per_req = r.server_cpu_us_per_request
        cpu = r.cpu_pct
        print(
            f"  {r.label:<18}{r.rps:>8.0f}{r.p50_ms:>8.2f}{r.p99_ms:>8.2f}{r.errors:>7}"
            f"{_pct(cpu.get('client')):>14}{_pct(cpu.get('server')):>7}"
            f"{_pct(cpu.get('redis')):>7}{_pct(cpu.get('others')):>8}"
            f"{'n/a' if per_req is None else f'{per_req:.0f}':>15}"
        )
    for r in runs:
        bad = {k: v for k, v in r.statuses.items() if k != "200"}
        if bad:
            print(f"  ! {r.label}: non-200 answers {bad}")
        if r.stored is not None:
            answered = r.statuses.get("200", 0)
            check = "OK" if r.stored == answered else "MISMATCH"
            print(
                f"  {r.label}: {answered} answered 200, {r.stored} in the inbound streams — {check}"
            )
    for r in runs:
        describe_gc(r.label, r.gc)
    if len(runs) < 2 or r0.rps == 0:
        return None, None
    ratio = runs[1].rps / r0.rps
    print(
        f"  ratio gateway / bare = {ratio:.2f}   target ≥ {TARGET_RATIO:.2f}   "
        f"{verdict(ratio >= TARGET_RATIO)}"
    )
    a, b = r0.server_cpu_us_per_request, runs[1].server_cpu_us_per_request
    cpu_ratio = a / b if a and b else None
    if cpu_ratio is not None:
        print(
            f"  server CPU per request, bare / gateway = {cpu_ratio:.2f} (the ratio both "
            "would reach if each server had a whole core to itself)"
        )
    client = r0.cpu_pct.get("client")
    if client is not None and client > 85:
        print(
            "  note: the load generator used about a full core during the bare windows, so "
            "the bare figure is a floor (and the ratio flattering)."
        )
    others = max((r.cpu_pct.get("others") or 0.0) for r in runs)
    if others > 20:
        print(
            f"  note: other processes used up to {others:.0f}% of a core meanwhile; absolute "
            "req/s are depressed, the alternating windows keep the ratio comparable."
        )
    return ratio, cpu_ratio


def describe_gc(label: str, record: dict[str, Any] | None) -> None:
    """One line on a server's garbage collection, when it paused noticeably."""
    if not record or not record["longest"] or record["longest"][0][0] < 10:
        return
    full = record["collections"][2]
    pauses = ", ".join(f"{ms:.0f} ms (gen {g})" for ms, _, g in record["longest"][:3])
    print(
        f"  {label}: {full} full GC(s) over {record['tracked_objects']:,} tracked objects; "
        f"longest pauses {pauses}"
    )


def report_latency(lat: Latency) -> None:
    print(
        f"\n(b) End-to-end latency customer → staff topic — {lat.rate:g} msg/s for "
        f"{lat.seconds:g} s, {lat.customers} customers, workers on, flood limits off"
    )
    print(f"  {'':<24}{'n':>6}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'mean ms':>9}")
    print(
        f"  {'steady state':<24}{lat.delivered:>6}{lat.p50_ms:>9.1f}{lat.p90_ms:>9.1f}"
        f"{lat.p99_ms:>9.1f}{lat.max_ms:>9.1f}{lat.mean_ms:>9.1f}"
    )
    print(
        f"  {'first msg (new topic)':<24}{lat.first_delivered:>6}{lat.first_p50_ms:>9.1f}"
        f"{'':>9}{'':>9}{lat.first_max_ms:>9.1f}"
    )
    cpu = ", ".join(f"{k} {_pct(v)}" for k, v in lat.cpu_pct.items())
    print(
        f"  sent {lat.sent} at {lat.achieved_rate:.1f} msg/s, delivered {lat.delivered}; CPU: {cpu}"
    )
    describe_gc("gateway", lat.gc)
    if lat.slowest:
        worst = ", ".join(f"{ms:.0f} ms @{at:.1f}s" for at, ms in lat.slowest)
        print(f"  slowest (latency @ sent, s into the run): {worst}")
    if lat.delivered < lat.sent:
        print(f"  ! {lat.sent - lat.delivered} message(s) did not reach the staff topic in time")
    ok = lat.delivered == lat.sent and lat.p99_ms <= TARGET_P99_MS
    print(f"  p99 = {lat.p99_ms:.1f} ms   target ≤ {TARGET_P99_MS:g} ms   {verdict(ok)}")


def report_breakdown(steps: list[dict[str, Any]], n: int) -> None:
    print(f"\n(c) Ingest cost per update, each step alone ({n} updates, in a process of its own)")
    print(f"  {'step':<52}{'CPU µs':>9}{'wall µs':>9}")
    for s in steps:
        print(f"  {s['name']:<52}{s['cpu_us']:>9.1f}{s['wall_us']:>9.1f}")


# --- main ----------------------------------------------------------------------------------------

ROLES = (
    ("bare", "no_throughput"),
    ("gateway-ingest", "no_throughput"),
    ("gateway-e2e", "no_latency"),
    ("breakdown", "no_breakdown"),
    ("gateway-profile", "no_profile"),
)
"""Child processes by role, and the option that makes a role unnecessary."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description="Webhook ingest throughput (vs bare aiohttp) and end-to-end latency.",
    )
    parser.add_argument(
        "--duration",
        type=float,
        help="measured seconds per server in (a), and of the latency run (10; quick 2)",
    )
    parser.add_argument(
        "--warmup", type=float, help="unmeasured seconds per server before (a) (2; quick 0.5)"
    )
    parser.add_argument("--connections", type=int, default=64, help="load generator (64)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating windows per server (2)")
    parser.add_argument("--rate", type=float, default=50.0, help="latency run, msg/s (50)")
    parser.add_argument("--customers", type=int, help="latency run, customers (20; quick 8)")
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 20 s)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument(
        "--profile",
        type=Path,
        help="afterwards, profile one more gateway run with cProfile; stats go here",
    )
    parser.add_argument("--no-throughput", action="store_true", help="skip (a)")
    parser.add_argument("--no-latency", action="store_true", help="skip (b)")
    parser.add_argument("--no-breakdown", action="store_true", help="skip (c)")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="give the bare server the gateway's collector set-up too (gateway.app.tune_gc)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    args = parser.parse_args(argv)
    quick = args.quick
    args.duration = args.duration or (2.0 if quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if quick else 2.0)
    args.customers = args.customers or (8 if quick else 20)
    args.e2e_warmup = 0.3 if quick else 1.0
    args.breakdown_n = 300 if quick else 2000
    args.no_profile = args.profile is None
    if (
        args.rounds < 1
        or args.connections < 1
        or args.rate <= 0
        or args.customers < 1
        or args.duration <= 0
    ):
        parser.error("--connections, --rate, --customers and --duration must be positive")
    return args


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "targets": {"ratio": TARGET_RATIO, "p99_ms": TARGET_P99_MS},
    }
    print(
        f"bench.ingest — {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{'quick' if args.quick else 'full'} run"
        + ("; bare server gc.freeze()d too" if args.gc_freeze else "")
    )
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tmp)
        redis_server = EmbeddedRedis(workdir / "redis", port=free_port())  # AOF everysec
        redis_server.start()
        stack = contextlib.AsyncExitStack()
        try:
            await redis_server.wait_ready()
            client = aioredis.Redis.from_url(redis_server.url)
            info = await client.info("server")
            await client.aclose()
            redis_pid = int(info["process_id"]) if "process_id" in info else None
            start_forkserver()

            # Every child is forked now (the first fork waits for the forkserver's imports);
            # each waits, idle, for its command until its turn.
            roles = [r for r, skip in ROLES if not getattr(args, skip)]
            children: dict[str, Child] = {}
            for role in roles:
                children[role] = await asyncio.to_thread(Child.spawn, role, workdir)
                stack.push_async_callback(children[role].stop)
            note(f"forked {', '.join(roles)}")

            if not args.no_throughput:
                pair = (children["bare"], children["gateway-ingest"])
                runs = await measure_throughput(args, workdir, redis_server, redis_pid, pair)
                ratio, cpu_ratio = report_throughput(runs)
                results["throughput"] = {
                    "runs": [asdict(r) for r in runs],
                    "ratio": ratio,
                    "server_cpu_ratio": cpu_ratio,
                    "pass": ratio is not None and ratio >= TARGET_RATIO,
                }
            if not args.no_latency:
                lat = await measure_latency(
                    args, workdir, redis_server, redis_pid, children["gateway-e2e"]
                )
                report_latency(lat)
                results["latency"] = {
                    **asdict(lat),
                    "pass": lat.delivered == lat.sent and lat.p99_ms <= TARGET_P99_MS,
                }
            if not args.no_breakdown:
                n = args.breakdown_n
                command = {"mode": "breakdown", "redis_url": redis_server.url, "n": n}
                steps = (await children["breakdown"].request(command, timeout=300))["steps"]
                note("(c) measured")
                report_breakdown(steps, n)
                results["breakdown_us"] = steps
            if args.profile is not None:
                results["profile"] = await profile_gateway(
                    args, redis_server, children["gateway-profile"]
                )
        finally:
            await stack.aclose()
            redis_server.stop()
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(f"\ndone in {results['wall_seconds']:.0f} s")
    return results


async def profile_gateway(
    args: argparse.Namespace, redis_server: EmbeddedRedis, server: Child
) -> dict[str, Any]:
    path = args.profile.resolve()
    config = gateway_config(redis_server.url, UNUSED_API, server.log.parent / "data-profile")
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()
    n = args.connections
    await server.serve("gateway", config=config, profile=path)
    async with load_target("gateway (cProfile)", server, {"server": server.pid}, n, 4) as target:
        await drive(target, connections=n, seconds=min(1.0, args.warmup))
        segment = await drive(target, connections=n, seconds=args.duration)
    await server.stop()  # writes the stats
    rps = segment.ok / segment.seconds
    await client.flushall()
    await client.aclose()
    groups, top = summarise_profile(path)
    print(
        f"\nProfile of the gateway's ingest ({rps:.0f} req/s under cProfile), own time by library:"
    )
    for name, share in groups:
        print(f"  {name:<28}{share:>6.1f}%")
    print(f"  stats: {path}  (python -m pstats {path})")
    print(top)
    return {"path": str(path), "rps_profiled": rps, "own_time_pct": dict(groups)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_verbose(args.verbose)
    # The gateway modules used in this process (embedded Redis, breakdown) log at info.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    results = asyncio.run(run(args))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
        print(f"numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
