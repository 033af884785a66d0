"""Fault injection and throughput limits of the emulated Cloud API.

The Cloud API fails in a few characteristic ways: a Graph error object with an HTTP
error status (131000 "Something went wrong" with 500, 130429 "Rate limit hit" with 429,
131026 "Message undeliverable", ...), a proxy's HTML page in an incident, and limits on
throughput: about 80 messages a second per business number (130429) and about one
message every 6 seconds to the same customer (131056,
https://developers.facebook.com/docs/whatsapp/cloud-api/overview#pair-rate-limits).
Tests of an adapter's retry logic provoke each on demand: :class:`Faults` queues one-shot
failures per endpoint (first queued, first used) and, for chaos tests, fails requests at
random at a rate (``Faults.random``, answered by :func:`random_error`);
:class:`RateLimiter` answers 130429 when a number sends faster than allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

from ..common import faults as common
from .models import GraphError, graph_error

TARGETS = ("messages", "media", "media_get", "media_delete", "download", "number", "number_update")
"""The endpoints, as faults name them."""
ENDPOINTS = (*TARGETS, "*")
"""What a fault may target: the messages endpoint (sends and read marks), media upload,
``GET /{media_id}``, ``DELETE /{media_id}``, the download URL, ``GET`` and ``POST`` of the
phone number node, or any of them."""


@dataclass
class Fault:
    """One queued failure of requests to ``endpoint``."""

    endpoint: str
    remaining: int
    code: int | None = None
    """Graph error code (a JSON error body)."""
    http_status: int | None = None
    """HTTP status: of the JSON error (default: the code's usual one), or alone, of an
    HTML page (``code`` ``None``)."""
    details: str | None = None

    @property
    def html(self) -> bool:
        """Whether the answer is a non-JSON page."""
        return self.code is None

    def error(self) -> GraphError:
        """The Graph error to answer with (code faults only)."""
        assert self.code is not None
        return graph_error(self.code, self.details, http_status=self.http_status)


class Faults(common.FaultQueue[Fault]):
    """A FIFO of one-shot faults, consumed by matching requests."""

    def add(self, fault: Fault) -> None:
        """Queue a fault for its next ``remaining`` matching requests."""
        if fault.endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {ENDPOINTS}, got {fault.endpoint!r}")
        if fault.remaining < 1:
            raise ValueError("times must be at least 1")
        common.check_http_error(fault.http_status)
        if fault.code is None and fault.http_status is None:
            raise ValueError("a fault needs a code or an HTTP status")
        self.push(fault)

    def take(self, endpoint: str, *, html: bool) -> Fault | None:
        """Use the oldest fault for ``endpoint`` of the given kind (HTML page or error)."""

        def matches(fault: Fault) -> bool:
            return fault.html == html and fault.endpoint in (endpoint, "*")

        return self.take_first(matches)


RANDOM_CODES = {
    HTTPStatus.TOO_MANY_REQUESTS: 130429,
    HTTPStatus.INTERNAL_SERVER_ERROR: 131000,
    HTTPStatus.SERVICE_UNAVAILABLE: 2,
}
"""The Graph error a random fault of a status kind answers: "429" the throughput limit
(130429 "Rate limit hit"), "500" 131000 "Something went wrong", "503" 2 "API Service"
(temporary downtime or overload), each with its HTTP status from
:data:`~.models.ERRORS`; "502" has no code: the edge in front of Graph answers an HTML
page (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes)."""


def random_error(status: int) -> GraphError | None:
    """The Graph error for a random fault of a status kind (``None``: an HTML page of
    that status). 130429 carries no wait (no ``Retry-After``)."""
    code = RANDOM_CODES.get(HTTPStatus(status))
    return graph_error(code) if code is not None else None


class RateLimiter(common.RateLimiter):
    """Messages a second one business number may send before error 130429."""

    def check(self, phone_number_id: str) -> None:
        """Count one send; raise 130429 when the number exceeds the limit."""
        if not self.allow(phone_number_id):
            raise graph_error(130429)
