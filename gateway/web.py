"""The HTTP surface: platform webhooks, health, readiness and metrics.

A webhook answers 200 only after the normalised event is in a Redis stream; it answers
503 when Redis cannot take it (the platform retries), 400 for malformed bodies,
401 for failed authentication and 404 for unknown accounts — and in none of those
cases is anything enqueued.
"""

from __future__ import annotations

import mimetypes
from typing import Any

import structlog
from aiohttp import web

from adapters.base import Answer
from gateway import strictjson
from gateway.admin.web import install as install_admin
from gateway.api import install as install_api
from gateway.app import App
from gateway.errors import BadPayload, Unauthorized
from gateway.logging import new_context
from gateway.metrics import BEFORE_SCRAPE
from gateway.store import keys
from gateway.store.redis import RETRYABLE
from gateway.webchat.server import install as install_webchat

log = structlog.get_logger(__name__)
APP_KEY: web.AppKey[App] = web.AppKey("gateway", App)
MAX_BODY = 1024 * 1024  # Telegram updates are a few KB; a bigger body is not an update.


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


async def webhook(request: web.Request) -> web.Response:
    gateway = request.app[APP_KEY]
    channel, account = request.match_info["channel"], request.match_info["account"]
    adapter = gateway.adapters.get(account)
    new_context(channel=channel, account=account)
    if adapter is None or adapter.channel.value != channel:
        log.warning("webhook.unknown_account")
        return _error(404, f"no {channel} account {account!r}")
    body = await request.read()
    try:
        adapter.verify(request.headers, body)  # the raw bytes, before parsing anything
    except Unauthorized as exc:
        log.warning("webhook.unauthorized", reason=str(exc), peer=request.remote)
        return _error(401, "unauthorized")
    except BadPayload as exc:  # platforms that sign inside the body (VK) parse to verify
        log.warning("webhook.malformed", error=str(exc))
        return _error(400, str(exc))
    except UnicodeError:  # a header or secret that is not text cannot be the secret
        log.warning("webhook.unauthorized", reason="credential is not text", peer=request.remote)
        return _error(401, "unauthorized")
    except RecursionError:  # JSON nested deeper than the parser goes (VK parses to verify)
        log.warning("webhook.malformed_json", error="nested too deeply")
        return _error(400, "body is not JSON")
    try:
        payload: Any = strictjson.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        log.warning("webhook.malformed_json", error=str(exc)[:200])
        return _error(400, "body is not JSON")
    if not isinstance(payload, dict):
        log.warning("webhook.not_an_object", type=type(payload).__name__)
        return _error(400, "body is not a JSON object")
    handshake = adapter.handshake(payload)
    if handshake is not None:
        log.info("webhook.handshake", update=adapter.event_id(payload))
        return _answer(handshake)
    try:
        await gateway.ingest.accept(adapter, payload)
    except BadPayload as exc:
        log.warning("webhook.bad_payload", error=str(exc), update=adapter.event_id(payload))
        return _error(400, str(exc))
    except RETRYABLE as exc:
        log.error("webhook.store_unavailable", error=str(exc))
        return _error(503, "temporarily unavailable")
    return _answer(adapter.ack)


def _answer(answer: Answer) -> web.Response:
    return web.Response(
        text=answer.body,
        content_type=answer.content_type,
        charset="utf-8",
        status=answer.status,
    )


async def verification(request: web.Request) -> web.Response:
    """``GET /webhook/{channel}/{account}``: a platform checking the URL before it posts
    (WhatsApp's ``hub.challenge``)."""
    gateway = request.app[APP_KEY]
    channel, account = request.match_info["channel"], request.match_info["account"]
    adapter = gateway.adapters.get(account)
    if adapter is None or adapter.channel.value != channel:
        return _error(404, f"no {channel} account {account!r}")
    try:
        answer = adapter.challenge(request.query)
    except Unauthorized as exc:
        log.warning("webhook.verification_refused", account=account, reason=str(exc))
        return _error(403, "verification refused")
    except BadPayload as exc:
        return _error(400, str(exc))
    log.info("webhook.verified", account=account)
    return _answer(answer)


async def media(request: web.Request) -> web.Response:
    """A file the gateway published for a messenger to fetch (see :mod:`gateway.media`)."""
    store = request.app[APP_KEY].delivery.media
    media_id, name = request.match_info["media_id"], request.match_info["name"]
    query = request.query
    if not store.valid(media_id, name, query.get("e", ""), query.get("s", "")):
        log.warning("media.refused", peer=request.remote)
        return _error(403, "invalid or expired link")
    data = await store.read(media_id)
    if data is None:
        return _error(404, "no such file (expired)")
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return web.Response(body=data, content_type=kind, headers={"Cache-Control": "private"})


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = await request.app[APP_KEY].ready()
    ok = all(checks.values())
    return web.json_response({"ready": ok, **checks}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    gateway = request.app[APP_KEY]
    for refresh in request.app.get(BEFORE_SCRAPE, ()):
        try:
            await refresh()
        except RETRYABLE as exc:  # still serve the process's own counters
            log.warning("metrics.gauges_unavailable", error=str(exc))
    try:
        for family in keys.FAMILIES:
            gateway.metrics.queue_depth.labels(family).set(await gateway.bus.depth(family))
    except RETRYABLE:
        pass  # still serve the process's own counters while Redis is away
    return web.Response(body=gateway.metrics.render(), content_type="text/plain", charset="utf-8")


def make_web_app(gateway: App, *, manage_lifecycle: bool = True) -> web.Application:
    """The aiohttp application; with ``manage_lifecycle`` it starts and stops ``gateway``."""
    app = web.Application(client_max_size=MAX_BODY)
    install(app, gateway, manage_lifecycle=manage_lifecycle)
    return app


def install(app: web.Application, gateway: App, *, manage_lifecycle: bool = True) -> None:
    """Add the gateway's routes (and lifecycle hooks) to an existing application."""
    app[APP_KEY] = gateway
    app.router.add_post("/webhook/{channel}/{account}", webhook)
    app.router.add_get("/webhook/{channel}/{account}", verification)
    app.router.add_get("/media/{media_id}/{name}", media)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    install_admin(app, gateway)
    install_api(app, gateway)
    install_webchat(app, gateway)
    if manage_lifecycle:

        async def start(_: web.Application) -> None:
            await gateway.start()

        async def stop(_: web.Application) -> None:
            await gateway.stop()

        app.on_startup.append(start)
        app.on_cleanup.append(stop)
