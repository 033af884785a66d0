"""Chaos: replicas SIGKILLed mid-burst, Redis restarted mid-burst, platform faults at a rate.

Three ``gateway run`` processes share one Redis. Telegram posts webhooks to a load
balancer in front of them (any replica takes any update); a chaos loop SIGKILLs a random
replica every 0.7-1.4 s and starts it again. What must hold afterwards, for every contact:
every message arrived, in the order sent, and a message is repeated at most once, only
when a replica died with its send accepted by Telegram but not yet marked done (the
Bot API has no idempotency key; see docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis as sync_redis
import yaml
from aiohttp import web

from gateway.bus import Bus, Entry, partition
from gateway.config.sections import BusSettings
from gateway.consumer import Consumer
from gateway.sandbox.common.faults import FaultRate, RandomFaults
from gateway.sandbox.telegram import TelegramEmulator
from gateway.store import keys
from gateway.store.redis import EmbeddedRedis, close, connect
from tests.conftest import (
    CUSTOMER_TOKEN,
    STAFF_CHAT,
    World,
    config_dict,
    free_port,
    text_of,
)

pytestmark = pytest.mark.timeout(150)

PARTITIONS = 8
LEASE_SECONDS = 2.0
DELIVERY_PARALLEL = BusSettings().delivery_parallel  # the default, which the tests run
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
KILL_WINDOW = (3.0, 1.0)
"""A repeated message's first copy was accepted by Telegram at most 3 s before a kill,
or at most 1 s after it: a request the victim sent just before dying may be read by the
emulator (on the test's event loop, busy killing and restarting) just after."""


# --- the cluster: replicas, a load balancer, the chaos loop ---------------------------------


FORKSERVER = r"""
import os, signal, sys, traceback
import adapters.telegram, gateway.cli  # aiogram's models: ~4 s of CPU, paid once here
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
for line in sys.stdin:
    config, log = line.rstrip("\n").split("\t")
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        code = 1
        try:
            code = gateway.cli.main(["run", "-c", config])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            os._exit(code)
    print(pid, flush=True)
"""
"""Starts ``gateway run`` processes by forking a process that imported the gateway once:
each start of a fresh interpreter costs ~4 s of CPU (aiogram's pydantic models), which
on a 2-core CI runner would starve the burst the replicas are supposed to be handling.
A forked replica is an ordinary separate process running ``gateway.cli.main(["run",
"-c", config])``; ``CHAOS_FRESH_INTERPRETER=1`` starts ``python -m gateway.cli run``
instead."""


class Forkserver:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FORKSERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            text=True,
        )

    def spawn(self, config: Path, log: Path) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{config}\t{log}\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (a fresh interpreter's process, not yet waited for) is dead
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Replicas:
    """``n`` ``gateway run`` processes with one config each (its own listen port)."""

    def __init__(self, tmp_path: Path, n: int) -> None:
        self.dir = tmp_path
        self.ports = [free_port() for _ in range(n)]
        self.pids: list[int | None] = [None] * n
        self.configs: list[Path] = []
        self.logs: list[Path] = []
        self.starts = [0] * n
        self.fresh = os.environ.get("CHAOS_FRESH_INTERPRETER") == "1"
        self._popen: dict[int, subprocess.Popen[bytes]] = {}
        self._forkserver = None if self.fresh else Forkserver()

    def configure(self, data: dict[str, Any]) -> None:
        """Write each replica's config: ``data`` with the replica's own listen port."""
        for i, port in enumerate(self.ports):
            config = dict(data, server={**data["server"], "listen": f"127.0.0.1:{port}"})
            path = self.dir / f"replica{i}.yaml"
            path.write_text(yaml.safe_dump(config))
            self.configs.append(path)

    def __len__(self) -> int:
        return len(self.ports)

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    def start(self, i: int) -> None:
        self.starts[i] += 1
        log = self.dir / f"replica{i}.{self.starts[i]}.log"
        self.logs.append(log)
        if self._forkserver is not None:
            self.pids[i] = self._forkserver.spawn(self.configs[i], log)
            return
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "run", "-c", str(self.configs[i])],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self._popen[proc.pid] = proc
        self.pids[i] = proc.pid

    def _signal_and_wait(self, pid: int, sig: int, timeout: float) -> bool:
        """Send ``sig``; whether the process is gone within ``timeout`` seconds."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        proc = self._popen.get(pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                del self._popen[pid]
                return True
            if proc is None and not alive(pid):
                return True
            time.sleep(0.005)
        return False

    def kill(self, i: int) -> int:
        """SIGKILL replica ``i``; its pid."""
        pid = self.pids[i]
        assert pid is not None
        assert self._signal_and_wait(pid, signal.SIGKILL, 10), f"replica {i} survived SIGKILL"
        self.pids[i] = None
        return pid

    def running(self, i: int) -> bool:
        pid = self.pids[i]
        if pid is None:
            return False
        proc = self._popen.get(pid)
        return proc.poll() is None if proc is not None else alive(pid)

    def stop_all(self) -> None:
        """SIGTERM every replica (SIGKILL what does not stop), then the forkserver."""
        pids = [pid for pid in self.pids if pid is not None]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in pids:
            if not self._signal_and_wait(pid, signal.SIGTERM, 10):
                self._signal_and_wait(pid, signal.SIGKILL, 10)
        self.pids = [None] * len(self)
        if self._forkserver is not None:
            self._forkserver.close()

    async def wait_ready(self, http: aiohttp.ClientSession, timeout: float = 60) -> None:
        """Every replica answers ``/readyz`` with 200 (webhooks set, workers running)."""
        deadline = time.monotonic() + timeout
        for i in range(len(self)):
            while True:
                assert self.running(i), f"replica {i} is not running\n{self.tail(i)}"
                try:
                    async with http.get(f"{self.url(i)}/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, f"replica {i} not ready\n{self.tail(i)}"
                await asyncio.sleep(0.1)

    async def metric(self, http: aiohttp.ClientSession, name: str) -> float:
        """The sum of a Prometheus counter's samples over every live replica."""
        total = 0.0
        for i in range(len(self)):
            if not self.running(i):
                continue
            async with http.get(f"{self.url(i)}/metrics") as response:
                body = await response.text()
            for line in body.splitlines():
                if line.startswith(name + "{") or line.startswith(name + " "):
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def tail(self, i: int, lines: int = 40) -> str:
        mine = [p for p in self.logs if p.name.startswith(f"replica{i}.")]
        if not mine:
            return "(no log)"
        return "\n".join(mine[-1].read_text(errors="replace").splitlines()[-lines:])


class Balancer:
    """A load balancer in front of the replicas, as nginx would be: round robin, and a
    replica that refuses the connection is skipped (nothing was sent to it); a replica
    that dies with the request is a 502, which Telegram retries."""

    def __init__(self, replicas: Replicas) -> None:
        self.replicas = replicas
        self.turn = 0
        self.answered: Counter[int] = Counter()
        self.statuses: Counter[int] = Counter()
        self._http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        app = web.Application(client_max_size=2 * 1024 * 1024)
        app.router.add_post("/{path:.*}", self.forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k in (SECRET_HEADER, "Content-Type")}
        for _ in range(len(self.replicas)):
            i = self.turn % len(self.replicas)
            self.turn += 1
            try:
                async with self._http.post(
                    self.replicas.url(i) + request.path_qs, data=body, headers=headers
                ) as upstream:
                    answer = await upstream.read()
                    self.answered[i] += 1
                    self.statuses[upstream.status] += 1
                    return web.Response(
                        status=upstream.status,
                        body=answer,
                        content_type=upstream.content_type,
                    )
            except aiohttp.ClientConnectorError:
                continue  # refused: nothing was sent there, try the next one
            except (aiohttp.ClientError, TimeoutError):
                break
        self.statuses[502] += 1
        return web.Response(status=502, text="bad gateway")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()


@dataclass
class Kill:
    at: float
    replica: int
    pid: int
    undelivered: int
    """Messages of the burst not yet delivered at the moment of the kill."""
    sends: int
    """The most sends of the watched family the victim can have had in flight (see
    :meth:`Cluster.sends_in_flight`)."""


@dataclass
class Chaos:
    """SIGKILL a random replica every ``interval`` seconds and start it again at once."""

    replicas: Replicas
    undelivered: Callable[[], int]
    in_flight: Callable[[int], int]
    """The most sends a process (by pid) can have in flight in the watched family."""
    rng: random.Random
    interval: tuple[float, float] = (0.7, 1.4)
    max_kills: int = 8
    kills: list[Kill] = field(default_factory=list)

    async def run(self) -> None:
        while len(self.kills) < self.max_kills:
            await asyncio.sleep(self.rng.uniform(*self.interval))
            left = self.undelivered()
            if left == 0:
                return
            victim = self.rng.randrange(len(self.replicas))
            pid = self.replicas.pids[victim]
            sends = self.in_flight(pid) if pid is not None else 0
            pid = self.replicas.kill(victim)
            self.kills.append(Kill(time.time(), victim, pid, left, sends))
            self.replicas.start(victim)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Kill and restart replicas while the body runs (and not after it)."""
        task = asyncio.create_task(self.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def mid_burst(self) -> int:
        return sum(1 for k in self.kills if k.undelivered > 0)


@dataclass
class Cluster:
    world: World
    replicas: Replicas
    balancer: Balancer
    redis: sync_redis.Redis
    http: aiohttp.ClientSession

    def depth(self) -> int:
        """Entries not yet handled in every stream (entries are deleted when acked)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for family in keys.FAMILIES:
                for p in range(PARTITIONS):
                    pipe.xlen(keys.stream(family, p))
            return sum(pipe.execute())

    def sends_in_flight(self, family: str) -> Callable[[int], int]:
        """The most sends of ``family`` a process (by pid) can have in flight: for each
        partition it holds a lease on, one per contact routed there, at most
        ``bus.delivery_parallel``; plus the most of any one partition, for a partition
        it takes between this count and a kill."""
        prefix = f"{socket.gethostname()}-"

        def in_flight(pid: int) -> int:
            owners: Any = self.redis.mget([keys.lease(f"{family}:{p}") for p in range(PARTITIONS)])
            mine = f"{prefix}{pid}-".encode()
            # Delivery routes by contact id; contact ids are 1, 2, …
            contacts = int(self.redis.get(keys.CONTACT_SEQ) or 0)
            chats = Counter(partition(str(c), PARTITIONS) for c in range(1, contacts + 1))
            at_most = [min(DELIVERY_PARALLEL, chats[p]) for p in range(PARTITIONS)]
            held = sum(n for n, o in zip(at_most, owners, strict=True) if o and o.startswith(mine))
            return held + max(at_most)

        return in_flight

    def dead_letters(self) -> int:
        return sum(int(self.redis.xlen(keys.dead_letters(f))) for f in keys.FAMILIES)

    async def quiet(self, timeout: float = 30) -> None:
        """Wait until every stream is empty (each entry handled and acknowledged)."""
        deadline = time.monotonic() + timeout
        while self.depth() > 0:
            assert time.monotonic() < deadline, f"streams not drained:\n{self.describe()}"
            await asyncio.sleep(0.1)

    def describe(self) -> str:
        """The queues, their pending entries and the leases, for a failure message."""
        lines = []
        for family in keys.FAMILIES:
            for p in range(PARTITIONS):
                stream = keys.stream(family, p)
                length = int(self.redis.xlen(stream))
                if length:
                    pending = self.redis.xpending(stream, keys.GROUP)
                    owner = self.redis.get(keys.lease(f"{family}:{p}"))
                    lines.append(f"{stream}: {length} left, pending {pending}, lease {owner!r}")
        lines.append(f"dead letters: {self.dead_letters()}")
        return "\n".join(lines)


def gateway_config(
    emulator: TelegramEmulator, redis_url: str, public_url: str, tmp_path: Path, mode: str
) -> dict[str, Any]:
    data = config_dict(emulator.base_url or "", redis_url, mode)
    data["server"] = {"listen": "127.0.0.1:0", "public_url": public_url}
    data["bus"] = {"partitions": PARTITIONS, "lease_seconds": LEASE_SECONDS}
    data["delivery"] = {"flood_limits": False, "max_backoff_seconds": 2}
    data["log"] = {"format": "json", "level": "warning"}
    data["data_dir"] = str(tmp_path / "data")
    return data


@pytest.fixture
async def cluster_factory(
    world: World, redis_url: str, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """``await cluster(n=3, mode="webhook", tweak=None)``: replicas behind a balancer."""
    made: list[Cluster] = []

    async def make(
        n: int = 3, mode: str = "webhook", tweak: Callable[[dict[str, Any]], None] | None = None
    ) -> Cluster:
        replicas = Replicas(tmp_path, n)
        balancer = Balancer(replicas)
        cluster = Cluster(
            world, replicas, balancer, sync_redis.Redis.from_url(redis_url), aiohttp.ClientSession()
        )
        made.append(cluster)
        public = await balancer.start()
        data = gateway_config(world.emulator, redis_url, public, tmp_path, mode)
        if tweak is not None:
            tweak(data)
        replicas.configure(data)
        http = cluster.http
        for i in range(n):
            replicas.start(i)
        await replicas.wait_ready(http)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.replicas.stop_all()
            await cluster.balancer.stop()
            await cluster.http.close()
            cluster.redis.close()


async def poll_until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


# --- what arrived ---------------------------------------------------------------------------


def marked(prefix: str) -> re.Pattern[str]:
    """``<prefix>CC-NNNN``: contact CC's message number NNNN."""
    return re.compile(rf"\b{prefix}(\d\d)-(\d{{4}})\b")


class Progress:
    """Which marked messages the emulator accepted from a bot, read incrementally from
    its call log (cheap enough to poll while thousands of messages fly)."""

    def __init__(self, emulator: TelegramEmulator, prefix: str, expected: int):
        self.emulator = emulator
        self.prefix = prefix
        self.pattern = marked(prefix)
        self.expected = expected
        self.seen: set[tuple[int, int]] = set()
        self.first_sent: dict[tuple[int, int], float] = {}
        self._read = 0
        self.contacts = 0
        """How many contacts write (0: only those seen), to name a silent one."""

    def update(self) -> int:
        """Scan new calls; how many distinct marked messages are still missing."""
        calls = self.emulator.calls
        for call in calls[self._read :]:
            if call.status != 200 or not call.method.lower().startswith("send"):
                continue
            text = str(call.params.get("text") or call.params.get("caption") or "")
            for contact, number in self.pattern.findall(text):
                mark = (int(contact), int(number))
                self.seen.add(mark)
                self.first_sent.setdefault(mark, call.time)
        self._read = len(calls)
        return self.expected - len(self.seen)

    def explain(self, cluster: Cluster | None) -> str:
        """What is missing, what the emulator saw of it, and the queues."""
        lines = [f"{self.expected - len(self.seen)} never arrived; seen {len(self.seen)}"]
        if self.seen:
            contacts = sorted({c for c, _ in self.seen} | set(range(self.contacts)))
            numbers = range(max(n for _, n in self.seen) + 1)
            missing = [(c, n) for c in contacts for n in numbers if (c, n) not in self.seen]
            for contact, number in missing[:10]:
                tag = f"{self.prefix}{contact:02d}-{number:04d}"
                attempts = [
                    (call.method, call.status, call.description)
                    for call in self.emulator.calls
                    if tag in str(call.params.get("text") or "")
                ]
                lines.append(f"  {tag}: calls {attempts}")
        if cluster is not None:
            lines.append(cluster.describe())
        return "\n".join(lines)

    async def wait_all(self, timeout: float, cluster: Cluster | None = None) -> None:
        deadline = time.monotonic() + timeout
        while self.update() > 0:
            if time.monotonic() > deadline:
                raise AssertionError(self.explain(cluster))
            await asyncio.sleep(0.05)


@dataclass
class Verdict:
    total: int
    distinct: int
    repeated: dict[tuple[int, int], int]

    @property
    def duplicates(self) -> int:
        return self.total - self.distinct


def verify_chats(
    chats: dict[int, list[dict[str, Any]]],
    pattern: re.Pattern[str],
    per_contact: int,
    contacts: int,
    *,
    twice_at_most: bool = True,
) -> Verdict:
    """Every contact's chat holds all its numbers, first seen in order, and nothing from
    another contact; with ``twice_at_most``, no message three times."""
    copies: Counter[tuple[int, int]] = Counter()
    for contact, messages in chats.items():
        order: list[int] = []
        for message in messages:
            for who, number in pattern.findall(text_of(message)):
                assert int(who) == contact, f"contact {who}'s message in {contact}'s chat"
                copies[(contact, int(number))] += 1
                order.append(int(number))
        first_seen = list(dict.fromkeys(order))
        assert first_seen == list(range(per_contact)), (
            f"contact {contact}: first-seen order {first_seen[:10]}… is not the sending order"
            f" (missing: {sorted(set(range(per_contact)) - set(order))[:10]})"
        )
    assert len(chats) == contacts
    repeated = {mark: n for mark, n in copies.items() if n > 1}
    if twice_at_most:
        assert all(n == 2 for n in repeated.values()), f"repeated more than once: {repeated}"
    return Verdict(sum(copies.values()), len(copies), repeated)


def staff_chats(cluster: Cluster, names: dict[int, str]) -> dict[int, list[dict[str, Any]]]:
    """The staff group's messages grouped by contact (by the topic they are in); every
    contact's messages must be in one topic, named after the contact."""
    emulator = cluster.world.emulator
    topics = {t["message_thread_id"]: t["name"] for t in emulator.topics(STAFF_CHAT)}
    by_topic: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for message in emulator.messages(STAFF_CHAT):
        by_topic[int(message.get("message_thread_id") or 1)].append(message)
    chats: dict[int, list[dict[str, Any]]] = {}
    for contact, name in names.items():
        holding = [
            t for t, ms in by_topic.items() if any(f"q{contact:02d}-" in text_of(m) for m in ms)
        ]
        assert len(holding) == 1, f"contact {contact}'s messages are in topics {holding}"
        title = topics[holding[0]].split(" ", 1)[1]  # after the task's state icon
        assert title.startswith(name), (topics[holding[0]], name)
        chats[contact] = by_topic[holding[0]]
    return chats


def assert_duplicates_bounded(
    verdict: Verdict, first_sent: dict[tuple[int, int], float], kills: list[Kill]
) -> None:
    """The honest bound: a kill can repeat at most the sends it caught in flight (see
    :meth:`Cluster.sends_in_flight`), and each repeated message's first copy was
    accepted by Telegram around some kill."""
    assert verdict.duplicates <= sum(k.sends for k in kills), (verdict.repeated, kills)
    for mark in verdict.repeated:
        sent = first_sent[mark]
        before, after = KILL_WINDOW
        assert any(k.at - before <= sent <= k.at + after for k in kills), (
            f"{mark} was repeated, but its first copy ({sent:.3f}) was not in flight at a "
            f"kill: {[round(k.at, 3) for k in kills]}"
        )


# --- the tests ------------------------------------------------------------------------------


async def test_replicas_killed_mid_burst_lose_nothing_inbound(
    world: World, cluster_factory: Callable[..., Any]
) -> None:
    contacts, per_contact = 30, 50
    cluster: Cluster = await cluster_factory(3)
    emulator = world.emulator
    names = {c: f"Cust{c:02d}" for c in range(contacts)}
    users = {c: world.customer(first_name=names[c], username=None) for c in range(contacts)}
    progress = Progress(emulator, "q", contacts * per_contact)
    chaos = Chaos(
        cluster.replicas, progress.update, cluster.sends_in_flight(keys.STAFF_OUT), random.Random(7)
    )
    started = time.monotonic()
    for i in range(per_contact):
        for c in range(contacts):
            await world.say(users[c], text=f"q{c:02d}-{i:04d} hello")
    async with chaos.running():
        await progress.wait_all(timeout=50, cluster=cluster)
    await cluster.replicas.wait_ready(cluster.http)
    await cluster.quiet()
    elapsed = time.monotonic() - started

    verdict = verify_chats(staff_chats(cluster, names), marked("q"), per_contact, contacts)
    bound = sum(k.sends for k in chaos.kills)
    print(
        f"\ninbound chaos: {contacts * per_contact} messages from {contacts} contacts in "
        f"{elapsed:.1f} s; kills {len(chaos.kills)} ({chaos.mid_burst} mid-burst, "
        f"undelivered at each: {[k.undelivered for k in chaos.kills]}); duplicates "
        f"{verdict.duplicates} (bound {bound}; sends the victims could have in flight: "
        f"{[k.sends for k in chaos.kills]}); webhooks per replica "
        f"{dict(cluster.balancer.answered)}, statuses {dict(cluster.balancer.statuses)}; "
        f"topics {len(emulator.topics(STAFF_CHAT))}"
    )
    assert chaos.mid_burst >= 4, chaos.kills
    assert_duplicates_bounded(verdict, progress.first_sent, chaos.kills)
    assert cluster.dead_letters() == 0
    assert all(n > 0 for n in cluster.balancer.answered.values())


async def open_topics(
    world: World, cluster: Cluster, contacts: int
) -> tuple[dict[int, str], dict[int, dict[str, Any]], dict[int, int]]:
    """``contacts`` customers write once each; their names, users and topics."""
    names = {c: f"Cust{c:02d}" for c in range(contacts)}
    users = {c: world.customer(first_name=names[c], username=None) for c in range(contacts)}
    hello = Progress(world.emulator, "h", contacts)
    for c in range(contacts):
        await world.say(users[c], text=f"h{c:02d}-0000 hello")
    await hello.wait_all(timeout=30, cluster=cluster)
    # The topic each hello went to. Not "the topic named like the customer": a
    # createForumTopic answered too late for the gateway (it timed out, yet Telegram
    # made the topic) leaves an orphan of the same name, and the gateway made another.
    topics = {}
    for message in world.staff_messages():
        for contact, _ in marked("h").findall(message.get("text") or ""):
            topics.setdefault(int(contact), int(message["message_thread_id"]))
    return names, users, topics


async def operator_burst(
    world: World, topics: dict[int, int], per_contact: int, prefix: str = "a"
) -> None:
    """The operator answers every topic ``per_contact`` times, topics interleaved."""
    for i in range(per_contact):
        for c, topic in topics.items():
            await world.operator_says(topic, text=f"{prefix}{c:02d}-{i:04d} answer")


def private_chats(
    world: World, users: dict[int, dict[str, Any]]
) -> dict[int, list[dict[str, Any]]]:
    return {
        c: world.emulator.messages(user["id"], bot_token=CUSTOMER_TOKEN)
        for c, user in users.items()
    }


async def test_replicas_killed_mid_burst_lose_nothing_outbound(
    world: World, cluster_factory: Callable[..., Any]
) -> None:
    contacts, per_contact = 30, 50
    cluster: Cluster = await cluster_factory(3)
    _, users, topics = await open_topics(world, cluster, contacts)
    progress = Progress(world.emulator, "a", contacts * per_contact)
    chaos = Chaos(
        cluster.replicas,
        progress.update,
        cluster.sends_in_flight(keys.CUSTOMER_OUT),
        random.Random(11),
    )
    started = time.monotonic()
    await operator_burst(world, topics, per_contact)
    async with chaos.running():
        await progress.wait_all(timeout=50, cluster=cluster)
    await cluster.replicas.wait_ready(cluster.http)
    await cluster.quiet()
    elapsed = time.monotonic() - started

    verdict = verify_chats(private_chats(world, users), marked("a"), per_contact, contacts)
    bound = sum(k.sends for k in chaos.kills)
    print(
        f"\noutbound chaos: {contacts * per_contact} replies to {contacts} contacts in "
        f"{elapsed:.1f} s; kills {len(chaos.kills)} ({chaos.mid_burst} mid-burst, "
        f"undelivered at each: {[k.undelivered for k in chaos.kills]}); duplicates "
        f"{verdict.duplicates} (bound {bound}; sends the victims could have in flight: "
        f"{[k.sends for k in chaos.kills]}); webhooks per replica "
        f"{dict(cluster.balancer.answered)}, statuses {dict(cluster.balancer.statuses)}"
    )
    assert chaos.mid_burst >= 4, chaos.kills
    assert_duplicates_bounded(verdict, progress.first_sent, chaos.kills)
    assert cluster.dead_letters() == 0


async def test_redis_restart_mid_burst_loses_nothing(
    world: World, cluster_factory: Callable[..., Any], redis_server: EmbeddedRedis
) -> None:
    """Both directions at once; Redis goes away (SIGTERM, AOF) for 2.5 s mid-burst.

    With the default lease (15 s) the outage ends before any lease lapses, so no
    partition changes hands. (An outage longer than the lease exposes the bus bug
    reproduced by ``test_a_consumer_that_lost_its_lease_…`` below.)
    """
    contacts, per_contact = 30, 20

    def tweak(data: dict[str, Any]) -> None:
        data["bus"]["lease_seconds"] = 15.0

    cluster: Cluster = await cluster_factory(3, tweak=tweak)
    names, users, topics = await open_topics(world, cluster, contacts)
    inbound = Progress(world.emulator, "q", contacts * per_contact)
    outbound = Progress(world.emulator, "a", contacts * per_contact)
    started = time.monotonic()
    for i in range(per_contact):
        for c in range(contacts):
            await world.say(users[c], text=f"q{c:02d}-{i:04d} hello")
    await operator_burst(world, topics, per_contact)

    total = 2 * contacts * per_contact
    await poll_until(lambda: inbound.update() + outbound.update() <= total * 2 // 3, 60)
    left_at_stop = inbound.update() + outbound.update()
    refused_before = cluster.balancer.statuses[503]
    redis_server.stop()
    stopped = time.monotonic()
    try:
        await asyncio.sleep(2.5)
    finally:
        redis_server.start()
        await redis_server.wait_ready()
    down = time.monotonic() - stopped
    await inbound.wait_all(timeout=40, cluster=cluster)
    await outbound.wait_all(timeout=40, cluster=cluster)
    await cluster.replicas.wait_ready(cluster.http)
    await cluster.quiet()
    elapsed = time.monotonic() - started

    into_topics = verify_chats(staff_chats(cluster, names), marked("q"), per_contact, contacts)
    to_customers = verify_chats(private_chats(world, users), marked("a"), per_contact, contacts)
    refused = cluster.balancer.statuses[503] - refused_before
    print(
        f"\nredis restart: {total} messages ({contacts} contacts, both directions) in "
        f"{elapsed:.1f} s; Redis down {down:.1f} s with {left_at_stop} undelivered; "
        f"webhooks answered 503: {refused}; duplicates into topics "
        f"{into_topics.duplicates}, to customers {to_customers.duplicates}"
    )
    assert left_at_stop > 0 and refused > 0  # the outage met webhooks, answered 503
    # A send in flight when Redis went away is marked done once Redis is back (the
    # commit waits for it), and no lease lapsed: nothing may be sent twice.
    assert into_topics.duplicates + to_customers.duplicates == 0
    assert cluster.dead_letters() == 0


async def test_platform_faults_at_a_rate(world: World, cluster_factory: Callable[..., Any]) -> None:
    """10% of every Bot API call of both bots fail: 429, 5xx, a reset, or an answer so
    late the gateway times out (the call still happened, as on Telegram)."""
    contacts, per_contact = 20, 15

    def tweak(data: dict[str, Any]) -> None:
        data["delivery"]["request_timeout_seconds"] = 2

    cluster: Cluster = await cluster_factory(2, mode="polling", tweak=tweak)
    emulator = world.emulator
    emulator.set_fault_rate(0.10, seed=20261124, retry_after=1, delay=2.5)
    started = time.monotonic()
    names, users, topics = await open_topics(world, cluster, contacts)
    inbound = Progress(emulator, "q", contacts * per_contact)
    outbound = Progress(emulator, "a", contacts * per_contact)
    inbound.contacts = outbound.contacts = contacts
    for i in range(per_contact):
        for c in range(contacts):
            await world.say(users[c], text=f"q{c:02d}-{i:04d} hello")
    await operator_burst(world, topics, per_contact)
    await inbound.wait_all(timeout=40, cluster=cluster)
    await outbound.wait_all(timeout=40, cluster=cluster)
    await cluster.quiet()
    emulator.clear_fault_rates()
    elapsed = time.monotonic() - started

    # A message whose sends timed out twice (both done) is there three times: allowed.
    into_topics = verify_chats(
        staff_chats(cluster, names), marked("q"), per_contact, contacts, twice_at_most=False
    )
    to_customers = verify_chats(
        private_chats(world, users), marked("a"), per_contact, contacts, twice_at_most=False
    )
    injected = dict(emulator.faults.random.injected)
    by_kind: Counter[str] = Counter()
    for (_, kind), n in injected.items():
        by_kind[kind] += n
    late_sends = emulator.injected_faults(["sendMessage"], ["delay"])
    retries = await cluster.replicas.metric(cluster.http, "gateway_outbound_retries_total")
    polled_again = await cluster.replicas.metric(cluster.http, "gateway_poll_retries_total")
    polls_hit = emulator.injected_faults(["getUpdates"], ["429", "500", "502", "503", "reset"])
    print(
        f"\nfaults at 10%: {2 * contacts * per_contact} messages ({contacts} contacts, both "
        f"directions) in {elapsed:.1f} s; faults injected {sum(by_kind.values())} "
        f"{dict(by_kind)}; late sendMessage answers {late_sends}; duplicates into topics "
        f"{into_topics.duplicates}, to customers {to_customers.duplicates}; retries "
        f"counted by the gateway {retries:.0f}"
    )
    assert sum(by_kind.values()) > 0
    assert retries > 0
    # getUpdates failures are retried by the pollers, and counted.
    assert polled_again > 0 or polls_hit == 0, (polled_again, polls_hit)
    # Only a send that timed out but happened can be repeated: Telegram has no
    # idempotency key. Every other fault happens before the call does anything.
    assert into_topics.duplicates + to_customers.duplicates <= late_sends
    assert cluster.dead_letters() == 0


async def test_three_replicas_fire_each_timer_once(
    world: World, cluster_factory: Callable[..., Any]
) -> None:
    """Every task goes overdue at once; three replicas' schedulers race for the
    reminder timers: each topic gets exactly one reminder."""
    contacts = 30

    def tweak(data: dict[str, Any]) -> None:
        data["sla"] = {"first_response_minutes": 0.02}  # 1.2 s
        data["reminders"] = {"interval_minutes": 30}

    cluster: Cluster = await cluster_factory(3, tweak=tweak)
    _, _, topics = await open_topics(world, cluster, contacts)

    def reminded() -> Counter[int]:
        return Counter(
            int(call.params.get("message_thread_id") or 0)
            for call in world.emulator.calls_of("sendMessage")
            if call.status == 200 and str(call.params.get("text", "")).startswith("⏰")
        )

    deadline = time.monotonic() + 30
    while len(reminded()) < contacts:
        assert time.monotonic() < deadline, f"reminders in {len(reminded())} topics only"
        await asyncio.sleep(0.1)
    await asyncio.sleep(3)  # three more ticks of every scheduler
    await cluster.quiet()
    sent = reminded()
    entries: Any = cluster.redis.xrange(keys.EVENTS)
    events = Counter(
        fields[b"contact"] for _, fields in entries if fields.get(b"type") == b"reminder.sent"
    )
    print(
        f"\ntimers: {contacts} contacts on 3 replicas; reminders per topic "
        f"{sorted(Counter(sent.values()).items())}, reminder.sent events per contact "
        f"{sorted(Counter(events.values()).items())}"
    )
    assert set(sent) == set(topics.values())
    assert set(sent.values()) == {1}
    assert len(events) == contacts and set(events.values()) == {1}


async def test_a_consumer_that_lost_its_lease_reads_nothing_the_new_owner_misses(
    redis_url: str,
) -> None:
    """The Redis restart above, reduced to its mechanism, deterministically.

    A owns the only partition, then cannot renew its lease (its lease loop is sleeping
    off a Redis outage, or its event loop stalled): the lease lapses. B takes the
    partition and drains the pending entries; then an entry arrives. A must not have
    been reading any more (its reads stop while the lease may have lapsed): otherwise
    Redis would hand the entry to A, pending with A, where B never looks. B handles it.
    """
    redis = connect(redis_url)
    bus = Bus(redis, partitions=1, dedup_ttl_seconds=60)
    await bus.ensure_groups(keys.INBOUND)
    handled_by_a: list[bytes] = []
    handled_by_b: list[bytes] = []

    async def a_handles(entry: Entry) -> None:
        handled_by_a.append(entry.payload)
        await asyncio.sleep(3600)  # a platform call that is still in flight

    async def b_handles(entry: Entry) -> None:
        handled_by_b.append(entry.payload)
        await bus.ack_now(entry)

    a = Consumer(bus, keys.INBOUND, a_handles, name="A", lease_seconds=1.0)
    b = Consumer(bus, keys.INBOUND, b_handles, name="B", lease_seconds=1.0)
    try:
        await a._balance()  # A takes the partition and reads; then renews no more
        await asyncio.sleep(1.1)  # the lease lapses in Redis
        await b._balance()  # B takes it over, drains what is pending, reads
        await asyncio.sleep(0.1)
        await redis.xadd(keys.stream(keys.INBOUND, 0), {"e": "hello"})
        deadline = time.monotonic() + 3
        while not handled_by_b and time.monotonic() < deadline:
            await b._balance()
            await asyncio.sleep(0.2)
        pending = await redis.xpending(keys.stream(keys.INBOUND, 0), keys.GROUP)
        assert handled_by_b == [b"hello"], f"B never handled it; pending: {pending}"
        assert handled_by_a == []
    finally:
        for consumer in (a, b):
            for owned in [*consumer._owned.values(), *consumer._draining.values()]:
                owned.task.cancel()
            await consumer._release_all()
        await close(redis)


async def test_fault_rate_control_and_reproducibility(emulator: TelegramEmulator) -> None:
    """The emulator's RATE mode: by method and bot, over ``/_control/fault_rate``, and
    the same seed draws the same faults."""
    emulator.set_bot_username(CUSTOMER_TOKEN, "shop_bot")
    control = f"{emulator.base_url}/_control/fault_rate"
    api = f"{emulator.base_url}/bot{CUSTOMER_TOKEN}"
    async with aiohttp.ClientSession() as http:
        rule = {"probability": 1.0, "methods": ["getMe"], "kinds": ["503"], "seed": 1}
        async with http.post(control, json=rule) as response:
            assert response.status == 200
            assert (await response.json())["rates"][0]["methods"] == ["getme"]
        async with http.post(f"{api}/getMe") as response:
            assert response.status == 503
        async with http.post(f"{api}/getWebhookInfo") as response:
            assert response.status == 200  # another method: untouched
        async with http.post(control, json={"clear": True}) as response:
            assert (await response.json()) == {"ok": True, "rates": [], "injected": 1}
        async with http.post(f"{api}/getMe") as response:
            assert response.status == 200
        async with http.post(control, json={"probability": 2}) as response:
            assert response.status == 400
    assert emulator.injected_faults(["getMe"], ["503"]) == 1

    def draws(seed: int) -> list[str | None]:
        faults = RandomFaults()
        faults.add(FaultRate(0.3), seed=seed)
        return [d.kind if (d := faults.draw("sendMessage")) else None for _ in range(200)]

    assert draws(5) == draws(5) != draws(6)
    assert 30 < sum(1 for kind in draws(5) if kind) < 90
