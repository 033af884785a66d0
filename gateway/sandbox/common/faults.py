"""Injected failures and request-rate limits, the parts every emulator shares.

Reproducing a platform's failure modes is the point of the emulators: tests of the
gateway's retry logic queue one-shot faults (:class:`FaultQueue`, first queued, first
used; what a fault answers is the platform's business) and switch on a per-credential
rate limit (:class:`RateLimiter`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class _Countdown(Protocol):
    remaining: int


F = TypeVar("F", bound=_Countdown)


def check_http_error(status: int | None) -> None:
    """``ValueError`` unless ``status`` is ``None`` or an HTTP error status (4xx/5xx)."""
    if status is not None and not 400 <= status <= 599:
        raise ValueError(f"status must be an HTTP error status, got {status}")


class FaultQueue(Generic[F]):
    """A FIFO of faults, each good for its next ``remaining`` matching requests."""

    def __init__(self) -> None:
        self._queue: list[F] = []

    def push(self, fault: F) -> F:
        """Queue ``fault`` after the others."""
        self._queue.append(fault)
        return fault

    def take_first(self, matches: Callable[[F], bool]) -> F | None:
        """Use one turn of the oldest fault ``matches`` accepts; a used-up fault leaves."""
        for fault in self._queue:
            if matches(fault):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._queue.remove(fault)
                return fault
        return None

    def pending(self) -> list[F]:
        """Faults not used up yet, oldest first."""
        return list(self._queue)

    def clear(self) -> None:
        """Forget every queued fault."""
        self._queue.clear()


@dataclass
class Fault:
    """One queued failure of requests to ``target`` (an API method or endpoint; ``"*"``:
    any; names in ``<...>`` are special targets such as uploads, which ``"*"`` leaves
    alone)."""

    target: str
    remaining: int
    code: int | None = None
    """The platform's error code, answered the way the platform answers errors."""
    message: str | None = None
    """Its description (the platform's usual one when ``None``)."""
    status: int | None = None
    """An HTTP error status with a proxy's HTML page instead."""


FT = TypeVar("FT", bound=Fault)


class Faults(FaultQueue[FT]):
    """One-shot failures by target: platform errors and HTTP errors."""

    def add(self, fault: FT) -> None:
        """Queue a fault for its next ``remaining`` matching requests."""
        if fault.remaining < 1:
            raise ValueError("times must be at least 1")
        check_http_error(fault.status)
        fault.target = fault.target.lower()
        self.push(fault)

    def take(self, target: str, *, http: bool) -> FT | None:
        """Use the oldest fault for ``target`` of the given kind (HTTP or platform error)."""
        target = target.lower()

        def matches(fault: FT) -> bool:
            if (fault.status is not None) != http:
                return False
            if fault.target == "*":
                return not target.startswith("<")
            return fault.target == target

        return self.take_first(matches)


class RateLimiter:
    """A token bucket per key (a token, a bot): ``limit`` requests a second, bursts of
    ``limit`` (at least one). ``limit`` ``None`` switches it off."""

    def __init__(self, limit: float | None = None) -> None:
        self._limit: float | None = None
        self.limit = limit
        self._buckets: dict[str, tuple[float, float]] = {}

    @property
    def limit(self) -> float | None:
        """Requests a second one key may make (``None``: no limit)."""
        return self._limit

    @limit.setter
    def limit(self, value: float | None) -> None:
        if value is not None and value <= 0:
            raise ValueError("a rate limit must be positive")
        self._limit = value

    def allow(self, key: str) -> bool:
        """Count one request of ``key``; ``False`` when it is over the limit (not counted)."""
        if self._limit is None:
            return True
        now = time.monotonic()
        capacity = max(1.0, self._limit)
        level, since = self._buckets.get(key, (capacity, now))
        level = min(capacity, level + (now - since) * self._limit)
        if level < 1.0:
            self._buckets[key] = (level, now)
            return False
        self._buckets[key] = (level - 1.0, now)
        return True


class RateLimited:
    """Mixin of the facades whose API has a per-credential request limit (``limiter``)."""

    limiter: RateLimiter

    @property
    def rate_limit(self) -> float | None:
        """Requests a second one token may make before the platform answers "too many
        requests" (``None``: no limit)."""
        return self.limiter.limit

    @rate_limit.setter
    def rate_limit(self, value: float | None) -> None:
        self.limiter.limit = value
