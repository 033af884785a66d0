"""The website chat's HTTP surface: the widget, visitor sessions, messages over a
WebSocket (or long polling where one cannot be opened), and files.

=====================================  ==============================================
``GET  /webchat/widget.js``, ``.css``  the widget (plain JS and CSS, no CDN)
``GET  /webchat/demo/{account}``       a page with the widget on it (the sandbox's)
``GET  /webchat/{account}/config``     title, colours, form, online now, file limits
``POST /webchat/{account}/session``    a visitor token (new, renewed, or a signed
                                       site user's) and the form's details
``GET  /webchat/{account}/ws``         WebSocket: ``hello`` (token, since), then
                                       ``message``/``seen`` frames; events pushed
``POST /webchat/{account}/messages``   the same ``message``/``seen`` without a socket
``GET  /webchat/{account}/events``     long poll: events after ``since`` (≤ 25 s)
``POST /webchat/{account}/files``      upload a file (multipart ``file``)
``GET  /webchat/{account}/files/{id}``  a file of the conversation
=====================================  ==============================================

A visitor's message is acknowledged (``ack`` with its id) only once it is in the
visitor's log *and* the inbound stream: the widget resends unacknowledged messages
after a reconnect under the same client id, and both stores take each id once.
Requests from pages whose ``Origin`` is not allowed (``channels[].origins``, and the
gateway's own) are refused; visitors and addresses are rate-limited; sizes are capped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from importlib import resources
from typing import Any
from urllib.parse import quote

import structlog
from aiohttp import WSMsgType, web

from adapters.webchat import IMAGE_TYPES, WebchatAdapter
from gateway.config import WebchatChannel
from gateway.errors import BadPayload
from gateway.store.redis import RETRYABLE
from gateway.webchat.chat import ENTRY, Webchat
from gateway.webchat.files import safe_name, sniffed
from gateway.webchat.hub import LOOK_EVERY
from gateway.webchat.visitors import Refused, Visitor

log = structlog.get_logger(__name__)
MAX_FRAME = 64 * 1024
POLL_SECONDS = 25.0
STATIC = resources.files("gateway.webchat") / "static"


def _token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header.removeprefix("Bearer ").strip() or None


def _cors(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin  # checked already
        response.headers["Vary"] = "Origin"
    return response


def _refused(request: web.Request, exc: Refused) -> web.Response:
    response = web.json_response({"ok": False, "error": str(exc)}, status=exc.status)
    if exc.status != 403:  # a refused origin learns nothing
        _cors(request, response)
    return response


def handler(kind: str):  # type: ignore[no-untyped-def]
    """Route ``kind`` to its method of :class:`Routes`, turning refusals into JSON."""

    async def handle(request: web.Request) -> web.StreamResponse:
        routes: Routes = request.app[ROUTES_KEY]
        try:
            return _cors(request, await getattr(routes, kind)(request))
        except Refused as exc:
            return _refused(request, exc)
        except RETRYABLE as exc:
            log.error("webchat.store_unavailable", error=str(exc))
            return _cors(
                request, web.json_response({"ok": False, "error": "try again"}, status=503)
            )

    return handle


class Routes:
    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self._chat: Webchat | None = None

    @property
    def chat(self) -> Webchat:
        if self._chat is None:
            self._chat = Webchat(self.gateway)
            self._chat.hub.start()
        return self._chat

    async def stop(self) -> None:
        if self._chat is not None:
            await self._chat.hub.stop()

    async def preflight(self, request: web.Request) -> web.StreamResponse:
        self.chat.account(request)
        response = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = "GET, POST"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
        return response

    async def config(self, request: web.Request) -> web.StreamResponse:
        _, channel = self.chat.account(request)
        hours = self.gateway.processes.sla_for(channel.id).hours
        online = hours is None or hours.is_open(self.gateway.clock())
        return web.json_response(
            {
                "title": channel.title or "Chat with us",
                "intro": channel.intro,
                "color": channel.color,
                "online": online,
                "offline": channel.offline_text,
                "form": {
                    "fields": list(channel.form.fields),
                    "required": list(channel.form.required),
                },
                "avatar": str(channel.avatar) if channel.avatar else None,
                "max_file_mb": channel.max_file_mb,
                "file_types": list(channel.file_types),
            }
        )

    async def session(self, request: web.Request) -> web.StreamResponse:
        _, channel = self.chat.account(request)
        body = await _json(request)
        visitors = self.chat.visitors(channel)
        await self.chat.limit(request, channel, None)
        user_id = body.get("user_id")
        visitor = visitors.session(
            _token(request) or body.get("token"),
            str(user_id) if user_id is not None else None,
            str(body.get("user_hash") or ""),
        )
        form = body.get("form")
        if isinstance(form, dict):
            await visitors.remember(visitor.id, visitors.validated(form))
        profile = await visitors.profile(visitor.id)
        return web.json_response(
            {"token": visitor.token, "visitor": visitor.id, "profile": profile}
        )

    async def messages(self, request: web.Request) -> web.StreamResponse:
        adapter, channel = self.chat.account(request)
        visitors = self.chat.visitors(channel)
        visitor = visitors.check(_token(request))
        frame = await _json(request)
        answer = await self._said(request, (adapter, channel), visitor, frame)
        return web.json_response(answer)

    async def _said(
        self,
        request: web.Request,
        account: tuple[WebchatAdapter, WebchatChannel],
        visitor: Visitor,
        frame: Any,
    ) -> dict[str, Any]:
        """Limit, then store, a frame. A receipt counts only toward the address's rate:
        a reloaded history sends one, and it must not cost the visitor a message."""
        adapter, channel = account
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind != "typing":  # typing is throttled by itself (Webchat.typing)
            await self.chat.limit(request, channel, None if kind == "seen" else visitor.id)
        try:
            return await self.chat.said(adapter, visitor, frame)
        except BadPayload as exc:
            raise Refused(str(exc)) from exc

    async def events(self, request: web.Request) -> web.StreamResponse:
        adapter, channel = self.chat.account(request)
        visitor = self.chat.visitors(channel).check(_token(request))
        since = _since(request.query.get("since"))
        with self.chat.hub.waiting(channel.id, visitor.id) as woken:
            found = await adapter.log.since(visitor.id, since)
            if not found:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), POLL_SECONDS)
                found = await adapter.log.since(visitor.id, since)
        return web.json_response({"events": found})

    async def socket(self, request: web.Request) -> web.StreamResponse:
        adapter, channel = self.chat.account(request)
        visitors = self.chat.visitors(channel)
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, heartbeat=30.0)
        await ws.prepare(request)
        try:
            hello = await ws.receive_json(timeout=10)
            visitor = visitors.check(str(hello.get("token") or ""))
        except (Refused, ValueError, TypeError, TimeoutError, AttributeError):
            await ws.close(code=4401, message=b"unauthorized")
            return ws
        pusher = asyncio.create_task(
            self._push(ws, adapter, channel, visitor, _since(hello.get("since")))
        )
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    break
                await ws.send_json(
                    await self._frame(request, adapter, channel, visitor, frame.data)
                )
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher
        return ws

    async def _frame(
        self,
        request: web.Request,
        adapter: WebchatAdapter,
        channel: WebchatChannel,
        visitor: Visitor,
        data: str,
    ) -> dict[str, Any]:
        """One frame from the widget: its answer (an ack, or an error naming its cid)."""
        cid = None
        try:
            frame = json.loads(data)
            cid = frame.get("cid") if isinstance(frame, dict) else None
            return await self._said(request, (adapter, channel), visitor, frame)
        except ValueError:
            return {"type": "error", "error": "a frame is JSON"}
        except Refused as exc:
            return {"type": "error", "cid": cid, "error": str(exc), "status": exc.status}
        except RETRYABLE:
            return {"type": "error", "cid": cid, "error": "try again", "status": 503}

    async def _push(
        self,
        ws: web.WebSocketResponse,
        adapter: WebchatAdapter,
        channel: WebchatChannel,
        visitor: Visitor,
        since: str | None,
    ) -> None:
        """Send the log from ``since`` on, then every new entry, as long as it is open."""
        with self.chat.hub.waiting(channel.id, visitor.id) as woken:
            while not ws.closed:
                woken.clear()
                try:
                    found = await adapter.log.since(visitor.id, since)
                except RETRYABLE:
                    found = []  # Redis is back soon: look again later
                if found:
                    try:
                        await ws.send_json({"type": "events", "events": found})
                    except (ConnectionResetError, RuntimeError):
                        return  # the visitor left meanwhile: they resume from ``since``
                    since = found[-1]["id"]
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), LOOK_EVERY)

    async def upload(self, request: web.Request) -> web.StreamResponse:
        adapter, channel = self.chat.account(request)
        visitor = self.chat.visitors(channel).check(_token(request))
        await self.chat.limit(request, channel, visitor.id)
        limit = int(channel.max_file_mb * 1024 * 1024)
        if request.content_length is not None and request.content_length > limit + 4096:
            raise Refused(f"files up to {channel.max_file_mb:g} MB", 413)
        try:
            reader = await request.multipart()
            part = await reader.next()
        except (AssertionError, ValueError, KeyError) as exc:  # not a multipart body
            raise Refused("send the file as multipart/form-data, field 'file'") from exc
        if part is None or getattr(part, "name", None) != "file":
            raise Refused("send the file as the multipart field 'file'")
        data = bytearray()
        while chunk := await part.read_chunk():  # type: ignore[union-attr]
            data += chunk
            if len(data) > limit:
                raise Refused(f"files up to {channel.max_file_mb:g} MB", 413)
        name = safe_name(getattr(part, "filename", None) or "file")
        mime = sniffed(bytes(data), part.headers.get("Content-Type", ""))
        if mime not in channel.file_types:
            raise Refused(f"{mime} files are not accepted here", 415)
        file_id = await adapter.log.store_file(bytes(data), name, mime, owner=visitor.id)
        return web.json_response({"id": file_id, "name": name, "mime": mime, "size": len(data)})

    async def file(self, request: web.Request) -> web.StreamResponse:
        adapter, _ = self.chat.account(request)
        stored = await adapter.log.file(request.match_info["file_id"])
        if stored is None:
            raise Refused("no such file", 404)
        inline = stored.mime in IMAGE_TYPES
        disposition = "inline" if inline else "attachment"
        return web.Response(
            body=stored.data,
            content_type=stored.mime if inline else "application/octet-stream",
            headers={
                "Content-Disposition": _disposition(disposition, stored.name),
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "private, max-age=86400",
            },
        )

    async def widget(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        content_type = {"widget.js": "text/javascript", "widget.css": "text/css"}.get(name)
        if content_type is None:
            raise Refused("no such file", 404)
        body = (STATIC / name).read_text(encoding="utf-8")
        return web.Response(
            text=body,
            content_type=content_type,
            headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
        )

    async def demo(self, request: web.Request) -> web.StreamResponse:
        self.chat.account(request)
        page = (STATIC / "demo.html").read_text(encoding="utf-8")
        account = request.match_info["account"]
        return web.Response(text=page.replace("{{account}}", account), content_type="text/html")


ROUTES_KEY: web.AppKey[Routes] = web.AppKey("webchat", Routes)


def install(app: web.Application, gateway: Any) -> None:
    routes = Routes(gateway)
    app[ROUTES_KEY] = routes
    app.router.add_get("/webchat/{name:widget\\.(js|css)}", handler("widget"))
    app.router.add_get("/webchat/demo/{account}", handler("demo"))
    base = "/webchat/{account}"
    app.router.add_get(f"{base}/config", handler("config"))
    app.router.add_post(f"{base}/session", handler("session"))
    app.router.add_get(f"{base}/ws", handler("socket"))
    app.router.add_post(f"{base}/messages", handler("messages"))
    app.router.add_get(f"{base}/events", handler("events"))
    app.router.add_post(f"{base}/files", handler("upload"))
    app.router.add_get(f"{base}/files/{{file_id}}", handler("file"))
    for path in ("session", "messages", "files", "events", "config"):
        app.router.add_route("OPTIONS", f"{base}/{path}", handler("preflight"))

    async def stop(_: web.Application) -> None:
        await routes.stop()

    app.on_cleanup.insert(0, stop)


async def _json(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_FRAME:
        raise Refused("body too large", 413)
    try:
        body = json.loads(await request.text())
    except ValueError as exc:
        raise Refused("body is not JSON") from exc
    if not isinstance(body, dict):
        raise Refused("body is not a JSON object")
    return body


def _since(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and ENTRY.match(value) else None


def _disposition(kind: str, name: str) -> str:
    """RFC 6266: an ASCII ``filename`` for old clients and the real one in UTF-8."""
    fallback = name.encode("ascii", "ignore").decode() or "file"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"
