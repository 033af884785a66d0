"""Connecting: plain URLs, Redis Sentinel with a real sentinel process, and commands
packed in C exactly as redis-py packs them."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

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
        assert type(client.connection_pool.make_connection()).__name__ != "Connection"
        await close(client)
        sentinel.terminate()
        sentinel.wait(timeout=10)


def test_rejects_unknown_scheme() -> None:
    from gateway.config import RedisSettings

    with pytest.raises(ValueError, match="must start with"):
        RedisSettings(url="http://localhost")


arguments = st.lists(
    st.text()
    | st.binary()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["SET", "CONFIG GET", b"XADD", b"CLIENT SETNAME"]), args=arguments)
def test_commands_are_packed_byte_for_byte_as_redis_py_packs_them(
    name: str | bytes, args: list[str | bytes | int | float]
) -> None:
    client = connect("redis://127.0.0.1:1/0")
    packed = client.connection_pool.make_connection()
    plain = Connection()
    assert type(packed) is not Connection  # the C packer is in place
    command = (name, *args)
    assert b"".join(packed.pack_command(*command)) == b"".join(plain.pack_command(*command))


def test_what_the_c_packer_refuses_redis_py_packs_or_refuses() -> None:
    packed = connect("redis://127.0.0.1:1/0").connection_pool.make_connection()
    view = ("SET", "k", memoryview(b"value"))
    assert b"".join(packed.pack_command(*view)) == b"".join(Connection().pack_command(*view))
    with pytest.raises(DataError, match="bool"):
        packed.pack_command("SET", "k", True)
