"""Wake a visitor's open connections when their log grows.

One pub/sub subscription per gateway process (a pattern over every visitor's channel)
sets the events of the local waiters. Waiters read the log itself after waking, and
look anyway every :data:`LOOK_EVERY` seconds, so an announcement lost while Redis
restarts delays an update, never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator

import structlog

from gateway.lifecycle import raise_if_cancelling
from gateway.store import keys
from gateway.store.redis import RETRYABLE, Redis, text

log = structlog.get_logger(__name__)
LOOK_EVERY = 20.0


class Hub:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="webchat-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.contextmanager
    def waiting(self, account: str, visitor: str) -> Iterator[asyncio.Event]:
        """An event set whenever the visitor's log grows (while the block runs)."""
        channel = keys.webchat_live(account, visitor)
        event = asyncio.Event()
        self._waiters[channel].add(event)
        try:
            yield event
        finally:
            self._waiters[channel].discard(event)
            if not self._waiters[channel]:
                del self._waiters[channel]

    async def _listen(self) -> None:
        pattern = keys.webchat_live("*", "*")
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.psubscribe(pattern)
                self._wake_all()  # (re)subscribed: whatever was missed, look now
                async for message in pubsub.listen():
                    if message.get("type") == "pmessage":
                        for event in self._waiters.get(text(message["channel"]), ()):
                            event.set()
            except RETRYABLE as exc:
                raise_if_cancelling()
                log.warning("webchat.hub_reconnecting", error=str(exc))
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()
