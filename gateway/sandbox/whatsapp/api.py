"""HTTP front of the emulated Cloud API: the Graph endpoints and media downloads.

Routes, relative to the emulator's base URL (what an adapter uses instead of
``https://graph.facebook.com``), ``{v}`` being any Graph version such as ``v21.0``:

* ``POST /{v}/{phone_number_id}/messages`` – send a message, or mark one read;
* ``POST /{v}/{phone_number_id}/media`` – upload a file (multipart) → ``{"id"}``;
* ``GET /{v}/{media_id}`` – a file's ``url``, ``mime_type``, ``sha256``, ``file_size``;
  ``GET /{v}/{phone_number_id}`` – the number (``verified_name``, ``display_phone_number``,
  ``webhook_configuration``…);
* ``DELETE /{v}/{media_id}`` – forget a file;
* ``POST /{v}/{phone_number_id}`` with ``{"webhook_configuration": {"override_callback_uri",
  "verify_token"}}`` – point the number's webhooks at a URL (verified first; an empty URI
  removes the override);
* ``GET /whatsapp_business/attachments/?mid=&ext=&hash=`` – the download URL
  ``GET /{v}/{media_id}`` hands out; needs the same ``Authorization: Bearer`` token.

Every request is recorded (:attr:`~.state.WhatsAppWorld.calls`, without the token), then
checked in this order: injected HTML fault, token (190 missing or unknown, 100/33 for an
object the token may not use), injected Graph error, a random fault
(:func:`~.faults.random_error`; a ``delay`` holds the answer, then the request is done; a
``reset`` drops the connection), rate limit (messages only, 130429), the endpoint
itself. Errors are ``{"error": {"message", "type": "OAuthException", "code",
"error_data": {"messaging_product", "details"}, "fbtrace_id"}}`` with an HTTP error
status (https://developers.facebook.com/docs/graph-api/guides/error-handling).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web
from yarl import URL

from ..common import html_error, is_loopback, json_response
from ..common.faults import serve_random
from . import api_messages
from .faults import Faults, RateLimiter, random_error
from .media import DOWNLOAD_PATH, LIMITS, MIME_TYPES, kind_of
from .models import Call, GraphError, JsonDict, Number, Subscription, invalid, no_object, required
from .state import WhatsAppWorld

VERSION = r"{version:v\d+(?:\.\d+)?}"
MAX_BODY = 101 * 1024 * 1024
"""Large enough for a 100 MB document upload; also the aiohttp ``client_max_size``."""

Handler = Callable[[], Awaitable[Any]]


def error_response(error: GraphError) -> web.Response:
    """The Graph error answer."""
    return json_response(error.body(), status=error.http_status)


def bearer(request: web.Request) -> str | None:
    """The access token: ``Authorization: Bearer ...`` or the ``access_token`` query."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.query.get("access_token") or None


async def read_json(request: web.Request) -> Any:
    """The JSON body (``None`` when there is none or it is not JSON); form bodies are
    accepted too, as Graph does."""
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        return await request.json()
    except ValueError:
        return None


class GraphApi:
    """Serves the Cloud API of every number of one :class:`~.state.WhatsAppWorld`."""

    def __init__(self, world: WhatsAppWorld, faults: Faults, limiter: RateLimiter) -> None:
        self.world = world
        self.faults = faults
        self.limiter = limiter

    async def _serve(
        self,
        request: web.Request,
        endpoint: str,
        body: JsonDict,
        authorize: Callable[[str | None], str | None],
        run: Callable[[], Awaitable[Any]],
    ) -> web.StreamResponse:
        """Record, fault, authenticate and run one request; ``authorize`` answers the
        phone number id the request is about (whose random faults it meets)."""
        node = request.match_info.get("node", body.get("mid", ""))
        version = request.match_info.get("version", "")
        self.world.calls.append(Call(request.method, endpoint, version, str(node), body))
        fault = self.faults.take(endpoint, html=True)
        if fault is not None and fault.http_status is not None:
            return html_error(fault.http_status)
        try:
            number = authorize(bearer(request))
            fault = self.faults.take(endpoint, html=False)
            if fault is not None:
                raise fault.error()
            drawn = self.faults.random.draw(endpoint, number)
            if drawn is not None:
                failed = await serve_random(drawn, request, self.faults.random, random_error)
                if failed is not None:
                    return failed
            result = await run()
        except GraphError as error:
            return error_response(error)
        if isinstance(result, web.StreamResponse):
            return result
        return json_response(result)

    # --- messages -------------------------------------------------------------------------

    async def messages(self, request: web.Request) -> web.StreamResponse:
        """``POST /{v}/{phone_number_id}/messages``."""
        node = request.match_info["node"]
        body = await read_json(request)
        numbers: list[Number] = []

        def authorize(token: str | None) -> str:
            numbers.append(self.world.authenticate(token, node))
            return node

        async def run() -> JsonDict:
            self.limiter.check(node)
            return api_messages.handle(self.world, numbers[0], body)

        logged = body if isinstance(body, dict) else {"raw": body}
        return await self._serve(request, "messages", logged, authorize, run)

    # --- media ----------------------------------------------------------------------------

    async def upload(self, request: web.Request) -> web.StreamResponse:
        """``POST /{v}/{phone_number_id}/media`` (multipart ``file``, ``type``,
        ``messaging_product``) → ``{"id"}``."""
        node = request.match_info["node"]
        fields, file = await _read_upload(request)
        logged: JsonDict = dict(fields)
        if file is not None:
            logged["file"] = {"filename": file[0], "size": len(file[1])}
        numbers: list[Number] = []

        def authorize(token: str | None) -> str:
            numbers.append(self.world.authenticate(token, node))
            return node

        async def run() -> JsonDict:
            return self._store_upload(numbers[0], fields, file)

        return await self._serve(request, "media", logged, authorize, run)

    def _store_upload(
        self, number: Number, fields: dict[str, str], file: tuple[str, bytes, str] | None
    ) -> JsonDict:
        product = fields.get("messaging_product")
        if not product:
            raise required("messaging_product")
        if product != "whatsapp":
            raise invalid(f'Param messaging_product must be one of {{WHATSAPP}} - got "{product}".')
        if file is None:
            raise required("file")
        mime = fields.get("type") or ""
        if not mime:
            raise required("type")
        kind = kind_of(mime)
        if kind is None:
            supported = ", ".join(t for types in MIME_TYPES.values() for t in types)
            raise invalid(
                f"Param file must be a file with one of the following types: {supported}."
            )
        name, data, _ = file
        if len(data) > LIMITS[kind]:
            raise GraphError(
                131053,
                "(#131053) Media upload error",
                details=f"File size {len(data)} bytes exceeds the {kind} limit of "
                f"{LIMITS[kind]} bytes.",
                title="Media upload error",
            )
        filename = name if kind == "document" else None
        stored = self.world.media.add(number.id, data, mime, filename)
        return {"id": stored.id}

    async def node_get(self, request: web.Request) -> web.StreamResponse:
        """``GET /{v}/{node}``: a media file's info, or a phone number."""
        node = request.match_info["node"]
        world = self.world
        if node in world.numbers:

            def authorize_number(token: str | None) -> str:
                world.authenticate(token, node, "get")
                return node

            async def number_info() -> JsonDict:
                return world.numbers[node].info()

            return await self._serve(
                request, "number", dict(request.query), authorize_number, number_info
            )

        def authorize(token: str | None) -> str:
            return self._media_owner(token, node, request.query.get("phone_number_id"))

        async def run() -> JsonDict:
            stored = world.media.get(node)
            assert stored is not None
            return {
                "messaging_product": "whatsapp",
                "url": world.media.url(stored),
                "mime_type": stored.mime_type,
                "sha256": stored.sha256,
                "file_size": len(stored.data),
                "id": stored.id,
            }

        return await self._serve(request, "media_get", dict(request.query), authorize, run)

    async def node_delete(self, request: web.Request) -> web.StreamResponse:
        """``DELETE /{v}/{media_id}`` → ``{"success": true}``."""
        node = request.match_info["node"]

        def authorize(token: str | None) -> str:
            return self._media_owner(token, node, request.query.get("phone_number_id"), "delete")

        async def run() -> JsonDict:
            self.world.media.delete(node)
            return {"success": True}

        return await self._serve(request, "media_delete", dict(request.query), authorize, run)

    def _media_owner(
        self, token: str | None, media_id: str, phone_number_id: str | None, method: str = "get"
    ) -> str:
        """The number that owns the file; an error unless the token may use it."""
        numbers = self.world.token_numbers(token)
        stored = self.world.media.get(media_id)
        if stored is None or stored.owner not in {n.id for n in numbers}:
            raise no_object(media_id, method)
        if phone_number_id and phone_number_id != stored.owner:
            raise no_object(media_id, method)
        return stored.owner

    async def download(self, request: web.Request) -> web.StreamResponse:
        """The media download URL: the bytes, for the bearer of a token of the owner."""
        query = request.query
        world = self.world

        def authorize(token: str | None) -> str | None:
            numbers = world.token_numbers(token)
            stored = world.media.get(query.get("mid", ""))
            if stored is not None and stored.owner not in {n.id for n in numbers}:
                raise no_object(query.get("mid", ""))
            return stored.owner if stored is not None else None

        async def run() -> web.StreamResponse:
            stored = world.media.resolve(
                query.get("mid", ""), query.get("ext", ""), query.get("hash", "")
            )
            if stored is None:
                return html_error(404)
            headers = {
                "Content-Type": stored.mime_type,
                "Content-Disposition": f"attachment;filename={stored.filename or stored.id}",
            }
            return web.Response(body=stored.data, headers=headers)

        return await self._serve(request, "download", dict(query), authorize, run)

    # --- phone number settings ------------------------------------------------------------

    async def node_post(self, request: web.Request) -> web.StreamResponse:
        """``POST /{v}/{phone_number_id}`` with ``webhook_configuration``."""
        node = request.match_info["node"]
        body = await read_json(request)
        numbers: list[Number] = []

        def authorize(token: str | None) -> str:
            numbers.append(self.world.authenticate(token, node))
            return node

        async def run() -> JsonDict:
            return await self._configure(numbers[0], body)

        logged = body if isinstance(body, dict) else {"raw": body}
        return await self._serve(request, "number_update", logged, authorize, run)

    async def _configure(self, number: Number, body: Any) -> JsonDict:
        config = body.get("webhook_configuration") if isinstance(body, dict) else None
        if not isinstance(config, dict):
            raise required("webhook_configuration")
        url = config.get("override_callback_uri")
        if url is None:
            raise required("webhook_configuration['override_callback_uri']")
        if url == "":
            number.subscription = None
            return {"success": True}
        if not isinstance(url, str) or not is_loopback(URL(url).host):
            raise invalid("Param override_callback_uri must be a loopback URL in the emulator.")
        token = str(config.get("verify_token") or "")
        if not await self.world.delivery.verify(url, token):
            raise GraphError(
                2200,
                "(#2200) Callback verification failed with the following errors: the URL "
                "did not answer HTTP 200 with the challenge",
                title="Callback verification failed",
            )
        number.subscription = Subscription(url, token, number.app_secret)
        return {"success": True}


async def _read_upload(
    request: web.Request,
) -> tuple[dict[str, str], tuple[str, bytes, str] | None]:
    """Text fields and the ``file`` part (name, bytes, content type) of a multipart POST."""
    fields: dict[str, str] = {}
    file: tuple[str, bytes, str] | None = None
    if request.content_type != "multipart/form-data":
        return fields, None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        if part.filename is not None or part.name == "file":
            data = bytes(await part.read(decode=True))
            mime = part.headers.get("Content-Type", "application/octet-stream")
            if part.name == "file":
                file = (part.filename or "file", data, mime)
        else:
            fields[part.name] = await part.text()
    return fields, file


def add_routes(app: web.Application, api: GraphApi) -> None:
    """Register the Graph and download routes on ``app``."""
    app.router.add_post(f"/{VERSION}/{{node}}/messages", api.messages)
    app.router.add_post(f"/{VERSION}/{{node}}/media", api.upload)
    app.router.add_get(f"/{VERSION}/{{node}}", api.node_get)
    app.router.add_delete(f"/{VERSION}/{{node}}", api.node_delete)
    app.router.add_post(f"/{VERSION}/{{node}}", api.node_post)
    app.router.add_get(DOWNLOAD_PATH, api.download)
