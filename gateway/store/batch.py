"""Group commit: Lua script calls from concurrent handlers share round trips.

Every hot step of the gateway is one script call (publish a webhook once, resolve a
contact, read and commit a business-process step, finish a delivery, count an event)
or one small set of reads (what a staff post needs to know). Under load dozens of
handlers make such calls at the same moment, and each round trip costs the client more
CPU than the work costs Redis. :func:`batched` queues a script call and :func:`read` a
set of reads; whatever arrives while one batch is on the wire goes out together as the
next batch, one pipeline without MULTI. Each script stays atomic on its own and each
caller gets its own reply (or its own error); an idle gateway sends a lone call at
once, so latency does not grow — under load it shrinks, since fewer round trips wait
in line.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from gateway.store.redis import Redis, one_deadline, reply_timeout

Arg = str | int | float | bytes


class Reads:
    """Read commands recorded to be sent in a group commit, by the names of redis-py's
    pipeline methods (so helpers can queue reads into either); replies come back in
    order, converted as redis-py converts them (``SMEMBERS`` a set, ``EXISTS`` an int…)."""

    def __init__(self) -> None:
        self.commands: list[tuple[Arg, ...]] = []

    def get(self, name: str) -> None:
        self.commands.append(("GET", name))

    def exists(self, *names: str) -> None:
        self.commands.append(("EXISTS", *names))

    def scard(self, name: str) -> None:
        self.commands.append(("SCARD", name))

    def smembers(self, name: str) -> None:
        self.commands.append(("SMEMBERS", name))


@dataclass(frozen=True, slots=True)
class _Call:
    script: AsyncScript | None  # None: ``args`` are the commands of a Reads
    keys: Sequence[str]
    args: Sequence[Any]
    future: asyncio.Future[Any]


class GroupCommit:
    """The batches of one Redis client."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.deadline = reply_timeout(redis)
        """The whole round trip's deadline (one timer, not one per reply)."""
        self._pending: list[_Call] = []
        self._flusher: asyncio.Task[None] | None = None

    def call(
        self, script: AsyncScript | None, keys: Sequence[str], args: Sequence[Any]
    ) -> asyncio.Future[Any]:
        """Queue ``script`` (or, with ``None``, the commands in ``args``) for the next
        batch; its reply (or error) when it ran."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(_Call(script, keys, args, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        while self._pending:
            # A caller cancelled before its batch left does not have its script run.
            batch = [call for call in self._pending if not call.future.done()]
            self._pending = []
            if not batch:
                continue
            try:
                results = await self._run(batch)
            except Exception as exc:  # Redis unreachable: every caller decides
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            for item, result in zip(batch, results, strict=True):
                if item.future.done():
                    continue  # its caller was cancelled meanwhile
                if isinstance(result, Exception):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)

    async def _run(self, batch: list[_Call], *, reload: bool = True) -> list[Any]:
        """Each call's result: a script's reply, a Reads' list of replies (or the
        first error among them), in order."""
        commands: list[tuple[Arg, ...]] = []
        for item in batch:
            if item.script is None:
                commands += item.args
            else:
                commands.append(
                    ("EVALSHA", item.script.sha, len(item.keys), *item.keys, *item.args)
                )
        async with one_deadline(self.deadline):
            replies = await self._exchange(commands)
        results: list[Any] = []
        at = 0
        for item in batch:
            if item.script is None:
                got = replies[at : at + len(item.args)]
                for n, command in enumerate(item.args):
                    if command[0] == "SMEMBERS" and isinstance(got[n], list):
                        got[n] = set(got[n])  # as redis-py returns it
                at += len(item.args)
                error = next((r for r in got if isinstance(r, Exception)), None)
                results.append(got if error is None else error)
            else:
                results.append(replies[at])
                at += 1
        failed = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if failed and reload:
            # A restarted Redis forgot the scripts (they are not persisted). Those
            # calls did nothing, so loading the scripts and running just them again is
            # safe; the calls that succeeded keep their results.
            scripts = {s.sha: s for i in failed if (s := batch[i].script) is not None}
            for script in scripts.values():
                await self.redis.script_load(script.script)
            again = await self._run([batch[i] for i in failed], reload=False)
            for i, result in zip(failed, again, strict=True):
                results[i] = result
        return results

    async def _exchange(self, commands: list[tuple[Arg, ...]]) -> list[Any]:
        """Send ``commands`` in one write and read their replies (an error reply in its
        place), on one connection of the client's pool.

        This is what a redis-py pipeline without MULTI does, without its per-command
        bookkeeping (response callbacks looked up by name, ``HIMPORT`` preparation,
        argument copies): a batch is a few scripts of ~100 arguments. A connection that
        fails or is cancelled mid-exchange is dropped, never reused with replies still
        on their way; the callers get the error (as from a pipeline: the client does not
        retry) and retry with their idempotent calls.
        """
        pool = self.redis.connection_pool
        connection: Any = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.send_packed_command(connection.pack_commands(commands))
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as exc:
                    replies.append(exc)
            return replies
        except BaseException:
            await connection.disconnect(nowait=True)
            raise
        finally:
            await pool.release(connection)


_GROUPS: weakref.WeakKeyDictionary[Redis, GroupCommit] = weakref.WeakKeyDictionary()


def group_commit(redis: Redis) -> GroupCommit:
    """The one :class:`GroupCommit` of ``redis`` (every user of a client shares it)."""
    found = _GROUPS.get(redis)
    if found is None:
        found = _GROUPS[redis] = GroupCommit(redis)
    return found


def batched(
    script: AsyncScript, *, keys: Sequence[str] = (), args: Sequence[Arg] = ()
) -> asyncio.Future[Any]:
    """``script(keys=…, args=…)`` in the next group commit of the client it is
    registered with."""
    client: Redis = script.registered_client  # type: ignore[assignment]
    return group_commit(client).call(script, keys, args)


def read(redis: Redis, reads: Reads) -> asyncio.Future[list[Any]]:
    """The replies to ``reads``, sent in the next group commit of ``redis``. Not a
    snapshot: other calls of the batch may run between them (as in any pipeline)."""
    return group_commit(redis).call(None, (), reads.commands)
