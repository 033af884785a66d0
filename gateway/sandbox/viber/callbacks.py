"""Viber's side of the webhook: signed callbacks with retries, and media downloads.

Every callback is a JSON POST signed with the bot's token: ``X-Viber-Content-Signature``
is the hex HMAC-SHA256 of the raw body
(https://developers.viber.com/docs/api/rest-bot-api/#callbacks). A bot's callbacks go
out one at a time, in order; one that is not answered with HTTP 200 is tried again after
a pause that doubles (Viber keeps trying for up to an hour; the emulator a few times,
quickly), then dropped. ``set_webhook`` first sends the ``webhook`` callback once and
refuses the URL (status 1) unless it is answered with 200. Every attempt is appended to
:attr:`Callbacks.log`.

Viber has no upload endpoint: a bot's picture, video or file is a URL Viber downloads
before the message is delivered. :meth:`Callbacks.fetch` does that download.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable

from aiohttp import ClientError, ClientTimeout

from ..common.outgoing import OutgoingHttp
from .models import CHAT_HOSTNAME, Bot, JsonDict, now_ms

SIGNATURE_HEADER = "X-Viber-Content-Signature"
MAX_MEDIA = 50 * 1024 * 1024
"""Viber's limit for files; a bigger download fails."""
_BODY_LOGGED = 200

AnswerHook = Callable[[str], None]
"""Called with the body of the 200 answer that accepted a callback."""


class FetchError(Exception):
    """A media download failed; the message says why (it becomes ``desc``)."""


def sign(token: str, body: bytes) -> str:
    """The ``X-Viber-Content-Signature`` of ``body`` for a bot."""
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


class Callbacks(OutgoingHttp):
    """Callback delivery, the webhook check and media downloads of one emulator."""

    def __init__(
        self, *, attempts: int = 4, backoff: float = 0.05, media_timeout: float = 5.0
    ) -> None:
        """``attempts`` per callback; the pause after a failed one starts at ``backoff``
        seconds and doubles; ``media_timeout``: how long a media download may take."""
        super().__init__(attempts=attempts, backoff=backoff)
        self.media_timeout = media_timeout
        self.log: list[JsonDict] = []

    async def _post(self, bot: Bot, url: str, payload: JsonDict, attempt: int) -> str | None:
        """POST once; the answer's body if it was HTTP 200, else ``None``."""
        raw = json.dumps(payload, ensure_ascii=False).encode()
        signature = sign(bot.token, raw)
        entry: JsonDict = {
            "url": url,
            "bot_id": bot.id,
            "event": payload["event"],
            "message_token": payload.get("message_token"),
            "user_id": payload.get("user_id") or (payload.get("user") or {}).get("id"),
            "attempt": attempt,
            "status": 0,
            "body": "",
            "error": None,
            "ok": False,
            "signature": signature,
            "payload": payload,
        }
        self.log.append(entry)
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature}
        try:
            async with self.session().post(url, data=raw, headers=headers) as response:
                text = await response.text(errors="replace")
        except (ClientError, TimeoutError, OSError) as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            return None
        entry.update(status=response.status, body=text[:_BODY_LOGGED], ok=response.status == 200)
        return text if response.status == 200 else None

    async def check_webhook(self, bot: Bot, url: str, message_token: int) -> str | None:
        """Send the ``webhook`` callback once; ``None`` if answered 200, else why not."""
        payload: JsonDict = {
            "event": "webhook",
            "timestamp": now_ms(),
            "chat_hostname": CHAT_HOSTNAME,
            "message_token": message_token,
        }
        if await self._post(bot, url, payload, 1) is not None:
            return None
        entry = self.log[-1]
        return entry["error"] or f"the webhook answered HTTP {entry['status']}, not 200"

    def send(self, bot: Bot, payload: JsonDict, on_answer: AnswerHook | None = None) -> None:
        """Queue a callback for the bot's webhook (dropped if the webhook is gone or does
        not take this event by the time its turn comes)."""

        async def attempt(number: int) -> bool:
            webhook = bot.webhook
            if webhook is None or not webhook.wants(payload["event"]):
                return True
            answer = await self._post(bot, webhook.url, payload, number)
            if answer is not None and on_answer is not None:
                on_answer(answer)
            return answer is not None

        async def job() -> None:
            await self.retry(attempt)

        self.enqueue(bot.token, job)

    async def fetch(self, url: str) -> tuple[bytes, str]:
        """Download ``url`` as Viber does with a bot's media: ``(bytes, content type)``."""
        timeout = ClientTimeout(total=self.media_timeout)
        try:
            async with self.session().get(url, timeout=timeout) as response:
                if response.status != 200:
                    raise FetchError(f"downloading {url} failed: HTTP {response.status}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > MAX_MEDIA:
                        raise FetchError(f"{url} is larger than {MAX_MEDIA // 2**20} MB")
                    chunks.append(chunk)
                mime = response.content_type
        except TimeoutError:
            raise FetchError(f"downloading {url} timed out after {self.media_timeout} s") from None
        except (ClientError, OSError) as exc:
            raise FetchError(f"downloading {url} failed: {type(exc).__name__}: {exc}") from None
        return b"".join(chunks), mime
