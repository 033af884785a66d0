"""Writing an export: the store walked in batches, one JSON object per line.

First every person with their processes and history (:mod:`gateway.export.people`);
then what belongs to no contact — the message map, operators, other features' keys,
the counters — each walked with ``SCAN`` a page at a time; last the ``end`` line.
Memory is bounded by a batch, whatever the size of the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.export.families import RAW
from gateway.export.people import ContactReader
from gateway.export.reader import PAGE, as_score, decode
from gateway.export.records import FORMAT, SCHEMA_VERSION, TIMER_KINDS
from gateway.store import keys
from gateway.store.redis import text


@dataclass(frozen=True, slots=True)
class Summary:
    lines: dict[str, int]
    queued: int
    """Entries waiting in the work streams (not exported: in flight)."""
    dead: int
    """Dead letters (not exported)."""


class Exporter(ContactReader):
    """The whole export, line by line, into ``out``."""

    async def run(self) -> Summary:
        self._write(
            {
                "type": "header",
                "format": FORMAT,
                "schema": SCHEMA_VERSION,
                "exported_at": datetime.now(UTC).isoformat(),
                "since": self.since.isoformat() if self.since else None,
                "prefix": keys.PREFIX,
                "staff_chat": self.chat,
            }
        )
        await self.contacts()
        await self._links()
        await self._operators()
        await self._raw()
        await self._state()
        self._write({"type": "end", "lines": sum(self.lines.values())})
        queued, dead = await self._in_flight()
        return Summary(dict(self.lines), queued, dead)

    async def _links(self) -> None:
        """The message map (reply links, edits), page by page; with ``--since``, only
        links made since (their age is what their 180-day lifetime has used up)."""
        lifetime = int(keys.MESSAGE_MAP_TTL.total_seconds() * 1000)
        page: list[str] = []
        async for key in self._scan("msg:*"):
            page.append(key)
            if len(page) == PAGE:
                await self._link_page(page, lifetime)
                page = []
        if page:
            await self._link_page(page, lifetime)

    async def _link_page(self, page: list[str], lifetime: int) -> None:
        raw = await self._timed(self._with_ttl("HGETALL", page))
        for i, key in enumerate(page):
            fields, expires = decode(raw[2 * i]), self._expiry(raw[2 * i + 1])
            if not fields:
                continue  # expired meanwhile
            if (
                self.since_ms is not None
                and expires is not None
                and expires - lifetime < self.since_ms
            ):
                continue
            line = {"type": "link", "key": key.removeprefix("msg:"), "fields": fields}
            self._write(line | ({"expires_at": expires} if expires else {}))

    async def _operators(self) -> None:
        presence = decode(await self.redis.hgetall(keys.PRESENCE))
        active = decode(await self.redis.hgetall(keys.ACTIVE))
        idle = {
            text(member).removeprefix(f"{keys.IDLE}:"): as_score(value)
            async for member, value in self.redis.zscan_iter(keys.TIMERS, match=f"{keys.IDLE}:*")
        }
        for operator in sorted({*presence, *active, *idle}):
            line: dict[str, Any] = {"type": "operator", "id": operator}
            for name, value in (
                ("presence", presence.get(operator)),
                ("active", active.get(operator)),
                ("idle_timer", idle.get(operator)),
            ):
                if value is not None:
                    line[name] = value
            self._write(line)

    async def _raw(self) -> None:
        """Other features' keys, verbatim (``families.RAW``); with ``--since``, daily
        statistics from that day on."""
        read = {"hash": "HGETALL", "string": "GET", "set": "SMEMBERS"}
        for family, kind in RAW.items():
            found = sorted([k async for k in self._scan(f"{family}*")])
            if self.since is not None and family == "stats:day:":
                found = [k for k in found if k.removeprefix(family) >= self.since.isoformat()]
            for start in range(0, len(found), PAGE):
                page = found[start : start + PAGE]
                values = await self._timed(self._with_ttl(read[kind], page))
                for i, key in enumerate(page):
                    value = values[2 * i]
                    if not value:
                        continue  # expired meanwhile
                    if kind == "hash":
                        value = decode(value)
                    elif kind == "set":
                        value = sorted(text(v) for v in value)
                    else:
                        value = text(value)
                    line = {"type": "raw", "key": key, "kind": kind, "value": value}
                    expires = self._expiry(values[2 * i + 1])
                    self._write(line | ({"expires_at": expires} if expires else {}))

    async def _state(self) -> None:
        state: dict[str, Any] = {
            "type": "state",
            "contact_seq": int(await self.redis.get(keys.CONTACT_SEQ) or 0),
        }
        for name, pattern, ttl in (
            ("process_seq", "seq:process:*", True),
            ("round_robin", "rr:*", False),
            ("cursors", "cursor:*", False),
            ("suggested", "suggested:*", True),
        ):
            found = sorted([k async for k in self._scan(pattern)])
            values = await self._timed(self._with_ttl("GET", found))
            kept: dict[str, Any] = {}
            for i, key in enumerate(found):
                value, left = values[2 * i], values[2 * i + 1]
                if value is None:
                    continue
                short = key.split(":", 1)[1] if name != "process_seq" else key.rsplit(":", 1)[1]
                kept[short] = (
                    {"value": text(value), "expires_at": self._expiry(left)} if ttl else text(value)
                )
            if kept:
                state[name] = kept
        known = (*TIMER_KINDS, keys.IDLE)
        other = {
            text(member): as_score(value)
            async for member, value in self.redis.zscan_iter(keys.TIMERS)
            if text(member).split(":", 1)[0] not in known
        }
        if other:
            state["timers"] = dict(sorted(other.items()))
        self._write(state)

    async def _in_flight(self) -> tuple[int, int]:
        partitions = range(self.settings.bus.partitions)
        lengths = await self._run(
            [("XLEN", keys.stream(f, n)) for f in keys.FAMILIES for n in partitions]
            + [("XLEN", keys.dead_letters(f)) for f in keys.FAMILIES]
        )
        dead = sum(lengths[-len(keys.FAMILIES) :])
        return sum(lengths) - dead, dead
