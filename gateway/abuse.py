"""Abuse protection: banned people, spam rules and flood protection (``antispam``).

Every message is kept — in the person's history and the events stream — whatever
happens to it here; only what staff see changes:

- **Banned** (``/ban [reason]`` in their topic, ``/unban``): the person's messages,
  from every messenger they use (the ban is on the contact, so merged identities share
  it), are not posted and open no task. ``antispam.ban_reply`` answers them at most once
  a day. ``/contact`` shows the ban; ``contact.banned``/``contact.unbanned`` are events.
- **Spam rules** (``antispam.rules``): a message whose text matches goes to the Spam
  topic of the line's group instead of the customer's, and opens no task.
- **Flood** (``antispam.max_messages_per_minute``): past the limit, the rest of that
  minute are held back and posted together, as one staff message with their count and
  times, when the minute is over (a scheduler timer: it survives restarts).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime

import structlog
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

from gateway import process as bp
from gateway.bus import Entry
from gateway.jobs import CustomerAuto, StaffNotice
from gateway.model import ContactId, Content, Destination, InboundMessage, Kind
from gateway.staff.commands import Command
from gateway.store import keys
from gateway.store.batch import batched
from gateway.store.events import record_event
from gateway.store.redis import text
from gateway.worker import Worker

log = structlog.get_logger(__name__)
COMMANDS = frozenset({"ban", "unban"})
HELD_SHOWN = 3500
"""Characters of held-back messages one flood notice shows (a Telegram message: 4096)."""

# KEYS: the minute's counter, the held list, the timers. ARGV: limit, the rendered
# message, the timer member, when it is due (ms). Returns the count this minute; past
# the limit the message is held and the timer armed (if not already).
_FLOOD = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], 120) end
if n > tonumber(ARGV[1]) then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('ZADD', KEYS[3], 'NX', ARGV[4], ARGV[3])
end
return n
"""
# KEYS: the held list. Everything held, and the list emptied, at once.
_TAKE = """
local held = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return held
"""


class Guard(Worker):
    @functools.cached_property
    def _flood(self) -> AsyncScript:
        return self.redis.register_script(_FLOOD)

    @functools.cached_property
    def _take(self) -> AsyncScript:
        return self.redis.register_script(_TAKE)

    # Screening an inbound message -----------------------------------------------------

    async def screen(
        self, message: InboundMessage, contact_id: ContactId, banned: bool, entry: Entry
    ) -> bool:
        """Keep ``message`` from the topic if the person is banned, a spam rule matches
        or they flood; ``True`` when it was handled (stored, acknowledged) here."""
        if banned and message.edited:
            await self.commit(entry)  # the original was kept; an edit changes nothing
            return True
        if banned:
            await self._store(message, contact_id, entry, self._ban_reply(message, contact_id))
            log.info("abuse.banned_message_kept")
            return True
        rule = self._spam_rule(message.content.text or "")
        if rule is not None:
            line = self.settings.line_of(message.sender.account)
            notice = StaffNotice(
                out_id=f"spam:{message.key}",
                contact_id=ContactId(keys.SPAM),
                text=f"🚫 Spam ({rule}) from {message.sender.display_name} (#{contact_id}, "
                f"{message.sender.account}):\n{(message.content.text or '')[:3500]}",
                line=line.name,
            )
            await self._store(message, contact_id, entry, notice)
            log.info("abuse.spam", rule=rule)
            return True
        limit = self.settings.antispam.max_messages_per_minute
        if limit is None or message.edited:
            return False
        at = message.received_at
        minute = int(at.timestamp() // 60)
        due = (minute + 1) * 60_000
        body = message.content.text or f"[{message.content.kind.value}]"
        shown = f"{at.astimezone(self.settings.zone):%H:%M:%S} {body[:500]}"
        count = await batched(
            self._flood,
            keys=[keys.flood(contact_id, minute), keys.flood_held(contact_id), keys.TIMERS],
            args=[limit, shown, f"{keys.FLOOD}:{contact_id}", due],
        )
        if int(count) <= limit:
            return False
        await self._store(message, contact_id, entry, None)
        log.info("abuse.flood_held", count=int(count))
        return True

    def _spam_rule(self, body: str) -> str | None:
        for rule in self.settings.antispam.rules:
            if body and re.search(rule.pattern, body):
                return rule.name
        return None

    def _ban_reply(self, message: InboundMessage, contact_id: ContactId) -> CustomerAuto | None:
        reply = self.settings.antispam.ban_reply
        if reply is None:
            return None
        day = message.received_at.astimezone(self.settings.zone).date().isoformat()
        sender = message.sender
        return CustomerAuto(
            out_id=f"ban-reply:{contact_id}:{day}",  # once a day: delivery sends an id once
            contact_id=contact_id,
            destination=Destination(account=sender.account, chat_id=sender.chat_id),
            content=Content(kind=Kind.TEXT, text=reply),
            what="reply to a banned person",
            noted=False,
        )

    async def _store(
        self,
        message: InboundMessage,
        contact_id: ContactId,
        entry: Entry,
        job: CustomerAuto | StaffNotice | None,
    ) -> None:
        """The message into the person's history (and the events), with ``job``, and
        the entry acknowledged: one transaction."""
        sender = message.sender
        effects = self.effects(entry, job)

        def build(pipe: Pipeline) -> None:
            effects(pipe, None)
            self.history.append(
                pipe,
                contact_id,
                direction="in",
                at=message.received_at,
                channel=sender.channel.value,
                account=sender.account,
                content=message.content,
                message_id=message.message_id,
                chat=sender.chat_id,
            )

        await self.bus.commit(build)

    # The flood timer -------------------------------------------------------------------

    async def flood_over(self, contact_id: str, now: datetime) -> None:
        """The minute is over: post what was held back, together."""
        held = [text(h) for h in await self._take(keys=[keys.flood_held(contact_id)])]
        if not held:
            return
        shown = 0
        body: list[str] = []
        for line in held:
            if shown + len(line) > HELD_SHOWN:
                body.append(f"… and {len(held) - len(body)} more (see /history)")
                break
            body.append(line)
            shown += len(line) + 1
        limit = self.settings.antispam.max_messages_per_minute
        notice = StaffNotice(
            out_id=f"flood:{contact_id}:{int(now.timestamp())}",
            contact_id=ContactId(contact_id),
            text=f"🌊 {len(held)} more message(s) within a minute (over {limit} a minute), "
            "together:\n" + "\n".join(body),
        )
        await self.commit(None, notice)
        log.info("abuse.flood_posted", contact_id=contact_id, held=len(held))

    # /ban, /unban ----------------------------------------------------------------------

    async def command(
        self, command: Command, message: InboundMessage, entry: Entry, contact_id: ContactId
    ) -> None:
        at, operator = message.received_at, message.sender.user_id
        data = await self.contacts.get(contact_id)
        name = data.get("display_name", contact_id)
        ban = command.name == "ban"
        if ban == bool(data.get("banned_at")):
            said = f"{name} is banned already." if ban else f"{name} is not banned."
            await self.commit(entry, self.notice_under(message, contact_id, said))
            return
        reason = command.args.strip()[:500]
        event = bp.Event(
            "contact.banned" if ban else "contact.unbanned",
            at,
            "",
            0,
            operator,
            {"reason": reason} if ban and reason else {},
        )
        if ban:
            said = (
                f"🚫 {name} is banned{': ' + reason if reason else ''}. Their messages from "
                "every messenger are kept in /history but not posted, and open no task. "
                "/unban lifts it."
            )
        else:
            said = f"✅ {name} is no longer banned: their messages come here again."
        effects = self.effects(entry, self.notice_under(message, contact_id, said))
        key = keys.contact(contact_id)

        def build(pipe: Pipeline) -> None:
            if ban:
                stamp = at.astimezone(UTC).isoformat()
                pipe.hset(key, "banned_at", stamp)
                pipe.hset(key, "banned_by", operator)
                pipe.hset(key, "ban_reason", reason)
            else:
                pipe.hdel(key, "banned_at", "banned_by", "ban_reason")
            record_event(pipe, contact_id, event)
            effects(pipe, None)

        await self.bus.commit(build)
        log.info("abuse.ban" if ban else "abuse.unban", contact_id=contact_id)


def ban_line(data: dict[str, str]) -> str | None:
    """How ``/contact`` shows a ban (``None``: not banned)."""
    since = data.get("banned_at")
    if not since:
        return None
    when = datetime.fromisoformat(since)
    reason = data.get("ban_reason")
    return f"🚫 Banned since {when:%d.%m.%Y %H:%M} UTC by {data.get('banned_by', '?')}" + (
        f": {reason}" if reason else ""
    )
