"""Graph API errors → the gateway's error tree
(https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes)."""

from __future__ import annotations

from typing import Any

from gateway.errors import PermanentError, TransientError
from gateway.model import Channel

CHANNEL = Channel.WHATSAPP.value
TRANSIENT = {
    1: 0.0,  # API unknown
    2: 0.0,  # API service (temporary)
    4: 60.0,  # app-level API rate limit
    80007: 60.0,  # WhatsApp Business Account rate limit
    130429: 1.0,  # throughput: 80 messages a second by default
    131000: 0.0,  # "something went wrong"
    131016: 5.0,  # service unavailable
    131056: 6.0,  # too many messages to one customer: about one per 6 s
}
PERMANENT = {
    100: "WhatsApp refused a parameter",
    190: "WhatsApp rejected the access token (expired?)",
    10: "the token lacks a permission",
    131008: "a required parameter is missing",
    131009: "a parameter value is invalid",
    131026: "the customer cannot receive it (no WhatsApp, or a version too old)",
    131031: "the business account is locked",
    131047: "more than 24 hours since the customer last wrote: only a template can reach them",
    131051: "WhatsApp does not support this kind of message",
    131052: "WhatsApp could not download the customer's file",
    131053: "WhatsApp could not take the file (type or size)",
    132000: "the template's parameter count does not match",
    132001: "WhatsApp does not know this template (name or language)",
    132005: "the template's text is too long with these parameters",
    132007: "the template's parameters break WhatsApp's format policy",
    133010: "the phone number is not registered with the Cloud API",
}


def from_answer(status: int, body: Any) -> Exception:
    """The error for a non-2xx answer (``body``: its parsed JSON, or None)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        if status >= 500 or status == 429:
            return TransientError(CHANNEL, f"HTTP {status}")
        return PermanentError(CHANNEL, f"HTTP {status}", reason=f"WhatsApp answered HTTP {status}")
    code = error.get("code")
    message = str(error.get("message") or "")
    details = (error.get("error_data") or {}).get("details") if isinstance(error, dict) else None
    text = f"[{code}] {message}" + (f" ({details})" if details else "")
    if code in TRANSIENT or status >= 500:
        wait = TRANSIENT.get(code) if isinstance(code, int) else None
        return TransientError(CHANNEL, text, retry_after=wait or None)
    reason = PERMANENT.get(code) if isinstance(code, int) else None
    return PermanentError(CHANNEL, text, reason=reason or details or message or text)
