"""Viber answers and transport failures → the gateway's error tree.

Every REST answer is HTTP 200 with ``status`` 0 or an error code
(https://developers.viber.com/docs/api/rest-bot-api/#error-codes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import requests

from gateway.errors import GatewayError, PermanentError, TransientError
from gateway.model import Channel

CHANNEL = Channel.VIBER.value
T = TypeVar("T")

PERMANENT = {
    1: "Viber refused the webhook URL",
    2: "Viber rejected the bot token",
    3: "Viber refused the message",
    4: "Viber says a required field is missing",
    5: "the customer's Viber account no longer exists",
    6: "the customer is not subscribed to the bot (they unsubscribed, or never wrote)",
    7: "the bot is blocked",
    8: "the bot was not found",
    9: "the bot is suspended",
    10: "the bot has no webhook (run gateway set-webhooks)",
    11: "the customer has no Viber device that can show this",
    13: "the customer's Viber is too old for this message",
}
TRANSIENT = {12: 60.0}  # tooManyRequests: the hour's quota to one user, or the bot's rate


class ViberStatus(Exception):
    """A non-zero ``status`` in a Viber answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"status {status}: {message}")
        self.status = status
        self.message = message


def convert(exc: BaseException) -> Exception:
    match exc:
        case ViberStatus() if exc.status in TRANSIENT:
            return TransientError(CHANNEL, str(exc), retry_after=TRANSIENT[exc.status])
        case ViberStatus():
            reason = PERMANENT.get(exc.status) or f"Viber answered {exc.message}"
            return PermanentError(CHANNEL, str(exc), reason=reason)
        case requests.HTTPError() if exc.response is not None and (
            exc.response.status_code >= 500 or exc.response.status_code == 429
        ):
            return TransientError(CHANNEL, f"HTTP {exc.response.status_code}")
        case requests.HTTPError():
            code = exc.response.status_code if exc.response is not None else "?"
            return PermanentError(CHANNEL, f"HTTP {code}", reason=f"Viber answered HTTP {code}")
        case (
            requests.exceptions.InvalidURL()
            | requests.exceptions.MissingSchema()
            | (requests.exceptions.InvalidSchema())
        ):
            # A link that is no URL (a malformed media link in an event): asking again
            # cannot help, and retrying forever would hold up the contact's queue.
            return PermanentError(CHANNEL, f"{type(exc).__name__}: {exc}", reason="a broken link")
        case requests.RequestException() | ConnectionError() | TimeoutError():
            return TransientError(CHANNEL, f"network: {type(exc).__name__}: {exc}")
        case ValueError():  # not the JSON Viber documents (a proxy's error page)
            return TransientError(CHANNEL, f"unreadable answer: {exc}")
    # viberbot raises bare Exception when a message fails its own validation.
    return PermanentError(CHANNEL, f"{type(exc).__name__}: {exc}", reason=str(exc))


async def off_loop(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking viberbot/requests call in a worker thread, converting its errors."""
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except GatewayError:
        raise
    except Exception as exc:  # viberbot raises bare Exception; all of it is converted
        raise convert(exc) from exc
