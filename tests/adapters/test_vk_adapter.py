"""The VK adapter (vk_api in worker threads) against the VK emulator over loopback HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from adapters.base import Upload
from adapters.vk import VkAdapter
from gateway.config import DeliverySettings, VkChannel
from gateway.errors import PermanentError, TransientError
from gateway.model import (
    AccountId,
    Attachment,
    ChatId,
    Content,
    Destination,
    InboundEvent,
    InboundMessage,
    InboundStatus,
    Kind,
    MessageId,
)
from gateway.sandbox.vk import VkEmulator

GROUP = 229000001
TOKEN = "vk1.a.community-token"
ACCOUNT = AccountId("vk_shop")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
async def vk() -> AsyncIterator[VkEmulator]:
    emulator = VkEmulator()
    await emulator.start()
    emulator.create_group(GROUP, TOKEN, "Shop", confirmation="c0nf1rm")
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest.fixture
async def adapter(vk: VkEmulator) -> AsyncIterator[VkAdapter]:
    settings = VkChannel(id=ACCOUNT, kind="vk", token=TOKEN, group_id=GROUP, api_server=vk.base_url)
    adapter = VkAdapter(ACCOUNT, settings, DeliverySettings(request_timeout_seconds=5))
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.stop()


async def listening(adapter: VkAdapter) -> None:
    """Start the long poll: like VK, it delivers what comes after the first request."""
    assert (await adapter.poll(None, 1)).updates == []


async def poll_events(adapter: VkAdapter, count: int) -> list[InboundEvent]:
    """Long-poll until ``count`` events were parsed (each poll waits at most 1 s)."""
    events: list[InboundEvent] = []
    cursor = None
    for _ in range(20):
        batch = await adapter.poll(cursor, 1)
        cursor = batch.cursor
        for update in batch.updates:
            events += await adapter.enrich(adapter.parse(update, NOW))
        if len(events) >= count:
            return events
    raise AssertionError(f"got {len(events)} of {count} events")


def dest(user: int, reply_to: str | None = None) -> Destination:
    return Destination(
        account=ACCOUNT,
        chat_id=ChatId(str(user)),
        reply_to=MessageId(reply_to) if reply_to else None,
    )


async def test_every_kind_of_message_arrives_by_long_poll_with_names(
    vk: VkEmulator, adapter: VkAdapter
) -> None:
    await listening(adapter)
    user = vk.create_user("Иван", "Петров", screen_name="ivan_p", photo=PNG)
    first = vk.user_send(GROUP, user, "Здравствуйте")
    vk.user_send(GROUP, user, "вот фото", photo=PNG)
    vk.user_send(GROUP, user, doc=("invoice.pdf", b"%PDF-1.4 ..."))
    vk.user_send(GROUP, user, voice=b"OggS" + b"\x00" * 50)
    vk.user_send(GROUP, user, sticker=True)
    vk.user_send(GROUP, user, video=True)
    vk.user_send(GROUP, user, wall=True)
    vk.user_send(GROUP, user, link="https://example.com/item/42")
    vk.user_send(GROUP, user, geo=(55.75, 37.62))
    vk.user_send(GROUP, user, "ответ", reply_to=first["id"])
    vk.user_send(GROUP, user, "смотрите", forward=[first["id"]])
    vk.user_edit(GROUP, user, first["id"], "Здравствуйте!")
    vk.user_deny(GROUP, user)
    vk.user_allow(GROUP, user)

    events = await poll_events(adapter, 14)
    messages = [e for e in events if isinstance(e, InboundMessage)]
    assert {m.sender.display_name for m in messages} == {"Иван Петров"}
    assert {m.sender.username for m in messages} == {"ivan_p"}
    kinds = [m.content.kind for m in messages]
    assert kinds[:5] == [Kind.TEXT, Kind.PHOTO, Kind.DOCUMENT, Kind.VOICE, Kind.STICKER]
    texts = [m.content.text or "" for m in messages]
    assert "vk.com/video" in texts[5] and "vk.com/wall" in texts[6]
    assert "https://example.com/item/42" in texts[7]
    assert messages[8].content.kind is Kind.LOCATION
    assert messages[8].content.location is not None
    assert messages[8].content.location.latitude == pytest.approx(55.75)
    assert messages[9].reply_to == str(first["id"])
    assert "↪" in texts[10]
    assert messages[11].edited and messages[11].content.text == "Здравствуйте!"
    statuses = [e for e in events if isinstance(e, InboundStatus)]
    assert [s.allowed for s in statuses] == [False, True]
    assert len({e.key for e in events}) == len(events)  # event_id keys, all distinct

    # The customer's files download through the same session, under the size limit.
    photo = messages[1].content.attachment
    assert photo is not None
    assert (await adapter.download(photo)).data == PNG
    doc = messages[2].content.attachment
    assert doc is not None and doc.file_name == "invoice.pdf"
    assert (await adapter.download(doc)).data == b"%PDF-1.4 ..."
    avatar = await adapter.avatar(str(user))
    assert avatar is not None and avatar.data == PNG


async def test_long_poll_failures_are_handled_as_documented(
    vk: VkEmulator, adapter: VkAdapter
) -> None:
    await listening(adapter)
    user = vk.create_user("Olga")
    vk.user_send(GROUP, user, "one")
    [one] = await poll_events(adapter, 1)
    assert isinstance(one, InboundMessage) and one.content.text == "one"
    for code in (1, 2, 3):
        vk.longpoll_failed(GROUP, code)
        batch = await adapter.poll(None, 1)  # the failed answer: nothing, and recovered
        assert batch.updates == []
        vk.user_send(GROUP, user, f"after {code}")
        [after] = await poll_events(adapter, 1)
        assert isinstance(after, InboundMessage) and after.content.text == f"after {code}"


async def test_resuming_from_a_saved_cursor_gets_what_came_meanwhile(
    vk: VkEmulator, adapter: VkAdapter
) -> None:
    await listening(adapter)
    user = vk.create_user("Nina")
    vk.user_send(GROUP, user, "before")
    first = await adapter.poll(None, 1)
    saved = first.cursor
    await adapter.stop()
    vk.user_send(GROUP, user, "while down")
    settings = adapter.settings
    restarted = VkAdapter(ACCOUNT, settings, DeliverySettings(request_timeout_seconds=5))
    try:
        batch = await restarted.poll(saved, 1)
        [event] = [e for u in batch.updates for e in restarted.parse(u, NOW)]
        assert isinstance(event, InboundMessage) and event.content.text == "while down"
    finally:
        await restarted.stop()


async def test_sends_text_photo_file_and_voice_once_per_key(
    vk: VkEmulator, adapter: VkAdapter
) -> None:
    user = vk.create_user("Anna")
    said = vk.user_send(GROUP, user, "hi")
    text = Content(kind=Kind.TEXT, text="Добрый день! " * 400)  # two VK messages
    sent = await adapter.send(dest(user, str(said["id"])), text, key="reply:1")
    again = await adapter.send(dest(user, str(said["id"])), text, key="reply:1")
    assert sent == again and len(sent.message_ids) == 2  # random_id: no duplicates
    photo = Content(
        kind=Kind.PHOTO, text="каталог", attachment=Attachment(account=AccountId("tg"), file_id="x")
    )
    await adapter.send(dest(user), photo, Upload(data=PNG, file_name="p.png"), key="reply:2")
    doc = Content(kind=Kind.DOCUMENT, attachment=Attachment(account=AccountId("tg"), file_id="y"))
    await adapter.send(dest(user), doc, Upload(data=b"%PDF", file_name="price.pdf"), key="r:3")
    voice = Content(kind=Kind.VOICE, attachment=Attachment(account=AccountId("tg"), file_id="z"))
    await adapter.send(dest(user), voice, Upload(data=b"OggS....", file_name="v.ogg"), key="r:4")

    outgoing = [m for m in vk.conversation(GROUP, user) if m["out"] == 1]
    assert len(outgoing) == 5
    assert outgoing[0]["text"].startswith("Добрый день!")
    assert outgoing[0].get("reply_to") in (said["id"], str(said["id"]))
    kinds = [[a["type"] for a in m["attachments"]] for m in outgoing[2:]]
    assert kinds[0] == ["photo"] and outgoing[2]["text"] == "каталог"
    assert kinds[1] == ["doc"] and kinds[2] in (["doc"], ["audio_message"])

    await adapter.edit_text(
        ChatId(str(user)), sent.message_ids[0], Content(kind=Kind.TEXT, text="upd")
    )
    assert next(m for m in vk.conversation(GROUP, user) if m["out"] == 1)["text"] == "upd"
    await adapter.mark_read(ChatId(str(user)), MessageId(f"{said['id']}.1"))
    assert vk.read_up_to(GROUP, user) == said["id"]


async def test_platform_errors_map_to_permanent_and_transient(
    vk: VkEmulator, adapter: VkAdapter
) -> None:
    stranger = vk.create_user("Stranger")
    hello = Content(kind=Kind.TEXT, text="hello")
    with pytest.raises(PermanentError) as denied:
        await adapter.send(dest(stranger), hello, key="k1")  # never wrote, never allowed
    assert "not allowed messages" in denied.value.reason
    vk.user_allow(GROUP, stranger)
    for code, retry_after in ((6, 1.0), (9, 5.0), (10, None)):
        vk.fail("messages.send", code)
        with pytest.raises(TransientError) as transient:
            await adapter.send(dest(stranger), hello, key=f"t{code}")
        assert transient.value.retry_after == retry_after
    vk.fail_http("messages.send", 502)
    with pytest.raises(TransientError):
        await adapter.send(dest(stranger), hello, key="http")
    vk.fail("messages.send", 5)
    with pytest.raises(PermanentError) as auth:
        await adapter.send(dest(stranger), hello, key="auth")
    assert "token" in auth.value.reason
    big = Upload(data=b"\x00" * (50 * 1024 * 1024 + 1), file_name="huge.jpg")
    photo = Content(kind=Kind.PHOTO, attachment=Attachment(account=AccountId("tg"), file_id="x"))
    with pytest.raises(PermanentError) as too_large:
        await adapter.send(dest(stranger), photo, big, key="big")
    assert "50 MB" in too_large.value.reason
    sent = await adapter.send(dest(stranger), hello, key="fine")  # and then it works
    assert sent.message_ids
    assert [m["text"] for m in vk.conversation(GROUP, stranger) if m["out"] == 1] == ["hello"]


async def test_names_fall_back_when_users_get_fails(vk: VkEmulator, adapter: VkAdapter) -> None:
    await listening(adapter)
    user = vk.create_user("Dmitry", "Popov")
    vk.fail("users.get", 10)
    vk.user_send(GROUP, user, "hi")
    [event] = await poll_events(adapter, 1)
    assert event.sender.display_name == f"VK user {user}"  # stored anyway, named later
    vk.user_send(GROUP, user, "again")
    [named] = await poll_events(adapter, 1)
    assert named.sender.display_name == "Dmitry Popov"


def test_event_ids_in_logs_never_carry_content() -> None:
    payload: dict[str, Any] = {"type": "message_new", "event_id": "abc", "object": {"x": 1}}
    settings = VkChannel(id=ACCOUNT, kind="vk", token=TOKEN, group_id=GROUP)
    adapter = VkAdapter(ACCOUNT, settings, DeliverySettings())
    assert adapter.event_id(payload) == "message_new:abc"
    asyncio.run(adapter.stop())


async def test_a_broken_long_poll_server_is_a_transient_error(
    vk: VkEmulator, adapter: VkAdapter
) -> None:
    await listening(adapter)
    answers = [web.Response(status=502, text="<html>Bad Gateway</html>")]
    answers.append(web.Response(text="<html>not json</html>"))
    answers.append(web.json_response({"ts": "x", "updates": "none"}))

    async def garbled(_: web.Request) -> web.Response:
        return answers.pop(0)

    app = web.Application()
    app.router.add_get("/lp", garbled)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    real = adapter._longpoll.url
    adapter._longpoll.url = f"http://127.0.0.1:{runner.addresses[0][1]}/lp"
    try:
        for _ in range(3):
            with pytest.raises(TransientError):
                await adapter.poll(None, 1)
    finally:
        await runner.cleanup()
    adapter._longpoll.url = real
    user = vk.create_user("Oleg")
    vk.user_send(GROUP, user, "still here")
    [event] = await poll_events(adapter, 1)  # the same long poll goes on
    assert isinstance(event, InboundMessage) and event.content.text == "still here"
