"""Pushing updates to a bot's webhook, as Telegram's delivery servers do.

One POST per update with the JSON body and, if configured, the
``X-Telegram-Bot-Api-Secret-Token`` header. A non-2xx answer or a connection error raises,
which makes :class:`~.updates.BotUpdates` retry later. A receiver may answer with a Bot API
call in its body (aiogram does, as multipart); Telegram executes it, so does the emulator.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable

from aiohttp import ClientResponse, ClientSession, ClientTimeout, MultipartReader

from .models import BotAccount, JsonDict
from .updates import WebhookConfig
from .wire import Params, Upload, read_multipart

WEBHOOK_TIMEOUT = ClientTimeout(total=10)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret

ReplyExecutor = Callable[[BotAccount, str, Params], Awaitable[object]]


class WebhookRejectedError(Exception):
    """The webhook receiver answered with a non-2xx status."""


class WebhookPoster:
    """Owns the HTTP client used for webhook delivery (created lazily, closed on cleanup)."""

    def __init__(self, execute_reply: ReplyExecutor) -> None:
        self._execute_reply = execute_reply
        self._client: ClientSession | None = None

    async def post(self, bot: BotAccount, config: WebhookConfig, update: JsonDict) -> None:
        """Deliver one update; raises when the receiver did not accept it."""
        if self._client is None or self._client.closed:
            self._client = ClientSession(timeout=WEBHOOK_TIMEOUT)
        headers = {"Content-Type": "application/json"}
        if config.secret_token:
            headers[SECRET_HEADER] = config.secret_token
        body = json.dumps(update, ensure_ascii=False).encode()
        async with self._client.post(config.url, data=body, headers=headers) as response:
            if not 200 <= response.status < 300:
                raise WebhookRejectedError(
                    f"Wrong response from the webhook: {response.status} {response.reason}"
                )
            reply = await reply_method(response)
        if reply is not None:
            await self._execute_reply(bot, reply[0], reply[1])

    async def close(self) -> None:
        """Close the HTTP client."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()


async def reply_method(response: ClientResponse) -> tuple[str, Params] | None:
    """A Bot API call embedded in a webhook answer, if any."""
    content_type = response.headers.get("Content-Type", "")
    values: JsonDict = {}
    uploads: dict[str, Upload] = {}
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        if content_type.startswith("multipart/"):
            reader = MultipartReader(response.headers, response.content)
            await read_multipart(reader, values, uploads)
        elif content_type.startswith("application/json"):
            body = await response.json()
            if isinstance(body, dict):
                values = body
    method = values.pop("method", None)
    if not isinstance(method, str) or not method:
        return None
    return method, Params(values, uploads)
