"""The console's event feed: what happened in the emulated Telegram, in order.

The web console long-polls it (``GET /_control/events``) and ``wait_for`` in tests scans
it, so both see messages, edits, deletions and topic changes as they happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections import deque
from typing import Any

from .models import ChatRecord, JsonDict


class EventLog:
    """An append-only, bounded feed of what happened, for the console's long poll."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._events: deque[JsonDict] = deque(maxlen=maxlen)
        self.cursor = 0
        self._changed = asyncio.Event()
        self._closed = False

    def emit(self, kind: str, chat: ChatRecord, **fields: Any) -> JsonDict:
        """Record an event about ``chat``; payload objects are copied (snapshots)."""
        self.cursor += 1
        event: JsonDict = {"seq": self.cursor, "type": kind, "chat_id": chat.id}
        if chat.type == "private":
            event["bot_id"] = chat.bot_id
        event.update(copy.deepcopy(fields))
        self._events.append(event)
        self._changed.set()
        self._changed = asyncio.Event()
        return event

    def after(self, cursor: int) -> list[JsonDict]:
        """Events newer than ``cursor``; a cursor from the future yields everything kept."""
        if cursor > self.cursor:
            cursor = 0
        return [event for event in self._events if event["seq"] > cursor]

    async def wait_after(self, cursor: int, timeout: float) -> tuple[int, list[JsonDict]]:
        """Wait until there is something newer than ``cursor`` or ``timeout`` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        while True:
            events = self.after(cursor)
            remaining = deadline - loop.time()
            if events or remaining <= 0 or self._closed:
                return self.cursor, events
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def close(self) -> None:
        """Release all waiters (server shutdown)."""
        self._closed = True
        self._changed.set()
