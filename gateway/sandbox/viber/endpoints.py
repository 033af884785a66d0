"""The REST Bot API endpoints of the emulated Viber.

Each handler gets the authenticated bot and the request body (without ``auth_token``)
and returns the fields of a successful answer (``status`` 0 is added by :mod:`.api`), or
raises :class:`~.models.ViberError`
(https://developers.viber.com/docs/api/rest-bot-api/).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from yarl import URL

from ..common import is_loopback
from . import actions
from .models import (
    ALWAYS_SENT,
    CHAT_HOSTNAME,
    FILTERABLE_EVENTS,
    Bot,
    JsonDict,
    ViberError,
    Webhook,
    bad_data,
    missing_data,
)
from .state import ViberWorld
from .validate import check_message

MAX_ONLINE_IDS = 100


@dataclass
class Ctx:
    """One call: the world, the calling bot and the request body."""

    world: ViberWorld
    bot: Bot
    params: JsonDict


Handler = Callable[[Ctx], Awaitable[JsonDict]]


def _event_types(params: JsonDict) -> tuple[str, ...]:
    requested = params.get("event_types")
    if requested is None:
        return FILTERABLE_EVENTS
    if not isinstance(requested, list) or not all(isinstance(e, str) for e in requested):
        raise bad_data("event_types must be an array of strings")
    unknown = sorted(set(requested) - set(FILTERABLE_EVENTS))
    if unknown:
        raise bad_data(f"unknown event_types {unknown}; known: {', '.join(FILTERABLE_EVENTS)}")
    return tuple(e for e in FILTERABLE_EVENTS if e in requested or e in ALWAYS_SENT)


async def set_webhook(ctx: Ctx) -> JsonDict:
    """Set (or with ``url: ""`` remove) the webhook; Viber checks it with a ``webhook``
    callback first and refuses a URL that does not answer 200 (status 1)."""
    if "url" not in ctx.params:
        raise missing_data("url")
    url = ctx.params["url"]
    if not isinstance(url, str):
        raise bad_data("url must be a string")
    world, bot = ctx.world, ctx.bot
    if url == "":
        bot.webhook = None
        world.feed.emit("webhook", bot.id, None, url="")
        return {"event_types": []}
    event_types = _event_types(ctx.params)
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not is_loopback(parsed.host):
        raise ViberError(1, f"the emulator only calls webhooks on this machine, not {url[:100]}")
    problem = await world.callbacks.check_webhook(bot, url, world.tokens.new())
    if problem is not None:
        raise ViberError(1, problem)
    bot.webhook = Webhook(
        url,
        event_types,
        send_name=ctx.params.get("send_name") is True,
        send_photo=ctx.params.get("send_photo") is True,
    )
    world.feed.emit("webhook", bot.id, None, url=url)
    return {"event_types": list(event_types)}


async def get_account_info(ctx: Ctx) -> JsonDict:
    """The bot's public account details, webhook and subscriber count."""
    bot = ctx.bot
    return {
        "id": bot.id,
        "name": bot.name,
        "uri": bot.uri,
        "icon": bot.avatar or "",
        "background": "",
        "category": "Companies & Brands",
        "subcategory": "Shopping",
        "location": {"lon": 37.6173, "lat": 55.7558},
        "country": "RU",
        "webhook": bot.webhook.url if bot.webhook else "",
        "event_types": list(bot.webhook.event_types) if bot.webhook else [],
        "subscribers_count": bot.subscribers_count,
        "members": [{"id": "vbXH3Jn1x0vYS2YIGi8dZA==", "name": "Admin", "role": "admin"}],
    }


async def get_user_details(ctx: Ctx) -> JsonDict:
    """A person's profile, device and Viber version (status 5 for an unknown id)."""
    user_id = ctx.params.get("id")
    if user_id is None:
        raise missing_data("id")
    user = ctx.world.users.get(user_id) if isinstance(user_id, str) else None
    if user is None:
        raise ViberError(5, f"no Viber user {user_id!r}")
    return {
        "message_token": ctx.world.tokens.new(),
        "chat_hostname": CHAT_HOSTNAME,
        "user": user.details(),
    }


async def get_online(ctx: Ctx) -> JsonDict:
    """Online status of up to 100 people (0 online, 1 offline with ``last_online``)."""
    ids = ctx.params.get("ids")
    if ids is None:
        raise missing_data("ids")
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_ONLINE_IDS:
        raise bad_data(f"ids must be an array of 1 to {MAX_ONLINE_IDS} user ids")
    users: list[JsonDict] = []
    for user_id in ids:
        user = ctx.world.users.get(user_id) if isinstance(user_id, str) else None
        if user is None:
            users.append({"id": user_id, "online_status": 3, "online_status_message": "tryLater"})
        elif user.online:
            users.append({"id": user.id, "online_status": 0, "online_status_message": "online"})
        else:
            entry = {"id": user.id, "online_status": 1, "online_status_message": "offline"}
            users.append({**entry, "last_online": user.last_online})
    return {"users": users}


async def send_message(ctx: Ctx) -> JsonDict:
    """Send a message to a subscribed person; checked in this order: webhook (10),
    ``receiver`` (4), the message (3), the receiver's account (5), subscription (6), the
    receiver's Viber version against ``min_api_version`` (13)."""
    world, bot, params = ctx.world, ctx.bot, ctx.params
    if bot.webhook is None and world.require_webhook:
        raise ViberError(10, "set a webhook before sending messages")
    receiver = params.get("receiver")
    if receiver is None:
        raise missing_data("receiver")
    checked = check_message(params)
    user = world.users.get(receiver) if isinstance(receiver, str) else None
    if user is None:
        raise ViberError(5, f"no Viber user {receiver!r}")
    if not bot.subscribed.get(user.id):
        raise ViberError(6, "the receiver is not subscribed to the bot")
    if checked.min_api_version is not None and user.api_version < checked.min_api_version:
        raise ViberError(13, f"the receiver's Viber supports API version {user.api_version}")
    message = actions.accept(world, bot, user.id, checked)
    return {"message_token": message.message_token, "chat_hostname": CHAT_HOSTNAME}


HANDLERS: dict[str, Handler] = {
    "set_webhook": set_webhook,
    "get_account_info": get_account_info,
    "get_user_details": get_user_details,
    "get_online": get_online,
    "send_message": send_message,
}
