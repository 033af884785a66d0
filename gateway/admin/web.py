"""The dashboard's HTTP side: ``/admin`` (the page), ``/admin/live`` (its live part,
fetched again every few seconds by ``static/admin.js``), the login form and logout.

Pages are rendered on the server (jinja2, autoescaped: customer names are shown) under
a strict Content-Security-Policy: the only script is our own file, no inline script
or style, nothing framed. See :mod:`gateway.admin.auth` for the session.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import structlog
from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from gateway.admin.auth import COOKIE, SESSION_SECONDS, Sessions
from gateway.admin.dashboard import snapshot
from gateway.admin.gauges import Gauges
from gateway.admin.render import FILTERS
from gateway.app import App
from gateway.config import Settings
from gateway.metrics import BEFORE_SCRAPE
from gateway.store.redis import RETRYABLE

log = structlog.get_logger(__name__)
STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
STATIC_TYPES: Final = {
    "admin.js": "text/javascript; charset=utf-8",
    "admin.css": "text/css; charset=utf-8",
}
REFRESH_SECONDS = 5
HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


class Admin:
    def __init__(self, gateway: App) -> None:
        self.gateway = gateway
        self.templates = Environment(
            loader=PackageLoader("gateway.admin", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._settings: Settings | None = None
        self._sessions = Sessions(())

    @property
    def sessions(self) -> Sessions:
        """Sessions under the gateway's *current* settings: after a config reload, a
        removed or rotated token signs nobody in, and its sessions end."""
        settings = self.gateway.settings
        if settings is not self._settings:
            self._sessions = Sessions(settings.api.tokens)
            self.templates.filters.update({k: f(settings.zone) for k, f in FILTERS.items()})
            self._settings = settings
        return self._sessions

    def render(self, template: str, status: int = 200, **context: Any) -> web.Response:
        _ = self.sessions  # the filters follow the current settings (time zone)
        body = self.templates.get_template(template).render(**context)
        return web.Response(
            text=body, status=status, content_type="text/html", charset="utf-8", headers=HEADERS
        )

    def admin_of(self, request: web.Request) -> str | None:
        """The signed-in admin's token name (``None``: not signed in)."""
        return self.sessions.verify(request.cookies.get(COOKIE), datetime.now(UTC))

    async def page(self, request: web.Request) -> web.StreamResponse:
        name = self.admin_of(request)
        if name is None:
            return _redirect("/admin/login")
        try:
            snap = await snapshot(self.gateway)
        except RETRYABLE as exc:
            log.warning("admin.store_unavailable", error=str(exc))
            return self.render("unavailable.html", 503)
        cookie = request.cookies[COOKIE]
        return self.render(
            "dashboard.html",
            admin=name,
            csrf=self.sessions.csrf(cookie),
            s=snap,
            refresh=_refresh_seconds(request),
        )

    async def live(self, request: web.Request) -> web.StreamResponse:
        if self.admin_of(request) is None:
            return web.Response(status=401, text="sign in at /admin/login", headers=HEADERS)
        try:
            snap = await snapshot(self.gateway)
        except RETRYABLE as exc:
            log.warning("admin.store_unavailable", error=str(exc))
            return web.Response(status=503, text="the store is unavailable", headers=HEADERS)
        return self.render("live.html", s=snap)

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        if self.admin_of(request) is not None:
            return _redirect("/admin")
        return self.render("login.html", error=None, configured=bool(self.sessions.admins))

    async def login(self, request: web.Request) -> web.StreamResponse:
        if _cross_site(request):
            return web.Response(status=403, text="cross-site request refused", headers=HEADERS)
        form = await request.post()
        token = form.get("token")
        found = self.sessions.check(token if isinstance(token, str) else "")
        configured = bool(self.sessions.admins)
        if found.name is None:
            log.warning("admin.login_refused", reason="unknown token", peer=request.remote)
            return self.render("login.html", 401, error="Wrong token.", configured=configured)
        if not found.admin:
            log.warning("admin.login_refused", reason="no admin scope", token_name=found.name)
            error = f"The token “{found.name}” has no admin scope."
            return self.render("login.html", 403, error=error, configured=configured)
        log.info("admin.login", token_name=found.name, peer=request.remote)
        response = _redirect("/admin")
        response.set_cookie(
            COOKIE,
            self.sessions.issue(found.name, datetime.now(UTC)),
            max_age=SESSION_SECONDS,
            path="/admin",
            httponly=True,
            samesite="Strict",
            secure=_https(request),
        )
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        cookie = request.cookies.get(COOKIE, "")
        name = self.admin_of(request)
        form = await request.post()
        csrf = form.get("csrf")
        if name is not None and (
            _cross_site(request)
            or not isinstance(csrf, str)
            or not self.sessions.csrf_ok(cookie, csrf)
        ):
            log.warning("admin.logout_refused", token_name=name, peer=request.remote)
            return web.Response(status=403, text="logout refused: stale form", headers=HEADERS)
        response = _redirect("/admin/login")
        response.del_cookie(COOKIE, path="/admin")
        if name is not None:
            log.info("admin.logout", token_name=name)
        return response

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        kind = STATIC_TYPES.get(name)
        if kind is None:
            raise web.HTTPNotFound()
        return web.Response(
            body=(STATIC_DIR / name).read_bytes(),
            headers={
                "Content-Type": kind,
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
            },
        )


def _refresh_seconds(request: web.Request) -> int:
    """How often the page refreshes: ``?refresh=N`` seconds (1 to 300), else the default."""
    asked = request.query.get("refresh", "")
    return min(max(int(asked), 1), 300) if asked.isdigit() else REFRESH_SECONDS


def _https(request: web.Request) -> bool:
    """Reached over HTTPS (directly, or through a TLS-terminating proxy that says so)."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def _cross_site(request: web.Request) -> bool:
    """A form posted from another site (browsers say so in ``Sec-Fetch-Site``)."""
    return request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site"


def _redirect(location: str) -> web.Response:
    """303 See Other: after a form, the browser GETs ``location``."""
    return web.Response(status=303, headers={**HEADERS, "Location": location})


async def _to_page(_: web.Request) -> web.StreamResponse:
    return web.Response(status=308, headers={"Location": "/admin"})


def install(app: web.Application, gateway: App) -> None:
    """Add the dashboard's routes, and the gauges refreshed when ``/metrics`` is scraped."""
    admin = Admin(gateway)
    app.router.add_get("/admin", admin.page)
    app.router.add_get("/admin/", _to_page)
    app.router.add_get("/admin/live", admin.live)
    app.router.add_get("/admin/login", admin.login_form)
    app.router.add_post("/admin/login", admin.login)
    app.router.add_post("/admin/logout", admin.logout)
    app.router.add_get("/admin/static/{name}", admin.static)
    app.setdefault(BEFORE_SCRAPE, []).append(Gauges(gateway).refresh)
