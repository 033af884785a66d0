"""The Redis commands that restore one line of an export.

One function per record type, each returning plain commands whose first argument is
the key they write: the importer pipelines them, and undoing a failed import deletes
exactly those keys. Indexes the running gateway reads but the file does not carry are
rebuilt here from what it does: the reverse topic map, the /find word index (from the
history's texts) and, with ``dedup.suggest_by_name``, the name index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.config import Settings
from gateway.export.lua import Command
from gateway.export.records import (
    ContactLine,
    EndLine,
    Expiring,
    Header,
    LinkLine,
    MessageLine,
    OperatorLine,
    ProcessLine,
    RawLine,
    StateLine,
    Topic,
)
from gateway.staff.people import _name_prefixes
from gateway.store import keys
from gateway.store.history import words
from gateway.store.processes import PROCESS

if TYPE_CHECKING:
    from gateway.export.load import Plan

IMPORT_MARKER = f"{keys.PREFIX}:import"
"""Set while an import writes; a target that has it was left half-written."""


def _expiring(key: str, item: Expiring, now_ms: int) -> list[Command]:
    """SET with the expiry it had; nothing if that moment has passed already."""
    if item.expires_at is None:
        return [("SET", key, item.value)]
    if item.expires_at <= now_ms:
        return []
    return [("SET", key, item.value), ("PEXPIREAT", key, item.expires_at)]


def _hash(key: str, fields: dict[str, str], expires_at: int | None, now_ms: int) -> list[Command]:
    if not fields or (expires_at is not None and expires_at <= now_ms):
        return []
    found: list[Command] = [("HSET", key, *[part for pair in fields.items() for part in pair])]
    if expires_at is not None:
        found.append(("PEXPIREAT", key, expires_at))
    return found


def _topic(cid: str, chat: int, topic: Topic, now_ms: int) -> list[Command]:
    card = keys.card(chat, cid)
    found: list[Command] = [
        ("SET", keys.topic(chat, cid), topic.thread),
        ("SET", keys.topic_contact(chat, topic.thread), cid),
    ]
    if topic.card is not None:
        found.append(("SET", card, topic.card))
    if topic.card_shown is not None:
        found += _expiring(f"{card}:shown", topic.card_shown, now_ms)
    if topic.reminder is not None:
        found.append(("SET", keys.reminder(chat, cid), topic.reminder))
    return found


def contact(line: ContactLine, staff_chat: int, settings: Settings, now_ms: int) -> list[Command]:
    cid = line.id
    found = _hash(keys.contact(cid), line.fields, None, now_ms)
    for values, key in (
        (line.identities, keys.contact_identities(cid)),
        (line.phones, keys.contact_phones(cid)),
        (line.emails, keys.contact_emails(cid)),
        (line.absorbed, keys.contact_absorbed(cid)),
        (line.distinct, keys.contact_distinct(cid)),
    ):
        if values:
            found.append(("SADD", key, *values))
    for identity in line.lookups.identities:
        found.append(("SET", keys.identity(*identity.split(":", 1)), cid))
    found += [("SET", keys.phone(number), cid) for number in line.lookups.phones]
    found += [("SET", keys.email(address), cid) for address in line.lookups.emails]
    topics = {staff_chat: line.topic} if line.topic is not None else {}
    topics |= {int(chat): topic for chat, topic in line.topics.items()}
    for chat, topic in topics.items():
        found += _topic(cid, chat, topic, now_ms)
    if line.line is not None:
        found.append(("SET", keys.contact_line(cid), line.line))
    if line.line_start is not None:
        found += _expiring(keys.line_start(cid), line.line_start, now_ms)
    if line.watchers:
        found.append(("SADD", keys.watchers(cid), *line.watchers))
        found += [("SADD", keys.watching(user), cid) for user in line.watchers]
    found += [("ZADD", keys.TIMERS, score, f"{kind}:{cid}") for kind, score in line.timers.items()]
    if line.awaiting is not None:
        found.append(("ZADD", keys.AWAITING, line.awaiting, cid))
    if line.owned is not None:
        found.append(("ZADD", keys.OWNED, line.owned, cid))
    for day, number in line.numbers.items():
        found += _expiring(keys.process_number(cid, day), number, now_ms)
    if settings.dedup.suggest_by_name:  # as a new contact is indexed (merged ones stay)
        for prefix in sorted(_name_prefixes(line.fields.get("display_name", ""))):
            found.append(("SADD", keys.name_bucket(prefix), cid))
    return found


def process(line: ProcessLine) -> list[Command]:
    raw = PROCESS.dump_json(line.process)
    if line.current:
        return [("SET", keys.process(line.contact), raw)]
    return [("RPUSH", keys.process_archive(line.contact), raw)]


def message(line: MessageLine) -> list[Command]:
    pairs = [part for pair in line.fields.items() for part in pair]
    found: list[Command] = [("XADD", keys.history(line.contact), line.id, *pairs)]
    found += [("SADD", keys.word(token), line.contact) for token in words(line.fields["text"])]
    return found


def operator(line: OperatorLine) -> list[Command]:
    found: list[Command] = []
    if line.presence is not None:
        found.append(("HSET", keys.PRESENCE, line.id, line.presence))
    if line.active is not None:
        found.append(("HSET", keys.ACTIVE, line.id, line.active))
    if line.idle_timer is not None:
        found.append(("ZADD", keys.TIMERS, line.idle_timer, f"{keys.IDLE}:{line.id}"))
    return found


def raw(line: RawLine, now_ms: int) -> list[Command]:
    key = f"{keys.PREFIX}:{line.key}"
    if isinstance(line.value, dict):
        return _hash(key, line.value, line.expires_at, now_ms)
    if isinstance(line.value, str):
        return _expiring(key, Expiring(value=line.value, expires_at=line.expires_at), now_ms)
    if not line.value or (line.expires_at is not None and line.expires_at <= now_ms):
        return []
    found: list[Command] = [("SADD", key, *line.value)]
    if line.expires_at is not None:
        found.append(("PEXPIREAT", key, line.expires_at))
    return found


def state(line: StateLine, max_id: int, now_ms: int) -> list[Command]:
    # Never below an imported id: a new contact must not take an existing one's id.
    found: list[Command] = [("SET", keys.CONTACT_SEQ, max(line.contact_seq, max_id))]
    for day, seq in line.process_seq.items():
        found += _expiring(keys.process_seq(day), seq, now_ms)
    found += [("SET", keys.round_robin(role), n) for role, n in line.round_robin.items()]
    found += [("SET", keys.poll_cursor(account), at) for account, at in line.cursors.items()]
    for pair, marker in line.suggested.items():
        found += _expiring(keys.suggested(*pair.split(":", 1)), marker, now_ms)
    found += [("ZADD", keys.TIMERS, score, member) for member, score in line.timers.items()]
    return found


def commands_for(line: Any, plan: Plan, settings: Settings, now_ms: int) -> list[Command]:
    """What restores ``line`` (a record :func:`gateway.export.load.validate` passed)."""
    assert plan.header is not None
    match line:
        case ContactLine():
            return contact(line, plan.header.staff_chat, settings, now_ms)
        case ProcessLine():
            return process(line)
        case MessageLine():
            return message(line)
        case LinkLine():
            return _hash(f"{keys.PREFIX}:msg:{line.key}", line.fields, line.expires_at, now_ms)
        case OperatorLine():
            return operator(line)
        case RawLine():
            return raw(line, now_ms)
        case StateLine():
            return state(line, plan.max_id, now_ms)
        case Header() | EndLine():
            return []
    raise TypeError(f"not a record: {line!r}")
