"""Many small commands as one: a batch runs inside Redis and travels as one JSON string.

An export reads about twenty small values per contact and an import writes about as
many per line; sent one by one (even pipelined) the client's own RESP encoding and
parsing costs more than Redis's work (measured by ``bench/export.py``). Here a batch of
commands is one ``EVALSHA``: the commands go in as a JSON array, run with
``redis.call``, and (for reads) the replies come back as one JSON string that
``json.loads`` parses at C speed. As elsewhere in the gateway (``gateway.contacts``),
the scripts name their keys in ARGV: a single Redis or a Sentinel master, not a Cluster.

Batches are kept small enough that Redis is never blocked for long (a few ms), so an
export of a live gateway does not stall it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gateway.store.redis import Redis

Command = tuple[Any, ...]

_GATHER = """
local out = {}
for i, command in ipairs(cjson.decode(ARGV[1])) do
  out[i] = redis.call(unpack(command))
end
return cjson.encode(out)
"""
_APPLY = """
local n = 0
for _, command in ipairs(cjson.decode(ARGV[1])) do
  redis.call(unpack(command))
  n = n + 1
end
return n
"""
MAX_ARGS = 4000
"""Lua's ``unpack`` takes a few thousand values at most: longer commands go directly."""


def _encode(calls: Sequence[Command]) -> str:
    """Every argument as text, as Redis takes it (a Lua number would be rounded)."""
    return json.dumps(
        [
            [a if isinstance(a, str) else a.decode() if isinstance(a, bytes) else str(a) for a in c]
            for c in calls
        ],
        ensure_ascii=False,
    )


def _shape(name: str, value: Any) -> Any:
    """A reply as redis-py would have parsed it (Lua has no nil in arrays, and an empty
    table is encoded as ``{}``)."""
    if value is False:
        return None
    if value == {}:
        value = []
    match name:
        case "HGETALL":
            return dict(zip(value[::2], value[1::2], strict=True))
        case "XRANGE":
            return [(entry, dict(zip(flat[::2], flat[1::2], strict=True))) for entry, flat in value]
        case "ZSCORE":
            return float(value)
    return value


class Batches:
    def __init__(self, redis: Redis) -> None:
        self._gather = redis.register_script(_GATHER)
        self._apply = redis.register_script(_APPLY)

    async def read(self, calls: Sequence[Command]) -> list[Any]:
        """The replies of read-only ``calls``, in order."""
        if not calls:
            return []
        raw = await self._gather(args=[_encode(calls)])
        replies = json.loads(raw)
        if replies == {}:
            replies = []
        return [_shape(call[0], reply) for call, reply in zip(calls, replies, strict=True)]

    async def write(self, calls: Sequence[Command]) -> None:
        """Run write ``calls`` in one round trip (atomically, as any script)."""
        if calls:
            await self._apply(args=[_encode(calls)])
