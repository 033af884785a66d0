"""The Bots Long Poll server of one community (https://dev.vk.com/ru/api/bots-long-poll/getting-started).

Events are numbered; ``ts`` is the number of the last event a client has seen, so
``a_check`` with ``ts`` answers the events after it (holding the request up to ``wait``
seconds, at most 90, until one arrives) and the ``ts`` to ask with next. The last
:data:`KEEP` events are kept, so a client that resumes with an older ``ts`` (after
getting a new key) receives them again.

Failures are answered exactly as VK does:

* ``{"failed": 1, "ts": <number>}`` – the history is outdated or partly lost: continue
  with this ``ts`` (the events in between are gone). Answered for a ``ts`` older than
  what is kept or newer than the newest event.
* ``{"failed": 2}`` – the key expired: get a new key with ``groups.getLongPollServer``
  and keep your ``ts``. Answered for any key that is not the current one.
* ``{"failed": 3}`` – information lost: get a new key *and* ``ts``.

:meth:`CommunityLongPoll.inject` makes the next ``a_check`` fail with a chosen code;
after 2 or 3 the old key stays invalid.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import deque

from .models import JsonDict

KEEP = 1000
"""How many events a community's long poll keeps for clients resuming with an older ts."""
MAX_WAIT = 90.0
MAX_UPDATES = 100
"""At most this many events per answer; the rest come with the next ``ts``."""


class CommunityLongPoll:
    """The event history, session key and waiting clients of one community."""

    def __init__(self) -> None:
        self.key = secrets.token_hex(20)
        self.ts = 1
        """The number of the newest event (events are numbered from 2)."""
        self.floor = 1
        """The oldest ``ts`` a client may still resume from."""
        self._events: deque[tuple[int, JsonDict]] = deque()
        self._changed = asyncio.Event()
        self._failure: int | None = None
        self._closed = False
        self.waiting = 0
        """How many ``a_check`` requests are being held right now."""
        self._held = asyncio.Event()

    def server_info(self) -> tuple[str, str]:
        """``(key, ts)`` for ``groups.getLongPollServer``."""
        return self.key, str(self.ts)

    def push(self, event: JsonDict) -> None:
        """Queue an event for long-poll clients."""
        self.ts += 1
        self._events.append((self.ts, event))
        while len(self._events) > KEEP:
            dropped, _ = self._events.popleft()
            self.floor = dropped
        self._wake()

    def history(self) -> list[JsonDict]:
        """The kept events, oldest first."""
        return [event for _, event in self._events]

    def inject(self, code: int) -> None:
        """Make the next ``a_check`` answer ``failed: code`` (1, 2 or 3)."""
        if code not in (1, 2, 3):
            raise ValueError("a long poll failure code is 1, 2 or 3")
        self._failure = code
        self._wake()

    def close(self) -> None:
        """Release every waiting client with an empty answer (server shutdown)."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _fail(self, code: int) -> JsonDict:
        if code == 1:
            return {"failed": 1, "ts": self.ts}  # a number here, unlike a normal answer
        self.key = secrets.token_hex(20)  # the old key stays invalid
        if code == 3:
            self.floor = self.ts  # what came before is lost
        return {"failed": code}

    def _check_now(self, key: str, ts: str) -> JsonDict | None:
        """The answer if there is one right away, ``None`` to keep waiting."""
        if self._failure is not None:
            code, self._failure = self._failure, None
            return self._fail(code)
        if key != self.key:
            return {"failed": 2}
        try:
            since = int(ts)
        except ValueError:
            return {"failed": 1, "ts": self.ts}
        if since < self.floor or since > self.ts:
            return {"failed": 1, "ts": self.ts}
        updates = [event for number, event in self._events if number > since][:MAX_UPDATES]
        if updates or self._closed:
            return {"ts": str(since + len(updates)), "updates": updates}
        return None

    async def check(self, key: str, ts: str, wait: float) -> JsonDict:
        """Answer one ``a_check``: events after ``ts``, waiting up to ``wait`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(wait, 0.0), MAX_WAIT)
        while True:
            answer = self._check_now(key, ts)
            if answer is not None:
                return answer
            remaining = deadline - loop.time()
            if remaining <= 0:
                return {"ts": str(int(ts)), "updates": []}
            changed = self._changed
            self.waiting += 1
            self._held.set()
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)
            finally:
                self.waiting -= 1
                if not self.waiting:
                    self._held.clear()

    async def held(self) -> None:
        """Return once an ``a_check`` request is being held (waiting for events)."""
        await self._held.wait()
