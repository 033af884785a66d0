"""Which staff group (line) a contact's conversation is in, and its topics there.

A contact has one topic per line it talks to. Its staff traffic — posts, cards,
notices, reminders — goes to the topic in its *current* line: the line of its current
task (set when the task opens: the line of the account the customer wrote to, or the
one an operator started the conversation in), or the one an operator moved it to with
``/line``. With a single line nothing is stored and nothing is read: the staff group
is the only place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio.client import Pipeline

from gateway.config import Line, Settings
from gateway.model import TopicId
from gateway.staff.commands import topic_link
from gateway.store import keys
from gateway.store.batch import Reads
from gateway.store.redis import Redis, text
from gateway.store.topics import Topics
from gateway.store.writes import Writes


class Lines:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.all = settings.all_lines
        self.default = settings.default_line
        self.several = len(self.all) > 1
        self._topics = {str(x.chat_id): Topics(redis, x.chat_id) for x in self.all}

    def at(self, chat: int | str) -> Topics:
        """The topics of one line's staff group (``chat`` must be one)."""
        return self._topics[str(chat)]

    def name_at(self, chat: int | str) -> str | None:
        """The name of the line whose group ``chat`` is, to address a notice to it even
        when the contact's conversation has moved on (``None``: one line, or no group)."""
        line = self.settings.line_at(chat) if self.several else None
        return line.name if line is not None else None

    async def line_of(self, contact_id: str) -> Line:
        """The line the contact's conversation is in now."""
        if not self.several:
            return self.default
        raw = await self.redis.get(keys.contact_line(contact_id))
        return self.settings.line(text(raw) if raw is not None else None)

    def ask(self, pipe: Pipeline | Reads, contact_id: str) -> int:
        """Queue, in the caller's pipeline or group-committed reads, the reads
        :meth:`answer` needs (the contact's line, with several, and its topic in every
        line's group); how many replies."""
        if self.several:
            pipe.get(keys.contact_line(contact_id))
        for line in self.all:
            pipe.get(keys.topic(line.chat_id, contact_id))
        return len(self.all) + self.several

    def answer(self, replies: Sequence[Any]) -> tuple[Line, TopicId | None]:
        """The contact's current line and its topic there, from what :meth:`ask` read."""
        if self.several:
            name, *topics = replies
            line = self.settings.line(text(name) if name is not None else None)
        else:
            line, topics = self.default, list(replies)
        found = topics[self.all.index(line)]
        return line, TopicId(int(found)) if found is not None else None

    async def topic(self, contact_id: str) -> tuple[Line, TopicId | None]:
        """The contact's current line and its topic there (``None``: none yet), in one
        round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            self.ask(pipe, contact_id)
            return self.answer(await pipe.execute())

    async def link(self, contact_id: str) -> str | None:
        """A link to the contact's topic in its current line (``None``: no topic yet)."""
        line, topic = await self.topic(contact_id)
        return topic_link(str(line.chat_id), topic) if topic is not None else None

    def enter(self, pipe: Pipeline | Writes, contact_id: str, line: Line) -> None:
        """Make ``line`` the contact's current one (in the caller's transaction)."""
        if self.several:
            pipe.set(keys.contact_line(contact_id), line.name)
