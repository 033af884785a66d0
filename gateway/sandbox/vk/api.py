"""HTTP front of the emulated VK: API methods, upload servers, files and long poll.

Routes, relative to the emulator's base URL (so the app can be mounted as a sub-app):

* ``GET|POST /method/{name}`` – the API; a call is recorded, then checked in this order:
  injected HTTP fault, access token (error 5), ``v`` (error 8), method (error 3),
  injected VK error, a random fault (:func:`~.faults.random_error`; a ``delay`` holds
  the answer, then the call is done; a ``reset`` drops the connection), rate limit
  (error 6), the method itself;
* ``POST /upload/photo/{group_id}`` and ``POST /upload/doc/{group_id}?type=`` – upload
  servers handed out by ``photos.getMessagesUploadServer``/``docs.getMessagesUploadServer``;
* ``GET /files/{key}/{name}`` – stored files (attachment URLs, profile photos);
* ``GET /longpoll/{group_id}?act=a_check&key=&ts=&wait=`` – the Bots Long Poll server.
"""

from __future__ import annotations

from aiohttp import web

from ..common import html_error, json_response
from ..common.faults import serve_random
from . import api_groups, api_media, api_messages
from .callback import CallbackDelivery
from .ctx import Ctx, Handler
from .faults import Faults, RateLimiter, random_error
from .models import NO_VERSION, UNKNOWN_METHOD, Call, VkApiError
from .state import VkWorld
from .wire import Params, error_body, read_files, read_params

METHODS: dict[str, tuple[str, Handler]] = {
    name.lower(): (name, handler)
    for table in (api_messages.HANDLERS, api_groups.HANDLERS, api_media.HANDLERS)
    for name, handler in table.items()
}
"""Lower-cased method name → (canonical name, handler); VK matches names case-insensitively."""


class ApiServer:
    """Serves the API of every community of one :class:`~.state.VkWorld`."""

    def __init__(
        self, world: VkWorld, faults: Faults, limiter: RateLimiter, delivery: CallbackDelivery
    ) -> None:
        self.world = world
        self.faults = faults
        self.limiter = limiter
        self.delivery = delivery

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler of ``/method/{name}``."""
        method = request.match_info["name"]
        try:
            params = await read_params(request)
        except ValueError:
            params = Params({})
        self.world.calls.append(Call(method, params.loggable()))
        fault = self.faults.take(method, http=True)
        if fault is not None and fault.status is not None:
            return html_error(fault.status)
        try:
            token = params.opt_str("access_token") or ""
            group = self.world.authenticate(token)
            if not params.opt_str("v"):
                raise VkApiError(8, NO_VERSION)
            entry = METHODS.get(method.lower())
            if entry is None:
                raise VkApiError(3, UNKNOWN_METHOD)
            fault = self.faults.take(entry[0], http=False)
            if fault is not None:
                raise fault.error()
            drawn = self.faults.random.draw(entry[0], group.id)
            if drawn is not None:
                failed = await serve_random(drawn, request, self.faults.random, random_error)
                if failed is not None:
                    return failed
            self.limiter.check(token)
            result = entry[1](Ctx(self.world, group, params, self.delivery))
        except VkApiError as error:
            return json_response(error_body(error, method, params))
        return json_response({"response": result})

    def _upload_fault(self) -> web.Response | None:
        fault = self.faults.take(Faults.UPLOAD, http=True)
        return html_error(fault.status) if fault and fault.status else None

    def _group_id(self, request: web.Request) -> int | None:
        raw = request.match_info["group_id"]
        return int(raw) if raw.isdigit() and int(raw) in self.world.groups else None

    async def upload_photo(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler of the photo upload server."""
        if (failed := self._upload_fault()) is not None:
            return failed
        group_id = self._group_id(request)
        if group_id is None:
            return json_response({"error": "unknown upload server"}, status=404)
        files = await read_files(request)
        return json_response(api_media.upload_photo(self.world, group_id, files))

    async def upload_doc(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler of the document upload server."""
        if (failed := self._upload_fault()) is not None:
            return failed
        group_id = self._group_id(request)
        if group_id is None:
            return json_response({"error": "unknown upload server"}, status=404)
        files = await read_files(request)
        kind = request.query.get("type", "doc")
        return json_response(api_media.upload_doc(self.world, group_id, kind, files))

    async def file(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler of ``/files/{key}/{name}``: the bytes, with Content-Length."""
        stored = self.world.files.by_key(request.match_info["key"])
        if stored is None:
            return html_error(404)
        return web.Response(body=stored.data, content_type=stored.mime)

    async def longpoll(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler of the Bots Long Poll server."""
        raw = request.match_info["group_id"]
        group = self.world.groups.get(int(raw)) if raw.isdigit() else None
        if group is None:
            return html_error(404)
        query = request.query
        if query.get("act") != "a_check":
            return json_response({"failed": 2})
        try:
            wait = float(query.get("wait") or 0)
        except ValueError:
            wait = 0.0
        answer = await group.longpoll.check(query.get("key", ""), query.get("ts", ""), wait)
        return json_response(answer)


def add_routes(app: web.Application, server: ApiServer) -> None:
    """Register the API, upload, file and long poll routes on ``app``."""
    app.router.add_route("*", "/method/{name}", server.handle)
    app.router.add_post("/upload/photo/{group_id}", server.upload_photo)
    app.router.add_post("/upload/doc/{group_id}", server.upload_doc)
    app.router.add_get("/files/{key}/{name}", server.file)
    app.router.add_get("/longpoll/{group_id}", server.longpoll)
