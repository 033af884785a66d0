"""Fault injection and Telegram's flood limits.

Real Telegram fails in a handful of characteristic ways (429 with ``retry_after``, 5xx
during incidents, slow answers, dropped connections). Tests of the gateway's retry and
back-off logic need to provoke each of them on demand: :class:`FaultInjector` queues
one-shot failures and, for chaos tests, fails calls at random at a rate
(:meth:`FaultInjector.set_rate`); :class:`FloodLimiter` reproduces the documented
sending limits.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus

from ..common.faults import RANDOM_KINDS, FaultQueue, FaultRate, RandomFaults, check_http_error
from .models import CONFLICT_POLLING, ApiError, ChatKey, too_many_requests

_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: CONFLICT_POLLING,
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Fault:
    """One queued failure; matches calls by method (case-insensitive) and bot, if given."""

    method: str | None
    bot_id: int | None
    status: int | None
    retry_after: int | None
    description: str | None
    remaining: int
    delay: float
    reset: bool

    def matches(self, method: str, bot_id: int | None) -> bool:
        """Whether a call of ``method`` by ``bot_id`` is affected."""
        if self.remaining <= 0:
            return False
        if self.method is not None and self.method != method.lower():
            return False
        return self.bot_id is None or self.bot_id == bot_id

    def error(self) -> ApiError | None:
        """The error to answer with, ``None`` for a delay-only fault."""
        if self.status is None:
            return None
        retry_after = self.retry_after
        if self.status == HTTPStatus.TOO_MANY_REQUESTS:
            retry_after = retry_after if retry_after is not None else 1
            if self.description is None:
                return too_many_requests(retry_after)
        description = self.description or _DEFAULT_DESCRIPTIONS.get(self.status)
        if description is None:
            try:
                description = HTTPStatus(self.status).phrase
            except ValueError:
                description = "Error"
        return ApiError(self.status, description, retry_after)


class FaultInjector(FaultQueue[Fault]):
    """A FIFO of one-shot faults consumed by matching API calls; a call no queued fault
    matches may still meet a random one (:meth:`set_rate`)."""

    def __init__(self) -> None:
        super().__init__()
        self.random = RandomFaults()
        """Faults at a rate; ``random.injected`` counts them by method and kind."""

    def set_rate(
        self,
        probability: float,
        *,
        methods: Iterable[str] | None = None,
        bot_id: int | None = None,
        kinds: Iterable[str] = RANDOM_KINDS,
        retry_after: int = 1,
        delay: float = 1.0,
        seed: int | None = None,
    ) -> FaultRate:
        """Fail each call of ``methods`` (all when ``None``) by ``bot_id`` (any when
        ``None``) with ``probability``, as one of ``kinds`` drawn uniformly: "429"
        (with ``retry_after``), "500", "502", "503", "delay" (answered ``delay`` seconds
        late, and done: past the client's timeout a done call looks failed, as on real
        Telegram) or "reset" (the connection drops before the call is done). The newest
        rule matching a call decides; ``seed`` restarts the generator."""
        rate = FaultRate(
            probability=probability,
            kinds=tuple(kinds),
            targets=frozenset(m.lower() for m in methods) if methods is not None else None,
            key=bot_id,
            retry_after=retry_after,
            delay=delay,
        )
        return self.random.add(rate, seed=seed)

    def add(
        self,
        *,
        method: str | None = None,
        bot_id: int | None = None,
        status: int | None = None,
        retry_after: int | None = None,
        description: str | None = None,
        count: int = 1,
        delay: float = 0.0,
        reset: bool = False,
    ) -> Fault:
        """Queue a fault for the next ``count`` matching calls."""
        if count < 1:
            raise ValueError("count must be at least 1")
        if delay < 0:
            raise ValueError("delay must not be negative")
        if status is None and not reset and delay == 0:
            raise ValueError("a fault needs a status, a delay or reset=True")
        check_http_error(status)
        fault = Fault(
            method=method.lower() if method else None,
            bot_id=bot_id,
            status=status,
            retry_after=retry_after,
            description=description,
            remaining=count,
            delay=delay,
            reset=reset,
        )
        return self.push(fault)

    def take(self, method: str, bot_id: int | None) -> Fault | None:
        """Consume one use of the oldest fault matching this call, if any; otherwise
        draw a random one (see :meth:`set_rate`)."""
        queued = self.take_first(lambda fault: fault.matches(method, bot_id))
        if queued is not None:
            return queued
        drawn = self.random.draw(method, bot_id)
        if drawn is None:
            return None
        rate = drawn.rate
        return Fault(
            method=method.lower(),
            bot_id=bot_id,
            status=drawn.status,
            retry_after=rate.retry_after if drawn.status == HTTPStatus.TOO_MANY_REQUESTS else None,
            description=None,
            remaining=0,
            delay=rate.delay if drawn.kind == "delay" else 0.0,
            reset=drawn.kind == "reset",
        )


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class FloodLimiter:
    """Telegram's per-bot sending limits; off by default so ordinary tests run unthrottled.

    A bot may send at most ``group_per_minute`` messages per minute into one group,
    ``private_per_second`` per second into one private chat (with a burst of
    ``private_burst``), and ``global_per_second`` overall.
    """

    enabled: bool = False
    group_per_minute: int = 20
    private_per_second: float = 1.0
    private_burst: int = 3
    global_per_second: int = 30
    clock: Callable[[], float] = time.monotonic
    _group: dict[tuple[int, int], deque[float]] = field(default_factory=dict)
    _global: dict[int, deque[float]] = field(default_factory=dict)
    _private: dict[tuple[int, int], _Bucket] = field(default_factory=dict)

    def check(self, bot_id: int, chat: ChatKey, is_group: bool) -> None:
        """Account one outgoing message; raise a 429 ApiError if it exceeds a limit."""
        if not self.enabled:
            return
        now = self.clock()
        waits = [
            self._window_wait(
                self._global.setdefault(bot_id, deque()), now, 1.0, self.global_per_second
            )
        ]
        if is_group:
            window = self._group.setdefault((bot_id, chat[1]), deque())
            waits.append(self._window_wait(window, now, 60.0, self.group_per_minute))
        else:
            bucket = self._private.setdefault(
                (bot_id, chat[1]), _Bucket(float(self.private_burst), now)
            )
            bucket.tokens = min(
                float(self.private_burst),
                bucket.tokens + (now - bucket.updated) * self.private_per_second,
            )
            bucket.updated = now
            waits.append(max(0.0, (1.0 - bucket.tokens) / self.private_per_second))
        wait = max(waits)
        if wait > 0:
            raise too_many_requests(max(1, math.ceil(wait)))
        self._global[bot_id].append(now)
        if is_group:
            self._group[(bot_id, chat[1])].append(now)
        else:
            self._private[(bot_id, chat[1])].tokens -= 1.0

    @staticmethod
    def _window_wait(window: deque[float], now: float, span: float, limit: int) -> float:
        while window and window[0] <= now - span:
            window.popleft()
        if len(window) < limit:
            return 0.0
        return window[0] + span - now

    def reset(self) -> None:
        """Forget all recorded sends (e.g. when limits are switched on)."""
        self._group.clear()
        self._global.clear()
        self._private.clear()
