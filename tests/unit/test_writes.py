"""Recorded writes (``gateway.store.writes``) run by the Lua loop do what the same calls
do through a redis-py pipeline, argument for argument."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.exceptions import DataError

from gateway.store.redis import Redis
from gateway.store.writes import Writes, lua_run

RUN = lua_run(2) + "return redis.call('GET', ARGV[1])\n"
"""The loop after one argument of its own (as the process commit has four)."""

values = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
    st.binary(max_size=20).map(lambda b: b.hex().encode()),
    st.integers(-(10**12), 10**12),
    st.just(""),
    st.just("x" * 5000),
)


def writes_of(key: Callable[[str], str], v: list[Any]) -> Callable[[Any], None]:
    """Every kind of write the gateway records, with ``v``'s values."""

    def build(pipe: Any) -> None:
        pipe.set(key("s"), v[0], ex=timedelta(hours=1))
        pipe.set(key("plain"), v[1])
        pipe.hset(key("h"), "field", v[2], mapping={"a": v[3], "b": v[4]})
        pipe.sadd(key("set"), v[0], v[1])
        pipe.zadd(key("z"), {"m1": 5, "m2": 7})
        pipe.zadd(key("z"), {"m1": 1}, nx=True)
        pipe.zrem(key("z"), "m2")
        pipe.lpush(key("l"), v[2], v[3])
        pipe.ltrim(key("l"), 0, 0)
        pipe.xadd(key("x"), {"e": v[4], "f": v[0]}, maxlen=100)
        pipe.expire(key("h"), 3600)
        pipe.delete(key("plain"))

    return build


async def contents(redis: Redis, prefix: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for raw in sorted(await redis.keys(f"{prefix}:*")):
        name = raw.decode().removeprefix(prefix)
        kind = (await redis.type(raw)).decode()
        if kind == "string":
            found[name] = await redis.get(raw)
        elif kind == "hash":
            found[name] = await redis.hgetall(raw)
        elif kind == "set":
            found[name] = await redis.smembers(raw)
        elif kind == "zset":
            found[name] = await redis.zrange(raw, 0, -1, withscores=True)
        elif kind == "list":
            found[name] = await redis.lrange(raw, 0, -1)
        else:
            found[name] = [fields for _, fields in await redis.xrange(raw)]
        found[name + ":ttl"] = await redis.ttl(raw) > 0
    return found


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(v=st.lists(values, min_size=5, max_size=5))
async def test_recorded_writes_do_what_the_pipeline_does(redis: Redis, v: list[Any]) -> None:
    await redis.flushdb()
    async with redis.pipeline(transaction=True) as pipe:
        writes_of(lambda k: f"p:{k}", v)(pipe)
        await pipe.execute()
    recorded = Writes()
    writes_of(lambda k: f"w:{k}", v)(recorded)
    script = redis.register_script(RUN)
    assert await script(args=["w:s", *recorded.args()]) is not None
    assert await contents(redis, "w") == await contents(redis, "p")
    assert len(recorded.commands) == 12


async def test_no_writes_run_nothing(redis: Redis) -> None:
    await redis.set("w:s", "kept")
    script = redis.register_script(RUN)
    assert await script(args=["w:s", *Writes().args()]) == b"kept"


async def test_words_go_as_a_pipeline_sends_them_and_what_it_refuses_is_refused(
    redis: Redis,
) -> None:
    script = redis.register_script(RUN)
    raw = Writes()
    raw.set("w:bytes", b"\xff\xfe not UTF-8")  # bytes are sent as they are
    raw.hset("w:h", mapping={"n": 7, "f": 0.5})
    await script(args=["w:bytes", *raw.args()])
    assert await redis.get("w:bytes") == b"\xff\xfe not UTF-8"
    assert await redis.hgetall("w:h") == {b"n": b"7", b"f": b"0.5"}
    for wrong in (True, None):
        refused = Writes()
        refused.set("w:wrong", wrong)  # not written as "True" or "None"
        with pytest.raises(DataError):
            await script(args=["w:wrong", *refused.args()])
    assert await redis.exists("w:wrong") == 0
