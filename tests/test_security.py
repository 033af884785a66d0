"""Security (issue 7): forged webhooks, strangers in and around the staff group, secrets
in logs.

Complements what the flow tests already check (a wrong or missing Telegram secret, a
zero Viber signature, a wrong VK secret or community, a wrong WhatsApp verify token, a
non-operator's plain message in a topic, a stranger's /online in a private chat, a
non-operator pressing Take).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from gateway import logging as gateway_logging
from tests.conftest import (
    CUSTOMER_TOKEN,
    OPERATOR_ID,
    STAFF_CHAT,
    STAFF_TOKEN,
    WEBHOOK_SECRET,
    Running,
    StartGateway,
    World,
    answer_of,
    buttons_of,
    eventually,
    text_of,
)
from tests.logs import production_logs
from tests.test_fuzz_webhooks import (
    VIBER_TOKEN,
    VK_CONFIRMATION,
    VK_GROUP,
    VK_SECRET,
    VK_TOKEN,
    WA_APP_SECRET,
    WA_NUMBER,
    WA_TOKEN,
    WA_VERIFY,
    Platforms,
    emulated_platforms,
    telegram_updates,
    viber_callbacks,
    vk_events,
    whatsapp_webhooks,
)

POLLING_TOKEN = "3003:polling-bot-token-cccccccccccccccccccc"
TG_HEADER = "X-Telegram-Bot-Api-Secret-Token"
VIBER_HEADER = "X-Viber-Content-Signature"
WA_HEADER = "X-Hub-Signature-256"
BORIS = 700002


@pytest.fixture
async def platforms() -> AsyncIterator[Platforms]:
    async with emulated_platforms() as emulated:
        yield emulated


def _hex(key: str, body: bytes, digest: Any = hashlib.sha256) -> str:
    return hmac.new(key.encode(), body, digest).hexdigest()


async def _nothing_stored(running: Running) -> None:
    assert await running.app.bus.depth("in") == 0
    assert await running.redis.keys("gw:seen:*") == []


def _with_polling_account(platforms: Platforms) -> Callable[[dict[str, Any]], None]:
    def tweak(data: dict[str, Any]) -> None:
        platforms.tweak(data)
        api = data["channels"][0]["api_server"]
        data["channels"].append(
            {
                "id": "tg_poll",
                "kind": "telegram",
                "token": POLLING_TOKEN,
                "api_server": api,
                "mode": "polling",
            }
        )

    return tweak


async def test_forged_signatures_and_secrets_are_refused_on_every_platform(
    world: World, start_gateway: StartGateway, platforms: Platforms
) -> None:
    """Each forged request carries a valid event, so only authentication stops it:
    near-miss secrets, a real signature over another body, signatures made with another
    key or hash, of the wrong length or format, or in the wrong header; VK secrets of
    the wrong type; a polling account's webhook. All 401 (403 for Meta's GET check), and
    nothing is stored. The same events, signed properly, are then accepted."""
    world.emulator.set_bot_username(POLLING_TOKEN, "poll_bot")
    running = await start_gateway(workers=False, tweak=_with_polling_account(platforms))
    tg_body = json.dumps(telegram_updates(41)[0]).encode()
    viber_body = json.dumps(viber_callbacks(42)[0]).encode()
    other_viber = json.dumps(viber_callbacks(43)[0]).encode()
    wa_body = json.dumps(whatsapp_webhooks(44)[0]).encode()
    other_wa = json.dumps(whatsapp_webhooks(45)[0]).encode()
    vk_event = {**vk_events(46)[0], "group_id": VK_GROUP}
    viber_sig = _hex(VIBER_TOKEN, viber_body)
    wa_sig = "sha256=" + _hex(WA_APP_SECRET, wa_body)
    tg, viber, wa = TG_HEADER, VIBER_HEADER, WA_HEADER
    forged: list[tuple[str, str, bytes, dict[str, str]]] = []
    for path in ("telegram/tg_shop", "telegram/staff"):
        near_misses = {
            "the secret in another case": {tg: WEBHOOK_SECRET.upper()},
            "the secret without its last character": {tg: WEBHOOK_SECRET[:-1]},
            "the secret with one more character": {tg: WEBHOOK_SECRET + "0"},
            "the bot token as the secret": {tg: CUSTOMER_TOKEN},
            "the secret in another header": {"Authorization": WEBHOOK_SECRET},
        }
        forged += [(what, path, tg_body, h) for what, h in near_misses.items()]
    forged.append(("a polling account", "telegram/tg_poll", tg_body, {tg: WEBHOOK_SECRET}))
    raw_digest = hmac.new(VIBER_TOKEN.encode(), viber_body, hashlib.sha256).digest()
    viber_forgeries = {
        "a real signature of another body": {viber: _hex(VIBER_TOKEN, other_viber)},
        "signed with WhatsApp's app secret": {viber: _hex(WA_APP_SECRET, viber_body)},
        "HMAC-SHA1 instead of SHA-256": {viber: _hex(VIBER_TOKEN, viber_body, hashlib.sha1)},
        "one hex digit short": {viber: viber_sig[:-1]},
        "one hex digit too many": {viber: viber_sig + "0"},
        "base64 instead of hex": {viber: base64.b64encode(raw_digest).decode()},
        "WhatsApp's format": {viber: "sha256=" + viber_sig},
        "the signature in WhatsApp's header": {wa: viber_sig},
    }
    forged += [
        (f"Viber: {what}", "viber/viber_shop", viber_body, h) for what, h in viber_forgeries.items()
    ]
    wa_forgeries = {
        "a real signature of another body": {wa: "sha256=" + _hex(WA_APP_SECRET, other_wa)},
        "signed with the access token": {wa: "sha256=" + _hex(WA_TOKEN, wa_body)},
        "without the sha256= prefix": {wa: _hex(WA_APP_SECRET, wa_body)},
        "the legacy SHA-1 header only": {
            "X-Hub-Signature": "sha1=" + _hex(WA_APP_SECRET, wa_body, hashlib.sha1)
        },
        "one hex digit short": {wa: wa_sig[:-1]},
        "the signature in Viber's header": {viber: wa_sig},
    }
    forged += [
        (f"WhatsApp: {what}", "whatsapp/wa_shop", wa_body, h) for what, h in wa_forgeries.items()
    ]
    vk_forgeries: dict[str, Any] = {
        f"secret {secret!r}": {**vk_event, "secret": secret}
        for secret in (VK_SECRET.upper(), VK_SECRET[:-1], "", 12345, None, [VK_SECRET], VK_TOKEN)
    }
    vk_forgeries["no secret, the community as a string"] = {**vk_event, "group_id": str(VK_GROUP)}
    vk_forgeries["the community as a string"] = {
        **vk_event,
        "group_id": str(VK_GROUP),
        "secret": VK_SECRET,
    }
    vk_forgeries["no community"] = {
        **{k: v for k, v in vk_event.items() if k != "group_id"},
        "secret": VK_SECRET,
    }
    forged += [
        (f"VK: {what}", "vk/vk_shop", json.dumps(event).encode(), {})
        for what, event in vk_forgeries.items()
    ]
    forged.append(
        (
            "VK: the secret in a header",
            "vk/vk_shop",
            json.dumps(vk_event).encode(),
            {"X-Secret": VK_SECRET},
        )
    )
    async with aiohttp.ClientSession() as http:
        for what, path, body, headers in forged:
            async with http.post(f"{running.url}/webhook/{path}", data=body, headers=headers) as r:
                assert r.status == 401, (what, r.status, await r.text())
                assert (await r.json())["ok"] is False
        await _nothing_stored(running)

        # VK's confirmation request names the community; a wrong secret or community
        # does not get the code.
        for confirmation in (
            {"type": "confirmation", "group_id": VK_GROUP, "secret": "wrong"},
            {"type": "confirmation", "group_id": VK_GROUP + 1},
        ):
            async with http.post(f"{running.url}/webhook/vk/vk_shop", json=confirmation) as r:
                assert r.status == 401 and VK_CONFIRMATION not in await r.text()

        # Meta's GET check: nothing but the exact verify token with mode=subscribe.
        url = f"{running.url}/webhook/whatsapp/wa_shop"
        good = {"hub.mode": "subscribe", "hub.verify_token": WA_VERIFY, "hub.challenge": "8151"}
        for query in (
            good | {"hub.verify_token": WA_VERIFY[:-1]},
            good | {"hub.verify_token": WA_VERIFY.upper()},
            good | {"hub.verify_token": WA_APP_SECRET},
            good | {"hub.mode": "unsubscribe"},
            {k: v for k, v in good.items() if k != "hub.verify_token"},
            {k: v for k, v in good.items() if k != "hub.mode"},
        ):
            async with http.get(url, params=query) as r:
                assert r.status == 403 and "8151" not in await r.text(), query
        async with http.get(url, params=good) as r:
            assert r.status == 200 and await r.text() == "8151"

        # The same events with real credentials: the refusals were about credentials.
        accepted = [
            ("telegram/tg_shop", tg_body, {tg: WEBHOOK_SECRET}),
            ("viber/viber_shop", viber_body, {viber: viber_sig}),
            ("whatsapp/wa_shop", wa_body, {wa: wa_sig}),
            ("vk/vk_shop", json.dumps({**vk_event, "secret": VK_SECRET}).encode(), {}),
        ]
        for path, body, headers in accepted:
            async with http.post(f"{running.url}/webhook/{path}", data=body, headers=headers) as r:
                assert r.status == 200, (path, await r.text())
    assert await running.app.bus.depth("in") == 4


async def test_credentials_are_compared_in_constant_time(
    start_gateway: StartGateway, platforms: Platforms, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every credential check — Telegram's secret header, VK's secret, Viber's and
    WhatsApp's signatures, Meta's verify token — goes through hmac.compare_digest with
    the expected value, so a forger learns nothing from how long a refusal takes."""
    running = await start_gateway(workers=False, tweak=platforms.tweak)
    compared: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((bytes(a), bytes(b)))
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    viber_body = json.dumps(viber_callbacks(51)[0]).encode()
    wa_body = json.dumps(whatsapp_webhooks(52)[0]).encode()
    vk_body = json.dumps({**vk_events(53)[0], "group_id": VK_GROUP, "secret": "guess"}).encode()
    viber_expected = _hex(VIBER_TOKEN, viber_body).encode()
    wa_expected = ("sha256=" + _hex(WA_APP_SECRET, wa_body)).encode()
    secret = WEBHOOK_SECRET.encode()
    cases: list[tuple[str, bytes, dict[str, str], tuple[bytes, bytes]]] = [
        ("telegram/tg_shop", b"{}", {TG_HEADER: "guess"}, (b"guess", secret)),
        ("telegram/staff", b"{}", {TG_HEADER: "guess"}, (b"guess", secret)),
        ("vk/vk_shop", vk_body, {}, (b"guess", VK_SECRET.encode())),
        ("viber/viber_shop", viber_body, {VIBER_HEADER: "0" * 64}, (b"0" * 64, viber_expected)),
        ("whatsapp/wa_shop", wa_body, {WA_HEADER: "sha256=00"}, (b"sha256=00", wa_expected)),
    ]
    async with aiohttp.ClientSession() as http:
        for path, body, headers, pair in cases:
            compared.clear()
            async with http.post(f"{running.url}/webhook/{path}", data=body, headers=headers) as r:
                assert r.status == 401
            assert compared == [pair], path
        compared.clear()
        query = {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"}
        async with http.get(f"{running.url}/webhook/whatsapp/wa_shop", params=query) as r:
            assert r.status == 403
        assert compared == [(b"guess", WA_VERIFY.encode())]
    await _nothing_stored(running)


async def _card_of(world: World) -> dict[str, Any]:
    return await world.in_staff(lambda m: text_of(m).startswith("📋 BP-"))


async def test_strangers_in_the_staff_group_can_neither_command_nor_press_buttons(
    world: World, start_gateway: StartGateway
) -> None:
    """A member of the staff group who is not in staff.operators: task commands, quick
    replies, availability commands and replies in a customer's topic, and presses of
    the card's and the bot's offer buttons. Nothing is executed — no task taken,
    closed, transferred or renamed, nothing sent to the customer, no answer to the
    commands — each press is refused with an alert, and each is logged."""
    world.emulator.create_user(first_name="Boris", user_id=BORIS)
    world.emulator.add_member(STAFF_CHAT, BORIS)

    def config(data: dict[str, Any]) -> None:
        data["staff"]["operators"].append({"id": BORIS, "name": "Boris"})
        data["channels"][0]["close_reasons"] = ["sold", "spam"]
        data["templates"] = [{"name": "greet", "text": "Hello from the shop"}]

    running = await start_gateway(tweak=config)
    ivan = world.customer()
    await world.say(ivan, text="hello")
    card = await _card_of(world)
    topic = card["message_thread_id"]
    operator = world.operator["id"]

    async def press(user: int, message: dict[str, Any], data: str) -> dict[str, Any]:
        query = await world.emulator.press_button(user, STAFF_CHAT, message["message_id"], data)
        return await answer_of(world, query)

    await press(operator, card, "t:transfer")  # Anna opens the offers, then Mallory presses
    offer = await world.in_staff(lambda m: text_of(m) == "Transfer to whom?")
    await press(operator, card, "t:close")
    reasons = await world.in_staff(lambda m: text_of(m) == "Close with which reason?")
    events_before = await running.event_types()
    customer_before = [text_of(m) for m in world.emulator.messages(ivan["id"])]

    mallory = world.emulator.create_user(first_name="Mallory", username="mallory")
    world.emulator.add_member(STAFF_CHAT, mallory["id"])
    commands = [
        "/take",
        "/close spam",
        "/transfer Boris",
        "/rename Hacked",
        "/reopen",
        "/t greet",
        "//greet",
        "//",
        "/online",
        "/status",
        "/history",
        "/id",
        "a reply to the customer",
    ]
    with capture_logs() as logs:
        said = [
            await world.emulator.user_sends(
                mallory["id"], chat_id=STAFF_CHAT, message_thread_id=topic, text=command
            )
            for command in commands
        ]
        presses = [(card, "t:take"), (card, "t:close"), (card, "t:transfer")]
        presses += [(offer, b["callback_data"]) for b in buttons_of(offer)]
        presses += [(reasons, b["callback_data"]) for b in buttons_of(reasons)]
        for message, data in presses:
            refused = await press(mallory["id"], message, data)
            assert refused.get("show_alert") and "Only operators" in refused.get("text", ""), data
        # The operator's /task is handled after all of the above (same topic, in order).
        task = await world.answer_to(await world.operator_says(topic, text="/task"))

    assert "Status: 🟢 new\n" in text_of(task), text_of(task)  # nobody has it
    assert "Hacked" not in text_of(task)
    assert await running.event_types() == events_before  # no task or process changed
    assert [text_of(m) for m in world.emulator.messages(ivan["id"])] == customer_before
    answered = {(m.get("reply_to_message") or {}).get("message_id") for m in world.staff_messages()}
    assert not answered & {m["message_id"] for m in said}  # not one command was answered
    events = [e["event"] for e in logs]
    assert events.count("staff.not_an_operator") == len(commands)
    assert events.count("staff.callback_by_non_operator") == len(presses)


async def test_updates_from_other_chats_are_ignored_by_both_bots(
    world: World, start_gateway: StartGateway
) -> None:
    """The staff bot in another group, an operator's commands there, a button press
    from there, a stranger's private commands to the staff bot, and the customer bot
    added to a group: all ignored and logged; no answer, no presence change, no topic,
    no task taken."""
    running = await start_gateway()
    ivan = world.customer()
    await world.say(ivan, text="hello")
    card = await _card_of(world)
    topic = card["message_thread_id"]
    elsewhere = world.emulator.create_forum_group(
        title="Elsewhere",
        members=[OPERATOR_ID],
        bot_tokens=[STAFF_TOKEN, CUSTOMER_TOKEN],
        chat_id=-1005550000099,
    )["id"]
    stranger = world.customer("Mallory", "mallory")
    events_before = await running.event_types()
    topics_before = len(world.emulator.topics(STAFF_CHAT))
    operator = world.operator["id"]

    with capture_logs() as logs:
        for command in ("/online", "/take", "/status", "/overdue"):
            await world.emulator.user_sends(operator, chat_id=elsewhere, text=command)
        for command in ("/status", "/queue", "/take", "/online"):
            await world.emulator.user_sends(stranger["id"], bot_token=STAFF_TOKEN, text=command)
        # A press on a message of another chat, as Telegram would deliver it.
        forum = {"id": elsewhere, "type": "supergroup", "title": "Elsewhere", "is_forum": True}
        pressed = {
            "message_id": card["message_id"],
            "date": 1795459200,
            "chat": forum,
            "from": {"id": 2002, "is_bot": True, "first_name": "Staff"},
            "text": "📋",
            "message_thread_id": topic,
            "is_topic_message": True,
        }
        update = {
            "update_id": 777001,
            "callback_query": {
                "id": "777001",
                "from": world.operator,
                "chat_instance": "9",
                "message": pressed,
                "data": "t:take",
            },
        }
        async with aiohttp.ClientSession() as http:
            headers = {TG_HEADER: WEBHOOK_SECRET}
            url = f"{running.url}/webhook/telegram/staff"
            async with http.post(url, json=update, headers=headers) as response:
                assert response.status == 200
        await world.emulator.user_sends(operator, chat_id=elsewhere, text="customer bot, hi")
        status = await world.answer_to(
            await world.emulator.user_sends(operator, chat_id=STAFF_CHAT, text="/status")
        )
        await eventually(lambda: any(e["event"] == "inbound.ignored_group_message" for e in logs))

    assert "⚪️ Anna: offline" in text_of(status)  # /online elsewhere changed nothing

    def by_bots(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [m for m in messages if (m.get("from") or {}).get("is_bot")]

    assert by_bots(world.emulator.messages(elsewhere)) == []  # neither bot said a word there
    assert by_bots(world.emulator.messages(stranger["id"], bot_token=STAFF_TOKEN)) == []
    assert await running.event_types() == events_before
    assert len(world.emulator.topics(STAFF_CHAT)) == topics_before  # no topic for a group
    events = [e["event"] for e in logs]
    # Both bots see the five messages in the other group; the staff bot the four private.
    assert events.count("staff.foreign_chat_ignored") == 5 + 4
    assert events.count("inbound.ignored_group_message") == 5
    assert events.count("staff.foreign_callback_ignored") == 1


async def test_secrets_never_reach_the_logs(
    world: World, start_gateway: StartGateway, platforms: Platforms
) -> None:
    """The production log pipeline (JSON, at debug level, libraries included) during a
    conversation on every messenger, with Bot API failures and retries and forged
    webhooks: not one configured token, secret, app secret or verify token appears in
    the output — even where a library logs a request that carries one."""
    running = await start_gateway(tweak=platforms.tweak)
    secrets = running.settings.secrets()
    assert {
        CUSTOMER_TOKEN,
        STAFF_TOKEN,
        WEBHOOK_SECRET,
        VK_TOKEN,
        VK_SECRET,
        VIBER_TOKEN,
        WA_TOKEN,
        WA_APP_SECRET,
        WA_VERIFY,
    } <= set(secrets)
    with production_logs("debug", secrets) as output:
        await _conversations(world, running, platforms)
    logged = output.getvalue()
    for event in ("inbound.accepted", "webhook.unauthorized", "delivery.retry"):
        assert event in logged, event  # the flow was really logged
    # viberbot logs each send's payload at debug level, auth token included: redacted.
    assert f"'auth_token': '{gateway_logging.REDACTED}'" in logged
    for secret in secrets:
        assert secret not in logged, "a configured secret was logged"


async def _conversations(world: World, running: Running, platforms: Platforms) -> None:
    """Every messenger once, with a failing Bot API and forged webhooks."""
    ivan = world.customer()
    world.emulator.inject_fault("sendMessage", status=500, count=2)
    await world.say(ivan, text="hello")
    topic = (await world.in_staff(lambda m: text_of(m) == "hello"))["message_thread_id"]
    world.emulator.inject_fault("sendMessage", status=429, retry_after=1)
    await world.operator_says(topic, text="Hello, Ivan")
    await world.in_private(ivan, lambda m: text_of(m) == "Hello, Ivan")

    olga = platforms.viber.create_user("Olga")
    platforms.viber.user_send(VIBER_TOKEN, olga, "viber hello")
    viber_topic = await world.in_staff(lambda m: text_of(m) == "viber hello")
    await world.operator_says(viber_topic["message_thread_id"], text="Hello, Olga")
    await eventually(
        lambda: any(
            m.get("text") == "Hello, Olga" for m in platforms.viber.conversation(VIBER_TOKEN, olga)
        )
    )
    vera = platforms.vk.create_user("Vera", "K")
    platforms.vk.user_send(VK_GROUP, vera, "vk hello")
    await world.in_staff(lambda m: text_of(m) == "vk hello")
    pavel = platforms.wa.create_user("Pavel")
    platforms.wa.user_send(WA_NUMBER, pavel, "wa hello")
    await world.in_staff(lambda m: text_of(m) == "wa hello")

    async with aiohttp.ClientSession() as http:
        for path, headers in (
            ("telegram/tg_shop", {TG_HEADER: "forged"}),
            ("viber/viber_shop", {VIBER_HEADER: "0" * 64}),
            ("whatsapp/wa_shop", {WA_HEADER: "sha256=00"}),
        ):
            async with http.post(f"{running.url}/webhook/{path}", data=b"{}", headers=headers):
                pass
        query = {"hub.mode": "subscribe", "hub.verify_token": WA_VERIFY, "hub.challenge": "1"}
        async with http.get(f"{running.url}/webhook/whatsapp/wa_shop", params=query):
            pass
    await asyncio.sleep(0.2)  # let the last log lines of the workers be written
