"""Webhooks as Meta sends them: the verification request, signed POSTs and retries.

Verification (https://developers.facebook.com/docs/graph-api/webhooks/getting-started):
when a callback URL is configured Meta sends ``GET url?hub.mode=subscribe&
hub.challenge=<random number>&hub.verify_token=<the token the developer typed>``; the
URL is accepted only if it answers HTTP 200 with exactly the challenge as its body.

Every event is a ``POST`` of compact JSON (non-ASCII escaped as ``\\uXXXX``, as Meta does,
so a receiver must check the signature over the raw bytes, not re-serialised JSON) with
``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body keyed by the app secret>``
(and the legacy SHA-1 ``X-Hub-Signature``). Anything but HTTP 200 is retried with a
growing pause — Meta keeps trying for days, the emulator a few times — and each number's
events are posted one at a time, in order. Every attempt is appended to
:attr:`WebhookDelivery.log`.

The same HTTP client fetches media ``link`` URLs of outgoing messages
(:meth:`WebhookDelivery.fetch`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets

from aiohttp import ClientError
from yarl import URL

from ..common import is_loopback
from ..common.outgoing import OutgoingHttp
from .models import JsonDict, Number, Subscription

_BODY_LOGGED = 200
SIGNATURE_HEADER = "X-Hub-Signature-256"


def signature(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value of ``body``."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def envelope(number: Number, value: JsonDict) -> JsonDict:
    """The ``whatsapp_business_account`` object around one ``messages`` change."""
    inner = {"messaging_product": "whatsapp", "metadata": number.metadata(), **value}
    change = {"value": inner, "field": "messages"}
    entry = {"id": number.waba_id, "changes": [change]}
    return {"object": "whatsapp_business_account", "entry": [entry]}


class WebhookDelivery(OutgoingHttp):
    """Verification requests, signed event deliveries, media link fetches, and the log."""

    def __init__(self, *, attempts: int = 4, backoff: float = 0.05) -> None:
        """``attempts`` per event; the pause after a failed attempt starts at ``backoff``
        seconds and doubles (up to 2 s)."""
        super().__init__(attempts=attempts, backoff=backoff)
        self.log: list[JsonDict] = []

    # --- verification ---------------------------------------------------------------------

    async def verify(self, url: str, verify_token: str) -> bool:
        """Send the verification request once; whether the URL echoed the challenge."""
        challenge = str(secrets.randbelow(2**31 - 10**9) + 10**9)
        query = {
            "hub.mode": "subscribe",
            "hub.challenge": challenge,
            "hub.verify_token": verify_token,
        }
        entry = self._entry(url, "verification", 1, query)
        try:
            async with self.session().get(url, params=query) as response:
                text = await response.text(errors="replace")
                entry.update(status=response.status, body=text[:_BODY_LOGGED])
        except (ClientError, TimeoutError, OSError) as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            self.log.append(entry)
            return False
        entry["ok"] = response.status == 200 and text == challenge
        self.log.append(entry)
        return bool(entry["ok"])

    # --- events ---------------------------------------------------------------------------

    def deliver(self, number: Number, value: JsonDict, kind: str) -> None:
        """Queue one webhook (``value`` of the change: ``messages`` or ``statuses`` with
        their ``contacts``) for the number's subscription; nothing without one."""
        subscription = number.subscription
        if subscription is None:
            return
        payload = envelope(number, value)
        body = json.dumps(payload, separators=(",", ":")).encode()

        async def attempt(number_: int) -> bool:
            return await self._post(subscription, kind, payload, body, number_)

        async def job() -> None:
            await self.retry(attempt)

        self.enqueue(subscription.url, job)

    async def _post(
        self, subscription: Subscription, kind: str, payload: JsonDict, body: bytes, attempt: int
    ) -> bool:
        """POST once; whether the receiver answered 200."""
        entry = self._entry(subscription.url, kind, attempt, payload)
        signed = signature(body, subscription.app_secret)
        sha1 = hmac.new(subscription.app_secret.encode(), body, hashlib.sha1).hexdigest()
        entry["signature"] = signed
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signed,
            "X-Hub-Signature": f"sha1={sha1}",
            "User-Agent": "facebookexternalua",
        }
        try:
            async with self.session().post(
                subscription.url, data=body, headers=headers
            ) as response:
                text = await response.text(errors="replace")
                entry.update(status=response.status, body=text[:_BODY_LOGGED])
        except (ClientError, TimeoutError, OSError) as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            self.log.append(entry)
            return False
        entry["ok"] = response.status == 200
        self.log.append(entry)
        return response.status == 200

    @staticmethod
    def _entry(url: str, kind: str, attempt: int, payload: JsonDict) -> JsonDict:
        return {
            "url": url,
            "kind": kind,
            "attempt": attempt,
            "payload": payload,
            "signature": None,
            "status": 0,
            "body": "",
            "error": None,
            "ok": False,
        }

    # --- media links ----------------------------------------------------------------------

    async def fetch(self, url: str, limit: int) -> tuple[bytes, str] | str:
        """Download a media ``link``: ``(bytes, content type)``, or why it failed (in the
        words Meta puts into the 131053 details). Only loopback URLs are fetched: the
        emulator never reaches out of the machine."""
        if not is_loopback(URL(url).host):
            return f"Downloading media from weblink {url} failed: only loopback URLs are fetched"
        try:
            async with self.session().get(url) as response:
                if response.status != 200:
                    return (
                        f"Downloading media from weblink failed with http code {response.status}, "
                        f"status message {response.reason}"
                    )
                data = await response.content.read(limit + 1)
                mime = response.headers.get("Content-Type", "application/octet-stream")
        except (ClientError, TimeoutError, OSError, ValueError) as exc:
            return f"Downloading media from weblink failed: {type(exc).__name__}: {exc}"
        if len(data) > limit:
            return f"Media file size exceeds the limit of {limit} bytes"
        return data, mime
