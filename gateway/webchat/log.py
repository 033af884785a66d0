"""A website visitor's conversation: an append-only Redis stream per visitor.

The stream is the platform for the website chat. Both sides append to it — the visitor
their messages (through :mod:`gateway.webchat.server`), delivery the operators'
replies, edits, deletions and read marks (through :class:`adapters.webchat.WebchatAdapter`)
— and the widget reads it from where it last was: the stream entry id is the message id
and the resume cursor, so a reconnect neither loses nor repeats anything. Every append
is announced on a pub/sub channel that wakes the visitor's open connections; they read
the stream itself, so a missed announcement (Redis restarted) only delays an update
until the next periodic look.

Entry fields: ``e`` what it is (``msg``, ``edit``, ``del``, ``read``), ``d`` who
(``in`` the visitor, ``out`` staff), ``t`` text, ``a`` the operator's name, ``f`` a
file (JSON: id, name, mime, size), ``c`` the visitor's client id of a message, ``r``
the message an edit, deletion or read mark refers to, ``at`` milliseconds.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis.commands.core import AsyncScript

from gateway.store import keys
from gateway.store.redis import Redis, text

KEEP_SECONDS = 180 * 86400
"""A visitor's history lives this long after their last message (either way)."""
MAX_ENTRIES = 2000
"""Older entries are trimmed: the widget shows at most this much history."""
FILE_SECONDS = 30 * 86400

# KEYS: the log, the client-id map, the visitor's profile. ARGV: cid, fields (JSON),
# maxlen, keep seconds. The visitor's message is appended once per client id: a resend
# after a lost ack returns the first append's id. The profile comes along (what the
# message carries to the contact), saving a round trip.
_APPEND_ONCE = """
local profile = redis.call('HGETALL', KEYS[3])
local known = redis.call('HGET', KEYS[2], ARGV[1])
if known then return {known, 0, profile} end
local fields = cjson.decode(ARGV[2])
local flat = {}
for k, v in pairs(fields) do flat[#flat + 1] = k; flat[#flat + 1] = v end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(flat))
redis.call('HSET', KEYS[2], ARGV[1], id)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {id, 1, profile}
"""


@dataclass(frozen=True, slots=True)
class StoredFile:
    data: bytes
    name: str
    mime: str
    owner: str
    """The visitor who uploaded it (``""``: staff sent it)."""


class VisitorLog:
    def __init__(self, redis: Redis, account: str) -> None:
        self.redis = redis
        self.account = account
        self._once: AsyncScript = redis.register_script(_APPEND_ONCE)

    def _log(self, visitor: str) -> str:
        return keys.webchat_log(self.account, visitor)

    async def visitor_said(
        self, visitor: str, cid: str, fields: dict[str, str]
    ) -> tuple[str, dict[str, str]]:
        """Append the visitor's message once per client id: its id (a resend's is the
        first one's), and the visitor's profile (:mod:`gateway.webchat.visitors`)."""
        entry = {**fields, "e": "msg", "d": "in", "c": cid, "at": str(_now_ms())}
        found = await self._once(
            keys=[
                self._log(visitor),
                keys.webchat_cids(self.account, visitor),
                keys.webchat_profile(self.account, visitor),
            ],
            args=[cid, json.dumps(entry), MAX_ENTRIES, KEEP_SECONDS],
        )
        entry_id, new, flat = text(found[0]), bool(int(found[1])), found[2]
        if new:
            await self._announce(visitor)
        profile = {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat), 2)}
        return entry_id, profile

    async def append(self, visitor: str, fields: dict[str, str]) -> str:
        """Append what staff did (a reply, an edit, a deletion, a read mark)."""
        log = self._log(visitor)
        async with self.redis.pipeline(transaction=True) as pipe:
            entry: dict[Any, Any] = {**fields, "at": str(_now_ms())}
            pipe.xadd(log, entry, maxlen=MAX_ENTRIES, approximate=True)
            pipe.expire(log, KEEP_SECONDS)
            entry_id, _ = await pipe.execute()
        await self._announce(visitor)
        return text(entry_id)

    async def since(
        self, visitor: str, after: str | None, count: int = 500
    ) -> list[dict[str, Any]]:
        """Entries after ``after`` (``None``: from the start), oldest first."""
        start = f"({after}" if after else "-"
        found: Any = await self.redis.xrange(self._log(visitor), min=start, count=count)
        return [_event(text(entry_id), fields) for entry_id, fields in found]

    async def exists(self, visitor: str, entry_id: str) -> bool:
        return bool(await self.redis.xrange(self._log(visitor), min=entry_id, max=entry_id))

    async def _announce(self, visitor: str) -> None:
        await self.redis.publish(keys.webchat_live(self.account, visitor), "1")

    # Files -------------------------------------------------------------------------------

    async def store_file(self, data: bytes, name: str, mime: str, owner: str = "") -> str:
        """Keep a file of the conversation; its random id is what links to it."""
        file_id = secrets.token_urlsafe(18)
        key = keys.webchat_file(self.account, file_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"data": data, "name": name, "mime": mime, "owner": owner})
            pipe.expire(key, FILE_SECONDS)
            await pipe.execute()
        return file_id

    async def file(self, file_id: str) -> StoredFile | None:
        found = await self.redis.hgetall(keys.webchat_file(self.account, file_id))
        if not found:
            return None
        data = found.get(b"data", b"")
        return StoredFile(
            data=data.encode() if isinstance(data, str) else data,
            name=text(found.get(b"name", b"file")),
            mime=text(found.get(b"mime", b"application/octet-stream")),
            owner=text(found.get(b"owner", b"")),
        )


def _now_ms() -> int:
    return int(time.time() * 1000)


def _event(entry_id: str, raw: dict[Any, Any]) -> dict[str, Any]:
    """A stream entry as the widget gets it."""
    fields = {text(k): text(v) for k, v in raw.items()}
    event: dict[str, Any] = {"id": entry_id, "kind": fields.get("e", "msg")}
    for short, name in (("d", "dir"), ("t", "text"), ("a", "author"), ("c", "cid"), ("r", "ref")):
        if short in fields:
            event[name] = fields[short]
    if "f" in fields:
        event["file"] = json.loads(fields["f"])
    event["at"] = int(fields.get("at", "0"))
    return event
