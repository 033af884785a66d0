"""VK events (API 5.199 JSON, as the Callback API and Bots Long Poll send them) →
inbound messages; arbitrary JSON never raises anything but BadPayload."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.vk.parse import parse_event
from gateway.errors import BadPayload
from gateway.model import AccountId, InboundStatus, Kind
from tests.strategies import json_values

ACCOUNT = AccountId("vk_shop")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def event(kind: str, obj: Any, event_id: str = "a1b2c3") -> dict[str, Any]:
    return {"group_id": 229000001, "type": kind, "event_id": event_id, "v": "5.199", "object": obj}


def message(**fields: Any) -> dict[str, Any]:
    return {
        "date": 1795460000,
        "from_id": 1234567,
        "id": 42,
        "out": 0,
        "peer_id": 1234567,
        "text": "",
        "conversation_message_id": 17,
        "fwd_messages": [],
        "important": False,
        "random_id": 0,
        "attachments": [],
        "is_hidden": False,
        **fields,
    }


def new(**fields: Any) -> dict[str, Any]:
    info = {"button_actions": ["text"], "keyboard": True, "inline_keyboard": True, "lang_id": 0}
    return event("message_new", {"message": message(**fields), "client_info": info})


def parse(payload: Any) -> list[Any]:
    return parse_event(payload, account=ACCOUNT, received_at=NOW)


def test_text_message() -> None:
    [m] = parse(new(text="Здравствуйте! Где мой заказ?"))
    assert m.key == "vk:vk_shop:a1b2c3"
    assert (m.sender.user_id, m.sender.chat_id, m.message_id) == ("1234567", "1234567", "42")
    assert m.content.kind is Kind.TEXT and m.content.text == "Здравствуйте! Где мой заказ?"
    assert m.sent_at == datetime.fromtimestamp(1795460000, UTC) and not m.group_chat


def test_photo_takes_the_largest_size_and_the_text_as_caption() -> None:
    photo = {
        "id": 457239017,
        "owner_id": 1234567,
        "access_key": "ab12",
        "sizes": [
            {"type": "s", "url": "https://sun9-1.userapi.com/s.jpg", "width": 75, "height": 56},
            {"type": "w", "url": "https://sun9-1.userapi.com/w.jpg", "width": 1280, "height": 960},
            {"type": "m", "url": "https://sun9-1.userapi.com/m.jpg", "width": 130, "height": 97},
        ],
    }
    [m] = parse(new(text="вот фото", attachments=[{"type": "photo", "photo": photo}]))
    assert m.content.kind is Kind.PHOTO and m.content.text == "вот фото"
    assert m.content.attachment is not None
    assert m.content.attachment.file_id == "https://sun9-1.userapi.com/w.jpg"
    assert m.content.attachment.file_unique_id == "photo1234567_457239017_ab12"


def test_several_attachments_become_several_messages() -> None:
    doc = {
        "id": 1,
        "owner_id": 1234567,
        "title": "invoice.pdf",
        "size": 2048,
        "ext": "pdf",
        "url": "https://vk.com/doc1234567_1",
    }
    voice = {
        "id": 2,
        "owner_id": 1234567,
        "duration": 4,
        "link_ogg": "https://psv4.userapi.com/v.ogg",
        "link_mp3": "https://psv4.userapi.com/v.mp3",
    }
    first, second = parse(
        new(
            text="счёт и голосовое",
            attachments=[
                {"type": "doc", "doc": doc},
                {"type": "audio_message", "audio_message": voice},
            ],
        )
    )
    assert first.content.kind is Kind.DOCUMENT and first.content.text == "счёт и голосовое"
    assert first.content.attachment and first.content.attachment.file_name == "invoice.pdf"
    assert second.content.kind is Kind.VOICE and second.content.text is None
    assert second.content.attachment and second.content.attachment.duration == 4
    assert second.key == "vk:vk_shop:a1b2c3:1" and second.message_id == "42.1"


def test_geo_forwarded_and_reply() -> None:
    geo = {"type": "point", "coordinates": {"latitude": 55.75, "longitude": 37.62}}
    text, place = parse(
        new(
            text="я тут",
            geo=geo,
            fwd_messages=[{"from_id": 777, "text": "адрес доставки"}],
            reply_message={"id": 40, "from_id": -229000001, "text": "Где вы?"},
        )
    )
    assert text.content.text == "я тут\n\n↪ 777: адрес доставки" and text.reply_to == "40"
    assert place.content.kind is Kind.LOCATION and place.content.location is not None
    assert place.content.location.latitude == 55.75


def test_links_wall_posts_and_video_arrive_as_text_with_urls() -> None:
    wall = {"type": "wall", "wall": {"id": 5, "owner_id": -229000001}}
    link = {"type": "link", "link": {"url": "https://shop.example/item/9", "title": "Товар"}}
    video = {"type": "video", "video": {"id": 7, "owner_id": 1234567}}
    texts = [m.content.text for m in parse(new(attachments=[wall, link, video]))]
    assert texts == [
        "📰 https://vk.com/wall-229000001_5",
        "🔗 Товар\nhttps://shop.example/item/9",
        "🎬 https://vk.com/video1234567_7",
    ]


def test_edit_group_chat_and_ignored_events() -> None:
    [edit] = parse(event("message_edit", message(text="исправлено", update_time=1795460100)))
    assert edit.edited and edit.content.text == "исправлено"
    [chat] = parse(new(text="всем привет", peer_id=2000000003))
    assert chat.group_chat and chat.sender.chat_id == "2000000003"
    assert parse(new(text="our own copy", from_id=-229000001)) == []
    assert parse(event("group_join", {"user_id": 1, "join_type": "join"})) == []


def test_subscription_events_become_statuses() -> None:
    [allow] = parse(event("message_allow", {"user_id": 1234567, "key": ""}))
    assert isinstance(allow, InboundStatus) and allow.allowed
    assert allow.sender.user_id == "1234567" and allow.sender.chat_id == "1234567"
    [deny] = parse(event("message_deny", {"user_id": 1234567}))
    assert isinstance(deny, InboundStatus) and not deny.allowed
    assert deny.key == "vk:vk_shop:a1b2c3"
    with pytest.raises(BadPayload):
        parse(event("message_deny", {"user": 1}))


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"type": "message_new"},
        {"type": "message_new", "event_id": "x"},
        # API below 5.103: the object is the message itself.
        event("message_new", message(text="old format")),
        new(from_id="abc"),
        new(attachments=[{"type": "photo", "photo": {"sizes": []}}]),
        new(date=10**20),
    ],
)
def test_malformed_events_are_bad_payloads(payload: Any) -> None:
    with pytest.raises(BadPayload):
        parse(payload)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["message_new", "message_edit", "message_allow", "other"]),
    obj=json_values,
    fields=st.dictionaries(
        st.sampled_from(
            [
                "from_id",
                "peer_id",
                "date",
                "text",
                "attachments",
                "geo",
                "fwd_messages",
                "reply_message",
                "id",
            ]
        ),
        json_values,
    ),
)
def test_arbitrary_json_never_raises_anything_but_bad_payload(
    kind: str, obj: Any, fields: dict[str, Any]
) -> None:
    for payload in (
        event(kind, obj),
        event(kind, {"message": {**message(), **fields}}),
        event(kind, {**message(), **fields}),
    ):
        with contextlib.suppress(BadPayload):
            parse(payload)
