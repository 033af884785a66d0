"""What the website chat's endpoints share: the account a request is for (and whether
its page may use it), visitor books, rate limits, and storing what a visitor sends —
messages, receipts, typing — in their log and the inbound stream."""

from __future__ import annotations

import json
import re
from typing import Any

import structlog
from aiohttp import web

from adapters.webchat import WebchatAdapter
from gateway.config import WebchatChannel
from gateway.errors import GatewayError
from gateway.model import ChatId
from gateway.ratelimit import Bucket, Limiter
from gateway.store import keys
from gateway.webchat.hub import Hub
from gateway.webchat.visitors import Refused, Visitor, Visitors

log = structlog.get_logger(__name__)
CID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ENTRY = re.compile(r"^\d{1,20}-\d{1,10}$")
TYPING_SECONDS = 4


class Webchat:
    """What the endpoints of one gateway share: per-account logs and visitor books,
    the hub, the limiter. Built once the gateway has its Redis."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self.hub = Hub(gateway.redis)
        self.limiter = Limiter(gateway.redis)

    def account(self, request: web.Request) -> tuple[WebchatAdapter, WebchatChannel]:
        name = request.match_info["account"]
        adapter = self.gateway.adapters.get(name)
        channel = self.gateway.settings.channel(name)
        if not isinstance(adapter, WebchatAdapter) or not isinstance(channel, WebchatChannel):
            raise Refused(f"no website chat {name!r}", 404)
        _check_origin(request, channel)
        return adapter, channel

    def visitors(self, channel: WebchatChannel) -> Visitors:
        return Visitors(self.gateway.redis, self.gateway.settings, channel)

    async def limit(self, request: web.Request, channel: WebchatChannel, who: str | None) -> None:
        """Refuse (429) beyond the address's and the visitor's (``who``) rates."""
        rate = channel.ip_per_minute  # an office behind one address: half a minute at once
        per_ip = Bucket.per_minute(f"webchat:ip:{request.remote}", rate, max(10, rate // 2))
        buckets = [per_ip]
        if who is not None:
            rate = channel.messages_per_minute
            buckets.append(Bucket.per_minute(f"webchat:v:{channel.id}:{who}", rate, 5))
        wait = await self.limiter.try_take(buckets)
        if wait:
            raise Refused(f"too many messages: wait {max(1, round(wait))} s", 429)

    async def said(self, adapter: WebchatAdapter, visitor: Visitor, frame: Any) -> dict[str, Any]:
        """Store a ``message`` or ``seen`` frame; the answer for the widget."""
        if not isinstance(frame, dict):
            raise Refused("a frame is a JSON object")
        if frame.get("type") == "typing":
            await self.typing(adapter, visitor)
            return {"type": "typing"}
        if frame.get("type") == "seen":
            seen = str(frame.get("id") or "")
            if not ENTRY.match(seen):
                raise Refused("seen needs the id of a message")
            at = int(seen.partition("-")[0])
            payload = {"type": "seen", "visitor": visitor.id, "id": seen, "at": at}
            await self.gateway.ingest.accept(adapter, payload)
            return {"type": "seen", "id": seen}
        if frame.get("type") != "message":
            raise Refused("unknown frame type")
        cid = str(frame.get("cid") or "")
        if not CID.match(cid):
            raise Refused("cid: 1-64 letters, digits, - or _")
        said = frame.get("text")
        said = said.strip() if isinstance(said, str) else ""
        if len(said) > adapter.capabilities.max_text:
            raise Refused(f"text is longer than {adapter.capabilities.max_text} characters")
        fields: dict[str, str] = {"t": said} if said else {}
        file_meta = await self._file(adapter, visitor, frame.get("file"))
        if file_meta is not None:
            fields["f"] = json.dumps(file_meta)
        if not fields:
            raise Refused("a message needs text or a file")
        entry_id, profile = await adapter.log.visitor_said(visitor.id, cid, fields)
        payload = {
            "type": "message",
            "visitor": visitor.id,
            "id": entry_id,
            "cid": cid,
            "text": said,
            "file": file_meta,
            "at": int(entry_id.partition("-")[0]),
            **profile,
        }
        await self.gateway.ingest.accept(adapter, payload)  # a resend: deduplicated
        return {"type": "ack", "cid": cid, "id": entry_id}

    async def typing(self, adapter: WebchatAdapter, visitor: Visitor) -> None:
        """Show "typing…" in the visitor's topic, at most every few seconds (Telegram
        shows it 5 s); best effort: it is not worth a retry, nor an error to the visitor."""
        pipeline = self.gateway.pipeline
        contact = await pipeline.contacts.of_identity(adapter.account, visitor.id)
        if contact is None:
            return  # no topic before their first message
        line = await pipeline.lines.line_of(contact)
        topic = await pipeline.lines.at(line.chat_id).get(contact)
        key = keys.webchat_typing(adapter.account, visitor.id)
        if topic is None or not await self.gateway.redis.set(key, "1", nx=True, ex=TYPING_SECONDS):
            return
        try:
            await self.gateway.staff.typing(ChatId(str(line.chat_id)), topic)
        except GatewayError as exc:
            log.info("webchat.typing_not_shown", reason=str(exc))

    async def _file(self, adapter: WebchatAdapter, visitor: Visitor, given: Any) -> Any:
        if not given:
            return None
        file_id = str(given.get("id") if isinstance(given, dict) else "")
        stored = await adapter.log.file(file_id) if file_id else None
        if stored is None or stored.owner != visitor.id:
            raise Refused("unknown file: upload it first")
        return {"id": file_id, "name": stored.name, "mime": stored.mime, "size": len(stored.data)}


def _check_origin(request: web.Request, channel: WebchatChannel) -> None:
    origin = request.headers.get("Origin")
    if origin is None:
        return  # not a browser's cross-site request (same-origin GET, or a server)
    own = f"{request.scheme}://{request.host}"
    if origin != own and origin not in channel.origins:
        log.warning("webchat.origin_refused", origin=origin[:100], account=channel.id)
        raise Refused("this site may not use the chat", 403)
