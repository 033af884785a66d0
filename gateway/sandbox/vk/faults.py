"""Fault injection and the per-token request rate limit of the emulated VK API.

VK fails in a few characteristic ways: an error object in an HTTP 200 answer (6 "Too
many requests per second", 10 "Internal server error", 901 "no permission", ...), a
proxy's HTML page with a 5xx status during incidents, and upload servers that refuse a
file. Tests of the gateway's retry logic provoke each on demand: :class:`Faults` queues
one-shot failures (first queued, first used), :class:`RateLimiter` answers error 6 when a
token calls faster than allowed (VK allows a community token 20 calls a second:
https://dev.vk.com/ru/api/api-requests#Ограничения%20и%20рекомендации).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .models import DEFAULT_ERROR_MESSAGES, TOO_MANY_RPS, VkApiError

_HTML = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass
class Fault:
    """One queued failure of API calls (``method`` ``"*"`` = any) or uploads."""

    target: str
    remaining: int
    code: int | None = None
    """VK error code (an error object in an HTTP 200 answer)."""
    message: str | None = None
    status: int | None = None
    """HTTP status with a non-JSON body instead."""

    def error(self) -> VkApiError:
        """The VK error to answer with (code faults only)."""
        assert self.code is not None
        message = self.message or DEFAULT_ERROR_MESSAGES.get(self.code, "Unknown error occurred")
        return VkApiError(self.code, message)


def html_page(status: int) -> str:
    """The kind of page a proxy in front of VK answers with during an incident."""
    return _HTML.format(status=status, reason=_REASONS.get(status, "Error"))


class Faults:
    """A FIFO of one-shot faults, consumed by matching calls."""

    UPLOAD = "<upload>"
    """Target of upload faults (any upload server)."""

    def __init__(self) -> None:
        self._queue: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Queue a fault for its next ``remaining`` matching requests."""
        if fault.remaining < 1:
            raise ValueError("times must be at least 1")
        if fault.status is not None and not 400 <= fault.status <= 599:
            raise ValueError(f"status must be an HTTP error status, got {fault.status}")
        fault.target = fault.target.lower()
        self._queue.append(fault)

    def take(self, target: str, *, http: bool) -> Fault | None:
        """Use the oldest fault for ``target`` of the given kind (HTTP or VK error)."""
        target = target.lower()
        for fault in self._queue:
            if (fault.status is not None) != http:
                continue
            if fault.target in (target, "*") and (fault.target != "*" or target != self.UPLOAD):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._queue.remove(fault)
                return fault
        return None

    def pending(self) -> int:
        """How many queued faults are not used up yet."""
        return len(self._queue)

    def clear(self) -> None:
        """Forget every queued fault."""
        self._queue.clear()


class RateLimiter:
    """A token bucket per access token: ``limit`` calls a second, bursts of ``limit``."""

    def __init__(self) -> None:
        self.limit: float | None = None
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, token: str) -> None:
        """Count one call; raise error 6 when the token exceeds the limit."""
        if self.limit is None:
            return
        now = time.monotonic()
        capacity = max(1.0, self.limit)
        level, since = self._buckets.get(token, (capacity, now))
        level = min(capacity, level + (now - since) * self.limit)
        if level < 1.0:
            self._buckets[token] = (level, now)
            raise VkApiError(6, TOO_MANY_RPS)
        self._buckets[token] = (level - 1.0, now)
