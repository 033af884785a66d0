"""Redis writes recorded now and executed later, inside one script.

A business-process step reads the state in one round trip and commits in one more:
the commit is a Lua script that checks the state is unchanged and only then runs the
recorded writes, all atomically. Delivery's "done, linked and acknowledged" is recorded
the same way and run by :meth:`gateway.bus.Bus.apply`, group-committed with other
handlers' writes. :class:`Writes` has the same method names and keyword
arguments as the redis-py pipeline methods the write paths use, so the same helpers
(``Bus.add``, ``Bus.ack``…) write into either.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any


def lua_run(argv: int) -> str:
    """Lua that runs, in order, the commands of :meth:`Writes.args` passed as the
    script's arguments from ``ARGV[argv]`` to the last."""
    return f"""local i = {argv}
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
"""


class Writes:
    """An ordered list of Redis commands. Their words are kept as given (text, bytes,
    integers, floats) and packed as a pipeline packs them when the script call is sent;
    anything else (``None``, a bool) is refused there, as a pipeline refuses it."""

    def __init__(self) -> None:
        self._args: list[Any] = []

    def _add(self, *args: Any) -> None:
        self._args.append(len(args))
        self._args += args

    def args(self) -> list[Any]:
        """The commands as script arguments, for :func:`lua_run`'s loop: each one's
        number of words, then the words. (No JSON to build here and decode in Lua: a
        step's writes are kilobytes, and ``cjson.decode`` cost Redis ~9 µs a step.)"""
        return self._args

    @property
    def commands(self) -> list[list[Any]]:
        """The commands recorded so far, each as its words."""
        found, i = [], 0
        while i < len(self._args):
            n = int(self._args[i])
            found.append(self._args[i + 1 : i + 1 + n])
            i += n + 1
        return found

    def set(self, name: str, value: Any, ex: int | timedelta | None = None) -> None:
        if isinstance(ex, timedelta):
            ex = int(ex.total_seconds())
        self._add("SET", name, value, *(("EX", ex) if ex is not None else ()))

    def xadd(
        self,
        name: str,
        fields: Mapping[Any, Any],
        maxlen: int | None = None,
        approximate: bool = True,
        minid: str | None = None,
    ) -> None:
        trim: tuple[Any, ...] = ()
        if maxlen is not None:
            trim = ("MAXLEN", "~" if approximate else "=", maxlen)
        elif minid is not None:
            trim = ("MINID", "~" if approximate else "=", minid)
        pairs = [part for item in fields.items() for part in item]
        self._add("XADD", name, *trim, "*", *pairs)

    def hset(
        self,
        name: str,
        key: str | None = None,
        value: Any = None,
        mapping: Mapping[str, Any] | None = None,
    ) -> None:
        pairs = [] if key is None else [key, value]
        pairs += [part for item in (mapping or {}).items() for part in item]
        self._add("HSET", name, *pairs)

    def expire(self, name: str, time: int) -> None:
        self._add("EXPIRE", name, time)

    def xack(self, name: str, group: str, *ids: str) -> None:
        self._add("XACK", name, group, *ids)

    def xdel(self, name: str, *ids: str) -> None:
        self._add("XDEL", name, *ids)

    def zadd(
        self, name: str, mapping: Mapping[str, float], nx: bool = False, xx: bool = False
    ) -> None:
        flags = ("NX",) if nx else ("XX",) if xx else ()
        pairs = [part for member, score in mapping.items() for part in (int(score), member)]
        self._add("ZADD", name, *flags, *pairs)

    def zrem(self, name: str, *members: str) -> None:
        self._add("ZREM", name, *members)

    def sadd(self, name: str, *values: Any) -> None:
        self._add("SADD", name, *values)

    def lpush(self, name: str, *values: Any) -> None:
        self._add("LPUSH", name, *values)

    def ltrim(self, name: str, start: int, end: int) -> None:
        self._add("LTRIM", name, start, end)

    def delete(self, *names: str) -> None:
        self._add("DEL", *names)
