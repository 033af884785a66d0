"""Fault injection and the per-token request rate limit of the emulated VK API.

VK fails in a few characteristic ways: an error object in an HTTP 200 answer (6 "Too
many requests per second", 10 "Internal server error", 901 "no permission", ...), a
proxy's HTML page with a 5xx status during incidents, and upload servers that refuse a
file. Tests of the gateway's retry logic provoke each on demand: :class:`Faults` queues
one-shot failures (first queued, first used) and, for chaos tests, fails calls at random
at a rate (``Faults.random``, answered by :func:`random_error`); :class:`RateLimiter`
answers error 6 when a token calls faster than allowed (VK allows a community token 20
calls a second: https://dev.vk.com/ru/api/api-requests#Ограничения%20и%20рекомендации).
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

from ..common import faults as common
from .models import DEFAULT_ERROR_MESSAGES, TOO_MANY_RPS, VkApiError


@dataclass
class Fault(common.Fault):
    """One queued failure of API calls (``target`` a method, ``"*"`` = any) or uploads:
    ``code`` a VK error (an error object in an HTTP 200 answer), or ``status`` an HTTP
    error with a non-JSON body."""

    def error(self) -> VkApiError:
        """The VK error to answer with (code faults only)."""
        assert self.code is not None
        message = self.message or DEFAULT_ERROR_MESSAGES.get(self.code, "Unknown error occurred")
        return VkApiError(self.code, message)


class Faults(common.Faults[Fault]):
    """A FIFO of one-shot faults, consumed by matching calls."""

    UPLOAD = "<upload>"
    """Target of upload faults (any upload server)."""


def random_error(status: int) -> VkApiError | None:
    """What VK answers for a random fault of a status kind: "429" is error 6 "Too many
    requests per second" and "500" error 10 "Internal server error", both error objects
    in an HTTP 200 answer (https://dev.vk.com/ru/reference/errors); ``None`` for "502"
    and "503", which the proxy in front of the API answers with an HTML page of that
    status. VK's error 6 says nothing of how long to wait (no ``retry_after``)."""
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        return VkApiError(6, TOO_MANY_RPS)
    if status == HTTPStatus.INTERNAL_SERVER_ERROR:
        return VkApiError(10, DEFAULT_ERROR_MESSAGES[10])
    return None


class RateLimiter(common.RateLimiter):
    """VK allows a community token 20 calls a second; over the limit is error 6."""

    def check(self, token: str) -> None:
        """Count one call; raise error 6 when the token exceeds the limit."""
        if not self.allow(token):
            raise VkApiError(6, TOO_MANY_RPS)
