"""The control HTTP API (``/_control/...``) the sandbox web console plays VK customers with.

JSON in, JSON out; bad input answers 400 ``{"error": "..."}``. Communities are referred
to by id: no route needs or shows an access token.

* ``GET /_control/state`` – communities (id, name, callback servers with their status),
  people, the random fault rules, the feed cursor;
* ``POST /_control/users`` – ``{first_name, last_name?, user_id?}`` → the person;
* ``POST /_control/send`` – ``{group_id, user_id, text?, kind?, file?, geo?, sticker?,
  reply_to?}`` (``file`` = ``{name, mime_type, content_b64}``, ``kind`` = ``photo``,
  ``doc`` or ``voice``) → the message;
* ``POST /_control/edit`` – ``{group_id, user_id, message_id, text}`` → the message;
* ``POST /_control/allow`` / ``/_control/deny`` – ``{group_id, user_id}``;
* ``GET /_control/conversations/{group_id}/{peer_id}`` – ``{messages, read_up_to, allowed}``;
* ``GET /_control/events?after=N&timeout=S`` – long poll of the feed (message, edit,
  read, allow, deny);
* ``POST /_control/faults`` – ``{method, code}`` (a VK error), ``{method, status}`` (an
  HTTP error), ``times``; ``{clear: true}`` drops queued faults;
* ``POST /_control/fault_rate`` – ``{probability, methods?, group_id?, kinds?,
  retry_after?, delay?, seed?}`` fails calls at random (see
  :meth:`VkEmulator.set_fault_rate`), ``{clear: true}`` stops it → the rules in force
  and how many faults were injected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..common import control as common
from ..common.faults import rates_view, read_rate
from .models import JsonDict

if TYPE_CHECKING:
    from .emulator import VkEmulator

_FILE_KINDS = ("photo", "doc", "voice")


def _file(body: JsonDict) -> dict[str, Any]:
    """``photo``/``doc``/``voice`` keyword arguments of user_send from a base64 file."""
    file = body.get("file")
    if file is None:
        return {}
    kind = body.get("kind") or "doc"
    if kind not in _FILE_KINDS or not isinstance(file, dict):
        raise ValueError(f"kind must be one of {_FILE_KINDS} with a file object")
    data = common.decode_file(file)
    if kind == "doc":
        return {"doc": (str(file.get("name") or "file"), data)}
    return {kind: data}


class Control:
    """Handlers bound to one emulator."""

    def __init__(self, emulator: VkEmulator) -> None:
        self.emu = emulator
        self.world = emulator.world

    async def state(self, _request: web.Request) -> JsonDict:
        """Communities (no tokens), people and the feed cursor."""
        fields = frozenset({"screen_name", "photo_200"})
        return {
            "groups": [
                {
                    "id": g.id,
                    "name": g.name,
                    "callback_servers": [
                        {"id": c.id, "url": c.url, "status": c.status} for c in g.servers.values()
                    ],
                }
                for g in self.world.groups.values()
            ],
            "users": [u.user_dict(fields) for u in self.world.users.values()],
            "fault_rates": self._fault_rates(),
            "cursor": self.world.feed.cursor,
        }

    async def users(self, request: web.Request) -> JsonDict:
        """Create a person."""
        body = await common.read_body(request)
        user_id = body.get("user_id")
        new_id = self.emu.create_user(
            str(body.get("first_name") or "User"),
            str(body.get("last_name") or ""),
            user_id=int(user_id) if user_id is not None else None,
        )
        return self.world.users[new_id].user_dict(frozenset({"screen_name", "photo_200"}))

    async def send(self, request: web.Request) -> JsonDict:
        """A person writes to a community."""
        body = await common.read_body(request)
        kwargs: dict[str, Any] = _file(body)
        geo = body.get("geo")
        if isinstance(geo, dict):
            kwargs["geo"] = (float(geo["latitude"]), float(geo["longitude"]))
        if body.get("reply_to") is not None:
            kwargs["reply_to"] = int(body["reply_to"])
        return self.emu.user_send(
            int(body["group_id"]),
            int(body["user_id"]),
            str(body.get("text") or ""),
            sticker=bool(body.get("sticker")),
            **kwargs,
        )

    async def edit(self, request: web.Request) -> JsonDict:
        """A person edits their message."""
        body = await common.read_body(request)
        return self.emu.user_edit(
            int(body["group_id"]), int(body["user_id"]), int(body["message_id"]), str(body["text"])
        )

    async def allow(self, request: web.Request) -> JsonDict:
        """A person allows messages from the community."""
        body = await common.read_body(request)
        self.emu.user_allow(int(body["group_id"]), int(body["user_id"]))
        return {"ok": True, "allowed": True}

    async def deny(self, request: web.Request) -> JsonDict:
        """A person forbids messages from the community."""
        body = await common.read_body(request)
        self.emu.user_deny(int(body["group_id"]), int(body["user_id"]))
        return {"ok": True, "allowed": False}

    async def conversation(self, request: web.Request) -> JsonDict:
        """Messages of one conversation, how far it is read, whether replies are allowed."""
        group_id = int(request.match_info["group_id"])
        peer_id = int(request.match_info["peer_id"])
        return {
            "messages": self.emu.conversation(group_id, peer_id),
            "read_up_to": self.emu.read_up_to(group_id, peer_id),
            "allowed": bool(self.world.group(group_id).allowed.get(peer_id)),
        }

    async def faults(self, request: web.Request) -> JsonDict:
        """Queue a fault, or drop all with ``clear``."""
        body = await common.read_body(request)
        if body.get("clear"):
            self.emu.faults.clear()
            return {"ok": True, "pending": 0}
        method, times = str(body["method"]), int(body.get("times", 1))
        if body.get("status") is not None:
            self.emu.fail_http(method, int(body["status"]), times=times)
        else:
            self.emu.fail(method, int(body["code"]), times=times, message=body.get("message"))
        return {"ok": True, "pending": len(self.emu.faults.pending())}

    async def fault_rate(self, request: web.Request) -> JsonDict:
        """Fail calls at random, or stop with ``clear``."""
        asked = read_rate(
            await common.read_body(request), targets="methods", key="group_id", key_type=int
        )
        if asked is None:
            self.emu.clear_fault_rates()
        else:
            self.emu.set_fault_rate(
                asked.probability,
                methods=asked.targets,
                group_id=asked.key,
                kinds=asked.kinds,
                retry_after=asked.retry_after,
                delay=asked.delay,
                seed=asked.seed,
            )
        return {"ok": True, **self._fault_rates()}

    def _fault_rates(self) -> JsonDict:
        return rates_view(self.emu.faults.random, targets="methods", key="group_id")


def add_routes(app: web.Application, emulator: VkEmulator) -> None:
    """Register ``/_control/...`` on ``app``."""
    control = Control(emulator)
    posts: dict[str, common.Endpoint] = {
        "users": control.users,
        "send": control.send,
        "edit": control.edit,
        "allow": control.allow,
        "deny": control.deny,
        "faults": control.faults,
        "fault_rate": control.fault_rate,
    }
    gets: dict[str, common.Endpoint] = {
        "state": control.state,
        "conversations/{group_id}/{peer_id}": control.conversation,
        "events": common.events_endpoint(emulator.world.feed),
    }
    common.add_control_routes(app, posts=posts, gets=gets)
