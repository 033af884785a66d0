"""Coalescing: a burst for one staff topic costs a few sends, not one per message.

Telegram lets a bot post about 20 messages a minute into a group. When a topic's next
customer message has to wait for that budget, the texts of the same sender queued
behind it (in the same partition stream, not yet handled) are combined into one staff
message, each line keeping its time; photos and videos (or documents, or audio files)
are grouped into one album (``sendMediaGroup``, up to ten), each keeping its caption.
Other contacts' entries in between are left where they are; this contact's order is
kept (a message that cannot join the run — a photo after texts, a quote — ends it).
Task-card refreshes of the contact in between are skipped over: the card is redrawn
from the current state whenever it is refreshed, and a refresh followed by another
one of the same card is dropped (see :func:`drop_if_superseded`).

Every combined message stays mapped to the one staff copy (replies to it quote the
customer's last message); a customer's later edit of one of them is posted as a reply
rather than clobbering the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from gateway.bus import Entry
from gateway.jobs import JOB, StaffCard, StaffPost, _Job
from gateway.model import Content, InboundMessage, Kind
from gateway.store.keys import GROUP
from gateway.store.redis import Redis, text

LOOKAHEAD = 100
"""Entries of the partition stream read past the current one."""
MAX_MESSAGES = 30
MAX_CHARS = 4000
"""Telegram's limit is 4096 characters a message; the time stamps take some."""
MAX_ALBUM = 10
CARD = '"type":"staff.card"'
ALBUMS = {
    Kind.PHOTO: "visual",
    Kind.VIDEO: "visual",
    Kind.DOCUMENT: "document",
    Kind.AUDIO: "audio",
}


@dataclass(frozen=True, slots=True)
class Queued:
    entry: Entry
    job: _Job


# KEYS[1] a stream. ARGV: the id to read after, how many entries, a byte string the
# contact's entries contain, and '' (return those entries: id, payload, …) or a second
# byte string (return 1 if one of the contact's entries also contains it, else 0).
# Scanning in Redis spares shipping and parsing a hundred payloads per look.
_SCAN = """
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
local found = {}
for _, entry in ipairs(entries) do
  local fields, payload = entry[2], nil
  for i = 1, #fields, 2 do
    if fields[i] == 'e' then payload = fields[i + 1] end
  end
  if payload and string.find(payload, ARGV[3], 1, true) then
    if ARGV[4] == '' then
      found[#found + 1] = entry[1]
      found[#found + 1] = payload
    elseif string.find(payload, ARGV[4], 1, true) then
      return 1
    end
  end
end
if ARGV[4] == '' then return found end
return 0
"""


# KEYS[1] a stream, KEYS[2] a done marker, KEYS[3…] keys to read. ARGV: the entry's id,
# how many entries to look at, the contact's byte string, the card's, the consumer
# group, the marker's TTL. A later refresh of the same card queued: mark this one done
# and acknowledge it (as ``Delivery._finish`` would) in the same script, and return 1;
# else nothing is written and the values of KEYS[3…] are returned (MGET).
_DROP_SUPERSEDED = """
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
for _, entry in ipairs(entries) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    local payload = fields[i + 1]
    if fields[i] == 'e' and string.find(payload, ARGV[3], 1, true)
        and string.find(payload, ARGV[4], 1, true) then
      redis.call('SET', KEYS[2], '[]', 'EX', ARGV[6])
      redis.call('XACK', KEYS[1], ARGV[5], ARGV[1])
      redis.call('XDEL', KEYS[1], ARGV[1])
      return 1
    end
  end
end
if #KEYS < 3 then return {} end
return redis.call('MGET', unpack(KEYS, 3))
"""


def _mine(contact_id: str) -> str:
    return f'"contact_id":"{contact_id}"'


async def ahead(
    redis: Redis, entry: Entry, contact_id: str, count: int = LOOKAHEAD
) -> list[Queued]:
    """The entries of ``contact_id`` queued after ``entry`` in its stream (not yet
    handled), parsed; other contacts' stay in Redis."""
    scan = redis.register_script(_SCAN)
    raw: Any = await scan(keys=[entry.stream], args=[entry.id, count, _mine(contact_id), ""])
    found = []
    for i in range(0, len(raw or ()), 2):
        later = Entry(entry.stream, text(raw[i]), raw[i + 1])
        found.append(Queued(later, JOB.validate_json(raw[i + 1])))
    return found


async def drop_if_superseded(
    redis: Redis, entry: Entry, card: StaffCard, done: str, ttl: int, read: Sequence[str] = ()
) -> list[Any] | None:
    """Is a later refresh of the same card queued? Then this one need not be drawn: it
    is marked done (``done``, nothing sent) and acknowledged, atomically, and the answer
    is ``None``. Else the values of the keys ``read`` (one round trip for both)."""
    drop = redis.register_script(_DROP_SUPERSEDED)
    args: list[str | int] = [entry.id, LOOKAHEAD, _mine(card.contact_id), CARD, GROUP, ttl]
    found: Any = await drop(keys=[entry.stream, done, *read], args=args)
    return None if found == 1 else list(found)


def mergeable(message: InboundMessage) -> bool:
    """Plain text, quoting nothing: can share a staff message with its neighbours."""
    content = message.content
    return (
        content.kind is Kind.TEXT
        and bool(content.text)
        and content.attachment is None
        and not content.buttons
        and message.reply_to is None
        and not message.edited
    )


def album_kind(message: InboundMessage) -> str | None:
    """Which album a media message may join (photos with videos; documents; audio),
    ``None`` for anything else (Telegram albums hold nothing else)."""
    content = message.content
    if content.attachment is None or content.buttons or message.reply_to or message.edited:
        return None
    return ALBUMS.get(content.kind)


def followers(first: StaffPost, queued: Sequence[Queued]) -> list[Queued]:
    """The run of ``first``'s contact's texts from the same chat right behind it."""
    if not mergeable(first.message):
        return []
    size = len(first.message.content.text or "")

    def fits(message: InboundMessage, run: int) -> bool:
        nonlocal size
        size += len(message.content.text or "") + 10
        return mergeable(message) and run + 1 < MAX_MESSAGES and size <= MAX_CHARS

    return _run(first, queued, fits)


def album(first: StaffPost, queued: Sequence[Queued]) -> list[Queued]:
    """The run of ``first``'s contact's media of the same album kind right behind it
    (an album holds at most ten)."""
    kind = album_kind(first.message)
    if kind is None:
        return []
    return _run(first, queued, lambda m, run: album_kind(m) == kind and run + 1 < MAX_ALBUM)


def _run(
    first: StaffPost, queued: Sequence[Queued], fits: Callable[[InboundMessage, int], bool]
) -> list[Queued]:
    sender = first.message.sender
    run: list[Queued] = []
    for item in queued:
        job = item.job
        if job.contact_id != first.contact_id or isinstance(job, StaffCard):
            continue  # another contact's, or a card redrawn later anyway
        if not isinstance(job, StaffPost):
            break
        other = job.message.sender
        if (other.account, other.chat_id) != (sender.account, sender.chat_id):
            break
        if not fits(job.message, len(run)):
            break
        run.append(item)
    return run


def combined(messages: Sequence[InboundMessage], zone: tzinfo) -> Content:
    """One text with every message on its own line(s), each with its time."""
    lines = [f"{m.sent_at.astimezone(zone):%H:%M:%S} {m.content.text or ''}" for m in messages]
    return Content(kind=Kind.TEXT, text="\n".join(lines))
