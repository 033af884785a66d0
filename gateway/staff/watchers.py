"""Watching a customer (``/watch`` in their topic): the operator is told privately, by
the staff bot, of every new message the customer writes — even when the task is not
theirs (1C-Connect's "favourites"). ``/unwatch`` stops it; ``/watching`` lists whom
they watch, with links.

The notice is queued by delivery in the same transaction that marks the customer's
message posted in the topic, so it links to that very message and is sent once. The
staff bot can write to an operator only after they started a private chat with it;
``/watch`` says so when it cannot.
"""

from __future__ import annotations

import structlog

from gateway.bus import Entry
from gateway.model import ContactId, InboundMessage
from gateway.staff.commands import Command
from gateway.store import keys
from gateway.store.redis import Redis, text
from gateway.worker import Worker

log = structlog.get_logger(__name__)
COMMANDS = frozenset({"watch", "unwatch", "watching"})
PREVIEW = 300
"""Characters of the customer's message in a watcher's notice."""
LISTED = 50


def notice_text(name: str, where: str, body: str, link: str) -> str:
    """What a watcher gets for one of the customer's messages."""
    body = body if len(body) <= PREVIEW else body[: PREVIEW - 1] + "…"
    return f"👁 {name} ({where}):\n{body}\n{link}"


async def carry(redis: Redis, survivor: ContactId, absorbed: ContactId) -> None:
    """A merge: who watched the absorbed contact watches the person now."""
    watchers = [text(w) for w in await redis.smembers(keys.watchers(absorbed))]
    if not watchers:
        return
    async with redis.pipeline(transaction=True) as pipe:
        pipe.sadd(keys.watchers(survivor), *watchers)
        pipe.delete(keys.watchers(absorbed))
        for user in watchers:
            pipe.srem(keys.watching(user), absorbed)
            pipe.sadd(keys.watching(user), survivor)
        await pipe.execute()


class Watchers(Worker):
    async def command(
        self,
        command: Command,
        message: InboundMessage,
        entry: Entry,
        contact_id: ContactId | None,
    ) -> None:
        """``/watch``, ``/unwatch`` (in a topic) and ``/watching`` (anywhere)."""
        user = message.sender.user_id
        if command.name == "watching":
            said = await self.listing(user)
        elif contact_id is None:
            said = f"/{command.name} works in a customer's topic."
        else:
            name = (await self.contacts.get(contact_id)).get("display_name", contact_id)
            watch = command.name == "watch"
            async with self.redis.pipeline(transaction=True) as pipe:
                if watch:
                    pipe.sadd(keys.watchers(contact_id), user)
                    pipe.sadd(keys.watching(user), contact_id)
                else:
                    pipe.srem(keys.watchers(contact_id), user)
                    pipe.srem(keys.watching(user), contact_id)
                changed, _ = await pipe.execute()
            if watch:
                said = (
                    f"👁 You get each new message of {name} privately from the staff bot "
                    "(open a private chat with it and press Start if you never did). "
                    "/unwatch stops it."
                    if changed
                    else f"👁 You watch {name} already."
                )
            else:
                said = f"You no longer watch {name}." if changed else f"You did not watch {name}."
            log.info("staff.watch", contact_id=contact_id, watch=watch, changed=bool(changed))
        answer = (
            self.notice_under(message, contact_id, said)
            if contact_id is not None
            else self.answer_in_chat(message, said)
        )
        await self.commit(entry, answer)

    async def listing(self, user: str) -> str:
        """Whom ``user`` watches, with links to their topics."""
        watched = sorted({text(c) for c in await self.redis.smembers(keys.watching(user))}, key=int)
        if not watched:
            return "You watch nobody. /watch in a customer's topic tells you of their messages."
        lines = [f"👁 You watch {len(watched)}:"]
        for contact_id in watched[:LISTED]:
            person = await self.contacts.survivor(ContactId(contact_id))
            name = (await self.contacts.get(person)).get("display_name", person)
            link = await self.lines.link(person)
            lines.append(f"• {name}" + (f" — {link}" if link else ""))
        return "\n".join(lines)
