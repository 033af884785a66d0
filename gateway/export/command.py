"""``gateway export`` and ``gateway import``: the same config and Redis as ``gateway run``,
and no gateway started.

With ``redis.url`` the commands use that server. Without it (the embedded Redis in
``data_dir``) they use the running gateway's server when one answers on its socket —
an export of a live gateway — and otherwise start that server themselves and stop it
when done (its append-only file is flushed on stop), exactly as ``gateway run`` would
find it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import TextIO

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway import logging as gateway_logging
from gateway.config import Settings
from gateway.export.dump import Exporter, Summary
from gateway.export.load import ImportRefused, Plan, validate, write
from gateway.store.redis import RETRYABLE, EmbeddedRedis, Redis, close, connect


async def _answers(url: str) -> bool:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(await client.ping())
    except (*RETRYABLE, RedisError):
        return False
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def open_redis(settings: Settings) -> AsyncIterator[Redis]:
    """A client for the gateway's Redis (starting the embedded one if it is not running)."""
    url = settings.redis.url
    embedded: EmbeddedRedis | None = None
    if url is None:
        server = EmbeddedRedis(
            settings.data_dir / "redis", appendfsync=settings.redis.embedded.appendfsync
        )
        url = server.url
        if not server.socket.exists() or not await _answers(url):
            server.start()
            embedded = server
            await server.wait_ready()
    redis = connect(url, max_connections=4)
    try:
        await redis.ping()
        yield redis
    finally:
        await close(redis)
        if embedded is not None:
            embedded.stop()


async def _export(settings: Settings, out: TextIO, since: date | None) -> Summary:
    async with open_redis(settings) as redis:
        return await Exporter(redis, settings, out, since).run()


async def _import(settings: Settings, path: Path, plan: Plan) -> None:
    async with open_redis(settings) as redis:
        await write(redis, settings, path, plan)


def _quiet(settings: Settings) -> None:
    """Logs to stderr (stdout may be the export), secrets redacted."""
    gateway_logging.configure("warning", "console", settings.secrets())


def export_command(settings: Settings, *, since: date | None, output: str) -> int:
    """Write the export to ``output`` (``-``: stdout). A file appears only once complete
    (written beside it, then renamed), so a failed export leaves no file that looks whole."""
    _quiet(settings)
    target = Path(output)
    partial = target.with_name(f".{target.name}.partial")
    try:
        if output == "-":
            if isinstance(sys.stdout, io.TextIOWrapper):
                sys.stdout.reconfigure(encoding="utf-8")  # whatever the locale says
            summary = asyncio.run(_export(settings, sys.stdout, since))
            sys.stdout.flush()
        else:
            with partial.open("w", encoding="utf-8") as out:
                summary = asyncio.run(_export(settings, out, since))
                out.flush()
                os.fsync(out.fileno())
            partial.replace(target)
    except (RedisError, *RETRYABLE) as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    finally:
        partial.unlink(missing_ok=True)  # gone already when the export completed
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(summary.lines.items()))
    print(f"exported {counts} to {output}", file=sys.stderr)
    if summary.queued or summary.dead:
        print(
            f"note: {summary.queued} queued and {summary.dead} dead-letter entries were not "
            "exported (work in flight: let the gateway drain before a migration)",
            file=sys.stderr,
        )
    return 0


def import_command(settings: Settings, path: str) -> int:
    """Validate the whole file, then restore it into the (empty) Redis."""
    _quiet(settings)
    source = Path(path)
    try:
        plan = validate(source)
        asyncio.run(_import(settings, source, plan))
    except ImportRefused as exc:
        print(f"import refused: {path}: {exc}", file=sys.stderr)
        return 1
    except (RedisError, *RETRYABLE) as exc:
        print(f"import failed: {exc}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(plan.lines.items()))
    print(f"imported {counts} from {path}")
    exported_for = plan.header.staff_chat if plan.header else settings.staff.chat_id
    if exported_for != settings.staff.chat_id:
        print(
            f"note: the topics belong to staff group {exported_for}, this config's is "
            f"{settings.staff.chat_id}: its customers get new topics there",
            file=sys.stderr,
        )
    return 0
