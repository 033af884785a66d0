"""The control HTTP API (``/_control/...``) the sandbox web console drives the emulator with.

JSON in, JSON out. The console plays users and staff and watches everything through the
``/events`` long poll. It never sees bot tokens: bots are referred to by id, and the state
shows only a token hint. Bad input answers 400 ``{"error": "..."}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..common import control as common
from ..common.faults import RANDOM_KINDS
from ..common.net import json_response
from .models import JsonDict

if TYPE_CHECKING:
    from .emulator import TelegramEmulator

_FILE_KINDS = ("photo", "document", "audio", "voice", "video", "video_note", "animation")
_SEND_FIELDS = (
    "message_thread_id",
    "text",
    "caption",
    "sticker",
    "venue",
    "contact",
    "poll",
    "dice",
    "reply_to_message_id",
    "media_group_id",
)


def _opt_int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


class Control:
    """Handlers bound to one emulator."""

    def __init__(self, emulator: TelegramEmulator) -> None:
        self.emu = emulator
        self.world = emulator.world

    def _token(self, body: JsonDict) -> str | None:
        if body.get("bot_token") is None and body.get("bot_id") is None:
            return None
        return self.world.bot_by_ref(body.get("bot_token"), _opt_int(body.get("bot_id"))).token

    async def users(self, request: web.Request) -> JsonDict:
        """POST /_control/users: create a user."""
        body = await common.read_body(request)
        fields = ("first_name", "last_name", "username", "language_code", "user_id", "is_bot")
        return self.emu.create_user(**{k: body[k] for k in fields if k in body})

    async def groups(self, request: web.Request) -> JsonDict:
        """POST /_control/groups: create a forum group with members and bots."""
        body = await common.read_body(request)
        tokens = list(body.get("bot_tokens") or [])
        tokens += [self.world.bot_by_ref(bot_id=int(i)).token for i in body.get("bot_ids") or []]
        return self.emu.create_forum_group(
            title=str(body.get("title") or "Staff"),
            members=[int(i) for i in body.get("members") or []],
            bot_tokens=tokens,
            chat_id=_opt_int(body.get("chat_id")),
        )

    async def send(self, request: web.Request) -> JsonDict:
        """POST /_control/send: a user sends a message (media as base64 ``file``)."""
        body = await common.read_body(request)
        kwargs: dict[str, Any] = {k: body[k] for k in _SEND_FIELDS if body.get(k) is not None}
        file = body.get("file")
        if file is not None:
            kind = body.get("kind") or "document"
            if kind not in _FILE_KINDS or not isinstance(file, dict):
                raise ValueError(f"kind must be one of {_FILE_KINDS} with a file object")
            data = common.decode_file(file)
            name = str(file.get("name") or kind)
            kwargs[kind] = (name, data, str(file.get("mime_type") or ""))
        location = body.get("location")
        if isinstance(location, dict):
            kwargs["location"] = (float(location["latitude"]), float(location["longitude"]))
        elif location is not None:
            kwargs["location"] = (float(location[0]), float(location[1]))
        token = self._token(body)
        return await self.emu.user_sends(
            int(body["user_id"]),
            bot_token=token,
            chat_id=_opt_int(body.get("chat_id")) if token is None else None,
            **kwargs,
        )

    async def edit(self, request: web.Request) -> JsonDict:
        """POST /_control/edit: a user edits their message."""
        body = await common.read_body(request)
        return await self.emu.user_edits(
            int(body["user_id"]),
            int(body["chat_id"]),
            int(body["message_id"]),
            text=body.get("text"),
            caption=body.get("caption"),
            bot_token=self._token(body),
        )

    async def press(self, request: web.Request) -> JsonDict:
        """POST /_control/press: a user presses an inline button."""
        body = await common.read_body(request)
        return await self.emu.press_button(
            int(body["user_id"]),
            int(body["chat_id"]),
            int(body["message_id"]),
            str(body["callback_data"]),
            bot_token=self._token(body),
        )

    async def block(self, request: web.Request) -> JsonDict:
        """POST /_control/block: a user blocks or unblocks a bot."""
        body = await common.read_body(request)
        token = self._token(body)
        if token is None:
            raise ValueError("bot_id is required")
        blocked = bool(body.get("blocked", True))
        self.emu.block_bot(int(body["user_id"]), token, blocked)
        return {"ok": True, "blocked": blocked}

    async def delete_topic(self, request: web.Request) -> JsonDict:
        """POST /_control/delete_topic: staff deletes a topic."""
        body = await common.read_body(request)
        self.emu.delete_topic(int(body["chat_id"]), int(body["message_thread_id"]))
        return {"ok": True}

    async def faults(self, request: web.Request) -> JsonDict:
        """POST /_control/faults: queue a fault (``clear: true`` drops queued ones)."""
        body = await common.read_body(request)
        if body.get("clear"):
            self.emu.clear_faults()
            return {"ok": True, "pending": 0}
        self.emu.inject_fault(
            method=body.get("method"),
            bot_token=self._token(body),
            status=_opt_int(body.get("status")),
            retry_after=_opt_int(body.get("retry_after")),
            description=body.get("description"),
            count=int(body.get("count", 1)),
            delay=float(body.get("delay", 0.0)),
            reset=bool(body.get("reset", False)),
        )
        return {"ok": True, "pending": len(self.emu.faults.pending())}

    async def fault_rate(self, request: web.Request) -> JsonDict:
        """POST /_control/fault_rate: fail calls at random — ``{probability, methods?,
        bot_id?, kinds?, retry_after?, delay?, seed?}`` (see
        :meth:`TelegramEmulator.set_fault_rate`); ``{clear: true}`` stops them. Answers
        the rules in force and the faults injected so far."""
        body = await common.read_body(request)
        if body.get("clear"):
            self.emu.clear_fault_rates()
        else:
            methods = body.get("methods")
            kinds = body.get("kinds")
            self.emu.set_fault_rate(
                float(body["probability"]),
                methods=[str(m) for m in methods] if methods is not None else None,
                bot_token=self._token(body),
                kinds=[str(k) for k in kinds] if kinds is not None else RANDOM_KINDS,
                retry_after=int(body.get("retry_after", 1)),
                delay=float(body.get("delay", 1.0)),
                seed=_opt_int(body.get("seed")),
            )
        return {"ok": True, **self._fault_rates()}

    def _fault_rates(self) -> JsonDict:
        random = self.emu.faults.random
        return {
            "rates": [
                {
                    "probability": rate.probability,
                    "kinds": list(rate.kinds),
                    "methods": sorted(rate.targets) if rate.targets is not None else None,
                    "bot_id": rate.key,
                    "retry_after": rate.retry_after,
                    "delay": rate.delay,
                }
                for rate in random.rates()
            ],
            "injected": random.count(),
        }

    async def flood(self, request: web.Request) -> JsonDict:
        """POST /_control/flood: switch flood limits."""
        body = await common.read_body(request)
        self.emu.set_flood_limits(bool(body["enabled"]))
        return {"ok": True, "enabled": self.emu.flood.enabled}

    async def state(self, _request: web.Request) -> JsonDict:
        """GET /_control/state: bots (no tokens), users, chats, topics."""
        world = self.world
        chats: list[JsonDict] = []
        for chat in [*world.groups.values(), *world.privates.values()]:
            entry: JsonDict = {
                "id": chat.id,
                "type": chat.type,
                "title": chat.title or (chat.user.display_name if chat.user else None),
                "is_forum": chat.is_forum,
                "members": list(chat.member_ids) if chat.is_group else [chat.id],
            }
            if chat.is_group:
                entry["bot_ids"] = list(chat.bot_ids)
            else:
                entry["bot_id"] = chat.bot_id
            chats.append(entry)
        return {
            "bots": [
                {"id": b.id, "username": b.username, "token_hint": b.token_hint}
                for b in world.bots.values()
            ],
            "users": [
                {**u.user_dict(), "blocked_bot_ids": sorted(u.blocked_bots)}
                for u in world.users.values()
            ],
            "chats": chats,
            "topics": {
                str(chat.id): [t.summary() for t in chat.topics.values()]
                for chat in world.groups.values()
            },
            "flood_limits": self.emu.flood.enabled,
            "fault_rates": self._fault_rates(),
            "too_many_requests": {str(k): v for k, v in world.too_many.items()},
            "cursor": world.events.cursor,
        }

    async def messages(self, request: web.Request) -> list[JsonDict]:
        """GET /_control/chats/{chat_id}/messages?thread_id=&bot_id=."""
        chat_id = int(request.match_info["chat_id"])
        bot_id = _opt_int(request.query.get("bot_id"))
        if not self.world.chats_with_id(chat_id, bot_id):
            raise ValueError(f"unknown chat {chat_id}")
        token = self.world.bot_by_ref(bot_id=bot_id).token if bot_id is not None else None
        return self.emu.messages(chat_id, _opt_int(request.query.get("thread_id")), bot_token=token)

    async def file(self, request: web.Request) -> web.StreamResponse:
        """GET /_control/files/{file_id}: raw bytes with their content type."""
        try:
            stored = self.world.files.resolve(request.match_info["file_id"], None)
        except Exception:  # any unresolvable id
            return json_response({"error": "unknown file id"}, status=404)
        return web.Response(body=stored.data, content_type=stored.mime_type)


def add_routes(app: web.Application, emulator: TelegramEmulator) -> None:
    """Register ``/_control/...`` on ``app``."""
    control = Control(emulator)
    posts: dict[str, common.Endpoint] = {
        "users": control.users,
        "groups": control.groups,
        "send": control.send,
        "edit": control.edit,
        "press": control.press,
        "block": control.block,
        "delete_topic": control.delete_topic,
        "faults": control.faults,
        "fault_rate": control.fault_rate,
        "flood": control.flood,
    }
    gets: dict[str, common.Endpoint] = {
        "state": control.state,
        "chats/{chat_id}/messages": control.messages,
        "files/{file_id}": control.file,
        "events": common.events_endpoint(emulator.world.events),
    }
    common.add_control_routes(app, posts=posts, gets=gets)
