"""The :class:`VkEmulator` facade: HTTP app, server lifecycle and the Python API.

Tests and ``gateway sandbox`` drive the emulated VK from the same event loop: they play
people (write, edit, allow or deny messages), inject faults and inspect what the
community did, while the gateway talks to the emulator over real HTTP.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterable

from aiohttp import web
from yarl import URL

from ..common import is_loopback
from ..common.faults import RANDOM_KINDS, RandomFaulting, RateLimited
from ..common.server import EmulatorServer
from . import actions, control
from .api import METHODS, ApiServer, add_routes
from .callback import CallbackDelivery
from .faults import Fault, Faults, RateLimiter
from .models import MESSAGE_EVENTS, Call, JsonDict
from .state import VkWorld
from .wire import MAX_BODY


class VkEmulator(EmulatorServer, RateLimited, RandomFaulting):
    """An in-memory VK with a community API server; see the package docstring."""

    name = "VkEmulator"

    def __init__(
        self,
        *,
        callback_attempts: int = 4,
        callback_backoff: float = 0.05,
        rps_limit: float | None = None,
    ) -> None:
        """``callback_attempts``: deliveries of one event to a callback server before it is
        dropped; ``callback_backoff``: the first pause between them (it doubles);
        ``rps_limit``: see :attr:`rps_limit`."""
        super().__init__()
        self.delivery = CallbackDelivery(attempts=callback_attempts, backoff=callback_backoff)
        self.world = VkWorld(self._base, self.delivery)
        self.faults = Faults()
        self.limiter = RateLimiter()
        self.api = ApiServer(self.world, self.faults, self.limiter, self.delivery)
        self.rps_limit = rps_limit
        self.on_stop(release=self.world.close, close=self.delivery.close)
        self.on_stop(release=self.faults.random.release)

    rps_limit = RateLimited.rate_limit
    """Calls a second one access token may make before error 6 (``None``: no limit)."""

    # --- server ---------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """An aiohttp app with the API, uploads, files, long poll and ``/_control``.

        Mountable as a sub-app (e.g. at ``/sandbox/vk``); its owner then calls
        :meth:`set_base_url` with the absolute URL of the mount point."""
        app = self._new_app(MAX_BODY)
        add_routes(app, self.api)
        control.add_routes(app, self)
        return app

    # --- communities and people -----------------------------------------------------------

    def create_group(
        self, group_id: int, token: str, name: str = "Shop", *, confirmation: str | None = None
    ) -> None:
        """A community with its access token and Callback API confirmation code
        (random when not given)."""
        self.world.create_group(group_id, token, name, confirmation or secrets.token_hex(4))

    def confirmation_code(self, group_id: int) -> str:
        """The string a callback server must answer the confirmation request with."""
        return self.world.group(group_id).confirmation

    def create_user(
        self,
        first_name: str,
        last_name: str = "",
        *,
        user_id: int | None = None,
        screen_name: str | None = None,
        photo: bytes | None = None,
    ) -> int:
        """Register a person; returns their id."""
        user = self.world.create_user(
            first_name, last_name, user_id=user_id, screen_name=screen_name, photo=photo
        )
        return user.id

    def add_callback_server(
        self,
        group_id: int,
        url: str,
        *,
        secret: str | None = None,
        title: str = "gateway",
        events: Iterable[str] = MESSAGE_EVENTS,
    ) -> int:
        """What an admin does in "Manage community → API usage → Callback API": add a
        server with these event types on; the confirmation request is sent in the
        background (see :meth:`callbacks_idle`). Returns the server id."""
        if not is_loopback(URL(url).host):
            raise ValueError("callback servers must be on 127.0.0.1 or localhost")
        group = self.world.group(group_id)
        server = self.world.add_callback_server(group, url, title, secret)
        server.events.update(events)
        self.delivery.confirm(server, group.confirmation)
        return server.id

    def callback_servers(self, group_id: int) -> list[JsonDict]:
        """The community's callback servers with their status and event types."""
        return [
            {**server.item(), "events": sorted(server.events)}
            for server in self.world.group(group_id).servers.values()
        ]

    async def callbacks_idle(self, timeout: float = 10.0) -> None:
        """Wait until every confirmation and queued callback delivery is finished."""
        await self.delivery.idle(timeout)

    # --- people's actions -----------------------------------------------------------------
    # Plain methods: call them from the event loop the emulator serves on (callback
    # deliveries start as tasks of that loop; long polls wake up on its next turn).

    def user_send(
        self,
        group_id: int,
        user_id: int,
        text: str = "",
        *,
        photo: bytes | None = None,
        doc: tuple[str, bytes] | None = None,
        voice: bytes | None = None,
        sticker: bool = False,
        video: bool = False,
        wall: bool = False,
        link: str | None = None,
        geo: tuple[float, float] | None = None,
        reply_to: int | None = None,
        forward: list[int] | None = None,
    ) -> JsonDict:
        """A person writes to the community (``message_new``); returns the stored message.

        ``doc`` is ``(file name, bytes)``; ``video``/``wall`` attach a video/post reference
        (no file); ``reply_to``/``forward`` are ids of messages of this conversation."""
        group = self.world.group(group_id)
        attachments = actions.build_attachments(
            self.world,
            group,
            user_id,
            photo=photo,
            doc=doc,
            voice=voice,
            sticker=sticker,
            video=video,
            wall=wall,
            link=link,
        )
        message = actions.send(
            self.world,
            group_id,
            user_id,
            text,
            attachments,
            geo=geo,
            reply_to=reply_to,
            forward=forward,
        )
        return message.view()

    def user_edit(self, group_id: int, user_id: int, message_id: int, text: str) -> JsonDict:
        """A person edits their message (``message_edit``); returns it."""
        return actions.edit(self.world, group_id, user_id, message_id, text).view()

    def user_allow(self, group_id: int, user_id: int) -> None:
        """A person allows messages from the community (``message_allow``)."""
        actions.allow(self.world, group_id, user_id)

    def user_deny(self, group_id: int, user_id: int) -> None:
        """A person forbids messages from the community (``message_deny``)."""
        actions.deny(self.world, group_id, user_id)

    # --- inspection -----------------------------------------------------------------------

    def conversation(self, group_id: int, peer_id: int) -> list[JsonDict]:
        """Every message with ``peer_id``, both directions, oldest first: ``id``, ``out``
        (0/1), ``text``, ``attachments``, ``random_id``, ``date``, ``update_time``, …"""
        group = self.world.group(group_id)
        return [message.view() for message in group.conversations.get(peer_id, [])]

    def read_up_to(self, group_id: int, peer_id: int) -> int:
        """The newest message id the community marked as read (0: none)."""
        return self.world.group(group_id).read_up_to.get(peer_id, 0)

    def events(self, group_id: int) -> list[JsonDict]:
        """Events of the community kept for long poll clients, oldest first."""
        return self.world.group(group_id).longpoll.history()

    async def longpoll_held(self, group_id: int, timeout: float = 5.0) -> None:
        """Wait until a long poll request of the community is being held by the server, so
        that what happens next is answered to a waiting client."""
        async with asyncio.timeout(timeout):
            await self.world.group(group_id).longpoll.held()

    @property
    def calls(self) -> list[Call]:
        """Every API call received, in order: ``(method, params)`` without access_token."""
        return self.world.calls

    def calls_of(self, method: str) -> list[dict[str, str]]:
        """Parameters of every call of one method (case-insensitive)."""
        return [c.params for c in self.world.calls if c.method.lower() == method.lower()]

    @property
    def callback_log(self) -> list[JsonDict]:
        """Every callback POST attempt: ``url``, ``server_id``, ``type``, ``event_id``,
        ``attempt``, ``status`` (0: no connection), ``body``, ``error``, ``ok``."""
        return self.delivery.log

    def file_bytes(self, url: str) -> bytes:
        """The bytes behind a file URL the emulator handed out."""
        parts = URL(url).path.split("/")
        key = parts[-2] if len(parts) >= 2 else ""
        stored = self.world.files.by_key(key)
        if stored is None:
            raise ValueError(f"not a file of this emulator: {url}")
        return stored.data

    async def wait_for(
        self,
        predicate: Callable[[JsonDict], bool],
        *,
        group_id: int,
        peer_id: int,
        timeout: float = 5.0,
    ) -> JsonDict:
        """The first message of the conversation (existing, arriving or edited) matching."""
        cursor = self.world.feed.cursor
        for message in self.conversation(group_id, peer_id):
            if predicate(message):
                return message

        def pick(event: JsonDict) -> JsonDict | None:
            candidate: JsonDict | None = event.get("message")
            if candidate is None or (event["group_id"], event["peer_id"]) != (group_id, peer_id):
                return None
            return candidate if predicate(candidate) else None

        found = await self.world.feed.first_after(cursor, pick, timeout)
        if found is not None:
            return found
        texts = [f"{m['id']}: {m['text'][:60]!r}" for m in self.conversation(group_id, peer_id)]
        raise TimeoutError(
            f"no matching message with {peer_id} in community {group_id} within {timeout} s; "
            f"it has: {texts[-20:] or '(none)'}"
        )

    # --- faults ---------------------------------------------------------------------------

    def fail(self, method: str, code: int, *, times: int = 1, message: str | None = None) -> None:
        """The next ``times`` calls of ``method`` (``"*"``: any) answer VK error ``code``."""
        self.faults.add(Fault(method, times, code=code, message=message))

    def fail_http(self, method: str, status: int, *, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` answer HTTP ``status`` with an HTML page."""
        self.faults.add(Fault(method, times, status=status))

    def fail_upload(self, status: int, times: int = 1) -> None:
        """The next ``times`` POSTs to an upload server answer HTTP ``status``."""
        self.faults.add(Fault(Faults.UPLOAD, times, status=status))

    def longpoll_failed(self, group_id: int, code: int) -> None:
        """The next ``a_check`` of the community answers ``{"failed": code}`` (1, 2 or 3);
        a waiting one answers at once."""
        self.world.group(group_id).longpoll.inject(code)

    def clear_faults(self) -> None:
        """Forget faults not used yet (random faults go on: :meth:`clear_fault_rates`)."""
        self.faults.clear()

    def set_fault_rate(
        self,
        probability: float,
        *,
        methods: Iterable[str] | None = None,
        group_id: int | None = None,
        kinds: Iterable[str] = RANDOM_KINDS,
        retry_after: int = 1,
        delay: float = 1.0,
        seed: int | None = None,
    ) -> None:
        """Fail API calls at random, for chaos tests: each call of ``methods`` (any case;
        every method when ``None``) by the community ``group_id`` (any when ``None``)
        fails with ``probability``, as one of ``kinds`` drawn uniformly, answered as VK
        does: "429" error 6 "Too many requests per second" and "500" error 10 "Internal
        server error" (error objects in HTTP 200 answers), "502"/"503" a proxy's HTML
        page with that status, "delay" the answer ``delay`` seconds late (and the call
        done: past the client's timeout it looks failed though it happened; a retried
        ``messages.send`` with the same ``random_id`` sends nothing twice), "reset" the
        connection dropped before the call is done. VK's error 6 carries no wait:
        ``retry_after`` is accepted, so that one call suits every emulator, and unused.
        Queued faults go first; the newest rate matching a call decides; ``seed`` makes
        the draws reproducible."""
        if group_id is not None:
            self.world.group(group_id)
        self.faults.random.set_rate(
            probability,
            targets=methods,
            key=group_id,
            kinds=kinds,
            retry_after=retry_after,
            delay=delay,
            seed=seed,
            known=[name for name, _ in METHODS.values()],
            noun="methods",
        )
