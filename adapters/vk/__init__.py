"""VK communities through ``vk_api``: Callback API webhooks or Bots Long Poll.

vk_api is synchronous (``requests``), so every call runs in a worker thread
(:func:`adapters.vk.errors.off_loop`) and the event loop never blocks. Its hard-coded
API host is redirected to ``api_server`` by a transport adapter
(:mod:`adapters.vk.transport`), which is how the emulator stands in for VK.

- Inbound: events are parsed by :mod:`adapters.vk.parse`; names are looked up with
  ``users.get`` before the events are stored (:meth:`VkAdapter.enrich`).
- Outbound: ``messages.send`` with ``random_id`` derived from the outbound id, so a
  retried send is not a second message; photos, files and voice are uploaded first.
- Rate: 20 API calls/s per community token, shared by every replica (a Redis bucket),
  and vk_api's own per-process spacing (:class:`vk_api.VkApiGroup`).
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from vk_api import VkApiGroup, VkUpload
from vk_api.bot_longpoll import VkBotLongPoll
from vk_api.exceptions import TOO_MANY_RPS_CODE

from adapters.base import Answer, Batch, Capabilities, Upload
from adapters.files import fetch_capped
from adapters.vk import send as out
from adapters.vk.errors import off_loop
from adapters.vk.parse import parse_event
from adapters.vk.profiles import BATCH, FIELDS, Profile, ProfileCache, profile_of
from adapters.vk.transport import api_session
from gateway.config import DeliverySettings, VkChannel
from gateway.errors import BadPayload, GatewayError, PermanentError, TransientError, Unauthorized
from gateway.model import (
    AccountId,
    Attachment,
    Channel,
    ChatId,
    Content,
    Destination,
    InboundEvent,
    Kind,
    MessageId,
    Sent,
)
from gateway.ratelimit import Bucket

log = structlog.get_logger(__name__)
DOWNLOAD_LIMIT = 50 * 1024 * 1024
"""The largest file forwarded from VK: what Telegram takes from a bot (50 MB)."""
AVATAR_LIMIT = 5 * 1024 * 1024
ENRICH_TIMEOUT = 3.0
"""How long a webhook waits for names before storing events with "VK user <id>"."""
CALLBACK_EVENTS = ("message_new", "message_edit", "message_allow", "message_deny")


class VkAdapter:
    """One VK community (one community token)."""

    channel = Channel.VK
    reply_window: timedelta | None = None
    media_by_url = False
    # messages.edit and messages.delete with delete_for_all: the community's own
    # messages, for 24 hours (https://dev.vk.com/ru/method/messages.delete).
    capabilities = Capabilities(
        edit=True,
        delete=True,
        edit_within=timedelta(hours=24),
        reactions_in=False,
        reactions_out=False,
        albums=True,
        delivery_receipts=False,
        reply_to=True,
        max_text=4096,
        max_file_mb=200,
        formatting="plain",
    )
    read_receipts = True  # messages.markAsRead shows the customer "read"
    ack = Answer(body="ok", content_type="text/plain")  # anything else makes VK retry

    def __init__(self, account: str, settings: VkChannel, limits: DeliverySettings) -> None:
        self.account = AccountId(account)
        self.settings = settings
        self.limits = limits
        self.group_id = settings.group_id
        timeout = limits.request_timeout_seconds
        self.http = api_session(str(settings.api_server), timeout)
        self.vk = VkApiGroup(
            token=settings.token.get_secret_value(),
            api_version=settings.api_version,
            session=self.http,
        )
        # vk_api answers error 6 by sleeping 0.5 s and calling again, without end; the
        # delivery layer's backoff and the shared rate limit handle it instead.
        self.vk.error_handlers.pop(TOO_MANY_RPS_CODE, None)
        self.upload = VkUpload(self.vk)
        self.upload.http = api_session(str(settings.api_server), timeout)
        self.profiles = ProfileCache()
        self._confirmation = settings.confirmation
        self._longpoll: VkBotLongPoll | None = None

    @property
    def file_scope(self) -> str:
        return f"vk:{self.group_id}"

    def buckets(self, destination: Destination) -> list[Bucket]:
        # https://dev.vk.com/ru/api/api-requests: a community token, 20 requests/s.
        return [Bucket.per_second(f"vk:{self.group_id}", self.limits.vk_per_second, burst=5)]

    async def _api(self, method: str, **params: Any) -> Any:
        return await off_loop(self.vk.method, method, params)

    # Inbound -----------------------------------------------------------------------------

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """The Callback API signs nothing: it puts the community's secret key in the
        body (https://dev.vk.com/ru/api/callback/getting-started)."""
        secret = self.settings.secret
        if self.settings.mode != "webhook" or secret is None:
            raise Unauthorized(f"account {self.account} reads the Bots Long Poll, not webhooks")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadPayload(Channel.VK, "body is not JSON") from exc
        if not isinstance(payload, dict):
            raise BadPayload(Channel.VK, "body is not a JSON object")
        if payload.get("group_id") != self.group_id:
            raise Unauthorized(f"an event of community {payload.get('group_id')!r}")
        given = payload.get("secret")
        if payload.get("type") == "confirmation" and given is None:
            return  # VK's documented confirmation request carries no secret
        if not isinstance(given, str) or not hmac.compare_digest(
            given.encode(), secret.get_secret_value().encode()
        ):
            raise Unauthorized("wrong or missing secret")

    def challenge(self, query: Mapping[str, str]) -> Answer:
        raise Unauthorized("this platform verifies webhooks without a GET request")

    def handshake(self, payload: Mapping[str, Any]) -> Answer | None:
        if payload.get("type") != "confirmation":
            return None
        if self._confirmation is None:
            log.error("vk.confirmation_unknown", account=self.account)
            return Answer(body="confirmation code unknown", content_type="text/plain", status=503)
        return Answer(body=self._confirmation, content_type="text/plain")

    def parse(self, payload: Mapping[str, Any], received_at: datetime) -> Sequence[InboundEvent]:
        return parse_event(payload, account=self.account, received_at=received_at)

    def event_id(self, payload: Mapping[str, Any]) -> str:
        return f"{payload.get('type')}:{payload.get('event_id')}"

    async def enrich(self, events: Sequence[InboundEvent]) -> Sequence[InboundEvent]:
        ids = [e.sender.user_id for e in events]
        try:
            await asyncio.wait_for(self._fetch_profiles(ids), ENRICH_TIMEOUT)
        except (GatewayError, TimeoutError) as exc:
            log.warning("vk.names_unavailable", error=str(exc))
        named: list[InboundEvent] = []
        for event in events:
            profile = self.profiles.get(event.sender.user_id)
            if profile is not None:
                sender = event.sender.model_copy(
                    update={"display_name": profile.name, "username": profile.username}
                )
                event = event.model_copy(update={"sender": sender})
            named.append(event)
        return named

    async def _fetch_profiles(self, user_ids: Sequence[str]) -> None:
        missing = self.profiles.missing(user_ids)
        for start in range(0, len(missing), BATCH):
            chunk = missing[start : start + BATCH]
            users = await self._api("users.get", user_ids=",".join(chunk), fields=FIELDS)
            for user in users:
                self.profiles.put(str(user["id"]), profile_of(user))

    async def _profile(self, user_id: str) -> Profile | None:
        await self._fetch_profiles([user_id])
        return self.profiles.get(user_id)

    # Lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self.settings.mode == "webhook" and self._confirmation is None:
            try:
                answer = await self._api(
                    "groups.getCallbackConfirmationCode", group_id=self.group_id
                )
                self._confirmation = str(answer["code"])
            except GatewayError as exc:
                log.error(
                    "vk.confirmation_unavailable",
                    account=self.account,
                    error=str(exc),
                    hint="set channels[].confirmation to the code shown in the community",
                )

    async def stop(self) -> None:
        self.http.close()
        self.upload.http.close()
        if self._longpoll is not None:
            self._longpoll.session.close()

    async def set_webhook(self, url: str) -> None:
        """Register ``url`` as the community's Callback API server, for the events the
        gateway reads (https://dev.vk.com/ru/method/groups.addCallbackServer)."""
        secret = self.settings.secret.get_secret_value() if self.settings.secret else ""
        servers = await self._api("groups.getCallbackServers", group_id=self.group_id)
        found = next((s["id"] for s in servers.get("items", []) if s.get("url") == url), None)
        if found is None:
            added = await self._api(
                "groups.addCallbackServer",
                group_id=self.group_id,
                url=url,
                title="gateway",  # at most 14 characters
                secret_key=secret,
            )
            found = added["server_id"]
        await self._api(
            "groups.setCallbackSettings",
            group_id=self.group_id,
            server_id=found,
            api_version=self.settings.api_version,
            **{event: 1 for event in CALLBACK_EVENTS},
        )

    async def poll(self, cursor: int | None, timeout: float) -> Batch:
        """One Bots Long Poll request (https://dev.vk.com/ru/api/bots-long-poll/getting-started)."""
        if self._longpoll is None:
            # The constructor asks groups.getLongPollServer for a key and the current ts.
            self._longpoll = await off_loop(VkBotLongPoll, self.vk, self.group_id)
        longpoll: Any = self._longpoll
        if cursor is not None:
            longpoll.ts = cursor
        longpoll.wait = max(1, min(int(timeout), 90))
        updates = await off_loop(self._check, longpoll)
        return Batch(updates=updates, cursor=int(longpoll.ts))

    def _check(self, longpoll: VkBotLongPoll) -> list[dict[str, Any]]:
        """vk_api's ``VkBotLongPoll.check``, returning raw events and logging failures."""
        values = {"act": "a_check", "key": longpoll.key, "ts": longpoll.ts, "wait": longpoll.wait}
        response = longpoll.session.get(longpoll.url, params=values, timeout=longpoll.wait + 10)
        if response.status_code >= 500:
            raise TransientError(Channel.VK.value, f"long poll server: HTTP {response.status_code}")
        answer = response.json()
        failed = answer.get("failed") if isinstance(answer, dict) else "?"
        if failed is None:
            updates, ts = answer.get("updates"), answer.get("ts")
            if not isinstance(updates, list) or not str(ts or "").isdigit():
                raise TransientError(Channel.VK.value, f"long poll answered {answer!r:.200}")
            longpoll.ts = ts
            return [u for u in updates if isinstance(u, dict)]
        log.warning("vk.longpoll_failed", account=self.account, failed=failed)
        if failed == 1:  # history outdated or partly lost: go on from the new ts
            longpoll.ts = answer["ts"]
        elif failed == 2:  # key expired: a new key, the same ts
            longpoll.update_longpoll_server(update_ts=False)
        elif failed == 3:  # information lost: a new key and ts
            longpoll.update_longpoll_server()
        else:
            raise TransientError(Channel.VK.value, f"long poll answered {answer!r:.200}")
        return []

    # Outbound ----------------------------------------------------------------------------

    async def send(
        self,
        destination: Destination,
        content: Content,
        upload: Upload | None = None,
        *,
        key: str | None = None,
        author: str | None = None,
    ) -> Sent:
        peer = int(destination.chat_id)
        attachment = await self._attachment(peer, content, upload)
        ids: list[MessageId] = []
        for part, params in enumerate(out.messages(content, attachment)):
            params |= {"peer_id": peer, "random_id": out.random_id(key, part)}
            if part == 0 and destination.reply_to:
                params["reply_to"] = _vk_id(destination.reply_to)
            ids.append(MessageId(str(await self._api("messages.send", **params))))
        return Sent(message_ids=tuple(ids))

    async def _attachment(self, peer: int, content: Content, upload: Upload | None) -> str | None:
        """The ``attachment`` reference: reused from this community, or uploaded."""
        file = content.attachment
        if file is None or content.kind not in _FILE_KINDS:
            return None
        if upload is None:
            if file.account == self.account and file.file_unique_id:
                return file.file_unique_id  # the ref parse kept, with its access key
            raise PermanentError(
                Channel.VK.value, "no file bytes", reason="the file is unavailable"
            )
        photo = content.kind in out.PHOTO_KINDS
        limit = out.PHOTO_LIMIT if photo else out.DOC_LIMIT
        if len(upload.data) > limit:
            raise PermanentError(
                Channel.VK.value,
                f"file of {len(upload.data)} bytes",
                reason=f"the file is larger than the {limit // 2**20} MB VK takes",
            )
        stream = io.BytesIO(upload.data)
        stream.name = upload.file_name  # vk_api names the upload after it
        if photo:
            [saved] = await off_loop(self.upload.photo_messages, stream, peer_id=peer)
            ref = f"photo{saved['owner_id']}_{saved['id']}"
            return f"{ref}_{saved['access_key']}" if saved.get("access_key") else ref
        if content.kind is Kind.VOICE:
            saved = await off_loop(self.upload.audio_message, stream, peer_id=peer)
        else:
            saved = await off_loop(
                self.upload.document_message, stream, title=upload.file_name, peer_id=peer
            )
        doc = saved[saved["type"]]
        return f"doc{doc['owner_id']}_{doc['id']}"

    async def edit_text(self, chat_id: ChatId, message_id: MessageId, content: Content) -> None:
        await self._api(
            "messages.edit",
            peer_id=int(chat_id),
            message_id=_vk_id(message_id),
            message=out.text_of(content)[: out.TEXT_LIMIT] or "…",
            keep_forward_messages=1,
            keep_snippets=1,
        )

    async def react(self, chat_id: ChatId, message_id: MessageId, emoji: str) -> None:
        raise PermanentError(
            self.channel.value,
            "react",
            reason="VK communities cannot react to messages through the API",
        )

    async def delete(self, chat_id: ChatId, message_id: MessageId) -> None:
        # delete_for_all: gone for the customer too (the community's own messages, for
        # 24 hours; error 924 after that).
        await self._api(
            "messages.delete",
            peer_id=int(chat_id),
            message_ids=_vk_id(message_id),
            delete_for_all=1,
        )

    async def mark_read(self, chat_id: ChatId, message_id: MessageId) -> None:
        await self._api(
            "messages.markAsRead",
            peer_id=int(chat_id),
            start_message_id=_vk_id(message_id),
            group_id=self.group_id,
        )

    async def download(self, attachment: Attachment) -> Upload:
        """Files arrive as public CDN links (photo sizes, doc and voice URLs)."""
        if attachment.size is not None and attachment.size > DOWNLOAD_LIMIT:
            raise PermanentError(
                Channel.VK.value,
                f"file of {attachment.size} bytes",
                reason=f"the file is larger than the {DOWNLOAD_LIMIT // 2**20} MB forwarded",
            )
        data = await off_loop(self._fetch, attachment.file_id, DOWNLOAD_LIMIT)
        name = attachment.file_name or _name_from(attachment.file_id)
        return Upload(data=data, file_name=name)

    def _fetch(self, url: str, limit: int) -> bytes:
        return fetch_capped(self.upload.http, url, limit, channel=self.channel.value)

    async def avatar(self, user_id: str) -> Upload | None:
        profile = await self._profile(user_id)
        if profile is None or profile.photo_url is None:
            return None
        data = await off_loop(self._fetch, profile.photo_url, AVATAR_LIMIT)
        return Upload(data=data, file_name="avatar.jpg")


_FILE_KINDS = frozenset(
    {Kind.PHOTO, Kind.STICKER, Kind.DOCUMENT, Kind.AUDIO, Kind.VOICE, Kind.VIDEO}
    | {Kind.VIDEO_NOTE, Kind.ANIMATION}
)


def _vk_id(message_id: str) -> int:
    """A VK message id; the gateway numbers the parts of a multi-attachment message
    ``<id>.<n>``."""
    return int(message_id.split(".", 1)[0])


def _name_from(url: str) -> str:
    path = urllib.parse.urlsplit(url).path
    return path.rsplit("/", 1)[-1] or "file"
