"""The control HTTP API (``/_control/...``) the sandbox console plays Viber customers with.

JSON in, JSON out; bad input answers 400 ``{"error": "..."}``. Bots are referred to by
their public id (``pa:...``): no route needs or shows a token. Message tokens are also
given as strings (``message_token_str``), since a browser's JSON numbers cannot hold
them exactly; routes take either form.

* ``GET /_control/state`` – bots (id, name, webhook URL), people, the random fault
  rules, the feed cursor;
* ``POST /_control/users`` – ``{name}`` → the person;
* ``POST /_control/open`` – ``{bot_id, user_id, context?}`` (``conversation_started``);
* ``POST /_control/subscribe`` / ``/_control/unsubscribe`` – ``{bot_id, user_id}``;
* ``POST /_control/send`` – ``{bot_id, user_id, text?, kind?, file?, sticker_id?,
  contact?, location?, url?}``; ``file`` = ``{name, mime_type, content_b64}`` with
  ``kind`` ``picture``, ``video`` or ``file``; ``contact`` = ``{name, phone_number}``;
  ``location`` = ``{lat, lon}`` → the message;
* ``POST /_control/seen`` – ``{bot_id, user_id, message_token}`` → the message;
* ``GET /_control/conversation?bot_id=&user_id=`` – ``{messages, subscribed, opened}``;
* ``GET /_control/events?after=N&timeout=S`` – long poll of the feed;
* ``POST /_control/faults`` – ``{endpoint, status}`` (a Viber status) or ``{endpoint,
  http_status}``, ``times``; ``{clear: true}`` drops queued faults;
* ``POST /_control/fault_rate`` – ``{probability, endpoints?, bot_id?, kinds?,
  retry_after?, delay?, seed?}`` fails calls at random (see
  :meth:`ViberEmulator.set_fault_rate`), ``{clear: true}`` stops it → the rules in
  force and how many faults were injected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..common import control as common
from ..common.faults import rates_view, read_rate
from .models import JsonDict, StoredMessage

if TYPE_CHECKING:
    from .emulator import ViberEmulator

_FILE_KINDS = ("picture", "video", "file")


def public(message: StoredMessage) -> JsonDict:
    """A message for the browser: no bytes (the token is also a string in every view)."""
    return message.view(with_bytes=False)


def _send_kwargs(body: JsonDict) -> dict[str, Any]:
    """Keyword arguments of ``user_send`` from a console request."""
    kwargs: dict[str, Any] = {}
    file = body.get("file")
    if file is not None:
        kind = body.get("kind") or "file"
        if kind not in _FILE_KINDS or not isinstance(file, dict):
            raise ValueError(f"kind must be one of {_FILE_KINDS} with a file object")
        data = common.decode_file(file)
        kwargs[kind] = (str(file.get("name") or "file"), data) if kind == "file" else data
    if body.get("sticker_id") is not None:
        kwargs["sticker_id"] = int(body["sticker_id"])
    contact = body.get("contact")
    if isinstance(contact, dict):
        kwargs["contact"] = (str(contact["name"]), str(contact["phone_number"]))
    location = body.get("location")
    if isinstance(location, dict):
        kwargs["location"] = (float(location["lat"]), float(location["lon"]))
    if body.get("url"):
        kwargs["url"] = str(body["url"])
    return kwargs


class Control:
    """Handlers bound to one emulator."""

    def __init__(self, emulator: ViberEmulator) -> None:
        self.emu = emulator
        self.world = emulator.world

    def _token(self, body: JsonDict | Any) -> str:
        return self.world.bot_by_id(str(body["bot_id"])).token

    async def state(self, _request: web.Request) -> JsonDict:
        """Bots (no tokens), people and the feed cursor."""
        return {
            "bots": [
                {
                    "id": b.id,
                    "name": b.name,
                    "avatar": b.avatar,
                    "webhook": b.webhook.url if b.webhook else None,
                    "subscribers_count": b.subscribers_count,
                }
                for b in self.world.bots.values()
            ],
            "users": [u.profile() for u in self.world.users.values()],
            "fault_rates": self._fault_rates(),
            "cursor": self.world.feed.cursor,
        }

    async def users(self, request: web.Request) -> JsonDict:
        """Create a person."""
        body = await common.read_body(request)
        user_id = self.emu.create_user(str(body.get("name") or "Customer"))
        return self.world.user(user_id).profile()

    async def open(self, request: web.Request) -> JsonDict:
        """A person opens the chat with a bot."""
        body = await common.read_body(request)
        context = str(body.get("context") or "")
        return self.emu.user_open(self._token(body), str(body["user_id"]), context)

    async def subscribe(self, request: web.Request) -> JsonDict:
        """A person subscribes to a bot."""
        body = await common.read_body(request)
        return self.emu.user_subscribe(self._token(body), str(body["user_id"]))

    async def unsubscribe(self, request: web.Request) -> JsonDict:
        """A person unsubscribes from a bot."""
        body = await common.read_body(request)
        return self.emu.user_unsubscribe(self._token(body), str(body["user_id"]))

    async def send(self, request: web.Request) -> JsonDict:
        """A person writes to a bot."""
        body = await common.read_body(request)
        token, user_id = self._token(body), str(body["user_id"])
        sent = self.emu.user_send(token, user_id, str(body.get("text") or ""), **_send_kwargs(body))
        return public(self.world.message(self.world.bot(token), user_id, sent["message_token"]))

    async def seen(self, request: web.Request) -> JsonDict:
        """A person sees a message of the bot."""
        body = await common.read_body(request)
        token, user_id = self._token(body), str(body["user_id"])
        message_token = int(str(body["message_token"]))
        self.emu.user_sees(token, user_id, message_token)
        return public(self.world.message(self.world.bot(token), user_id, message_token))

    async def conversation(self, request: web.Request) -> JsonDict:
        """Messages of one conversation and whether the person is subscribed."""
        bot = self.world.bot_by_id(request.query["bot_id"])
        user_id = request.query["user_id"]
        self.world.user(user_id)
        return {
            "messages": [public(m) for m in bot.conversations.get(user_id, [])],
            "subscribed": bool(bot.subscribed.get(user_id)),
            "opened": user_id in bot.opened,
        }

    async def faults(self, request: web.Request) -> JsonDict:
        """Queue a fault, or drop all with ``clear``."""
        body = await common.read_body(request)
        if body.get("clear"):
            self.emu.faults.clear()
            return {"ok": True, "pending": 0}
        endpoint, times = str(body["endpoint"]), int(body.get("times", 1))
        if body.get("http_status") is not None:
            self.emu.fail_http(endpoint, int(body["http_status"]), times=times)
        else:
            self.emu.fail(endpoint, int(body["status"]), times=times)
        return {"ok": True, "pending": len(self.emu.faults.pending())}

    async def fault_rate(self, request: web.Request) -> JsonDict:
        """Fail calls at random, or stop with ``clear``."""
        asked = read_rate(
            await common.read_body(request), targets="endpoints", key="bot_id", key_type=str
        )
        if asked is None:
            self.emu.clear_fault_rates()
        else:
            self.emu.set_fault_rate(
                asked.probability,
                endpoints=asked.targets,
                token=self.world.bot_by_id(asked.key).token if asked.key is not None else None,
                kinds=asked.kinds,
                retry_after=asked.retry_after,
                delay=asked.delay,
                seed=asked.seed,
            )
        return {"ok": True, **self._fault_rates()}

    def _fault_rates(self) -> JsonDict:
        def bot_id(token: str) -> str | None:
            bot = self.world.bots.get(token)
            return bot.id if bot is not None else None

        return rates_view(
            self.emu.faults.random, targets="endpoints", key="bot_id", key_view=bot_id
        )


def add_routes(app: web.Application, emulator: ViberEmulator) -> None:
    """Register ``/_control/...`` on ``app``."""
    control = Control(emulator)
    posts: dict[str, common.Endpoint] = {
        "users": control.users,
        "open": control.open,
        "subscribe": control.subscribe,
        "unsubscribe": control.unsubscribe,
        "send": control.send,
        "seen": control.seen,
        "faults": control.faults,
        "fault_rate": control.fault_rate,
    }
    gets: dict[str, common.Endpoint] = {
        "state": control.state,
        "conversation": control.conversation,
        "events": common.events_endpoint(emulator.world.feed),
    }
    common.add_control_routes(app, posts=posts, gets=gets)
