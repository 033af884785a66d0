"""Per-bot update queues: ``getUpdates`` long polling and webhook push with retries.

Each bot has one ordered queue. With a webhook set, a background task POSTs the head of
the queue until the receiver answers 2xx (back-off 0.2 s doubling up to 5 s), one update at
a time, in order. Without a webhook, ``getUpdates`` hands out the queue and drops what the
client confirms through ``offset``; a second concurrent poll terminates the first with 409,
as Telegram does when two bot instances run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .models import CONFLICT_POLLING, CONFLICT_WEBHOOK, ApiError, JsonDict

MAX_POLL_TIMEOUT = 50.0
BACKOFF_START = 0.2
BACKOFF_CAP = 5.0


NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
"""Update kinds Telegram sends only when ``allowed_updates`` names them."""


@dataclass
class WebhookConfig:
    """What ``setWebhook`` stored."""

    url: str
    secret_token: str | None = None
    max_connections: int = 40
    ip_address: str | None = None


@dataclass
class _Pending:
    update: JsonDict
    forced: bool = False
    """A redelivery: handed out once even if the client already confirmed its id."""
    done: asyncio.Future[None] | None = None


Deliver = Callable[[WebhookConfig, JsonDict], Awaitable[None]]
"""POSTs one update to a webhook; raises (any exception) when the receiver did not take it."""


@dataclass
class BotUpdates:
    """The update queue of one bot and its delivery machinery."""

    bot_id: int
    deliver: Deliver
    webhook: WebhookConfig | None = None
    allowed: frozenset[str] | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None
    sent: list[JsonDict] = field(default_factory=list)
    """Every delivery, in order; an update appears again when delivered again."""
    _pending: list[_Pending] = field(default_factory=list)
    _next_id: int = 1
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _poll_generation: int = 0
    _poll_conflict: str = CONFLICT_POLLING
    _worker: asyncio.Task[None] | None = None
    _closed: bool = False
    _history: dict[int, JsonDict] = field(default_factory=dict)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, timeout: float) -> None:
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    @property
    def pending_count(self) -> int:
        """Updates not yet delivered (``pending_update_count`` of getWebhookInfo)."""
        return len(self._pending)

    def push(self, kind: str, payload: JsonDict) -> JsonDict | None:
        """Queue a new update of ``kind``; ``None`` if ``allowed_updates`` filters it out."""
        if self.allowed is not None and kind not in self.allowed:
            return None
        if self.allowed is None and kind in NOT_BY_DEFAULT:
            return None  # only when asked for by name
        update: JsonDict = {"update_id": self._next_id, kind: payload}
        self._next_id += 1
        self._history[update["update_id"]] = update
        self._pending.append(_Pending(update))
        self._notify()
        self._ensure_worker()
        return update

    def redeliver(self, update_id: int) -> asyncio.Future[None]:
        """Queue an already delivered update again; the future resolves once it is delivered."""
        update = self._history.get(update_id)
        if update is None or not any(u["update_id"] == update_id for u in self.sent):
            raise KeyError(f"update {update_id} was never delivered to bot {self.bot_id}")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(update, forced=True, done=done))
        self._notify()
        self._ensure_worker()
        return done

    def set_allowed(self, allowed: list[str] | None) -> None:
        """Apply ``allowed_updates``: an empty list means all default kinds."""
        if allowed is None:
            return
        self.allowed = frozenset(allowed) if allowed else None

    def _delivered(self, entry: _Pending) -> None:
        self.sent.append(entry.update)
        if entry.done is not None and not entry.done.done():
            entry.done.set_result(None)

    async def get_updates(
        self, offset: int | None, limit: int, timeout: float, allowed: list[str] | None
    ) -> list[JsonDict]:
        """The ``getUpdates`` semantics: confirm by offset, then return or long-poll."""
        if self.webhook is not None:
            raise ApiError(409, CONFLICT_WEBHOOK)
        self._poll_generation += 1
        generation = self._poll_generation
        self._poll_conflict = CONFLICT_POLLING
        self._notify()  # terminates a concurrent poll of this bot
        self.set_allowed(allowed)
        if offset:
            self._confirm(offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(timeout, 0.0), MAX_POLL_TIMEOUT)
        while True:
            if generation != self._poll_generation:
                raise ApiError(409, self._poll_conflict)
            batch = self._pending[: max(1, min(limit, 100))]
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._closed or self.webhook is not None:
                break
            await self._wait_change(remaining)
        for entry in batch:
            self._delivered(entry)
        forced = [entry for entry in batch if entry.forced]
        self._pending = [entry for entry in self._pending if entry not in forced]
        return [entry.update for entry in batch]

    def _confirm(self, offset: int) -> None:
        if offset < 0:
            regular = [entry for entry in self._pending if not entry.forced]
            keep = regular[offset:]
            self._pending = [e for e in self._pending if e.forced or e in keep]
            return
        self._pending = [e for e in self._pending if e.forced or e.update["update_id"] >= offset]

    def set_webhook(self, config: WebhookConfig, drop_pending: bool) -> None:
        """Switch to webhook delivery; an in-flight getUpdates is terminated."""
        if drop_pending:
            self.drop_pending()
        self.webhook = config
        self._poll_conflict = "Conflict: terminated by setWebhook request"
        self._poll_generation += 1
        self.last_error_date = None
        self.last_error_message = None
        self._notify()
        self._ensure_worker()

    def delete_webhook(self, drop_pending: bool) -> None:
        """Switch back to getUpdates; undelivered updates stay queued unless dropped."""
        if drop_pending:
            self.drop_pending()
        self.webhook = None
        self._notify()

    def drop_pending(self) -> None:
        """Forget every undelivered update (``drop_pending_updates``)."""
        for entry in self._pending:
            if entry.done is not None and not entry.done.done():
                entry.done.cancel()
        self._pending.clear()

    def webhook_info(self) -> JsonDict:
        """The ``getWebhookInfo`` answer."""
        info: JsonDict = {
            "url": self.webhook.url if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self.webhook is not None:
            info["max_connections"] = self.webhook.max_connections
            if self.webhook.ip_address:
                info["ip_address"] = self.webhook.ip_address
            if self.allowed is not None:
                info["allowed_updates"] = sorted(self.allowed)
        if self.last_error_date is not None:
            info["last_error_date"] = self.last_error_date
            info["last_error_message"] = self.last_error_message
        return info

    def _ensure_worker(self) -> None:
        if self.webhook is None or self._closed:
            return
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(
                self._webhook_loop(), name=f"telegram-emulator-webhook-{self.bot_id}"
            )

    async def _webhook_loop(self) -> None:
        backoff = BACKOFF_START
        while not self._closed and self.webhook is not None:
            if not self._pending:
                await self._wait_change(MAX_POLL_TIMEOUT)
                continue
            entry = self._pending[0]
            try:
                await self.deliver(self.webhook, entry.update)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure means "not delivered, retry later"
                self.last_error_date = int(time.time())
                self.last_error_message = str(exc) or type(exc).__name__
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_CAP)
                continue
            backoff = BACKOFF_START
            if entry in self._pending:
                self._pending.remove(entry)
            self._delivered(entry)

    async def close(self) -> None:
        """Stop delivery and wake pollers; used when the emulator shuts down."""
        self._closed = True
        self._notify()
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        for entry in self._pending:
            if entry.done is not None and not entry.done.done():
                entry.done.cancel()
