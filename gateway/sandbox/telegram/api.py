"""HTTP front of the Bot API: routing, authentication, fault injection and call recording.

``POST /bot<token>/<method>`` is dispatched case-insensitively to the handler tables of
:mod:`.api_core`, :mod:`.api_send` and :mod:`.api_manage`; ``GET /file/bot<token>/<path>``
serves stored files. Every call, successful or not, is appended to ``World.calls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

from ..common.net import json_response
from . import api_core, api_manage, api_send
from .ctx import Ctx, Handler
from .faults import FaultInjector, FloodLimiter
from .models import ApiError, BotAccount, Call, JsonDict
from .state import World
from .wire import Params, error_response, read_params

METHODS: dict[str, tuple[str, Handler]] = {
    name.lower(): (name, handler)
    for table in (api_core.HANDLERS, api_send.HANDLERS, api_manage.HANDLERS)
    for name, handler in table.items()
}
"""Lower-cased method name -> (canonical name, handler)."""

_RESET = "connection reset by the emulator (injected fault)"


class ApiServer:
    """Serves the Bot API for every bot of one :class:`~.state.World`."""

    def __init__(
        self,
        world: World,
        faults: FaultInjector,
        flood: FloodLimiter,
        closing: asyncio.Event,
    ) -> None:
        self.world = world
        self.faults = faults
        self.flood = flood
        self.closing = closing

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler of ``/bot{token}/{method}``."""
        raw_method = request.match_info["method"]
        try:
            bot = self.world.authenticate(request.match_info["token"])
            params = await read_params(request)
        except ApiError as error:
            self._record(raw_method, None, Params({}), error.status, error.description)
            return error_response(error)
        outcome = await self.call(bot, raw_method, params)
        if outcome is None:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)  # never reaches the client: connection is gone
        status, body = outcome
        return json_response(body, status=status)

    async def call(
        self, bot: BotAccount, raw_method: str, params: Params
    ) -> tuple[int, JsonDict] | None:
        """Run one method for ``bot``: ``(status, body)``, or ``None`` for an injected reset.

        Also used for methods a webhook receiver returns in its HTTP answer.
        """
        entry = METHODS.get(raw_method.lower())
        method = entry[0] if entry else raw_method
        try:
            if entry is None:
                raise ApiError(404, "Not Found")
            fault = self.faults.take(method, bot.id)
            if fault is not None:
                await self._sleep(fault.delay)
                if fault.reset:
                    self._record(method, bot.id, params, 0, _RESET)
                    return None
                error = fault.error()
                if error is not None:
                    raise error
            result = await entry[1](Ctx(self.world, self.flood, bot, params))
        except ApiError as error:
            if error.status == web.HTTPTooManyRequests.status_code:
                self.world.too_many[bot.id] += 1
            self._record(method, bot.id, params, error.status, error.description)
            return error.status, error.payload()
        self._record(method, bot.id, params, 200, None)
        return 200, {"ok": True, "result": result}

    async def _sleep(self, delay: float) -> None:
        """Sleep for an injected delay, cut short when the emulator shuts down."""
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), delay)

    def _record(
        self,
        method: str,
        bot_id: int | None,
        params: Params,
        status: int,
        description: str | None,
    ) -> None:
        self.world.calls.append(
            Call(method, bot_id, params.loggable(), status, time.time(), description)
        )

    async def handle_file(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler of ``/file/bot{token}/{path}``: the stored bytes."""
        try:
            self.world.authenticate(request.match_info["token"])
        except ApiError as error:
            return error_response(error)
        stored = self.world.files.by_path(request.match_info["path"])
        if stored is None:
            return error_response(ApiError(404, "Not Found"))
        return web.Response(body=stored.data, content_type=stored.mime_type)


def add_routes(app: web.Application, server: ApiServer) -> None:
    """Register the Bot API routes on ``app`` (relative, so it can be a sub-app)."""
    app.router.add_route("*", "/bot{token}/{method}", server.handle)
    app.router.add_get("/file/bot{token}/{path:.+}", server.handle_file)
