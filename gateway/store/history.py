"""Every message in and out, per contact: the person's timeline across messengers.

One Redis stream per contact, appended in the same transaction that handles the
message (so it is there exactly when the message is), trimmed by age with ``MINID``;
the same transaction adds ``message.inbound`` / ``message.outbound`` to the events
stream (:mod:`gateway.store.events`).
Entries keep what a timeline and a search need — direction, time, messenger, kind, text
(shortened), operator, process and task, platform message id, file id — not the bytes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio.client import Pipeline

from gateway import process as bp
from gateway.model import Content
from gateway.store import keys
from gateway.store.events import record_event
from gateway.store.redis import Redis, text
from gateway.store.writes import Writes

TEXT_KEPT = 1000
"""Characters of a message's text kept in the history."""
WORDS_INDEXED = 30
"""Distinct words of a message that go into the /find index."""


def words(text: str) -> list[str]:
    """The searchable words of a text: letters and digits, folded, 3-32 long."""
    found: dict[str, None] = {}
    for raw in re.split(r"[^\w]+", text.casefold()):
        if 3 <= len(raw) <= 32 and not raw.isdigit():
            found[raw] = None
        if len(found) == WORDS_INDEXED:
            break
    return list(found)


SEARCHED_PER_CONTACT = 500
"""Latest messages of each candidate contact /find reads."""


@dataclass(frozen=True, slots=True)
class Record:
    direction: str
    """``in`` (from the customer) or ``out`` (an operator's reply)."""
    at: datetime
    channel: str
    account: str
    kind: str
    text: str
    operator: str
    process: str
    task: str
    message_id: str
    file_id: str
    chat: str = ""
    """The platform chat of ``message_id`` (the staff group for replies)."""


class History:
    def __init__(self, redis: Redis, retention_days: int) -> None:
        self.redis = redis
        self.retention_ms = retention_days * 86_400_000

    def append(
        self,
        pipe: Pipeline | Writes,
        contact_id: str,
        *,
        direction: str,
        at: datetime,
        channel: str,
        account: str,
        content: Content,
        message_id: str,
        chat: str = "",
        operator: str = "",
        process: str = "",
        task: int | None = None,
    ) -> None:
        """Queue the record in the caller's transaction (oldest entries past the
        retention are trimmed as it goes)."""
        oldest = int(time.time() * 1000) - self.retention_ms
        pipe.xadd(
            keys.history(contact_id),
            {
                "dir": direction,
                "at": at.isoformat(),
                "channel": channel,
                "account": account,
                "kind": content.kind.value,
                "text": (content.text or "")[:TEXT_KEPT],
                "operator": operator,
                "process": process,
                "task": str(task) if task is not None else "",
                "msg": message_id,
                "chat": chat,
                "file": content.attachment.file_id if content.attachment else "",
            },
            minid=str(oldest),
            approximate=True,
        )
        for token in words(content.text or ""):
            pipe.sadd(keys.word(token), contact_id)
        data = {"channel": channel, "account": account, "kind": content.kind.value}
        data |= {"message": message_id, "text": (content.text or "")[:TEXT_KEPT]}
        if operator:
            data["operator"] = operator
        event_type = "message.inbound" if direction == "in" else "message.outbound"
        actor = operator or (bp.CUSTOMER if direction == "in" else bp.SYSTEM)
        event = bp.Event(event_type, at, process, task or 0, actor, data)
        record_event(pipe, contact_id, event)

    async def search(self, query: str, limit: int) -> list[tuple[str, Record]]:
        """Messages whose text contains ``query`` (case-insensitive), newest first, as
        (contact id, record): candidates from the word index, confirmed in the history."""
        tokens = words(query)
        if not tokens:
            return []
        candidates = await self.redis.sinter([keys.word(t) for t in tokens])
        needle = query.casefold().strip()
        hits: list[tuple[str, Record]] = []
        for raw in candidates:
            contact_id = text(raw)
            for record in await self.timeline([contact_id], limit=SEARCHED_PER_CONTACT):
                if needle in record.text.casefold():
                    hits.append((contact_id, record))
        hits.sort(key=lambda hit: hit[1].at, reverse=True)
        return hits[:limit]

    async def of_person(self, contact_id: str, limit: int = 50) -> list[Record]:
        """The timeline of a contact together with the contacts merged into it."""
        absorbed = [text(c) for c in await self.redis.smembers(keys.contact_absorbed(contact_id))]
        return await self.timeline([contact_id, *absorbed], limit=limit)

    async def timeline(self, contact_ids: Iterable[str], limit: int = 50) -> list[Record]:
        """The latest ``limit`` records of these contacts (a person and the contacts
        merged into it), oldest first."""
        records: list[Record] = []
        for contact_id in contact_ids:
            entries = await self.redis.xrevrange(keys.history(contact_id), count=limit) or []
            for _, fields in entries:
                f = {text(k): text(v) for k, v in (fields or {}).items()}
                records.append(
                    Record(
                        direction=f["dir"],
                        at=datetime.fromisoformat(f["at"]),
                        channel=f["channel"],
                        account=f["account"],
                        kind=f["kind"],
                        text=f["text"],
                        operator=f["operator"],
                        process=f["process"],
                        task=f["task"],
                        message_id=f["msg"],
                        file_id=f["file"],
                        chat=f.get("chat", ""),
                    )
                )
        records.sort(key=lambda r: r.at)
        return records[-limit:]
