"""One HTTP attempt at a delivery, and what its answer means.

- **2xx**: delivered.
- **408, 429, 5xx**, timeouts and connection errors: worth another try later
  (``Retry-After`` — seconds or an HTTP date — is honoured as the shortest wait).
- **Anything else** (other 4xx, 3xx: redirects are not followed, since a signed
  request must not be sent somewhere the config does not name): retrying cannot
  help, the delivery is dead-lettered at once.

The waits between attempts grow exponentially with random jitter (tenacity's wait
strategies), so a CRM that comes back is not hit by every replica at the same instant.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

import aiohttp
from multidict import CIMultiDictProxy
from tenacity import AsyncRetrying, RetryCallState, wait_exponential, wait_random

from gateway.config import WebhookTarget
from gateway.integrations.payload import Delivery, headers
from gateway.lifecycle import raise_if_cancelling

Result = Literal["delivered", "retry", "failed"]
MAX_ERROR = 300
"""Characters of a receiver's answer kept as the error (dead letters, logs)."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one POST came to."""

    result: Result
    error: str = ""
    reason: str = ""
    """For the retry metric: ``timeout``, ``connection``, ``429``, ``5xx``, ``408``."""
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter between attempts: ``initial·2ⁿ⁻¹`` seconds plus
    up to ``jitter`` more, at most ``maximum``. The retry window itself is the target's
    ``retry_for_hours``."""

    initial: float = 1.0
    maximum: float = 600.0
    jitter: float = 1.0

    def wait(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th failure (1-based)."""
        strategy = wait_exponential(multiplier=self.initial, max=self.maximum) + wait_random(
            0, self.jitter
        )
        state = RetryCallState(AsyncRetrying(), None, (), {})
        state.attempt_number = attempt
        return float(min(strategy(state), self.maximum + self.jitter))


async def post(http: aiohttp.ClientSession, target: WebhookTarget, delivery: Delivery) -> Attempt:
    """POST the delivery to the target once, signed with a fresh timestamp."""
    body = delivery.body()
    stamp = int(time.time())
    sent = headers(delivery, target.secret.get_secret_value(), stamp, body)
    try:
        async with http.post(
            str(target.url),
            data=body,
            headers=sent,
            timeout=aiohttp.ClientTimeout(total=target.timeout_seconds),
            allow_redirects=False,
        ) as response:
            answer = (await response.content.read(MAX_ERROR)).decode(errors="replace")
            return classify(response.status, response.headers, answer)
    except TimeoutError:
        raise_if_cancelling()
        return Attempt("retry", f"no answer within {target.timeout_seconds:g} s", "timeout")
    except aiohttp.ClientError as exc:
        raise_if_cancelling()
        return Attempt("retry", f"{type(exc).__name__}: {exc}"[:MAX_ERROR], "connection")


def classify(status: int, answer_headers: CIMultiDictProxy[str], answer: str) -> Attempt:
    if 200 <= status < 300:
        return Attempt("delivered")
    error = f"HTTP {status}: {answer.strip()}"[:MAX_ERROR] if answer.strip() else f"HTTP {status}"
    if status in (408, 429) or status >= 500:
        reason = "5xx" if status >= 500 else str(status)
        return Attempt("retry", error, reason, retry_after(answer_headers.get("Retry-After")))
    return Attempt("failed", error)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


async def sleep_or(event: asyncio.Event, seconds: float) -> None:
    """Wait for ``event`` or ``seconds``, whichever comes first."""
    if event.is_set():
        await asyncio.sleep(0)  # still a turn for the others: callers loop on this
        return
    try:
        await asyncio.wait_for(event.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        raise_if_cancelling()


def iso(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
