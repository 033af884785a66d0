"""Connecting: plain URLs, and Redis Sentinel with a real sentinel process."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from gateway.store.redis import EmbeddedRedis, close, connect, redis_server_binary
from tests.conftest import free_port


async def test_sentinel_url_finds_the_master(
    redis_server: EmbeddedRedis, redis_url: str, tmp_path: Path
) -> None:
    master_port = redis_server.port
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor mymaster 127.0.0.1 {master_port} 1\n"
    )
    sentinel = subprocess.Popen(
        [redis_server_binary(), str(conf), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = connect(f"redis+sentinel://127.0.0.1:{port}/mymaster?db=0")
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                await client.set("through-sentinel", "yes")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        direct = connect(redis_url)
        assert await direct.get("through-sentinel") == b"yes"
        await direct.aclose()
    finally:
        await close(client)
        sentinel.terminate()
        sentinel.wait(timeout=10)


def test_rejects_unknown_scheme() -> None:
    from gateway.config import RedisSettings

    with pytest.raises(ValueError, match="must start with"):
        RedisSettings(url="http://localhost")
