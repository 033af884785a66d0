"""Web console for ``gateway sandbox``.

The console is a small single-page app (``static/console.{html,js,css}`` plus
``static/console_vk.js`` for the VK tab, ``static/console_viber.js`` for the Viber tab,
``static/console_whatsapp.js`` for the WhatsApp tab and ``static/console_tabs.js``, what those
share) that lets a person play both sides of the
gateway against the built-in emulators:

* the left pane writes as a *customer*: to a company bot in Telegram (tab "Telegram"), to a
  community in VK (tab "VK", one community per configured ``kind: vk`` channel), to a Viber bot
  (tab "Viber", one bot per ``kind: viber`` channel) or to a WhatsApp Business number (tab
  "WhatsApp", one number per ``kind: whatsapp`` channel);
* the right pane shows the staff forum supergroup and answers in its topics as an *operator*.

The page talks to the emulator's control API directly (same origin, under
``ConsoleSettings.emulator_path``). The only thing the browser must never see is a bot token, so
actions that need one go through this module instead: ``POST /console/customer_send`` takes a
token-free ``bot_id``, maps it to the bot's token and forwards the call to
``{emulator_path}/_control/send``. The VK emulator's control API (under
``ConsoleSettings.vk_path``) addresses communities by id and needs no token at all, so the VK
tab calls it directly; so does the Viber tab with the Viber emulator's (``viber_path``), which
addresses bots by their public ``pa:`` id, and the WhatsApp tab with the WhatsApp emulator's
(``whatsapp_path``), which addresses numbers by their phone number id.

Routes (absolute, so the console app is meant to be the root application of the sandbox server;
the emulator is then mounted into it, e.g. ``app.add_subapp(settings.emulator_path, emulator)``):

* ``GET /`` – the page;
* ``GET /console/config.json`` – what the page needs to know (no tokens);
* ``GET /console/static/{name}`` – the page's JS/CSS (an allow-list, nothing else on disk);
* ``POST /console/customer_send`` – post to a bot as a customer (see :func:`make_console_app`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web
from yarl import URL

__all__ = [
    "STATIC_DIR",
    "ConsoleBot",
    "ConsoleOperator",
    "ConsoleSettings",
    "ConsoleViberBot",
    "ConsoleVkGroup",
    "ConsoleWhatsAppNumber",
    "make_console_app",
]

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"

# Only these kinds of files are ever served from STATIC_DIR, with these exact content types.
_STATIC_TYPES: Final[dict[str, str]] = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}

# The page only loads its own script/style, talks to its own origin and shows images from the
# emulator's file endpoint (same origin). A strict policy is a second line of defence against
# customer-controlled text sneaking markup into the page.
_PAGE_HEADERS: Final[dict[str, str]] = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob:; connect-src 'self'; frame-src 'self'; base-uri 'none'; "
        "form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

_MAX_BODY: Final = 64 * 1024 * 1024
_FORWARD_TIMEOUT: Final = aiohttp.ClientTimeout(total=30)


@dataclass(frozen=True)
class ConsoleBot:
    """A customer-facing bot the console can write to. ``token`` never leaves the server."""

    account: str
    bot_id: int
    username: str
    token: str = field(repr=False)  # kept out of logs and tracebacks


@dataclass(frozen=True)
class ConsoleOperator:
    """A staff-group member the console can act as."""

    user_id: int
    name: str


@dataclass(frozen=True)
class ConsoleVkGroup:
    """A VK community the console's VK tab can write to (no token: the VK emulator's control
    API refers to communities by id)."""

    account: str
    group_id: int
    name: str


@dataclass(frozen=True)
class ConsoleViberBot:
    """A Viber bot the console's Viber tab can write to, by its public id (``pa:...``); the
    Viber emulator's control API never needs the bot's token."""

    account: str
    bot_id: str
    name: str


@dataclass(frozen=True)
class ConsoleWhatsAppNumber:
    """A WhatsApp Business number the console's WhatsApp tab can write to, by its phone number
    id; the WhatsApp emulator's control API needs neither its token nor its app secret."""

    account: str
    phone_number_id: str
    name: str


@dataclass(frozen=True)
class ConsoleSettings:
    """Everything the console needs.

    ``emulator_path`` is the URL path prefix where the Telegram emulator is mounted on the same
    origin, e.g. ``"/sandbox/telegram"``; ``vk_path`` the VK emulator's (used when ``vk_groups``
    is not empty), ``viber_path`` the Viber emulator's (used when ``viber_bots`` is not empty) and
    ``whatsapp_path`` the WhatsApp emulator's (used when ``whatsapp_numbers`` is not empty).
    """

    emulator_path: str
    customer_bots: tuple[ConsoleBot, ...]
    staff_chat_id: int
    operators: tuple[ConsoleOperator, ...]
    vk_path: str = "/sandbox/vk"
    vk_groups: tuple[ConsoleVkGroup, ...] = ()
    viber_path: str = "/sandbox/viber"
    viber_bots: tuple[ConsoleViberBot, ...] = ()
    whatsapp_path: str = "/sandbox/whatsapp"
    whatsapp_numbers: tuple[ConsoleWhatsAppNumber, ...] = ()
    websites: tuple[str, ...] = ()
    """Website chat accounts: the "Website" tab shows the gateway's demo page with the
    widget (``/webchat/demo/<account>``, the same origin)."""


def _normalized_path(path: str) -> str:
    """``"sandbox/telegram/"`` → ``"/sandbox/telegram"``; the root is ``""``."""
    stripped = path.strip("/")
    return f"/{stripped}" if stripped else ""


class _Forwarder:
    """Posts JSON to the emulator's control API over loopback, with one lazily created session.

    The emulator lives on the same server as the console. The target address is the local end of
    the socket the browser's request arrived on, never the request's ``Host`` header: a forged
    ``Host`` must not be able to send a bot token anywhere else.
    """

    def __init__(self, emulator_path: str) -> None:
        self._prefix = _normalized_path(emulator_path)
        self._session: aiohttp.ClientSession | None = None

    def control_url(self, request: web.Request, endpoint: str) -> URL:
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        if not (isinstance(sockname, tuple) and len(sockname) >= 2):
            raise web.HTTPServiceUnavailable(
                text=json.dumps({"ok": False, "error": "console is not served over TCP"}),
                content_type="application/json",
            )
        host, port = str(sockname[0]), int(sockname[1])
        return URL.build(
            scheme="http", host=host, port=port, path=f"{self._prefix}/_control/{endpoint}"
        )

    async def post(self, url: URL, payload: dict[str, Any]) -> tuple[int, Any]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=_FORWARD_TIMEOUT)
        # A BytesIO body: aiohttp warns that big raw-bytes bodies (base64 files) block the loop.
        data = io.BytesIO(json.dumps(payload).encode())
        headers = {"Content-Type": "application/json"}
        async with self._session.post(url, data=data, headers=headers) as resp:
            text = await resp.text()
            try:
                body: Any = json.loads(text) if text else None
            except ValueError:
                body = {"ok": False, "error": text[:500]}
            return resp.status, body

    async def close(self, _app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


_SETTINGS_KEY: Final = web.AppKey("console_settings", ConsoleSettings)
_FORWARDER_KEY: Final = web.AppKey("console_forwarder", _Forwarder)
_STATIC_KEY: Final = web.AppKey("console_static", dict[str, Path])


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


def _public_config(settings: ConsoleSettings) -> dict[str, Any]:
    """What the page is allowed to know: identities, never tokens."""
    return {
        "emulator_path": _normalized_path(settings.emulator_path),
        "staff_chat_id": settings.staff_chat_id,
        "customer_bots": [
            {"account": b.account, "bot_id": b.bot_id, "username": b.username}
            for b in settings.customer_bots
        ],
        "operators": [{"user_id": o.user_id, "name": o.name} for o in settings.operators],
        "internal_note_prefix": "!",
        "vk": {
            "path": _normalized_path(settings.vk_path),
            "groups": [
                {"account": g.account, "group_id": g.group_id, "name": g.name}
                for g in settings.vk_groups
            ],
        },
        "viber": {
            "path": _normalized_path(settings.viber_path),
            "bots": [
                {"account": b.account, "bot_id": b.bot_id, "name": b.name}
                for b in settings.viber_bots
            ],
        },
        "websites": list(settings.websites),
        "whatsapp": {
            "path": _normalized_path(settings.whatsapp_path),
            "numbers": [
                {"account": n.account, "phone_number_id": n.phone_number_id, "name": n.name}
                for n in settings.whatsapp_numbers
            ],
        },
    }


def _scan_static() -> dict[str, Path]:
    """The allow-list of servable static files: plain names with a known suffix."""
    if not STATIC_DIR.is_dir():
        return {}
    return {
        p.name: p
        for p in STATIC_DIR.iterdir()
        if p.is_file() and p.suffix in _STATIC_TYPES and not p.name.startswith(".")
    }


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_str_fields(obj: object, required: tuple[str, ...], what: str) -> str | None:
    if not isinstance(obj, dict):
        return f"{what} must be an object"
    for key in required:
        if not isinstance(obj.get(key), str):
            return f"{what}.{key} must be a string"
    return None


def _customer_payload(body: dict[str, Any]) -> dict[str, Any] | str:
    """Validate a ``customer_send`` body; return the emulator payload (minus token) or an error.

    Only known fields pass through: the browser must not be able to aim the call at another chat
    (``chat_id``) or supply its own ``bot_token``.
    """
    out: dict[str, Any] = {"user_id": body.get("user_id")}
    if not _is_int(out["user_id"]):
        return "user_id must be an integer"
    for key in ("text", "caption", "kind"):
        if key in body and body[key] is not None:
            if not isinstance(body[key], str):
                return f"{key} must be a string"
            out[key] = body[key]
    if body.get("reply_to_message_id") is not None:
        if not _is_int(body["reply_to_message_id"]):
            return "reply_to_message_id must be an integer"
        out["reply_to_message_id"] = body["reply_to_message_id"]
    if body.get("file") is not None:
        err = _check_str_fields(body["file"], ("name", "mime_type", "content_b64"), "file")
        if err:
            return err
        f = body["file"]
        out["file"] = {
            "name": f["name"],
            "mime_type": f["mime_type"],
            "content_b64": f["content_b64"],
        }
    if body.get("location") is not None:
        loc = body["location"]
        if not (
            isinstance(loc, dict)
            and _is_number(loc.get("latitude"))
            and _is_number(loc.get("longitude"))
        ):
            return "location must be {latitude, longitude}"
        out["location"] = {"latitude": loc["latitude"], "longitude": loc["longitude"]}
    if body.get("contact") is not None:
        err = _check_str_fields(body["contact"], ("phone_number", "first_name"), "contact")
        if err:
            return err
        c = body["contact"]
        out["contact"] = {
            k: c[k]
            for k in ("phone_number", "first_name", "last_name")
            if isinstance(c.get(k), str)
        }
    if not any(k in out for k in ("text", "caption", "file", "location", "contact")):
        return "nothing to send: give text, caption, file, location or contact"
    return out


async def _page(request: web.Request) -> web.StreamResponse:
    path = STATIC_DIR / "console.html"
    return web.FileResponse(path, headers=_PAGE_HEADERS)


async def _config(request: web.Request) -> web.Response:
    settings = request.app[_SETTINGS_KEY]
    return web.json_response(_public_config(settings), headers={"Cache-Control": "no-cache"})


async def _static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    # A plain dict lookup: names such as "../x", "..%2Fx" or absolute paths are simply not keys.
    path = request.app[_STATIC_KEY].get(name)
    if path is None:
        raise web.HTTPNotFound()
    headers = {
        "Content-Type": _STATIC_TYPES[path.suffix],
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    return web.FileResponse(path, headers=headers)


async def _customer_send(request: web.Request) -> web.Response:
    settings = request.app[_SETTINGS_KEY]
    try:
        body = await request.json()
    except ValueError:
        return _json_error(400, "body must be JSON")
    if not isinstance(body, dict):
        return _json_error(400, "body must be a JSON object")
    bot_id = body.get("bot_id")
    if not _is_int(bot_id):
        return _json_error(400, "bot_id must be an integer")
    bot = next((b for b in settings.customer_bots if b.bot_id == bot_id), None)
    if bot is None:
        return _json_error(404, f"unknown bot_id {bot_id}")
    payload = _customer_payload(body)
    if isinstance(payload, str):
        return _json_error(400, payload)
    payload["bot_token"] = bot.token

    forwarder = request.app[_FORWARDER_KEY]
    url = forwarder.control_url(request, "send")
    try:
        status, result = await forwarder.post(url, payload)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return _json_error(502, f"emulator unreachable: {type(exc).__name__}")
    # Pass the emulator's answer (a Message, or its error) through, minus any echo of the token.
    text = json.dumps(result, ensure_ascii=False)
    if bot.token in text:
        text = text.replace(bot.token, "<bot token>")
    return web.json_response(text=text, status=status)


def make_console_app(settings: ConsoleSettings) -> web.Application:
    """Build the console application.

    ``POST /console/customer_send`` takes ``{bot_id, user_id, text?, caption?, kind?, file?,
    location?, contact?, reply_to_message_id?}`` (``file`` is ``{name, mime_type, content_b64}``),
    replaces ``bot_id`` with that bot's token and forwards it to the emulator's
    ``POST {emulator_path}/_control/send``; the emulator's JSON reply and status are returned as
    they are. Unknown bot → 404, malformed body → 400, emulator unreachable → 502.
    """
    bot_ids = [b.bot_id for b in settings.customer_bots]
    if len(set(bot_ids)) != len(bot_ids):
        raise ValueError("ConsoleSettings.customer_bots: bot_id values must be unique")

    # Attachments travel as base64 JSON (to this app and, when it is the root app, to the
    # emulator's control API mounted into it), so allow more than aiohttp's 1 MiB default.
    app = web.Application(client_max_size=_MAX_BODY)
    forwarder = _Forwarder(settings.emulator_path)
    app[_SETTINGS_KEY] = settings
    app[_FORWARDER_KEY] = forwarder
    app[_STATIC_KEY] = _scan_static()
    app.on_cleanup.append(forwarder.close)
    app.router.add_get("/", _page)
    app.router.add_get("/console/config.json", _config)
    app.router.add_get("/console/static/{name}", _static)
    app.router.add_post("/console/customer_send", _customer_send)
    return app
