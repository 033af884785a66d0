"""The control HTTP API (``/_control/...``) a web console plays WhatsApp customers with.

JSON in, JSON out; bad input answers 400 ``{"error": "..."}``. Numbers are referred to by
phone number id: no route needs or shows a token or an app secret.

* ``GET /_control/state`` – numbers (id, display number, webhook URL), customers,
  templates, the clock, the random fault rules and the feed cursor;
* ``POST /_control/users`` – ``{name, wa_id?}`` → the customer;
* ``POST /_control/send`` – ``{phone_number_id, wa_id, text?, kind?, file?, caption?,
  location?, contacts?, button_reply?, reaction?, reply_to?}`` (``file`` = ``{name,
  mime_type, content_b64}``; ``kind`` = ``image``, ``document``, ``audio``, ``voice``,
  ``video`` or ``sticker``; ``location`` = ``{latitude, longitude}``; ``contacts`` =
  ``[{name, phone}]``; ``button_reply`` = ``{id, title}``; ``reaction`` = ``{message_id,
  emoji}``) → the webhook message object;
* ``POST /_control/read`` – ``{phone_number_id, wa_id, message_id}``;
* ``POST /_control/advance`` – ``{seconds}`` moves the clock;
* ``GET /_control/conversations/{phone_number_id}/{wa_id}`` – ``{messages, window_open}``
  (media as ``size`` only);
* ``GET /_control/media/{media_id}`` – a stored file's bytes (the console shows
  pictures with it; Meta's download URLs need the bearer token);
* ``GET /_control/events?after=N&timeout=S`` – long poll of the feed (message, status,
  read_mark);
* ``POST /_control/faults`` – ``{endpoint, code}`` (a Graph error) or ``{endpoint,
  status}`` (an HTML page), ``times``; ``{clear: true}`` drops queued faults;
* ``POST /_control/fault_rate`` – ``{probability, endpoints?, phone_number_id?, kinds?,
  retry_after?, delay?, seed?}`` fails requests at random (see
  :meth:`WhatsAppEmulator.set_fault_rate`), ``{clear: true}`` stops it → the rules in
  force and how many faults were injected.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..common.control import Endpoint, add_control_routes, decode_file, events_endpoint, read_body
from ..common.faults import rates_view, read_rate
from .models import JsonDict

if TYPE_CHECKING:
    from .emulator import WhatsAppEmulator

_INLINE = re.compile(r"^(image/(jpeg|png|webp|gif)|audio/[a-z0-9.+-]+|video/[a-z0-9.+-]+)$")
"""Types of stored files the console may show inline; the rest are served as downloads."""
_FILE_KINDS = ("image", "document", "audio", "voice", "video", "sticker")


def _content(body: JsonDict) -> dict[str, Any]:
    """``user_send`` keyword arguments from a console request."""
    kwargs: dict[str, Any] = {}
    file = body.get("file")
    if file is not None:
        kind = body.get("kind") or "document"
        if kind not in _FILE_KINDS or not isinstance(file, dict):
            raise ValueError(f"kind must be one of {_FILE_KINDS} with a file object")
        data = decode_file(file)
        if kind == "document":
            kwargs["document"] = (str(file.get("name") or "file.pdf"), data)
        elif kind == "voice":
            kwargs.update(audio=data, voice=True)
        else:
            kwargs[kind] = data
        if body.get("caption"):
            kwargs["caption"] = str(body["caption"])
    location = body.get("location")
    if isinstance(location, dict):
        kwargs["location"] = (float(location["latitude"]), float(location["longitude"]))
    contacts = body.get("contacts")
    if isinstance(contacts, list):
        kwargs["contacts"] = [(str(c["name"]), str(c["phone"])) for c in contacts]
    button = body.get("button_reply")
    if isinstance(button, dict):
        kwargs["button_reply"] = (str(button["id"]), str(button["title"]))
    reaction = body.get("reaction")
    if isinstance(reaction, dict):
        kwargs["reaction"] = (str(reaction["message_id"]), str(reaction["emoji"]))
    if body.get("reply_to"):
        kwargs["reply_to"] = str(body["reply_to"])
    return kwargs


class Control:
    """Handlers bound to one emulator."""

    def __init__(self, emulator: WhatsAppEmulator) -> None:
        self.emu = emulator
        self.world = emulator.world

    async def state(self, _request: web.Request) -> JsonDict:
        """Numbers (no tokens), customers, templates, the clock, the random fault rules
        and the feed cursor."""
        return {
            "numbers": [
                {
                    "id": n.id,
                    "display_phone_number": n.display_phone_number,
                    "verified_name": n.verified_name,
                    "webhook": n.subscription.url if n.subscription else None,
                }
                for n in self.world.numbers.values()
            ],
            "users": [{"wa_id": u.wa_id, "name": u.name} for u in self.world.users.values()],
            "templates": [
                {"name": t.name, "language": t.language, "body": t.body, "status": t.status}
                for t in self.world.templates.values()
            ],
            "now": int(self.world.now()),
            "fault_rates": self._fault_rates(),
            "cursor": self.world.feed.cursor,
        }

    async def users(self, request: web.Request) -> JsonDict:
        """Create a customer."""
        body = await read_body(request)
        wa_id = body.get("wa_id")
        new = self.emu.create_user(str(body.get("name") or "Customer"), wa_id and str(wa_id))
        return {"wa_id": new, "name": self.world.users[new].name}

    async def send(self, request: web.Request) -> JsonDict:
        """A customer writes."""
        body = await read_body(request)
        return self.emu.user_send(
            str(body["phone_number_id"]),
            str(body["wa_id"]),
            str(body.get("text") or ""),
            **_content(body),
        )

    async def read(self, request: web.Request) -> JsonDict:
        """A customer reads the business's messages."""
        body = await read_body(request)
        self.emu.user_reads(
            str(body["phone_number_id"]), str(body["wa_id"]), str(body["message_id"])
        )
        return {"ok": True}

    async def advance(self, request: web.Request) -> JsonDict:
        """Move the clock forward."""
        body = await read_body(request)
        self.emu.advance(float(body["seconds"]))
        return {"now": int(self.world.now())}

    async def conversation(self, request: web.Request) -> JsonDict:
        """Messages of one conversation and whether free-form replies are allowed."""
        number, wa_id = request.match_info["phone_number_id"], request.match_info["wa_id"]
        return {
            "messages": [m.brief() for m in self.world.conversation(number, wa_id)],
            "window_open": self.world.in_window(number, wa_id),
        }

    async def media(self, request: web.Request) -> web.Response:
        """A stored file, as it is (no token: the console is same-origin and sandbox-only)."""
        stored = self.world.media.get(request.match_info["media_id"])
        if stored is None:
            raise ValueError("no such media")
        headers = {
            "Cache-Control": "private, max-age=300",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        }
        mime = stored.mime_type.split(";", 1)[0].strip().lower()
        if not _INLINE.match(mime):  # anything else (a customer's .html) only as a download
            mime = "application/octet-stream"
            headers["Content-Disposition"] = "attachment"
        return web.Response(body=stored.data, content_type=mime, headers=headers)

    async def faults(self, request: web.Request) -> JsonDict:
        """Queue a fault, or drop all with ``clear``."""
        body = await read_body(request)
        if body.get("clear"):
            self.emu.clear_faults()
            return {"ok": True, "pending": 0}
        endpoint, times = str(body["endpoint"]), int(body.get("times", 1))
        if body.get("code") is None:
            self.emu.fail_http(endpoint, int(body["status"]), times=times)
        else:
            status = body.get("status")
            self.emu.fail(
                endpoint,
                int(body["code"]),
                times=times,
                http_status=int(status) if status is not None else None,
            )
        return {"ok": True, "pending": len(self.emu.faults.pending())}

    async def fault_rate(self, request: web.Request) -> JsonDict:
        """Fail requests at random, or stop with ``clear``."""
        asked = read_rate(
            await read_body(request), targets="endpoints", key="phone_number_id", key_type=str
        )
        if asked is None:
            self.emu.clear_fault_rates()
        else:
            self.emu.set_fault_rate(
                asked.probability,
                endpoints=asked.targets,
                phone_number_id=asked.key,
                kinds=asked.kinds,
                retry_after=asked.retry_after,
                delay=asked.delay,
                seed=asked.seed,
            )
        return {"ok": True, **self._fault_rates()}

    def _fault_rates(self) -> JsonDict:
        return rates_view(self.emu.faults.random, targets="endpoints", key="phone_number_id")


def add_routes(app: web.Application, emulator: WhatsAppEmulator) -> None:
    """Register ``/_control/...`` on ``app``."""
    control = Control(emulator)
    posts: dict[str, Endpoint] = {
        "users": control.users,
        "send": control.send,
        "read": control.read,
        "advance": control.advance,
        "faults": control.faults,
        "fault_rate": control.fault_rate,
    }
    gets: dict[str, Endpoint] = {
        "state": control.state,
        "conversations/{phone_number_id}/{wa_id}": control.conversation,
        "media/{media_id}": control.media,
        "events": events_endpoint(emulator.world.feed),
    }
    add_control_routes(app, posts=posts, gets=gets)
