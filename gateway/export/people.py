"""Exporting contacts: each person (a contact and those merged into it) as one group,
followed by their processes and their history.

Contacts are walked by id, ``1 … seq:contact`` (ids come from that counter), a batch
of ids per handful of round trips (each a script: :mod:`gateway.export.lua`): no
``KEYS``, memory bounded by the batch, and no contact seen twice (``SCAN`` may return a
key twice). Contacts created while the export runs (ids above the counter read at the
start) are left out; the ``state`` line's counter, read at the end, covers their ids.
A merged person is written as one group — the surviving contact, then every contact
merged into it — so ``--since`` keeps or drops a person whole and a restored merge
never points at a missing contact.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.export.lua import Command
from gateway.export.reader import PAGE, Reader, as_score, decode
from gateway.export.records import TIMER_KINDS
from gateway.store import keys
from gateway.store.redis import text

FIRST_PAGE = 100
"""History entries per contact read with its batch (more: one XRANGE per page)."""
_TASK_TIMES = ("opened_at", "closed_at", "last_inbound_at", "answered_at", "seen_at")


@dataclass(slots=True)
class _Contact:
    """Everything read for one contact of a batch."""

    fields: dict[str, str]
    sets: list[list[str]] = field(default_factory=list)
    current: Any = None
    archive: list[Any] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    first_page: list[tuple[str, dict[str, str]]] = field(default_factory=list)


class ContactReader(Reader):
    """The contacts half of an export (:class:`gateway.export.dump.Exporter` adds the
    rest)."""

    async def contacts(self) -> None:
        """Every contact, by id, in batches."""
        self.days = sorted([k.rsplit(":", 1)[1] async for k in self._scan("seq:process:*")])
        top = int(await self.redis.get(keys.CONTACT_SEQ) or 0)
        for start in range(1, top + 1, self.batch):
            await self._contacts([str(i) for i in range(start, min(top + 1, start + self.batch))])

    async def _contacts(self, ids: list[str]) -> None:
        found = await self._run([("HGETALL", keys.contact(c)) for c in ids])
        data = {cid: decode(raw) for cid, raw in zip(ids, found, strict=True) if raw}
        merged = [(cid, f["merged_into"]) for cid, f in data.items() if "merged_into" in f]
        nested: set[str] = set()
        if merged:
            checks = await self._run(
                [
                    call
                    for cid, into in merged
                    for call in (
                        ("SISMEMBER", keys.contact_absorbed(into), cid),
                        ("EXISTS", keys.contact(into)),
                    )
                ]
            )
            for i, (cid, _) in enumerate(merged):
                if checks[2 * i] and checks[2 * i + 1]:
                    nested.add(cid)  # written with the contact it was merged into
        families = await self._families([c for c in data if c not in nested], data)
        members = [m for family in families for m in family]
        details = await self._details(members, data)
        for family in families:
            if self.since_ms is None or await self._any_active(family, details):
                await self._family(family, details)

    async def _families(self, roots: list[str], data: dict[str, dict[str, str]]) -> list[list[str]]:
        """Each root with the contacts merged into it, transitively (breadth first)."""
        families = {root: [root] for root in roots}
        frontier = [(root, root) for root in roots]
        seen = set(roots)
        while frontier:
            absorbed = await self._run(
                [("SMEMBERS", keys.contact_absorbed(c)) for _, c in frontier]
            )
            candidates = [
                (root, parent, text(child))
                for (root, parent), children in zip(frontier, absorbed, strict=True)
                for child in sorted(children, key=text)
                if text(child) not in seen
            ]
            if not candidates:
                break
            found = await self._run([("HGETALL", keys.contact(c)) for *_, c in candidates])
            frontier = []
            for (root, parent, child), raw in zip(candidates, found, strict=True):
                fields = decode(raw)
                if fields.get("merged_into") == parent and child not in seen:
                    seen.add(child)
                    data[child] = fields
                    families[root].append(child)
                    frontier.append((root, child))
        return list(families.values())

    async def _details(
        self, members: list[str], data: dict[str, dict[str, str]]
    ) -> dict[str, _Contact]:
        since = f"{self.since_ms}-0" if self.since_ms is not None else "-"
        others = [x.chat_id for x in self.settings.all_lines if x.chat_id != self.chat]
        per = 22 + 2 * len(self.days) + 5 * len(others)

        calls: list[Command] = []
        for cid in members:
            card = keys.card(self.chat, cid)
            calls += [
                ("SMEMBERS", keys.contact_identities(cid)),
                ("SMEMBERS", keys.contact_phones(cid)),
                ("SMEMBERS", keys.contact_emails(cid)),
                ("SMEMBERS", keys.contact_absorbed(cid)),
                ("SMEMBERS", keys.contact_distinct(cid)),
                ("GET", keys.process(cid)),
                ("LLEN", keys.process_archive(cid)),
                ("GET", keys.topic(self.chat, cid)),
                ("GET", card),
                ("GET", f"{card}:shown"),
                ("PTTL", f"{card}:shown"),
                ("GET", keys.reminder(self.chat, cid)),
                *[("ZSCORE", keys.TIMERS, f"{kind}:{cid}") for kind in sorted(TIMER_KINDS)],
                ("ZSCORE", keys.AWAITING, cid),
                ("ZSCORE", keys.OWNED, cid),
            ]
            for day in self.days:
                calls += [
                    ("GET", keys.process_number(cid, day)),
                    ("PTTL", keys.process_number(cid, day)),
                ]
            calls += [
                ("GET", keys.contact_line(cid)),
                ("GET", keys.line_start(cid)),
                ("PTTL", keys.line_start(cid)),
                ("SMEMBERS", keys.watchers(cid)),
            ]
            for chat in others:
                card = keys.card(chat, cid)
                calls += [
                    ("GET", keys.topic(chat, cid)),
                    ("GET", card),
                    ("GET", f"{card}:shown"),
                    ("PTTL", f"{card}:shown"),
                    ("GET", keys.reminder(chat, cid)),
                ]
            calls.append(("XRANGE", keys.history(cid), since, "+", "COUNT", FIRST_PAGE))
        raw = await self._timed(calls)
        details: dict[str, _Contact] = {}
        for i, cid in enumerate(members):
            r = raw[i * per : (i + 1) * per]
            c = _Contact(fields=data[cid], sets=[sorted(text(v) for v in s) for s in r[0:5]])
            c.current = json.loads(r[5]) if r[5] is not None else None
            c.archive = [None] * int(r[6])  # read below, a bounded amount at a time
            topic, card, shown, shown_ttl, reminder = r[7:12]
            timers = dict(zip(sorted(TIMER_KINDS), r[12:15], strict=True))
            numbers = {
                day: {"value": text(r[17 + 2 * j]), "expires_at": self._expiry(r[18 + 2 * j])}
                for j, day in enumerate(self.days)
                if r[17 + 2 * j] is not None
            }
            at = 17 + 2 * len(self.days)
            line, start, start_ttl, watchers = r[at : at + 4]
            topics = {
                str(chat): self._topic(*r[at + 4 + 5 * j : at + 9 + 5 * j])
                for j, chat in enumerate(others)
            }
            c.extra = {
                "line": text(line) if line is not None else None,
                "line_start": {"value": text(start), "expires_at": self._expiry(start_ttl)}
                if start is not None
                else None,
                "topics": {chat: t for chat, t in topics.items() if t is not None},
                "watchers": sorted(text(w) for w in watchers),
                "topic": self._topic(topic, card, shown, shown_ttl, reminder),
                "timers": {k: as_score(v) for k, v in timers.items() if v is not None},
                "awaiting": as_score(r[15]),
                "owned": as_score(r[16]),
                "numbers": numbers,
            }
            c.first_page = [(text(entry), decode(f)) for entry, f in r[per - 1]]
            details[cid] = c
        await self._archives(details)
        await self._lookups(members, details)
        return details

    async def _archives(self, details: dict[str, _Contact]) -> None:
        """The archived processes (up to ``PROCESS_ARCHIVE_LIMIT`` per contact), read a
        few thousand at a time: one script's reply stays small and Redis responsive."""
        waiting = [(cid, c) for cid, c in details.items() if c.archive]
        while waiting:
            chunk: list[tuple[str, _Contact]] = []
            total = 0
            while waiting and (not chunk or total + len(waiting[0][1].archive) <= PAGE * 2):
                chunk.append(waiting.pop(0))
                total += len(chunk[-1][1].archive)
            raw = await self._run(
                [("LRANGE", keys.process_archive(cid), 0, -1) for cid, _ in chunk]
            )
            for (_, contact), found in zip(chunk, raw, strict=True):
                contact.archive = [json.loads(p) for p in found]

    def _topic(self, thread: Any, card: Any, shown: Any, ttl: int, reminder: Any) -> Any:
        if thread is None:
            return None
        topic: dict[str, Any] = {"thread": int(thread)}
        if card is not None:
            topic["card"] = text(card)
        if shown is not None:
            topic["card_shown"] = {"value": text(shown), "expires_at": self._expiry(ttl)}
        if reminder is not None:
            topic["reminder"] = text(reminder)
        return topic

    async def _lookups(self, members: list[str], details: dict[str, _Contact]) -> None:
        """Which identity, phone and e-mail lookups resolve to each contact."""
        asks = [
            (cid, kind, value, key)
            for cid in members
            for kind, values, index in (
                ("identities", details[cid].sets[0], lambda v: keys.identity(*v.split(":", 1))),
                ("phones", details[cid].sets[1], keys.phone),
                ("emails", details[cid].sets[2], keys.email),
            )
            for value in values
            for key in (index(value),)
        ]
        owners = await self._run([("GET", key) for *_, key in asks])
        for (cid, kind, value, _), owner in zip(asks, owners, strict=True):
            if owner is not None and text(owner) == cid:
                details[cid].extra.setdefault("lookups", {}).setdefault(kind, []).append(value)

    async def _any_active(self, family: list[str], details: dict[str, _Contact]) -> bool:
        for cid in family:
            if await self._active(cid, details[cid]):
                return True
        return False

    async def _active(self, cid: str, contact: _Contact) -> bool:
        """Anything of the contact's on or after ``--since``: a process, or a message
        (read on only while the pages hold nothing that recent)."""
        if any(self._recent(p) for p in [contact.current, *contact.archive] if p is not None):
            return True
        async for page in self._pages(cid, contact.first_page):
            if any(self._in_time(fields) for _, fields in page):
                return True
        return False

    def _recent(self, process: dict[str, Any]) -> bool:
        """The process was opened or touched on or after ``--since``."""
        if self.since_at is None:
            return True
        times = [process.get("opened_at")]
        times += [task.get(name) for task in process.get("tasks", []) for name in _TASK_TIMES]
        return any(datetime.fromisoformat(t) >= self.since_at for t in times if t)

    async def _family(self, family: list[str], details: dict[str, _Contact]) -> None:
        for cid in family:
            c = details[cid]
            line: dict[str, Any] = {"type": "contact", "id": cid, "fields": c.fields}
            for name, values in zip(
                ("identities", "phones", "emails", "absorbed", "distinct"), c.sets, strict=True
            ):
                if values:
                    line[name] = values
            line |= {k: v for k, v in c.extra.items() if v}
            self._write(line)
        for cid in family:
            c = details[cid]
            if c.current is not None and self._recent(c.current):
                self._write(
                    {"type": "process", "contact": cid, "current": True, "process": c.current}
                )
            for process in c.archive:
                if self._recent(process):
                    self._write(
                        {"type": "process", "contact": cid, "current": False, "process": process}
                    )
        for cid in family:
            async for page in self._pages(cid, details[cid].first_page):
                self._messages(cid, page)

    async def _pages(
        self, cid: str, first: list[tuple[str, dict[str, str]]]
    ) -> AsyncIterator[list[tuple[str, dict[str, str]]]]:
        """The contact's history from ``--since`` on, a page at a time (the first was
        read with the batch)."""
        page, size = first, FIRST_PAGE
        yield page
        while len(page) == size:
            size = PAGE
            after = f"({page[-1][0]}"
            (raw,) = await self._run([("XRANGE", keys.history(cid), after, "+", "COUNT", PAGE)])
            page = [(text(i), decode(f)) for i, f in raw]
            yield page

    def _in_time(self, fields: dict[str, str]) -> bool:
        """A message's time is its ``at`` (when it was received). Entries are read from
        the stream id of ``--since`` on: an entry is appended after its message was
        received, so nothing older by id can be recent by ``at``."""
        if self.since_at is None:
            return True
        try:
            return datetime.fromisoformat(fields["at"]) >= self.since_at
        except (KeyError, ValueError):
            return True  # no readable time: keep it rather than lose it

    def _messages(self, cid: str, page: Iterable[tuple[str, dict[str, str]]]) -> None:
        for entry_id, fields in page:
            if self._in_time(fields):
                self._write({"type": "message", "contact": cid, "id": entry_id, "fields": fields})
