"""The :class:`WhatsAppEmulator` facade: HTTP app, server lifecycle and the Python API.

Tests and ``gateway sandbox`` drive the emulated WhatsApp from the same event loop: they
play customers (write, reply with buttons, react, read), move the clock past the 24-hour
window, inject faults and inspect what the business did, while the gateway talks to the
emulator over real HTTP like it would to ``graph.facebook.com``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from yarl import URL

from ..common import is_loopback
from ..common.faults import RANDOM_KINDS, RandomFaulting
from ..common.server import EmulatorServer
from . import actions, control
from .actions import Content
from .api import MAX_BODY, GraphApi, add_routes
from .faults import TARGETS, Fault, Faults, RateLimiter
from .models import DEFAULT_WABA_ID, Call, JsonDict, Number, Subscription, Template, digits_of
from .state import WhatsAppWorld
from .webhooks import WebhookDelivery


class WhatsAppEmulator(EmulatorServer, RandomFaulting):
    """An in-memory WhatsApp Business Cloud API; see the package docstring."""

    name = "WhatsAppEmulator"

    def __init__(
        self,
        *,
        webhook_attempts: int = 4,
        webhook_backoff: float = 0.05,
        mps_limit: float | None = None,
        pair_limit: int | None = None,
        auto_deliver: bool = True,
        window_errors: str = "sync",
    ) -> None:
        """``webhook_attempts``: POSTs of one webhook before it is dropped;
        ``webhook_backoff``: the first pause between them (it doubles); the other
        arguments set the attributes of the same names."""
        super().__init__()
        self.delivery = WebhookDelivery(attempts=webhook_attempts, backoff=webhook_backoff)
        self.world = WhatsAppWorld(self._base, self.delivery)
        self.faults = Faults()
        self.limiter = RateLimiter()
        self.api = GraphApi(self.world, self.faults, self.limiter)
        self.mps_limit = mps_limit
        self.pair_limit = pair_limit
        self.auto_deliver = auto_deliver
        self.window_errors = window_errors

    # --- settings -------------------------------------------------------------------------

    @property
    def mps_limit(self) -> float | None:
        """Messages a second one business number may send before 130429 (``None``: no
        limit; Meta's default throughput is 80)."""
        return self.limiter.limit

    @mps_limit.setter
    def mps_limit(self, value: float | None) -> None:
        self.limiter.limit = value

    @property
    def pair_limit(self) -> int | None:
        """Messages to one customer within 6 seconds before 131056 (``None``: no limit)."""
        return self.world.pair_limit

    @pair_limit.setter
    def pair_limit(self, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError("pair_limit must be at least 1")
        self.world.pair_limit = value

    @property
    def auto_deliver(self) -> bool:
        """Business messages become ``delivered`` right after ``sent``; when off, call
        :meth:`user_receives` (or :meth:`user_reads`)."""
        return self.world.auto_deliver

    @auto_deliver.setter
    def auto_deliver(self, value: bool) -> None:
        self.world.auto_deliver = value

    @property
    def window_errors(self) -> str:
        """``sync``: a free-form message outside the 24-hour window is refused with
        131047; ``async``: it is accepted and then ``failed`` with 131047 (Meta does both,
        depending on the case)."""
        return self.world.window_errors

    @window_errors.setter
    def window_errors(self, value: str) -> None:
        if value not in ("sync", "async"):
            raise ValueError("window_errors is 'sync' or 'async'")
        self.world.window_errors = value

    # --- server ---------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """An aiohttp app with the Graph endpoints, media downloads and ``/_control``.

        Mountable as a sub-app (e.g. at ``/sandbox/whatsapp``); its owner then calls
        :meth:`set_base_url` with the absolute URL of the mount point."""
        app = web.Application(client_max_size=MAX_BODY)
        add_routes(app, self.api)
        control.add_routes(app, self)
        return self._with_hooks(app)

    async def _on_shutdown(self, _app: web.Application | None) -> None:
        self.world.close()
        self.faults.random.release()

    async def _on_cleanup(self, _app: web.Application | None) -> None:
        await self.delivery.close()

    # --- the business side ----------------------------------------------------------------

    def create_number(
        self,
        phone_number_id: str,
        display_phone_number: str,
        token: str,
        *,
        waba_id: str = DEFAULT_WABA_ID,
        verified_name: str = "Shop",
        app_secret: str | None = None,
    ) -> None:
        """A business phone number and a bearer token that may use it (call again with
        the same id to add tokens). ``app_secret`` signs webhooks of subscriptions the
        gateway makes through the API (random when not given, see :meth:`app_secret`)."""
        existing = self.world.numbers.get(phone_number_id)
        if existing is not None:
            existing.tokens.add(token)
            return
        if not phone_number_id.isdigit():
            raise ValueError("a phone number id is a string of digits")
        number = Number(
            phone_number_id,
            digits_of(display_phone_number),
            waba_id,
            verified_name,
            app_secret or secrets.token_hex(16),
        )
        number.tokens.add(token)
        self.world.numbers[phone_number_id] = number

    def app_secret(self, phone_number_id: str) -> str:
        """The app secret of the number's tokens."""
        return self.world.number(phone_number_id).app_secret

    async def subscribe(
        self, phone_number_id: str, url: str, *, verify_token: str, app_secret: str
    ) -> bool:
        """What a developer does in the App Dashboard → WhatsApp → Configuration: set the
        callback URL and verify token. Meta verifies the URL first (one attempt, logged);
        events go there, signed with ``app_secret``, only if it passed."""
        if not is_loopback(URL(url).host):
            raise ValueError("webhook URLs must be on 127.0.0.1 or localhost")
        number = self.world.number(phone_number_id)
        if not await self.delivery.verify(url, verify_token):
            return False
        number.subscription = Subscription(url, verify_token, app_secret)
        return True

    def unsubscribe(self, phone_number_id: str) -> None:
        """Stop sending the number's webhooks anywhere."""
        self.world.number(phone_number_id).subscription = None

    def create_template(
        self,
        name: str,
        language: str = "en_US",
        body: str = "Hello {{1}}, your order {{2}} is ready",
        *,
        status: str = "APPROVED",
        category: str = "UTILITY",
    ) -> None:
        """A message template of the business (``status``: APPROVED, PENDING, REJECTED,
        PAUSED or DISABLED; only APPROVED ones can be sent). Templates here have a body
        only: a send must give one ``body`` parameter per distinct ``{{n}}``, and header
        or button parameters are a mismatch (132000)."""
        self.world.templates[(name, language)] = Template(name, language, body, status, category)

    def create_user(self, name: str, wa_id: str | None = None) -> str:
        """Register a WhatsApp user (``wa_id``: the phone's digits without ``+``; a free
        one when not given); returns the ``wa_id``."""
        return self.world.create_user(name, wa_id).wa_id

    # --- clock ----------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """The emulator's clock (Unix seconds); webhook timestamps and the 24-hour window
        use it."""
        return self.world.now()

    def advance(self, seconds: float) -> None:
        """Move the clock forward (e.g. ``advance(24 * 3600 + 1)`` closes every window)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.world.offset += seconds

    # --- people's actions -----------------------------------------------------------------
    # Plain methods: call them from the event loop the emulator serves on (webhook
    # deliveries start as tasks of that loop).

    def user_send(
        self,
        phone_number_id: str,
        wa_id: str,
        text: str = "",
        *,
        image: bytes | None = None,
        caption: str | None = None,
        document: tuple[str, bytes] | None = None,
        audio: bytes | None = None,
        voice: bool = False,
        video: bytes | None = None,
        sticker: bytes | None = None,
        location: tuple[float, float] | None = None,
        contacts: list[tuple[str, str]] | None = None,
        button_reply: tuple[str, str] | None = None,
        reaction: tuple[str, str] | None = None,
        unsupported: bool = False,
        reply_to: str | None = None,
    ) -> JsonDict:
        """A customer writes to the business; returns the webhook message object.

        One kind of content at a time: ``document`` is ``(file name, bytes)``,
        ``contacts`` ``[(name, phone)]``, ``button_reply`` ``(id, title)`` of a button
        (or list row) of the business's interactive message, ``reaction`` ``(message id,
        emoji)``; ``reply_to`` quotes a message of the conversation."""
        content = Content(
            text,
            image,
            caption,
            document,
            audio,
            voice,
            video,
            sticker,
            location,
            contacts,
            button_reply,
            reaction,
            unsupported,
            reply_to,
        )
        return actions.send(self.world, phone_number_id, [(wa_id, content)])[0]

    def user_send_batch(
        self, phone_number_id: str, messages: list[tuple[str, dict[str, Any]]]
    ) -> list[JsonDict]:
        """Several customers' messages delivered in ONE webhook POST, as Meta batches
        them: ``[(wa_id, user_send keyword arguments), ...]``."""
        batch = [(wa_id, Content(**kwargs)) for wa_id, kwargs in messages]
        return actions.send(self.world, phone_number_id, batch)

    def user_reads(self, phone_number_id: str, wa_id: str, message_id: str) -> None:
        """The customer reads the business's messages up to ``message_id``: ``read``
        statuses (with ``delivered`` first where it was missing)."""
        actions.read(self.world, phone_number_id, wa_id, message_id)

    def user_receives(self, phone_number_id: str, wa_id: str, message_id: str) -> None:
        """The customer's phone gets a ``sent`` message: ``delivered``."""
        actions.deliver(self.world, phone_number_id, wa_id, message_id)

    # --- inspection -----------------------------------------------------------------------

    def conversation(self, phone_number_id: str, wa_id: str) -> list[JsonDict]:
        """Every message with the customer, both directions, oldest first: ``direction``
        (in/out), ``id``, ``type``, ``timestamp``, ``body`` or ``caption``, ``payload``
        (the type object), ``media`` (bytes), ``media_id``, ``mime_type``, ``filename``,
        ``template`` (name, language, params, category), ``context``, ``status`` and
        ``statuses`` (business messages), ``errors``, ``read_by_business``."""
        return [m.view() for m in self.world.conversation(phone_number_id, wa_id)]

    def read_marks(self, phone_number_id: str) -> list[JsonDict]:
        """Read marks the business sent: ``message_id``, ``wa_id``, ``timestamp``,
        ``typing_indicator``."""
        return list(self.world.number(phone_number_id).read_marks)

    def media_bytes(self, media_id: str) -> bytes:
        """The bytes of a stored file."""
        stored = self.world.media.get(media_id)
        if stored is None:
            raise ValueError(f"no media {media_id}")
        return stored.data

    @property
    def calls(self) -> list[Call]:
        """Every Graph request received, in order (see :class:`~.models.Call`)."""
        return self.world.calls

    def calls_of(self, endpoint: str) -> list[JsonDict]:
        """Bodies of every request to one endpoint (``messages``, ``media``, …)."""
        return [call.body for call in self.world.calls if call.endpoint == endpoint]

    @property
    def callback_log(self) -> list[JsonDict]:
        """Every webhook attempt: ``url``, ``kind`` (verification, messages, statuses),
        ``attempt``, ``payload``, ``signature``, ``status`` (0: no connection), ``body``
        (the answer), ``error``, ``ok``."""
        return self.delivery.log

    async def webhooks_idle(self, timeout: float = 10.0) -> None:
        """Wait until every queued webhook and media link fetch is finished."""
        await self.delivery.idle(timeout)

    async def wait_for(
        self,
        predicate: Callable[[JsonDict], bool],
        *,
        phone_number_id: str,
        wa_id: str,
        timeout: float = 5.0,
    ) -> JsonDict:
        """The first message of the conversation (existing, arriving, or changing status)
        that matches."""
        cursor = self.world.feed.cursor
        for message in self.conversation(phone_number_id, wa_id):
            if predicate(message):
                return message

        def pick(event: JsonDict) -> JsonDict | None:
            brief: JsonDict | None = event.get("message")
            where = (event["phone_number_id"], event["wa_id"])
            if brief is None or where != (phone_number_id, wa_id):
                return None
            candidate = self.world.messages[brief["id"]].view()
            return candidate if predicate(candidate) else None

        found = await self.world.feed.first_after(cursor, pick, timeout)
        if found is not None:
            return found
        seen = [
            f"{m['direction']} {m['type']}: {(m['body'] or m['caption'] or '')[:60]!r}"
            for m in self.conversation(phone_number_id, wa_id)
        ]
        raise TimeoutError(
            f"no matching message with {wa_id} on {phone_number_id} within {timeout} s; "
            f"it has: {seen[-20:] or '(none)'}"
        )

    # --- faults ---------------------------------------------------------------------------

    def fail(
        self,
        endpoint: str,
        code: int,
        *,
        times: int = 1,
        http_status: int | None = None,
        details: str | None = None,
    ) -> None:
        """The next ``times`` requests to ``endpoint`` (``messages``, ``media``,
        ``media_get``, ``media_delete``, ``download``, ``number``, ``number_update`` or
        ``*``) answer Graph error ``code`` (with its usual HTTP status unless
        ``http_status`` is given; ``details`` replaces the default ``error_data.details``)."""
        self.faults.add(Fault(endpoint, times, code=code, http_status=http_status, details=details))

    def fail_http(self, endpoint: str, status: int, *, times: int = 1) -> None:
        """The next ``times`` requests to ``endpoint`` answer HTTP ``status`` with an HTML
        page (a proxy in an incident)."""
        self.faults.add(Fault(endpoint, times, http_status=status))

    def clear_faults(self) -> None:
        """Forget faults not used yet (random faults go on: :meth:`clear_fault_rates`)."""
        self.faults.clear()

    def set_fault_rate(
        self,
        probability: float,
        *,
        endpoints: Iterable[str] | None = None,
        phone_number_id: str | None = None,
        kinds: Iterable[str] = RANDOM_KINDS,
        retry_after: int = 1,
        delay: float = 1.0,
        seed: int | None = None,
    ) -> None:
        """Fail requests at random, for chaos tests: each request to ``endpoints`` (the
        names :meth:`fail` takes; every one when ``None``) about the number
        ``phone_number_id`` (any when ``None``) fails with ``probability``, as one of
        ``kinds`` drawn uniformly, answered as the Cloud API does (a Graph error object
        with ``message``, ``type``, ``code``, ``error_data`` and ``fbtrace_id``): "429"
        130429 "Rate limit hit" (HTTP 429), "500" 131000 "Something went wrong" (HTTP
        500), "503" 2 "API Service" (HTTP 503), "502" an HTML page (the edge in front
        of Graph), "delay" the answer ``delay`` seconds late (and the request done: the
        API has no idempotency key, so past the client's timeout a retried send is a
        second message), "reset" the connection dropped before anything is done.
        130429 carries no wait: ``retry_after`` is accepted, so that one call suits
        every emulator, and unused. Queued faults go first; the newest rate matching a
        request decides; ``seed`` makes the draws reproducible."""
        if phone_number_id is not None and phone_number_id not in self.world.numbers:
            raise ValueError(f"unknown phone number id {phone_number_id!r}")
        self.faults.random.set_rate(
            probability,
            targets=endpoints,
            key=phone_number_id,
            kinds=kinds,
            retry_after=retry_after,
            delay=delay,
            seed=seed,
            known=TARGETS,
            noun="endpoints",
        )
