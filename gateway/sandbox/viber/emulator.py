"""The :class:`ViberEmulator` facade: HTTP app, server lifecycle and the Python API.

Tests and ``gateway sandbox`` drive the emulated Viber from the same event loop: they
play people (open the chat, subscribe, write, see messages), inject faults and inspect
what the bots did, while the gateway talks to the emulator over real HTTP with viberbot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from aiohttp import web

from ..common.faults import RANDOM_KINDS, Fault, Faults, RandomFaulting, RateLimited, RateLimiter
from ..common.server import EmulatorServer
from . import actions, control
from .api import ApiServer, add_routes
from .callbacks import Callbacks
from .endpoints import HANDLERS
from .models import STATUS_NAMES, Call, JsonDict, Webhook
from .state import ViberWorld

CONTROL_MAX_BODY = 64 * 1024 * 1024
"""Console uploads arrive base64-encoded in JSON."""


class ViberEmulator(EmulatorServer, RateLimited, RandomFaulting):
    """An in-memory Viber with the REST Bot API; see the package docstring."""

    name = "ViberEmulator"

    def __init__(
        self,
        *,
        callback_attempts: int = 4,
        callback_backoff: float = 0.05,
        media_timeout: float = 5.0,
        rate_limit: float | None = None,
        auto_deliver: bool = True,
        receipt_delay: float = 0.0,
        require_webhook: bool = True,
    ) -> None:
        """``callback_attempts``: posts of one callback before it is dropped;
        ``callback_backoff``: the first pause between them (it doubles);
        ``media_timeout``: how long downloading a bot's media may take; ``rate_limit``
        (over it: status 12) and ``auto_deliver``: see the attributes; ``receipt_delay``:
        seconds between accepting a message and reporting it delivered (a phone is not
        instant); ``require_webhook``: ``send_message`` answers status 10 while the bot
        has no webhook, as Viber does (off: for unit tests of a client without one)."""
        super().__init__()
        self.callbacks = Callbacks(
            attempts=callback_attempts, backoff=callback_backoff, media_timeout=media_timeout
        )
        self.world = ViberWorld(self._base, self.callbacks)
        self.world.auto_deliver = auto_deliver
        self.world.receipt_delay = receipt_delay
        self.world.require_webhook = require_webhook
        self.faults: Faults[Fault] = Faults()
        self.limiter = RateLimiter(rate_limit)
        self.api = ApiServer(self.world, self.faults, self.limiter)
        self.on_stop(release=self.world.close, close=self.callbacks.close)
        self.on_stop(release=self.faults.random.release)

    @property
    def auto_deliver(self) -> bool:
        """Whether people's phones report the bots' messages ``delivered`` by themselves
        (for media: once downloaded). Off: messages stay ``sent`` until :meth:`user_sees`."""
        return self.world.auto_deliver

    @auto_deliver.setter
    def auto_deliver(self, value: bool) -> None:
        self.world.auto_deliver = value

    # --- server ---------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """An aiohttp app with the REST endpoints, files and ``/_control``.

        Mountable as a sub-app (e.g. at ``/sandbox/viber``); its owner then calls
        :meth:`set_base_url` with the absolute URL of the mount point."""
        app = self._new_app(CONTROL_MAX_BODY)
        control.add_routes(app, self)
        add_routes(app, self.api)
        return app

    # --- bots and people ------------------------------------------------------------------

    def create_bot(self, token: str, name: str = "Shop", *, avatar: str | None = None) -> None:
        """A bot with its authentication token, name (1-28 characters) and avatar URL."""
        self.world.create_bot(token, name, avatar)

    def bot_id(self, token: str) -> str:
        """The bot's public id (``pa:...``), how the console refers to it."""
        return self.world.bot(token).id

    def create_user(
        self,
        name: str,
        *,
        avatar: bytes | None = None,
        country: str = "RU",
        language: str = "ru",
        api_version: int = 10,
    ) -> str:
        """Register a person; returns their Viber id (base64 of 16 bytes)."""
        user = self.world.create_user(
            name, avatar=avatar, country=country, language=language, api_version=api_version
        )
        return user.id

    def webhook_of(self, token: str) -> str | None:
        """The bot's webhook URL (``None``: no webhook)."""
        webhook = self.world.bot(token).webhook
        return webhook.url if webhook else None

    def webhook_settings(self, token: str) -> Webhook | None:
        """Everything the bot's ``set_webhook`` registered: URL, event types, whether
        callbacks carry names and photos."""
        return self.world.bot(token).webhook

    async def callbacks_idle(self, timeout: float = 10.0) -> None:
        """Wait until every queued callback, media download and receipt is finished."""
        await self.callbacks.idle(timeout)

    # --- people's actions -----------------------------------------------------------------
    # Plain methods: call them from the event loop the emulator serves on (callbacks and
    # media downloads start as tasks of that loop).

    def user_open(self, token: str, user_id: str, context: str = "") -> JsonDict:
        """The person opens the chat (``conversation_started``); returns the callback. The
        bot's answer to it, if a message, is stored as its welcome message."""
        return actions.open_chat(self.world, token, user_id, context)

    def user_subscribe(self, token: str, user_id: str) -> JsonDict:
        """The person subscribes (``subscribed``); returns the callback."""
        return actions.subscribe(self.world, token, user_id)

    def user_unsubscribe(self, token: str, user_id: str) -> JsonDict:
        """The person unsubscribes (``unsubscribed``); returns the callback."""
        return actions.unsubscribe(self.world, token, user_id)

    def user_send(
        self,
        token: str,
        user_id: str,
        text: str = "",
        *,
        picture: bytes | None = None,
        video: bytes | None = None,
        file: tuple[str, bytes] | None = None,
        sticker_id: int | None = None,
        contact: tuple[str, str] | None = None,
        location: tuple[float, float] | None = None,
        url: str | None = None,
        rich_media: bool = False,
    ) -> JsonDict:
        """The person writes (``message``) and so becomes subscribed; returns the stored
        message. One kind at a time; ``text`` goes alone or with a picture or video;
        ``file`` is ``(name, bytes)``, ``contact`` ``(name, phone)``, ``location``
        ``(lat, lon)``. Media are served by the emulator at absolute URLs."""
        given = {
            "picture": picture,
            "video": video,
            "file": file,
            "sticker_id": sticker_id,
            "contact": contact,
            "location": location,
            "url": url,
            "rich_media": rich_media,
        }
        kind, content, data = actions.user_content(self.world, text, given)
        return actions.send(self.world, token, user_id, kind, content, data).view()

    def user_sees(self, token: str, user_id: str, message_token: int) -> JsonDict:
        """The person sees a message of the bot (``seen``); returns it."""
        return actions.sees(self.world, token, user_id, message_token).view()

    # --- inspection -----------------------------------------------------------------------

    def conversation(self, token: str, user_id: str) -> list[JsonDict]:
        """Every message between the bot and the person, both directions, oldest first:
        ``direction`` (in/out), ``message_token``, ``type``, ``text``, ``media`` (the URL as
        sent), ``media_bytes``, ``local_url``, the type's fields, ``sender``, ``keyboard``,
        ``tracking_data``, ``status`` (out: sent/delivered/seen/failed), ``desc``, ..."""
        bot = self.world.bot(token)
        return [message.view() for message in bot.conversations.get(user_id, [])]

    def is_subscribed(self, token: str, user_id: str) -> bool:
        """Whether the bot may message the person now."""
        return bool(self.world.bot(token).subscribed.get(user_id))

    @property
    def calls(self) -> list[Call]:
        """Every REST call, in order: ``(endpoint, body without auth_token, status)``."""
        return self.world.calls

    def calls_of(self, endpoint: str) -> list[JsonDict]:
        """Bodies of every call of one endpoint."""
        return [call.params for call in self.world.calls if call.endpoint == endpoint]

    @property
    def callback_log(self) -> list[JsonDict]:
        """Every callback POST attempt: ``url``, ``bot_id``, ``event``, ``message_token``,
        ``user_id``, ``attempt``, ``status`` (0: no connection), ``body`` (the answer),
        ``error``, ``ok``, ``signature``, ``payload``. Refused welcome messages add an
        entry with ``event`` ``welcome`` and the ``error``."""
        return self.callbacks.log

    def file_bytes(self, url: str) -> bytes:
        """The bytes behind a file URL of the emulator."""
        stored = self.world.files.by_url(url)
        if stored is None:
            raise ValueError(f"not a file of this emulator: {url}")
        return stored.data

    async def wait_for(
        self,
        predicate: Callable[[JsonDict], bool],
        *,
        token: str,
        user_id: str,
        timeout: float = 5.0,
    ) -> JsonDict:
        """The first message of the conversation (existing, arriving or changing, e.g.
        becoming ``delivered``) matching ``predicate``."""
        bot = self.world.bot(token)
        cursor = self.world.feed.cursor

        def first() -> JsonDict | None:
            return next((m for m in self.conversation(token, user_id) if predicate(m)), None)

        def pick(event: JsonDict) -> JsonDict | None:
            if (event["bot_id"], event["user_id"]) != (bot.id, user_id):
                return None
            return first()

        found = first() or await self.world.feed.first_after(cursor, pick, timeout)
        if found is not None:
            return found
        shown = [
            f"{m['direction']} {m['type']} {m['status'] or ''} {str(m['text'] or '')[:60]!r}"
            for m in self.conversation(token, user_id)
        ]
        raise TimeoutError(
            f"no matching message with {user_id} within {timeout} s; "
            f"it has: {shown[-20:] or '(none)'}"
        )

    # --- faults ---------------------------------------------------------------------------

    def fail(self, endpoint: str, status: int, *, times: int = 1) -> None:
        """The next ``times`` calls of ``endpoint`` (``"*"``: any) answer Viber ``status``
        (HTTP 200 with ``{"status", "status_message"}``)."""
        if status == 0 or status not in STATUS_NAMES:
            raise ValueError(f"status must be a Viber error status, got {status}")
        self.faults.add(Fault(endpoint, times, code=status))

    def fail_http(self, endpoint: str, http_status: int, *, times: int = 1) -> None:
        """The next ``times`` calls of ``endpoint`` answer HTTP ``http_status`` with an
        HTML page (a proxy in trouble)."""
        self.faults.add(Fault(endpoint, times, status=http_status))

    def clear_faults(self) -> None:
        """Forget faults not used yet (random faults go on: :meth:`clear_fault_rates`)."""
        self.faults.clear()

    def set_fault_rate(
        self,
        probability: float,
        *,
        endpoints: Iterable[str] | None = None,
        token: str | None = None,
        kinds: Iterable[str] = RANDOM_KINDS,
        retry_after: int = 1,
        delay: float = 1.0,
        seed: int | None = None,
    ) -> None:
        """Fail REST calls at random, for chaos tests: each call of ``endpoints`` (every
        one when ``None``) by the bot of ``token`` (any when ``None``) fails with
        ``probability``, as one of ``kinds`` drawn uniformly, answered as Viber does:
        "429" status 12 ``tooManyRequests`` (HTTP 200), "500"/"502"/"503" an HTML page
        with that status (a proxy in an incident), "delay" the answer ``delay`` seconds
        late (and the call done: the REST API has no idempotency key, so past the
        client's timeout a retried ``send_message`` is a second message), "reset" the
        connection dropped before the call is done. Status 12 carries no wait:
        ``retry_after`` is accepted, so that one call suits every emulator, and unused.
        Queued faults go first; the newest rate matching a call decides; ``seed`` makes
        the draws reproducible."""
        if token is not None:
            self.world.bot(token)
        self.faults.random.set_rate(
            probability,
            targets=endpoints,
            key=token,
            kinds=kinds,
            retry_after=retry_after,
            delay=delay,
            seed=seed,
            known=list(HANDLERS),
            noun="endpoints",
        )
