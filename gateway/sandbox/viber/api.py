"""HTTP front of the emulated Viber: the REST endpoints and the files.

Routes, relative to the emulator's base URL (what ``api_server`` of a ``kind: viber``
channel is set to; the real one is ``https://chatapi.viber.com/pa``):

* ``POST /{endpoint}`` – ``set_webhook``, ``get_account_info``, ``get_user_details``,
  ``get_online``, ``send_message``. The body is JSON (viberbot sends it without a
  content type); the token is its ``auth_token`` or the ``X-Viber-Auth-Token`` header
  (the body wins). A call is recorded, then checked in this order: injected HTTP fault,
  token (status 2), JSON body (3), injected Viber status, a random fault (see
  :meth:`ApiServer.at_random`), rate limit (12), the endpoint. Every answer but an HTTP
  fault is HTTP 200 JSON with ``status`` and ``status_message``; unknown endpoints
  answer HTTP 404.
* ``GET /files/{key}/{name}`` – customers' media and the bots' downloaded media.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web

from ..common import html_error, json_response
from ..common.faults import Faults, RateLimiter, serve_random
from .endpoints import HANDLERS, Ctx
from .models import Call, JsonDict, ViberError, status_name
from .state import ViberWorld

AUTH_HEADER = "X-Viber-Auth-Token"
MAX_BODY = 30 * 1024
"""Viber refuses requests whose JSON is over 30 KB. Measured on the JSON re-encoded as
UTF-8: viberbot writes non-ASCII text as ``\\uXXXX`` escapes, which makes 7000 Cyrillic
characters 42 KB on the wire; whether Viber counts those bytes is not documented."""


def _read_json(raw: bytes) -> JsonDict | None:
    try:
        body: Any = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


class ApiServer:
    """Serves the REST API of every bot of one :class:`~.state.ViberWorld`."""

    def __init__(self, world: ViberWorld, faults: Faults[Any], limiter: RateLimiter) -> None:
        self.world = world
        self.faults = faults
        self.limiter = limiter

    def _record(self, endpoint: str, params: JsonDict, status: int | None) -> None:
        self.world.calls.append(Call(endpoint, params, status))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler of ``POST /{endpoint}``."""
        endpoint = request.match_info["endpoint"]
        if endpoint not in HANDLERS:
            return html_error(404)
        raw = await request.read()
        body = _read_json(raw)
        params = {k: v for k, v in (body or {}).items() if k != "auth_token"}
        fault = self.faults.take(endpoint, http=True)
        if fault is not None and fault.status is not None:
            self._record(endpoint, params, None)
            return html_error(fault.status)
        try:
            token = (body or {}).get("auth_token") or request.headers.get(AUTH_HEADER)
            bot = self.world.authenticate(token if isinstance(token, str) else None)
            if body is None:
                raise ViberError(3, "the body must be a JSON object")
            if len(json.dumps(body, ensure_ascii=False).encode()) > MAX_BODY:
                raise ViberError(3, f"the request is larger than {MAX_BODY // 1024} KB")
            fault = self.faults.take(endpoint, http=False)
            if fault is not None and fault.code is not None:
                raise ViberError(fault.code, fault.message or "injected fault")
            drawn = self.faults.random.draw(endpoint, bot.token)
            if drawn is not None:
                failed = await serve_random(drawn, request, self.faults.random, random_error)
                if failed is not None:
                    self._record(endpoint, params, None)
                    return failed
            if not self.limiter.allow(bot.token):
                raise ViberError(12, "too many requests")
            result = await HANDLERS[endpoint](Ctx(self.world, bot, params))
        except ViberError as error:
            self._record(endpoint, params, error.status)
            return json_response(error.body())
        self._record(endpoint, params, 0)
        return json_response({"status": 0, "status_message": status_name(0), **result})

    async def file(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler of ``GET /files/{key}/{name}``."""
        stored = self.world.files.by_key(request.match_info["key"])
        if stored is None:
            return html_error(404)
        return web.Response(body=stored.data, content_type=stored.mime)


def add_routes(app: web.Application, server: ApiServer) -> None:
    """Register the API and file routes on ``app``."""
    app.router.add_get("/files/{key}/{name}", server.file)
    app.router.add_post("/{endpoint}", server.handle)


def random_error(status: int) -> ViberError | None:
    """What Viber answers for a random fault of a status kind: "429" is status 12
    ``tooManyRequests`` in an HTTP 200 answer, Viber's rate-control answer, which says
    nothing of how long to wait
    (https://creators.viber.com/docs/bots-api/resources/messaging/send-message); for
    "500", "502", "503" the REST API has no status of its own (``None``: an HTML page of
    that status, from a proxy in an incident)."""
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        return ViberError(12, "too many requests")
    return None
