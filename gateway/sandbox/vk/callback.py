"""Callback API delivery: confirming servers and POSTing events to them, as VK does.

When a server is added (or its settings change while it is not confirmed) VK POSTs
``{"type": "confirmation", "group_id": G}`` to it; the server is confirmed (status
``ok``) only if it answers HTTP 200 with exactly the community's confirmation code,
otherwise its status becomes ``failed``. Confirmation is retried while the server is
unreachable or answers a non-200 status (it may still be starting).

Every event is POSTed as JSON (``Content-Type: application/json``) with ``secret`` added
when the server has a secret key. The server must answer HTTP 200 with the body ``ok``
(https://dev.vk.com/ru/api/callback/getting-started); anything else is retried a few
times with a doubling back-off, then the event is dropped for that server. Each server
gets its events one at a time, in order. Every attempt, confirmations included, is
appended to :attr:`CallbackDelivery.log`.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import ClientError

from ..common.outgoing import OutgoingHttp
from .models import CallbackServer, JsonDict

_BODY_LOGGED = 200


class CallbackDelivery(OutgoingHttp):
    """Confirmations and event deliveries to callback servers, and their log."""

    def __init__(self, *, attempts: int = 4, backoff: float = 0.05, confirm_attempts: int = 8):
        """``attempts`` per event and ``confirm_attempts`` per confirmation; the pause
        after a failed attempt starts at ``backoff`` seconds and doubles (up to 2 s)."""
        super().__init__(attempts=attempts, backoff=backoff)
        self.confirm_attempts = confirm_attempts
        self.log: list[JsonDict] = []

    # --- confirmation -------------------------------------------------------------------

    def confirm(self, server: CallbackServer, code: str) -> None:
        """Send the confirmation request in the background; the status becomes ``wait``."""
        server.status = "wait"
        self.spawn(self._confirm(server, code))

    async def _confirm(self, server: CallbackServer, code: str) -> None:
        body: JsonDict = {"type": "confirmation", "group_id": server.group_id}
        if server.secret_key:
            body["secret"] = server.secret_key
        answer = await self._until(
            server, body, lambda status, _text: status == 200, self.confirm_attempts
        )
        if not server.removed:
            server.status = "ok" if answer == code else "failed"

    # --- events ---------------------------------------------------------------------------

    def deliver(self, server: CallbackServer, event: JsonDict) -> None:
        """Queue an event (an envelope without ``secret``) for one server."""
        body = {**event, "v": server.api_version}
        if server.secret_key:
            body["secret"] = server.secret_key

        async def job() -> None:
            await self._until(server, body, lambda status, text: status == 200 and text == "ok")

        self.enqueue(server.id, job)

    # --- plumbing -------------------------------------------------------------------------

    async def _until(
        self,
        server: CallbackServer,
        body: JsonDict,
        accepted: Callable[[int, str], bool],
        attempts: int | None = None,
    ) -> str | None:
        """POST ``body`` until ``accepted(status, text)`` or the attempts run out (or the
        server is removed); the accepted answer's text, ``None`` without one."""
        answer: str | None = None

        async def attempt(number: int) -> bool:
            nonlocal answer
            if server.removed:
                return True
            status, text = await self._post(server, body, number)
            if accepted(status, text):
                answer = text
            return answer is not None

        await self.retry(attempt, attempts)
        return answer

    async def _post(self, server: CallbackServer, body: JsonDict, attempt: int) -> tuple[int, str]:
        """POST once; ``(status, body)`` with status 0 for a connection failure."""
        entry: JsonDict = {
            "url": server.url,
            "server_id": server.id,
            "type": body["type"],
            "event_id": body.get("event_id"),
            "attempt": attempt,
            "status": 0,
            "body": "",
            "error": None,
            "ok": False,
        }
        data = json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        try:
            async with self.session().post(server.url, data=data, headers=headers) as response:
                text = await response.text(errors="replace")
                entry.update(status=response.status, body=text[:_BODY_LOGGED])
        except (ClientError, TimeoutError, OSError) as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            self.log.append(entry)
            return 0, ""
        entry["ok"] = response.status == 200 and (body["type"] == "confirmation" or text == "ok")
        self.log.append(entry)
        return response.status, text
