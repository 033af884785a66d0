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

import asyncio
import contextlib
import json
from collections import deque

from aiohttp import ClientError, ClientSession, ClientTimeout

from .models import CallbackServer, JsonDict

CALLBACK_TIMEOUT = ClientTimeout(total=10)
BACKOFF_CAP = 2.0
_BODY_LOGGED = 200


class CallbackDelivery:
    """Owns the HTTP client, the per-server queues and the delivery log."""

    def __init__(self, *, attempts: int = 4, backoff: float = 0.05, confirm_attempts: int = 8):
        """``attempts`` per event and ``confirm_attempts`` per confirmation; the pause
        after a failed attempt starts at ``backoff`` seconds and doubles (up to 2 s)."""
        self.attempts = attempts
        self.backoff = backoff
        self.confirm_attempts = confirm_attempts
        self.log: list[JsonDict] = []
        self._client: ClientSession | None = None
        self._queues: dict[int, deque[JsonDict]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()

    # --- confirmation -------------------------------------------------------------------

    def confirm(self, server: CallbackServer, code: str) -> None:
        """Send the confirmation request in the background; the status becomes ``wait``."""
        server.status = "wait"
        task = asyncio.get_running_loop().create_task(self._confirm(server, code))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _confirm(self, server: CallbackServer, code: str) -> None:
        body: JsonDict = {"type": "confirmation", "group_id": server.group_id}
        if server.secret_key:
            body["secret"] = server.secret_key
        for attempt in range(1, self.confirm_attempts + 1):
            if server.removed:
                return
            status, text = await self._post(server, body, attempt)
            if status == 200:
                server.status = "ok" if text == code else "failed"
                return
            await self._pause(attempt)
        server.status = "failed"

    # --- events ---------------------------------------------------------------------------

    def deliver(self, server: CallbackServer, event: JsonDict) -> None:
        """Queue an event (an envelope without ``secret``) for one server."""
        body = {**event, "v": server.api_version}
        if server.secret_key:
            body["secret"] = server.secret_key
        self._queues.setdefault(server.id, deque()).append(body)
        worker = self._workers.get(server.id)
        if worker is None or worker.done():
            loop = asyncio.get_running_loop()
            self._workers[server.id] = loop.create_task(self._work(server))

    async def _work(self, server: CallbackServer) -> None:
        queue = self._queues[server.id]
        while queue and not self._closing.is_set():
            body = queue[0]
            for attempt in range(1, self.attempts + 1):
                if server.removed:
                    break
                status, text = await self._post(server, body, attempt)
                if status == 200 and text == "ok":
                    break
                if attempt < self.attempts:
                    await self._pause(attempt)
            queue.popleft()

    # --- plumbing -------------------------------------------------------------------------

    async def _post(self, server: CallbackServer, body: JsonDict, attempt: int) -> tuple[int, str]:
        """POST once; ``(status, body)`` with status 0 for a connection failure."""
        if self._client is None or self._client.closed:
            self._client = ClientSession(timeout=CALLBACK_TIMEOUT)
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
            async with self._client.post(server.url, data=data, headers=headers) as response:
                text = await response.text(errors="replace")
                entry.update(status=response.status, body=text[:_BODY_LOGGED])
        except (ClientError, TimeoutError, OSError) as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            self.log.append(entry)
            return 0, ""
        entry["ok"] = response.status == 200 and (body["type"] == "confirmation" or text == "ok")
        self.log.append(entry)
        return response.status, text

    async def _pause(self, attempt: int) -> None:
        delay = min(self.backoff * 2 ** (attempt - 1), BACKOFF_CAP)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay)

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until every queued event and pending confirmation has been dealt with."""
        async with asyncio.timeout(timeout):
            while busy := [t for t in (*self._workers.values(), *self._tasks) if not t.done()]:
                await asyncio.wait(busy)

    async def close(self) -> None:
        """Stop delivering and close the HTTP client."""
        self._closing.set()
        tasks = [t for t in (*self._workers.values(), *self._tasks) if not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        client, self._client = self._client, None
        if client is not None:
            await client.close()
