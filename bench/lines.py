"""What lines cost: customer messages into their staff topics with one staff group, with
two lines configured, and with two lines and every customer watched (``/watch``).

Each configuration is a whole gateway (HTTP server, workers, its own Redis database)
against the Telegram emulator, flood limits off. Customers first write once each (their
contacts and topics are made, and in the third configuration an operator watches every
one of them), then the measured phase: customers write as fast as the webhook takes it
(64 in flight) and the clock stops when the last message is in its topic. The runs go
A B C C B A and each configuration's best is kept, so a busy moment of the machine does
not decide. Printed: messages per second and the ratio to one staff group.

With two lines the gateway reads the contact's line for every message (one more Redis
round trip on the way in and one for each card refresh) and writes it with the process;
watching adds a private notice per message (another Bot API call, in a queue of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from bench._common import free_port
from bench._gateway import serve, stop_all
from gateway import logging as gateway_logging
from gateway.app import App
from gateway.config import parse_config
from gateway.sandbox.telegram import TelegramEmulator
from gateway.store import keys
from gateway.store.redis import EmbeddedRedis

SECRET = "bench-secret_123"
OPERATOR = 700001
MARK = re.compile(r"\bc(\d+)m(\d+)\b")


@dataclass(frozen=True)
class Setup:
    name: str
    index: int
    lines: bool
    watched: bool

    @property
    def group(self) -> int:
        return -1005550000200 - 10 * self.index

    def token(self, role: int) -> str:
        """Unique per setup: role 0 the customer bot, 1 the staff bot."""
        return f"{5000 + self.index * 10 + role}:bench-lines-{self.index}-{role}-" + "x" * 20


SETUPS = (
    Setup("one staff group", 0, lines=False, watched=False),
    Setup("two lines", 1, lines=True, watched=False),
    Setup("two lines, all watched", 2, lines=True, watched=True),
)


def config(setup: Setup, emulator_url: str, redis_url: str) -> dict[str, Any]:
    endpoint = {"api_server": emulator_url, "mode": "webhook", "webhook_secret": SECRET}
    data: dict[str, Any] = {
        "timezone": "UTC",
        "redis": {"url": f"{redis_url}/{setup.index + 1}"},
        "log": {"level": "warning", "format": "console"},
        "delivery": {"flood_limits": False},
        "reminders": {"interval_minutes": 0},
        "staff": {
            "token": setup.token(1),
            "chat_id": setup.group,
            "operators": [{"id": OPERATOR, "name": "Anna"}],
            **endpoint,
        },
        "channels": [{"id": "shop", "kind": "telegram", "token": setup.token(0), **endpoint}],
    }
    if setup.lines:
        data["lines"] = [
            {"name": "sales", "chat_id": setup.group, "accounts": ["shop"]},
            {"name": "service", "chat_id": setup.group - 1},
        ]
    return data


async def until(check: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the messages did not all reach their topics")
        await asyncio.sleep(0.1)  # the check scans the chat: not too often


def posted(emulator: TelegramEmulator, setup: Setup) -> set[tuple[str, str]]:
    return {
        (m.group(1), m.group(2))
        for message in emulator.messages(setup.group)
        for m in MARK.finditer(message.get("text") or "")
    }


class Bench:
    def __init__(self, emulator: TelegramEmulator, redis_url: str, customers: int) -> None:
        self.emulator = emulator
        self.redis_url = redis_url
        self.customers = customers
        self.users: dict[int, list[int]] = {}
        self.sent: dict[int, int] = {}

    async def prepare(self, setup: Setup) -> tuple[App, web.AppRunner]:
        emulator = self.emulator
        for chat in (setup.group, setup.group - 1):
            emulator.create_forum_group(
                title=f"{setup.name} {chat}",
                members=[OPERATOR],
                bot_tokens=[setup.token(1)],
                chat_id=chat,
            )
        text = yaml.safe_dump(config(setup, emulator.base_url or "", self.redis_url))
        app = App(parse_config(text))
        await app.start()
        runner, url = await serve(app)
        await app.go_live(url)
        # The operator opened a private chat with the staff bot (so notices reach her).
        await emulator.user_sends(OPERATOR, bot_token=setup.token(1), text="/start")
        users = [
            emulator.create_user(first_name=f"L{setup.index}_{n}")["id"]
            for n in range(self.customers)
        ]
        self.users[setup.index], self.sent[setup.index] = users, 0
        await self.phase(setup, 1)  # contacts, topics and cards are made here
        if setup.watched:
            redis = app.redis
            assert redis is not None
            for user in users:
                contact = await app.pipeline.contacts.of_identity("shop", str(user))
                assert contact is not None
                await redis.sadd(keys.watchers(contact), str(OPERATOR))
                await redis.sadd(keys.watching(str(OPERATOR)), contact)
        return app, runner

    async def phase(self, setup: Setup, rounds: int) -> float:
        """Every customer writes ``rounds`` messages; seconds until all are posted."""
        users = self.users[setup.index]
        first = self.sent[setup.index]
        wanted = {(str(u), str(first + r + 1)) for u in users for r in range(rounds)}
        gate = asyncio.Semaphore(64)

        async def one(user: int, n: int) -> None:
            async with gate:
                text = f"c{user}m{n} Здравствуйте, где мой заказ?"
                await self.emulator.user_sends(user, bot_token=setup.token(0), text=text)

        started = time.perf_counter()
        await asyncio.gather(*(one(u, first + r + 1) for r in range(rounds) for u in users))
        await until(lambda: wanted <= posted(self.emulator, setup))
        self.sent[setup.index] = first + rounds
        return time.perf_counter() - started


async def run(customers: int, rounds: int) -> dict[str, list[float]]:
    gateway_logging.configure("warning", "console")
    emulator = TelegramEmulator()
    await emulator.start()
    emulator.create_user(first_name="Anna", user_id=OPERATOR)
    rates: dict[str, list[float]] = {s.name: [] for s in SETUPS}
    with tempfile.TemporaryDirectory() as tmp:
        redis = EmbeddedRedis(Path(tmp), port=free_port())
        redis.start()
        await redis.wait_ready()
        bench = Bench(emulator, redis.url, customers)
        apps: list[tuple[App, web.AppRunner]] = []
        try:
            for setup in SETUPS:
                apps.append(await bench.prepare(setup))
            for setup in (*SETUPS, *reversed(SETUPS)):
                seconds = await bench.phase(setup, rounds)
                rates[setup.name].append(customers * rounds / seconds)
        finally:
            await stop_all(apps)
            redis.stop()
            await emulator.stop()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10, help="messages per customer per run")
    parser.add_argument("--quick", action="store_true", help="20 customers, 4 rounds")
    args = parser.parse_args()
    customers, rounds = (20, 4) if args.quick else (args.customers, args.rounds)
    rates = asyncio.run(run(customers, rounds))
    print(
        f"bench.lines — {customers} customers × {rounds} messages per run, runs A B C C B A, "
        "best of each; customer → staff topic, flood limits off"
    )
    base = max(rates[SETUPS[0].name])
    for setup in SETUPS:
        best = max(rates[setup.name])
        shown = ", ".join(f"{r:.0f}" for r in rates[setup.name])
        print(f"  {setup.name:24s} {best:6.0f} msg/s ({shown})  {best / base:5.2f}× one group")


if __name__ == "__main__":
    main()
