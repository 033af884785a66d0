"""Every webhook endpoint under thousands of random and mutated requests (issue 7).

Mutated requests start from valid events of each platform (every message kind,
statuses, receipts, buttons) and break them: fields dropped or replaced by values of
the wrong type, huge strings, deep nesting, NaN, lone surrogates, bytes that are not
UTF-8, truncated JSON, odd content types. They are signed for real (Telegram's secret
header, VK's secret in the body, Viber's and WhatsApp's HMAC of the body), so they get
past authentication into the parsers. Random requests are junk bodies, signed or not.

What must hold for every single request:

- no 5xx: bad input is a 4xx, and the gateway keeps answering;
- an answer other than 200 changes nothing in Redis: nothing enqueued, no dedup key;
- whatever a 200 stored is a valid normalised event of that account: it reads back from
  the stream and serialises to the same bytes, and each stored event has its dedup key.

Some mutations still make a valid event (another text, another sender): those are
stored, which is right, and the last rule checks them. Then a gateway with workers
handles what a smaller fuzz stored, without one poison entry, and a customer's next
message on every messenger still reaches the staff topics. What the fuzz found is kept
as fixed cases (``test_known_hazards_are_refused_and_store_nothing``). Hypothesis is
derandomised: CI sends the same requests every time.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import hmac
import io
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from yarl import URL

from gateway.model import INBOUND
from gateway.sandbox.viber import ViberEmulator
from gateway.sandbox.vk import VkEmulator
from gateway.sandbox.whatsapp import WhatsAppEmulator
from gateway.store import keys
from tests.conftest import (
    OPERATOR_ID,
    STAFF_CHAT,
    WEBHOOK_SECRET,
    Running,
    StartGateway,
    World,
    eventually,
    text_of,
)
from tests.strategies import json_values

T = TypeVar("T")
VK_GROUP = 229000077
VK_TOKEN = "vk1.a.fuzz-community-token"
VK_SECRET = "vk-fuzz-callback-secret"
VK_CONFIRMATION = "f0zzc0de"
VIBER_TOKEN = "4f1b2c3d4e5f6a7b-viber-fuzz-token"
WA_NUMBER = "106540352242999"
WA_TOKEN = "EAAG-wa-fuzz-token"
WA_APP_SECRET = "wa-fuzz-app-secret"
WA_VERIFY = "wa-fuzz-verify-token"
MAX_BODY = 1024 * 1024
FUZZ = settings(
    derandomize=True,  # the same requests on every run (CI)
    database=None,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),  # a failure is reported as found, not shrunk
    suppress_health_check=list(HealthCheck),
)


# --- the gateway with every messenger ------------------------------------------------


@dataclass
class Platforms:
    """The VK, Viber and WhatsApp emulators the gateway's accounts talk to."""

    vk: VkEmulator
    viber: ViberEmulator
    wa: WhatsAppEmulator

    def tweak(self, data: dict[str, Any]) -> None:
        data["channels"] += [
            {
                "id": "vk_shop",
                "kind": "vk",
                "token": VK_TOKEN,
                "group_id": VK_GROUP,
                "api_server": self.vk.base_url,
                "mode": "webhook",
                "secret": VK_SECRET,
            },
            {
                "id": "viber_shop",
                "kind": "viber",
                "token": VIBER_TOKEN,
                "name": "Shop",
                "api_server": self.viber.base_url,
                "welcome": "Hello! Write to us here.",
            },
            {
                "id": "wa_shop",
                "kind": "whatsapp",
                "token": WA_TOKEN,
                "phone_number_id": WA_NUMBER,
                "app_secret": WA_APP_SECRET,
                "verify_token": WA_VERIFY,
                "api_server": self.wa.base_url,
            },
        ]


@contextlib.asynccontextmanager
async def emulated_platforms() -> AsyncIterator[Platforms]:
    """The three emulators, each with the account the gateway's config names."""
    vk, viber, wa = VkEmulator(), ViberEmulator(), WhatsAppEmulator()
    await vk.start()
    await viber.start()
    await wa.start()
    vk.create_group(VK_GROUP, VK_TOKEN, "Shop", confirmation=VK_CONFIRMATION)
    viber.create_bot(VIBER_TOKEN, "Shop")
    wa.create_number(WA_NUMBER, "15550783881", WA_TOKEN, app_secret=WA_APP_SECRET)
    try:
        yield Platforms(vk, viber, wa)
    finally:
        await wa.stop()
        await viber.stop()
        await vk.stop()


@pytest.fixture
async def platforms() -> AsyncIterator[Platforms]:
    async with emulated_platforms() as emulated:
        yield emulated


# --- valid events of each platform, with fresh ids -----------------------------------


def _tg_message(n: int, chat: dict[str, Any], sender: dict[str, Any], **content: Any) -> Any:
    return {"message_id": n, "date": 1795459200, "chat": chat, "from": sender, **content}


def telegram_updates(n: int) -> list[dict[str, Any]]:
    """Updates a customer bot receives from a private chat (Bot API shapes)."""
    user = {"id": 5000 + n % 7, "is_bot": False, "first_name": "Ivan", "username": "ivan"}
    chat = {"id": user["id"], "type": "private", "first_name": "Ivan"}
    photo = [
        {"file_id": f"AgAD{n}s", "file_unique_id": "u1", "width": 90, "height": 90},
        {"file_id": f"AgAD{n}m", "file_unique_id": "u2", "width": 800, "height": 600},
    ]
    kinds: list[dict[str, Any]] = [
        {"text": "Где мой заказ?"},
        {"text": "/start", "entities": [{"type": "bot_command", "offset": 0, "length": 6}]},
        {"photo": photo, "caption": "чек"},
        {"document": {"file_id": "BQAD", "file_unique_id": "d", "file_name": "a.pdf"}},
        {"voice": {"file_id": "AwAD", "file_unique_id": "v", "duration": 3}},
        {
            "sticker": {
                "file_id": "CAAD",
                "file_unique_id": "s",
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": "👍",
            }
        },
        {"location": {"latitude": 55.75, "longitude": 37.62}},
        {
            "venue": {
                "location": {"latitude": 55.7, "longitude": 37.6},
                "title": "Shop",
                "address": "Tverskaya 1",
            },
            "location": {"latitude": 55.7, "longitude": 37.6},
        },
        {"contact": {"phone_number": "+79161234567", "first_name": "Ivan", "user_id": user["id"]}},
        {"dice": {"emoji": "🎲", "value": 3}},
        {"text": "ответ", "reply_to_message": _tg_message(1, chat, user, text="вопрос")},
    ]
    updates = [
        {"update_id": n, "message": _tg_message(n, chat, user, **content)} for content in kinds
    ]
    edited = _tg_message(n, chat, user, text="исправлено", edit_date=1795459300)
    updates.append({"update_id": n, "edited_message": edited})
    bot = {"id": 1001, "is_bot": True, "first_name": "Shop"}
    button = _tg_message(n, chat, bot, text="Choose", reply_markup={"inline_keyboard": []})
    query = {"id": str(n), "from": user, "chat_instance": "1", "message": button, "data": "x"}
    updates.append({"update_id": n, "callback_query": query})
    updates.append({"update_id": n, "message": _tg_message(n, chat, user, new_chat_title="t")})
    return updates


def staff_updates(n: int) -> list[dict[str, Any]]:
    """Updates the staff bot receives from the staff forum (an operator in a topic)."""
    operator = {"id": OPERATOR_ID, "is_bot": False, "first_name": "Anna", "username": "anna"}
    forum = {"id": STAFF_CHAT, "type": "supergroup", "title": "Staff", "is_forum": True}
    topic = {"message_thread_id": 2 + n % 3, "is_topic_message": True}
    card = _tg_message(n, forum, {"id": 2002, "is_bot": True, "first_name": "Staff"}, **topic)
    card["text"] = "📋 BP-20261123-0001"
    query = {"id": f"q{n}", "from": operator, "chat_instance": "2", "message": card}
    return [
        {"update_id": n, "message": _tg_message(n, forum, operator, text="Добрый день", **topic)},
        {"update_id": n, "message": _tg_message(n, forum, operator, text="/take", **topic)},
        {"update_id": n, "message": _tg_message(n, forum, operator, text="/status")},
        {"update_id": n, "callback_query": {**query, "data": "t:take"}},
    ]


def vk_events(n: int) -> list[dict[str, Any]]:
    """Callback API events of API 5.199 (what VK posts; secret and group_id added later)."""

    def new(**fields: Any) -> dict[str, Any]:
        message = {
            "date": 1795460000,
            "from_id": 300 + n % 5,
            "id": n,
            "out": 0,
            "peer_id": 300 + n % 5,
            "text": "",
            "conversation_message_id": n,
            "fwd_messages": [],
            "attachments": [],
            **fields,
        }
        return {
            "type": "message_new",
            "event_id": f"ev{n}",
            "v": "5.199",
            "object": {"message": message, "client_info": {"lang_id": 0}},
        }

    photo = {
        "id": 7,
        "owner_id": 300,
        "access_key": "k",
        "sizes": [
            {"type": "w", "url": "https://vk.test/w.jpg", "width": 1280, "height": 960},
            {"type": "s", "url": "https://vk.test/s.jpg", "width": 75, "height": 56},
        ],
    }
    doc = {
        "id": 8,
        "owner_id": 300,
        "title": "a.pdf",
        "ext": "pdf",
        "size": 4800,
        "url": "https://vk.test/doc",
    }
    voice = {
        "id": 9,
        "owner_id": 300,
        "duration": 3,
        "link_ogg": "https://vk.test/v.ogg",
        "link_mp3": "https://vk.test/v.mp3",
    }
    sticker = {"sticker_id": 1, "images": [{"url": "https://vk.test/st.png", "width": 128}]}
    edit = new(text="исправлено")["object"]["message"] | {"update_time": 1795460100}
    return [
        new(text="Здравствуйте! Где мой заказ?"),
        new(text="вот", attachments=[{"type": "photo", "photo": photo}]),
        new(
            attachments=[
                {"type": "doc", "doc": doc},
                {"type": "audio_message", "audio_message": voice},
            ]
        ),
        new(attachments=[{"type": "sticker", "sticker": sticker}]),
        new(
            attachments=[
                {"type": "video", "video": {"id": 1, "owner_id": 2}},
                {"type": "wall", "wall": {"id": 3, "owner_id": 4}},
                {"type": "link", "link": {"url": "https://x.test", "title": "X"}},
            ]
        ),
        new(text="тут", geo={"coordinates": {"latitude": 55.75, "longitude": 37.62}}),
        new(
            text="см.",
            fwd_messages=[{"from_id": 5, "text": "old"}],
            reply_message={"id": 1, "text": "q"},
        ),
        {"type": "message_edit", "event_id": f"ed{n}", "v": "5.199", "object": edit},
        {
            "type": "message_allow",
            "event_id": f"al{n}",
            "v": "5.199",
            "object": {"user_id": 300 + n % 5, "key": "k"},
        },
        {
            "type": "message_deny",
            "event_id": f"de{n}",
            "v": "5.199",
            "object": {"user_id": 300 + n % 5},
        },
        {"type": "message_typing_state", "event_id": f"ty{n}", "v": "5.199", "object": {}},
    ]


def viber_callbacks(n: int) -> list[dict[str, Any]]:
    """Viber REST Bot API callbacks (message tokens above 2**53, as Viber's are)."""
    token = 5741311803571721087 + n
    user = {"id": f"0123456789{n % 5}A==", "name": "Ivan", "language": "ru", "country": "RU"}
    media = "https://viber.test/m.jpg"

    def message(**body: Any) -> dict[str, Any]:
        return {
            "event": "message",
            "timestamp": 1795460000123,
            "message_token": token,
            "chat_hostname": "SN-CHAT-05_",
            "sender": user,
            "message": body,
            "silent": False,
        }

    def event(name: str, **extra: Any) -> dict[str, Any]:
        return {"event": name, "timestamp": 1795460000123, "message_token": token, **extra}

    return [
        message(type="text", text="Здравствуйте"),
        message(type="picture", media=media, text="чек", size=1200, file_name="x.jpg"),
        message(type="video", media=media, size=90000, duration=12),
        message(type="file", media=media, size=4800, file_name="invoice.pdf"),
        message(type="sticker", sticker_id=40133, media=media),
        message(type="contact", contact={"name": "Ivan", "phone_number": "+79161234567"}),
        message(type="location", location={"lat": 55.75, "lon": 37.62}),
        message(type="url", media="https://example.com/item/42"),
        message(type="rich_media", rich_media={"Type": "rich_media"}),
        event("subscribed", user=user, api_version=10),
        event("unsubscribed", user_id=user["id"]),
        event("delivered", user_id=user["id"]),
        event("seen", user_id=user["id"]),
        event("failed", user_id=user["id"], desc="failure"),
        event("conversation_started", type="open", context="", user=user, subscribed=False),
        event("webhook"),
    ]


def whatsapp_webhooks(n: int) -> list[dict[str, Any]]:
    """Cloud API webhook posts: each kind of message, a batch, statuses."""
    wa_id = f"7916123456{n % 7}"

    def msg(kind: str, body: Any, i: int = 0, **extra: Any) -> dict[str, Any]:
        return {
            "from": wa_id,
            "id": f"wamid.F{n}x{i}",
            "timestamp": "1795460000",
            "type": kind,
            kind: body,
            **extra,
        }

    def post(**value: Any) -> dict[str, Any]:
        metadata = {"display_phone_number": "15550783881", "phone_number_id": WA_NUMBER}
        change = {
            "field": "messages",
            "value": {"messaging_product": "whatsapp", "metadata": metadata, **value},
        }
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1029", "changes": [change]}],
        }

    contacts = [{"profile": {"name": "Ivan"}, "wa_id": wa_id}]
    kinds = [
        msg("text", {"body": "Здравствуйте"}),
        msg("image", {"id": "1001", "mime_type": "image/jpeg", "caption": "чек"}),
        msg("document", {"id": "1002", "filename": "a.pdf", "mime_type": "application/pdf"}),
        msg("audio", {"id": "1003", "mime_type": "audio/ogg", "voice": True}),
        msg("location", {"latitude": 55.75, "longitude": 37.62, "name": "Shop", "address": "1"}),
        msg("contacts", [{"name": {"formatted_name": "Anna"}, "phones": [{"phone": "+7916"}]}]),
        msg(
            "interactive",
            {"type": "list_reply", "list_reply": {"id": "a", "title": "A", "description": "d"}},
        ),
        msg("button", {"payload": "p", "text": "Да"}),
        msg("reaction", {"message_id": "wamid.X", "emoji": "👍"}),
        msg("unsupported", {}, errors=[{"code": 131051, "title": "Message type unknown"}]),
        msg("text", {"body": "ответ"}, context={"from": "15550783881", "id": "wamid.Q"}),
    ]
    status = {"id": f"wamid.S{n}", "recipient_id": wa_id, "timestamp": "1795460001"}
    failed = {
        **status,
        "status": "failed",
        "errors": [
            {
                "code": 131047,
                "title": "Re-engagement message",
                "error_data": {"details": "more than 24 hours"},
            }
        ],
    }
    return [
        *(post(contacts=contacts, messages=[m]) for m in kinds),
        post(
            contacts=contacts,
            messages=[msg("text", {"body": "a"}, 1), msg("video", {"id": "5"}, 2)],
        ),
        post(statuses=[{**status, "status": "delivered"}, {**status, "status": "read"}]),
        post(statuses=[failed, {**status, "status": "sent"}]),
    ]


# --- endpoints and how to sign for them ----------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    channel: str
    account: str
    corpus: Callable[[int], list[dict[str, Any]]]

    @property
    def path(self) -> str:
        return f"/webhook/{self.channel}/{self.account}"

    def authenticated(self, payload: Any) -> Any:
        """VK signs nothing: the secret and the community travel in the body."""
        if self.channel == "vk" and isinstance(payload, dict):
            return {**payload, "group_id": VK_GROUP, "secret": VK_SECRET}
        return payload

    def sign(self, body: bytes) -> dict[str, str]:
        if self.channel == "telegram":
            return {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
        if self.channel == "viber":
            digest = hmac.new(VIBER_TOKEN.encode(), body, hashlib.sha256).hexdigest()
            return {"X-Viber-Content-Signature": digest}
        if self.channel == "whatsapp":
            digest = hmac.new(WA_APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
            return {"X-Hub-Signature-256": f"sha256={digest}"}
        return {}


ENDPOINTS = (
    Endpoint("telegram", "tg_shop", telegram_updates),
    Endpoint("telegram", "staff", staff_updates),
    Endpoint("vk", "vk_shop", vk_events),
    Endpoint("viber", "viber_shop", viber_callbacks),
    Endpoint("whatsapp", "wa_shop", whatsapp_webhooks),
)
CHANNEL_OF = {e.account: e.channel for e in ENDPOINTS}


# --- mutations -----------------------------------------------------------------------

DEEP = "\x00deep\x00"  # placeholders replaced in the serialised body
NAN = "\x00nan\x00"
SPECIAL: list[Any] = [
    None, True, False, 0, -1, 2**63, -(2**70), 10**40, 0.5, -0.0, 1e308, "", " ", "0", "-7",
    "\u00b2", "\u0661\u0662\u0663", "nan", "inf", "1e999", "\x00", "\ud800", "a\udfffb",
    "\U0001f600", "\u202e", "x" * 5000, [], {}, [[]], {"": None}, [None], DEEP, NAN,
]  # fmt: skip
"""Any value in place of any other (superscript and Arabic digits pass str.isdigit())."""
values = st.one_of(
    st.sampled_from(SPECIAL).map(copy.deepcopy),  # a copy: later mutations may change it
    json_values,
    st.text(max_size=40),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)
EDGES: dict[type, list[Any]] = {
    int: [0, -1, 2**53 + 1, 2**64, -(2**63) - 1, 10**400, 1e308, "nan", "inf", "1e999", "42",
          True, NAN],
    float: [0.0, -0.0, 1e308, -1e308, 5e-324, 90.0000001, "nan", "-inf", "1e999", "55.7", NAN],
    str: ["", " ", "\ud800", "\udc00x", "\u00b2", "\u0661\u0662\u0663", "0", "-1", "nan",
          "1e999", "\x00", "x" * 5000, "\U0001f600" * 100, "http://", "/take", "t:take", "+",
          "wamid."],
    bool: [0, 1, "true", None],
}  # fmt: skip
"""Values of the right kind that are still wrong: what type checks let through."""
DEPTHS = st.sampled_from([30, 300, 990, 1100, 5000, 100_000])
CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/json; charset=latin-1",
        "\u00ff/\u00ff",
    ]
)


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in a JSON tree, to pick one to mutate."""
    found: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        for key, child in node.items():
            found.append((node, key))
            found += _slots(child)
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found.append((node, index))
            found += _slots(child)
    return found


LEAF_OPERATIONS = st.sampled_from(["edge"] * 5 + ["replace"] * 2 + ["drop", "drop", "stringify"])
NODE_OPERATIONS = st.sampled_from(["drop", "replace", "wrap", "grow", "add"])


@st.composite
def mutated_tree(draw: st.DrawFn, payload: Any, huge: tuple[int, ...]) -> Any:
    """Up to three mutations, mostly of single values (ids, texts, numbers): those are
    what get past the structure checks into the code that uses them."""
    tree = copy.deepcopy(payload)
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(tree)
        leaves = [(c, k) for c, k in slots if not isinstance(c[k], dict | list)]
        on_leaf = bool(leaves) and draw(st.integers(0, 9)) < 7
        if not slots:
            break
        container, key = draw(st.sampled_from(leaves if on_leaf else slots))
        operation = draw(LEAF_OPERATIONS if on_leaf else NODE_OPERATIONS)
        value = container[key]
        if operation == "drop":
            del container[key]
        elif operation == "replace":
            container[key] = draw(values)
        elif operation == "edge":
            container[key] = copy.deepcopy(draw(st.sampled_from(EDGES.get(type(value), SPECIAL))))
        elif operation == "stringify":
            container[key] = json.dumps(value) if not isinstance(value, str) else value * 3
        elif operation == "wrap":
            container[key] = draw(st.sampled_from([[value], {"v": value}]))
        elif operation == "grow" and isinstance(value, list) and value:
            container[key] = value * draw(st.integers(2, 60))
        elif operation == "grow":
            container[key] = "Я" * draw(st.sampled_from(huge))
        elif isinstance(value, dict):
            value[draw(st.text(max_size=10))] = draw(values)
    return tree


def serialise(tree: Any, ascii_only: bool, depth: int) -> bytes:
    text = json.dumps(tree, ensure_ascii=ascii_only)
    text = text.replace(json.dumps(DEEP), "[" * depth + "]" * depth)
    text = text.replace(json.dumps(NAN), "NaN")
    return text.encode("utf-8", "surrogatepass")  # lone surrogates as raw bytes, too


@st.composite
def mutated_bytes(draw: st.DrawFn, body: bytes) -> bytes:
    """Damage to the serialised body itself."""
    where = draw(st.integers(0, len(body)))
    return draw(
        st.sampled_from(
            [
                body[:where],  # truncated
                body[:where] + b"\xff\xfe\xc3" + body[where:],  # not UTF-8
                body[:where] + b"\xed\xa0\x80" + body[where:],  # an encoded surrogate
                b"\xef\xbb\xbf" + body,  # a byte order mark
                body + b" garbage",
                body.replace(b'"', b"'", 3),
                body.replace(b":", b"=", 1),
                b"",
            ]
        )
    )


@dataclass(frozen=True)
class Request:
    endpoint: Endpoint
    body: bytes
    headers: dict[str, str]
    note: str


@st.composite
def mutated_requests(
    draw: st.DrawFn,
    endpoints: tuple[Endpoint, ...] = ENDPOINTS,
    huge: tuple[int, ...] = (1000, 60_000, 300_000),
    keep: Callable[[dict[str, Any]], bool] = lambda _: True,
) -> Request:
    """A valid event of some platform (one ``keep`` accepts), mutated, then signed."""
    endpoint = draw(st.sampled_from(endpoints))
    seed = draw(st.integers(1, 2**31))
    payload = draw(st.sampled_from([p for p in endpoint.corpus(seed) if keep(p)]))
    tree = endpoint.authenticated(draw(mutated_tree(payload, huge)))
    if endpoint.channel == "vk" and draw(st.integers(0, 9)) == 0:
        tree = draw(mutated_tree(tree, huge))  # may break the secret or the community, too
    body = serialise(tree, draw(st.booleans()), draw(DEPTHS))
    if draw(st.integers(0, 5)) == 0:
        body = draw(mutated_bytes(body))
    headers = endpoint.sign(body)
    content_type = draw(CONTENT_TYPES)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return Request(endpoint, body, headers, "mutated")


# --- driving the gateway --------------------------------------------------------------


@dataclass
class Fuzzer:
    """Sends requests one at a time and checks the invariants around each."""

    running: Running
    http: aiohttp.ClientSession
    loop: asyncio.AbstractEventLoop
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run on the gateway's event loop (hypothesis runs in a thread beside it)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    async def footprint(self) -> tuple[int, ...]:
        """How many keys Redis holds and how long each inbound stream is."""
        async with self.running.redis.pipeline(transaction=False) as pipe:
            pipe.dbsize()
            for partition in range(self.running.settings.bus.partitions):
                pipe.xlen(keys.stream(keys.INBOUND, partition))
            return tuple(await pipe.execute())

    async def post(
        self, path: str, body: bytes, headers: dict[str, str], allowed: set[int], note: str = ""
    ) -> int:
        before = await self.footprint()
        data: Any = io.BytesIO(body) if len(body) > MAX_BODY else body
        skip = () if "Content-Type" in headers else ("Content-Type",)
        async with self.http.post(
            self.running.url + path, data=data, headers=headers, skip_auto_headers=skip
        ) as response:
            status = response.status
            answer = await response.read()
        self.statuses[status] += 1
        shown = f"{note} {path} {status} {answer[:200]!r} ← {body[:300]!r}"
        assert status < 500, shown
        assert status in allowed, shown
        if status != 200:
            assert await self.footprint() == before, f"a refused request changed Redis: {shown}"
        return status

    def send(self, request: Request, allowed: set[int]) -> int:
        endpoint = request.endpoint
        return self.call(
            self.post(endpoint.path, request.body, request.headers, allowed, request.note)
        )


async def fuzzer_for(running: Running, http: aiohttp.ClientSession) -> Fuzzer:
    return Fuzzer(running, http, asyncio.get_running_loop())


async def stored_events(running: Running) -> list[Any]:
    """Every stored inbound event, checked: it round-trips through the model exactly,
    belongs to a configured account of the right messenger, and has its dedup key."""
    events = []
    for partition in range(running.settings.bus.partitions):
        for _, fields in await running.redis.xrange(keys.stream(keys.INBOUND, partition)):
            raw = fields[b"e"]
            event = INBOUND.validate_json(raw)
            assert event.model_dump_json().encode() == raw, raw[:300]
            assert CHANNEL_OF[event.sender.account] == event.sender.channel.value, raw[:300]
            assert await running.redis.exists(keys.seen(event.key)), raw[:300]
            events.append(event)
    seen = [k async for k in running.redis.scan_iter(match="gw:seen:*", count=1000)]
    assert len(seen) == len(events)  # no dedup key without its event, and the reverse
    return events


async def still_answers(running: Running, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{running.url}/healthz") as response:
        assert response.status == 200
    update = telegram_updates(987654)[0]
    body = json.dumps(update).encode()
    headers = ENDPOINTS[0].sign(body)
    async with http.post(
        f"{running.url}/webhook/telegram/tg_shop", data=body, headers=headers
    ) as r:
        assert r.status == 200


# --- the tests ------------------------------------------------------------------------


async def mutation_fuzz(
    running: Running, endpoints: tuple[Endpoint, ...], examples: int
) -> tuple[Fuzzer, list[Any]]:
    """Send ``examples`` mutated, signed events to ``endpoints``; the stored events."""
    async with aiohttp.ClientSession() as http:
        fuzzer = await fuzzer_for(running, http)

        @settings(FUZZ, max_examples=examples)
        @given(request=mutated_requests(endpoints))
        def fuzz(request: Request) -> None:
            allowed = {200, 400, 413} | ({401} if request.endpoint.channel == "vk" else set())
            fuzzer.send(request, allowed)

        await asyncio.to_thread(fuzz)
        events = await stored_events(running)
        await still_answers(running, http)
    assert fuzzer.sent >= examples
    assert fuzzer.statuses[400] > examples // 5, fuzzer.statuses
    assert fuzzer.statuses[200] > examples // 10, fuzzer.statuses
    return fuzzer, events


async def test_mutated_telegram_updates_to_both_bots_are_stored_valid_or_refused(
    start_gateway: StartGateway, platforms: Platforms
) -> None:
    """Updates to the customer bot and the staff bot (messages of every kind, edits,
    button presses, commands), broken in a thousand ways and sent with the right
    secret: each is stored as a valid event or refused with a 4xx that leaves Redis
    untouched."""
    running = await start_gateway(workers=False, tweak=platforms.tweak)
    _, events = await mutation_fuzz(running, ENDPOINTS[:2], 1200)
    assert {e.sender.account for e in events} == {"tg_shop", "staff"}


async def test_mutated_vk_viber_whatsapp_events_are_stored_valid_or_refused(
    start_gateway: StartGateway, platforms: Platforms
) -> None:
    """VK callbacks, Viber callbacks and WhatsApp posts (messages, statuses, receipts,
    subscriptions), broken in a thousand ways and signed for real: each is stored as a
    valid event or refused with a 4xx that leaves Redis untouched."""
    running = await start_gateway(workers=False, tweak=platforms.tweak)
    _, events = await mutation_fuzz(running, ENDPOINTS[2:], 1300)
    assert {e.sender.account for e in events} == {"vk_shop", "viber_shop", "wa_shop"}


junk_bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda d: b"[" * d + b"]" * d, DEPTHS),
    st.builds(lambda d: b'{"a":' * d + b"1" + b"}" * d, DEPTHS),
    st.sampled_from(
        [
            b"",
            b"null",
            b"NaN",
            b'{"update_id": Infinity}',
            b'"\\ud800"',
            b"\xef\xbb\xbf{}",
            b"\x00" * 100,
            b"{" + b'"a":"' + b"x" * (MAX_BODY + 10) + b'"}',  # too big: 413
        ]
    ),
)


@st.composite
def junk_requests(draw: st.DrawFn) -> tuple[Request, bool]:
    """A junk body to any endpoint, signed (reaches the parser) or not."""
    endpoint = draw(st.sampled_from(ENDPOINTS))
    body = draw(junk_bodies)
    signed = draw(st.booleans())
    if endpoint.channel == "vk" and signed:
        tree = draw(json_values)
        body = json.dumps(endpoint.authenticated(tree if isinstance(tree, dict) else {})).encode()
    headers = endpoint.sign(body) if signed else {}
    if not signed and endpoint.channel != "telegram" and draw(st.booleans()):
        forged = draw(st.text(alphabet="0123456789abcdefABCDEF=sha", max_size=80))
        headers = {name: forged for name in endpoint.sign(b"")}
    content_type = draw(CONTENT_TYPES)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return Request(endpoint, body, headers, "signed junk" if signed else "unsigned junk"), signed


async def test_junk_bodies_and_forged_requests_are_refused_and_store_nothing(
    start_gateway: StartGateway, platforms: Platforms
) -> None:
    """Random bytes, invalid UTF-8, non-JSON, JSON that is not an event, nesting deeper
    than any parser goes, empty and oversized bodies, any content type: a 4xx, never a
    5xx, and not one event stored. Without a valid signature it is always 401."""
    running = await start_gateway(workers=False, tweak=platforms.tweak)
    async with aiohttp.ClientSession() as http:
        fuzzer = await fuzzer_for(running, http)

        @settings(FUZZ, max_examples=1500)
        @given(case=junk_requests())
        def fuzz(case: tuple[Request, bool]) -> None:
            request, signed = case
            if len(request.body) > MAX_BODY:
                allowed = {413} if signed or request.endpoint.channel == "vk" else {401, 413}
            elif signed:
                allowed = {200, 400}  # 200: an object the platform's format ignores
            elif request.endpoint.channel == "vk":
                allowed = {400, 401}  # VK's secret is inside the body: it must parse first
            else:
                allowed = {401}
            fuzzer.send(request, allowed)

        await asyncio.to_thread(fuzz)
        for path in ("/webhook/telegram/nobody", "/webhook/vk/tg_shop", "/webhook/x/wa_shop"):
            await fuzzer.post(path, b"{}", ENDPOINTS[0].sign(b"{}"), {404})
        assert await stored_events(running) == []
        await still_answers(running, http)
    assert fuzzer.sent >= 1500
    assert fuzzer.statuses[401] > 200 and fuzzer.statuses[400] > 200, fuzzer.statuses


query_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


@st.composite
def verification_queries(draw: st.DrawFn) -> dict[str, str]:
    query: dict[str, str] = {}
    for name, good in (("hub.mode", "subscribe"), ("hub.verify_token", WA_VERIFY)):
        choice = draw(st.sampled_from(["good", "good", "other", "missing", "near"]))
        if choice == "good":
            query[name] = good
        elif choice == "other":
            query[name] = draw(query_text)
        elif choice == "near":
            query[name] = draw(st.sampled_from([good.upper(), good[:-1], good + " ", good + "x"]))
    if draw(st.integers(0, 4)):
        query["hub.challenge"] = draw(query_text)
    return query


async def test_whatsapp_url_verification_echoes_only_for_the_verify_token(
    start_gateway: StartGateway, platforms: Platforms
) -> None:
    """Meta's GET check under random queries: the challenge is echoed exactly when
    hub.mode is "subscribe" and hub.verify_token matches; otherwise 403 (400 for a
    matching token without a challenge), and nothing is stored."""
    running = await start_gateway(workers=False, tweak=platforms.tweak)
    url = f"{running.url}/webhook/whatsapp/wa_shop"
    async with aiohttp.ClientSession() as http:

        async def get(target: str | URL, params: dict[str, str] | None = None) -> tuple[int, str]:
            async with http.get(target, params=params) as response:
                return response.status, (await response.read()).decode("utf-8", "replace")

        @settings(FUZZ, max_examples=500)
        @given(query=verification_queries())
        def fuzz(query: dict[str, str]) -> None:
            status, body = asyncio.run_coroutine_threadsafe(get(url, query), loop).result(30)
            trusted = (
                query.get("hub.mode") == "subscribe" and query.get("hub.verify_token") == WA_VERIFY
            )
            if trusted and query.get("hub.challenge"):
                assert (status, body) == (200, query["hub.challenge"])
            else:
                assert status == (400 if trusted else 403), (query, status, body)

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(fuzz)
        raw = [
            "hub.mode=subscribe&hub.verify_token=%FF%FE&hub.challenge=1",
            "hub.mode=subscribe&hub.verify_token=%ED%A0%80&hub.challenge=1",
            "hub.mode=%00&hub.verify_token=&hub.challenge=",
            "hub.verify_token=" + "A" * 5000,
        ]
        for query in raw:
            assert (await get(URL(f"{url}?{query}", encoded=True)))[0] == 403
        assert (await get(f"{running.url}/webhook/whatsapp/nobody"))[0] == 404
        assert (await get(f"{running.url}/webhook/telegram/tg_shop"))[0] == 403
        assert await stored_events(running) == []


def _put(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``tree`` with the value at ``path`` replaced."""
    tree = copy.deepcopy(tree)
    node = tree
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return tree


WA_VALUE = ("entry", 0, "changes", 0, "value")


def _hazards() -> list[tuple[str, Endpoint, bytes, int]]:
    """Inputs that once answered 500 or stored an event that could not be read back."""
    tg, staff, vk, viber, wa = ENDPOINTS
    wa_message = (*WA_VALUE, "messages", 0)

    def signed(endpoint: Endpoint, tree: Any) -> bytes:
        return json.dumps(endpoint.authenticated(tree)).encode()

    cases: list[tuple[str, Endpoint, bytes, int]] = []
    for endpoint in ENDPOINTS:
        start = signed(endpoint, {"update_id": 1, "event": "message"})[:-1]
        cases += [
            (
                "JSON nested deeper than the parser goes",
                endpoint,
                b"[" * 100_000 + b"]" * 100_000,
                400,
            ),
            ("an object nested deeply", endpoint, b'{"a":' * 5000 + b"1" + b"}" * 5000, 400),
            ("a NaN literal", endpoint, start + b', "n": NaN}', 400),
            ("a number too big for a float", endpoint, start + b', "n": 1e400}', 400),
        ]
    cases += [
        (
            "a lone surrogate in a text",
            tg,
            signed(tg, _put(telegram_updates(11)[0], ("message", "text"), "Где\ud800")),
            400,
        ),
        (
            "a lone surrogate in a caption",
            tg,
            signed(tg, _put(telegram_updates(12)[2], ("message", "caption"), "\udc00")),
            400,
        ),
        (
            "an encoded surrogate in a text",
            tg,
            json.dumps(
                _put(telegram_updates(13)[0], ("message", "text"), "\ud800"), ensure_ascii=False
            ).encode("utf-8", "surrogatepass"),
            400,
        ),
        (
            "a lone surrogate in a staff text",
            staff,
            signed(staff, _put(staff_updates(21)[0], ("message", "text"), "\ud800")),
            400,
        ),
        (
            "a lone surrogate in a VK text",
            vk,
            signed(vk, _put(vk_events(14)[0], ("object", "message", "text"), "\ud800")),
            400,
        ),
        (
            "a lone surrogate in a VK event id",
            vk,
            signed(vk, _put(vk_events(15)[0], ("event_id",), "\ud800")),
            400,
        ),
        (
            "a lone surrogate as VK's secret",
            vk,
            json.dumps({**vk.authenticated(vk_events(16)[0]), "secret": "\ud800"}).encode(),
            401,
        ),
        (
            "a lone surrogate in a Viber user id",
            viber,
            signed(viber, _put(viber_callbacks(17)[0], ("sender", "id"), "\udfff")),
            400,
        ),
        (
            "a lone surrogate in a WhatsApp text",
            wa,
            signed(wa, _put(whatsapp_webhooks(18)[0], (*wa_message, "text", "body"), "\ud800")),
            400,
        ),
        (
            "a batch whose second message cannot be stored",
            wa,
            signed(wa, _put(whatsapp_webhooks(19)[11], (*wa_message[:-1], 1, "id"), "w\udc00")),
            400,
        ),
        (
            "a Telegram location at NaN",
            tg,
            signed(tg, _put(telegram_updates(20)[6], ("message", "location", "latitude"), "nan")),
            400,
        ),
        (
            "a VK location at infinity",
            vk,
            signed(
                vk,
                _put(
                    vk_events(21)[5], ("object", "message", "geo", "coordinates", "latitude"), "inf"
                ),
            ),
            400,
        ),
        (
            "a Viber location at NaN",
            viber,
            signed(viber, _put(viber_callbacks(22)[6], ("message", "location", "lon"), "nan")),
            400,
        ),
        (
            "a WhatsApp location beyond floats",
            wa,
            signed(
                wa, _put(whatsapp_webhooks(23)[4], (*wa_message, "location", "latitude"), "1e999")
            ),
            400,
        ),
    ]
    return cases


async def _raw_post(running: Running, path: str, header: bytes, value: bytes) -> int:
    """A request whose header value is not UTF-8 (aiohttp's client cannot send one)."""
    reader, writer = await asyncio.open_connection(URL(running.url).host, URL(running.url).port)
    writer.write(
        b"POST "
        + path.encode()
        + b" HTTP/1.1\r\nHost: gateway\r\n"
        + header
        + b": "
        + value
        + b"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
        b"Connection: close\r\n\r\n{}"
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


async def test_known_hazards_are_refused_and_store_nothing(
    start_gateway: StartGateway, platforms: Platforms
) -> None:
    """What the fuzz found, kept as fixed cases: deep nesting, NaN and overflowing
    numbers, lone surrogates (escaped or as raw bytes, in texts, ids, secrets, one bad
    message in a batch), non-finite coordinates, and auth headers that are not UTF-8.
    Each is a 4xx that changes nothing in Redis, never a 500 or a stored event that
    cannot be read back."""
    running = await start_gateway(workers=False, tweak=platforms.tweak)
    async with aiohttp.ClientSession() as http:
        fuzzer = await fuzzer_for(running, http)
        for what, endpoint, body, expected in _hazards():
            await fuzzer.post(endpoint.path, body, endpoint.sign(body), {expected}, what)
        for endpoint in (ENDPOINTS[0], ENDPOINTS[1], ENDPOINTS[3], ENDPOINTS[4]):
            [header] = endpoint.sign(b"{}")
            for value in (b"\xff\xfe", b"sha256=\xed\xa0\x80", WEBHOOK_SECRET.encode() + b"\x80"):
                before = await fuzzer.footprint()
                status = await _raw_post(running, endpoint.path, header.encode(), value)
                assert status == 401, (endpoint.path, value)
                assert await fuzzer.footprint() == before
        assert await stored_events(running) == []
        await still_answers(running, http)


def without_known_blockers(payload: dict[str, Any]) -> bool:
    """Leaves out VK/Viber media links: their hosts do not resolve here, which is a
    network error the gateway rightly keeps retrying (the file may come back), so such
    a contact's queue would wait for the whole test."""
    shown = json.dumps(payload)
    return "vk.test" not in shown and "viber.test" not in shown


async def test_after_the_fuzz_the_workers_run_and_every_messenger_still_reaches_staff(
    world: World, start_gateway: StartGateway, platforms: Platforms
) -> None:
    """Mutated events that were still valid are stored; a gateway with workers then
    handles all of them without a poison entry, stays ready, and a customer's next
    message from each messenger reaches its staff topic."""
    webhooks = await start_gateway(workers=False, tweak=platforms.tweak)
    async with aiohttp.ClientSession() as http:
        fuzzer = await fuzzer_for(webhooks, http)

        @settings(FUZZ, max_examples=300)
        @given(request=mutated_requests(huge=(1000, 5000), keep=without_known_blockers))
        def fuzz(request: Request) -> None:
            allowed = {200, 400, 413} | ({401} if request.endpoint.channel == "vk" else set())
            fuzzer.send(request, allowed)

        await asyncio.to_thread(fuzz)
        assert len(await stored_events(webhooks)) > 20
        await webhooks.stop()

        running = await start_gateway(tweak=platforms.tweak)

        async def drained() -> bool:
            return await running.app.bus.depth(keys.INBOUND) == 0

        await eventually(drained, timeout=40)
        for family in keys.FAMILIES:  # no poison entry anywhere along the way
            assert not await running.redis.exists(keys.dead_letters(family))
        async with http.get(f"{running.url}/readyz") as response:
            assert response.status == 200, await response.text()

        ivan = world.customer("Ivan", "ivan_after")
        await world.say(ivan, text="after the fuzz: telegram")
        vk_user = platforms.vk.create_user("Vera", "After")
        platforms.vk.user_send(VK_GROUP, vk_user, "after the fuzz: vk")
        viber_user = platforms.viber.create_user("Oleg After")
        platforms.viber.user_send(VIBER_TOKEN, viber_user, "after the fuzz: viber")
        wa_user = platforms.wa.create_user("Pavel After")
        platforms.wa.user_send(WA_NUMBER, wa_user, "after the fuzz: whatsapp")
        for messenger in ("telegram", "vk", "viber", "whatsapp"):
            said = await world.in_staff(saying(f"after the fuzz: {messenger}"), timeout=20)
            assert said.get("message_thread_id")


def saying(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda message: text_of(message) == text


# --- bugs the fuzz found beyond the webhooks (fixed; kept as regressions) ----------


def _signed_post(running: Running, endpoint: Endpoint, payload: Any) -> Coroutine[Any, Any, int]:
    async def post() -> int:
        body = json.dumps(payload).encode()
        async with (
            aiohttp.ClientSession() as http,
            http.post(running.url + endpoint.path, data=body, headers=endpoint.sign(body)) as r,
        ):
            return r.status

    return post()


async def test_two_receipts_for_a_message_not_linked_yet_wait_together(
    world: World, start_gateway: StartGateway, platforms: Platforms
) -> None:
    """WhatsApp's "delivered" and "read" in one post, for a message the gateway has not
    linked to a staff message (its send's answer not stored yet, or sent from another
    client): both are parked, nothing is dead-lettered."""
    running = await start_gateway(tweak=platforms.tweak)
    pavel = platforms.wa.create_user("Pavel", "79160000001")
    platforms.wa.user_send(WA_NUMBER, pavel, "hello")
    await world.in_staff(saying("hello"))
    statuses = _put(whatsapp_webhooks(61)[12], (*WA_VALUE, "statuses", 0, "recipient_id"), pavel)
    statuses = _put(statuses, (*WA_VALUE, "statuses", 1, "recipient_id"), pavel)
    assert await _signed_post(running, ENDPOINTS[4], statuses) == 200

    async def handled() -> bool:
        return await running.app.bus.depth(keys.INBOUND) == 0

    await eventually(handled)
    assert not await running.redis.exists(keys.dead_letters(keys.INBOUND))


async def test_a_media_link_that_is_not_a_url_does_not_hold_up_the_customer(
    world: World, start_gateway: StartGateway, platforms: Platforms
) -> None:
    """A Viber picture whose media is "http://": staff are told it could not be
    fetched, and the customer's next message still reaches the topic."""
    running = await start_gateway(tweak=platforms.tweak)
    olga = platforms.viber.create_user("Olga")
    picture = _put(viber_callbacks(62)[1], ("sender", "id"), olga)
    picture = _put(picture, ("message", "media"), "http://")
    assert await _signed_post(running, ENDPOINTS[3], picture) == 200
    platforms.viber.user_send(VIBER_TOKEN, olga, "are you there?")
    await world.in_staff(saying("are you there?"), timeout=3)
