"""Staff delivery at Telegram's group limit: a pool of 1 and of 3 bots, coalescing off
and on, against an emulator that enforces the limit.

Telegram lets a bot post about N messages a minute into one group. Four gateways run
side by side (one per configuration, each with its own staff group, bots and Redis
database) while customers keep writing about three times faster than the pool can
post. Printed per configuration:

- customer messages delivered into their topics per minute (and the same at
  Telegram's real 20 a minute, scaled);
- the fraction of the theoretical budget used: the calls that count against it
  (sendMessage, sendMediaGroup, createForumTopic, editMessageText, editForumTopic,
  deleteMessage) per
  bot per minute, against N (target ≥ 95%);
- 429 answers (target: none).

The limit is scaled up (``--per-minute``, default 120) so that one run takes about a
minute: the gateway's limiter and the emulator count the same way at any rate, and the
run lasts longer than the 61-second window the gateway keeps.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import tempfile
import time
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
from gateway.store.redis import EmbeddedRedis

SECRET = "bench-secret_123"
BUDGET_METHODS = (
    "sendMessage",
    "sendMediaGroup",
    "createForumTopic",
    "editMessageText",
    "editForumTopic",
    "deleteMessage",
)
MARK = re.compile(r"(?:^|\s)c(\d+)m(\d+)(?:\s|$)")


@dataclass
class Setup:
    name: str
    relays: int
    coalesce: bool
    index: int

    @property
    def chat(self) -> int:
        return -1005550000100 - self.index

    def token(self, role: int) -> str:
        """Bot tokens unique per setup: role 0 customer bot, 1 staff bot, 2+ relays."""
        bot_id = 4000 + self.index * 10 + role
        return f"{bot_id}:bench-{self.index}-{role}-" + "x" * 24

    @property
    def bots(self) -> list[str]:
        return [self.token(1), *(self.token(2 + n) for n in range(self.relays))]


SETUPS = [
    Setup("pool 1, coalescing off", 0, False, 0),
    Setup("pool 3, coalescing off", 2, False, 1),
    Setup("pool 1, coalescing on", 0, True, 2),
    Setup("pool 3, coalescing on", 2, True, 3),
]


def config(setup: Setup, emulator_url: str, redis_url: str, per_minute: int) -> dict[str, Any]:
    endpoint = {"api_server": emulator_url, "mode": "webhook", "webhook_secret": SECRET}
    return {
        "timezone": "UTC",
        "redis": {"url": f"{redis_url}/{setup.index + 1}"},
        "log": {"level": "warning", "format": "console"},
        "delivery": {
            "flood_limits": True,
            "group_per_minute": per_minute,
            "coalesce": setup.coalesce,
        },
        "reminders": {"interval_minutes": 0},
        "staff": {
            "token": setup.token(1),
            "chat_id": setup.chat,
            "relay_bots": setup.bots[1:],
            **endpoint,
        },
        "channels": [{"id": "shop", "kind": "telegram", "token": setup.token(0), **endpoint}],
    }


async def load(
    emulator: TelegramEmulator, setup: Setup, customers: list[int], rate: float, seconds: float
) -> int:
    """Customers write ``rate`` messages a second for ``seconds``; how many were sent."""
    rng = random.Random(setup.index)
    counters = dict.fromkeys(customers, 0)
    sent = 0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate) + 1
        while sent < due:
            customer = rng.choice(customers)
            counters[customer] += 1
            text = f"c{customer}m{counters[customer]}"
            await emulator.user_sends(customer, bot_token=setup.token(0), text=text)
            sent += 1
        await asyncio.sleep(0.02)
    return sent


def measure(
    emulator: TelegramEmulator, setup: Setup, started: float, seconds: float
) -> dict[str, float]:
    """Delivered customer messages (each line of a combined one counts) and the calls
    that count against the budget, within the run."""
    delivered = set()
    for message in emulator.messages(setup.chat):
        for match in MARK.finditer(message.get("text") or ""):
            delivered.add((match.group(1), match.group(2)))
    calls = 0
    for token in setup.bots:
        for method in BUDGET_METHODS:
            calls += sum(
                1
                for call in emulator.calls_of(method, token)
                if call.status == 200 and started <= call.time <= started + seconds + 1
            )
    return {
        "delivered": len(delivered),
        "calls": calls,
        "too_many": sum(emulator.too_many_requests(token) for token in setup.bots),
    }


async def run(per_minute: int, seconds: float, customers: int) -> list[tuple[Setup, dict]]:
    gateway_logging.configure("warning", "console")
    emulator = TelegramEmulator()
    await emulator.start()
    emulator.flood.group_per_minute = per_minute
    emulator.set_flood_limits(True)
    operator = emulator.create_user(first_name="Anna", user_id=700001)
    with tempfile.TemporaryDirectory() as tmp:
        redis = EmbeddedRedis(Path(tmp), port=free_port())
        redis.start()
        await redis.wait_ready()
        apps: list[tuple[App, web.AppRunner]] = []
        try:
            users: dict[int, list[int]] = {}
            for setup in SETUPS:
                emulator.create_forum_group(
                    title=setup.name,
                    members=[operator["id"]],
                    bot_tokens=setup.bots,
                    chat_id=setup.chat,
                )
                users[setup.index] = [
                    emulator.create_user(first_name=f"C{setup.index}_{n}")["id"]
                    for n in range(customers)
                ]
                text = yaml.safe_dump(config(setup, emulator.base_url or "", redis.url, per_minute))
                app = App(parse_config(text))
                await app.start()
                runner, url = await serve(app)
                await app.go_live(url)
                apps.append((app, runner))
            started = time.time()
            capacity = [(1 + s.relays) * per_minute / 60 for s in SETUPS]
            sent = await asyncio.gather(
                *(
                    load(emulator, s, users[s.index], 3 * cap, seconds)
                    for s, cap in zip(SETUPS, capacity, strict=True)
                )
            )
            results = []
            for setup, offered in zip(SETUPS, sent, strict=True):
                found = measure(emulator, setup, started, seconds)
                results.append((setup, {**found, "offered": offered}))
            return results
        finally:
            await stop_all(apps)
            redis.stop()
            await emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-minute", type=int, default=120, help="the group limit N")
    parser.add_argument("--seconds", type=float, default=65.0)
    parser.add_argument("--customers", type=int, default=12)
    parser.add_argument("--quick", action="store_true", help="20 s (shorter than the window)")
    args = parser.parse_args()
    seconds = 20.0 if args.quick else args.seconds
    results = asyncio.run(run(args.per_minute, seconds, args.customers))
    minutes = seconds / 60
    scale = 20 / args.per_minute
    print(
        f"bench.staff_delivery — group limit {args.per_minute}/min per bot (emulator-enforced), "
        f"{seconds:.0f} s, customers write 3× faster than the pool can post"
    )
    baseline = results[0][1]["delivered"] / minutes
    for setup, r in results:
        bots = 1 + setup.relays
        per_minute = r["delivered"] / minutes
        used = r["calls"] / (bots * args.per_minute * minutes)
        ok = "PASS" if used >= 0.95 and r["too_many"] == 0 else "MISS"
        print(
            f"  {setup.name:24s} delivered {per_minute:7.0f} msg/min "
            f"(= {per_minute * scale:5.0f}/min at Telegram's 20) · "
            f"{per_minute / baseline:5.2f}× pool 1 without coalescing · "
            f"budget used {used:6.1%} · 429s {r['too_many']}   target ≥ 95%, no 429   {ok}"
        )


if __name__ == "__main__":
    main()
