"""``groups.*``: the community itself, its Bots Long Poll server and its Callback API servers.

Callback servers follow https://dev.vk.com/ru/api/callback/getting-started: adding one
(or changing the settings of one not confirmed yet) sends the confirmation request; the
server gets only the event types switched on with ``groups.setCallbackSettings`` (none
at first, as in VK). The emulator only talks to this machine, so a callback URL must
point at 127.0.0.1 or localhost. At most 10 servers per community.
"""

from __future__ import annotations

from yarl import URL

from ..common import is_loopback
from .ctx import Ctx, Handler
from .models import (
    API_VERSION,
    MESSAGE_EVENTS,
    CallbackServer,
    JsonDict,
    VkApiError,
    invalid,
)

MAX_SERVERS = 10
MAX_TITLE = 14
_NOT_EVENTS = frozenset({"group_id", "server_id", "api_version", "v", "access_token", "enabled"})


def get_by_id(ctx: Ctx) -> JsonDict:
    """``groups.getById`` (the token's community) → ``{"groups": [...], "profiles": []}``."""
    ids = ctx.params.csv("group_ids") or ctx.params.csv("group_id") or [str(ctx.group.id)]
    groups = []
    for raw in ids:
        group = ctx.world.groups.get(int(raw)) if raw.isdigit() else None
        if group is None:
            raise invalid("group_ids is invalid")
        groups.append(group.group_dict())
    return {"groups": groups, "profiles": []}


def get_long_poll_server(ctx: Ctx) -> JsonDict:
    """``groups.getLongPollServer`` → ``{"key", "server", "ts"}`` (ts is a string)."""
    ctx.own_group_id()
    key, ts = ctx.group.longpoll.server_info()
    return {"key": key, "server": f"{ctx.base_url}/longpoll/{ctx.group.id}", "ts": ts}


def _event_flags(ctx: Ctx, events: set[str]) -> None:
    """Apply ``message_new=1``-style switches to ``events``."""
    for name, value in ctx.params.values.items():
        if name in _NOT_EVENTS or value not in ("0", "1"):
            continue
        if value == "1":
            events.add(name)
        else:
            events.discard(name)


def _events_dict(events: set[str]) -> dict[str, int]:
    return {name: int(name in events) for name in sorted({*MESSAGE_EVENTS, *events})}


def set_long_poll_settings(ctx: Ctx) -> int:
    """``groups.setLongPollSettings`` → 1 (stored; the emulator queues every event anyway)."""
    ctx.own_group_id()
    settings = ctx.group.longpoll_settings
    events: set[str] = set(settings.get("events", ()))
    _event_flags(ctx, events)
    settings["events"] = events
    if ctx.params.opt_str("api_version"):
        settings["api_version"] = ctx.params.opt_str("api_version")
    if ctx.params.flag("enabled") is not None:
        settings["enabled"] = ctx.params.flag("enabled")
    return 1


def get_long_poll_settings(ctx: Ctx) -> JsonDict:
    """``groups.getLongPollSettings`` → ``{"is_enabled", "api_version", "events"}``."""
    ctx.own_group_id()
    settings = ctx.group.longpoll_settings
    return {
        "is_enabled": bool(settings.get("enabled", True)),
        "api_version": settings.get("api_version") or API_VERSION,
        "events": _events_dict(set(settings.get("events", ()))),
    }


def get_confirmation_code(ctx: Ctx) -> JsonDict:
    """``groups.getCallbackConfirmationCode`` → ``{"code"}``."""
    ctx.own_group_id()
    return {"code": ctx.group.confirmation}


def get_servers(ctx: Ctx) -> JsonDict:
    """``groups.getCallbackServers`` → ``{"count", "items"}`` (all, or ``server_ids``)."""
    ctx.own_group_id()
    wanted = {int(i) for i in ctx.params.csv("server_ids") if i.isdigit()}
    items = [s.item() for s in ctx.group.servers.values() if not wanted or s.id in wanted]
    return {"count": len(items), "items": items}


def _server(ctx: Ctx) -> CallbackServer:
    server = ctx.group.servers.get(ctx.params.req_int("server_id"))
    if server is None:
        raise invalid("server_id is invalid")
    return server


def _checked_url(ctx: Ctx) -> str:
    raw = ctx.params.req_str("url")
    try:
        url = URL(raw)
    except ValueError:
        raise invalid("url is invalid") from None
    if url.scheme not in ("http", "https") or not is_loopback(url.host):
        raise invalid("url is invalid: the emulator only posts to 127.0.0.1 or localhost")
    return raw


def _title(ctx: Ctx) -> str:
    title = ctx.params.req_str("title")
    if len(title) > MAX_TITLE:
        raise invalid(f"title is too long (max {MAX_TITLE} characters)")
    return title


def add_server(ctx: Ctx) -> JsonDict:
    """``groups.addCallbackServer`` → ``{"server_id"}``; the confirmation request follows."""
    ctx.own_group_id()
    url, title = _checked_url(ctx), _title(ctx)
    if len(ctx.group.servers) >= MAX_SERVERS:
        raise VkApiError(2000, "Servers number limit is reached")
    server = ctx.world.add_callback_server(
        ctx.group, url, title, ctx.params.opt_str("secret_key") or None
    )
    ctx.delivery.confirm(server, ctx.group.confirmation)
    return {"server_id": server.id}


def edit_server(ctx: Ctx) -> int:
    """``groups.editCallbackServer`` → 1; the server is confirmed again."""
    ctx.own_group_id()
    server = _server(ctx)
    server.url, server.title = _checked_url(ctx), _title(ctx)
    secret = ctx.params.opt_str("secret_key")
    if secret is not None:
        server.secret_key = secret or None
    ctx.delivery.confirm(server, ctx.group.confirmation)
    return 1


def delete_server(ctx: Ctx) -> int:
    """``groups.deleteCallbackServer`` → 1."""
    ctx.own_group_id()
    server = _server(ctx)
    server.removed = True
    del ctx.group.servers[server.id]
    return 1


def set_settings(ctx: Ctx) -> int:
    """``groups.setCallbackSettings``: ``api_version`` and event switches → 1."""
    ctx.own_group_id()
    server = _server(ctx)
    version = ctx.params.opt_str("api_version")
    if version:
        server.api_version = version
    _event_flags(ctx, server.events)
    if server.status not in ("ok", "wait"):
        ctx.delivery.confirm(server, ctx.group.confirmation)
    return 1


def get_settings(ctx: Ctx) -> JsonDict:
    """``groups.getCallbackSettings`` → ``{"api_version", "events"}``."""
    ctx.own_group_id()
    server = _server(ctx)
    return {"api_version": server.api_version, "events": _events_dict(server.events)}


HANDLERS: dict[str, Handler] = {
    "groups.getById": get_by_id,
    "groups.getLongPollServer": get_long_poll_server,
    "groups.setLongPollSettings": set_long_poll_settings,
    "groups.getLongPollSettings": get_long_poll_settings,
    "groups.getCallbackConfirmationCode": get_confirmation_code,
    "groups.getCallbackServers": get_servers,
    "groups.addCallbackServer": add_server,
    "groups.editCallbackServer": edit_server,
    "groups.deleteCallbackServer": delete_server,
    "groups.setCallbackSettings": set_settings,
    "groups.getCallbackSettings": get_settings,
}
