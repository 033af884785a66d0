"""vk_api and requests failures → the gateway's error tree, in one place.

Codes from https://dev.vk.com/ru/reference/errors. vk_api retries error 6 by itself
(sleep 0.5 s, call again, without end); the adapter removes that handler so the
delivery layer's backoff and rate limiter decide instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from vk_api.exceptions import ApiError, ApiHttpError, Captcha, VkApiError

from gateway.errors import PermanentError, TransientError
from gateway.model import Channel

CHANNEL = Channel.VK.value
T = TypeVar("T")

TRANSIENT = {
    1: 0.0,  # unknown error: "try again later"
    6: 1.0,  # too many requests per second
    9: 5.0,  # flood control: too many similar requests
    10: 0.0,  # internal server error
    29: 60.0,  # a method's rate limit reached
}
PERMANENT = {
    5: "VK rejected the community token",
    7: "the token lacks a permission (enable messages in the community's API settings)",
    15: "access denied",
    27: "the community token is not valid for this method",
    100: "VK refused a parameter",
    900: "the customer blocked the community",
    901: "the customer has not allowed messages from the community",
    902: "the customer's privacy settings forbid messages from the community",
    914: "the message is too long for VK",
    917: "the community has no access to this conversation",
    924: "VK deletes a message for everyone only within 24 hours of sending it",
    945: "the conversation is disabled",
}


def convert(exc: BaseException) -> Exception:
    """The gateway error for a vk_api/requests failure (callers ``raise … from exc``)."""
    match exc:
        case Captcha():
            return PermanentError(CHANNEL, str(exc), reason="VK asks for a captcha")
        case ApiError() if exc.code in TRANSIENT:
            return TransientError(CHANNEL, str(exc), retry_after=TRANSIENT[exc.code] or None)
        case ApiError():
            reason = PERMANENT.get(exc.code) or str(exc.error.get("error_msg") or exc)
            return PermanentError(CHANNEL, str(exc), reason=reason)
        case ApiHttpError():
            status = exc.response.status_code
            if status >= 500 or status == 429:
                return TransientError(CHANNEL, f"HTTP {status}")
            return PermanentError(CHANNEL, f"HTTP {status}", reason=f"VK answered HTTP {status}")
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
        case ValueError():  # a body that is not the JSON VK documents (a proxy's error page)
            return TransientError(CHANNEL, f"unreadable answer: {exc}")
        case VkApiError():
            return PermanentError(CHANNEL, str(exc), reason=str(exc))
    return PermanentError(CHANNEL, f"{type(exc).__name__}: {exc}")


async def off_loop(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking vk_api/requests call in a worker thread, converting its errors."""
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except (VkApiError, requests.RequestException, ConnectionError, TimeoutError, ValueError) as e:
        raise convert(e) from e
