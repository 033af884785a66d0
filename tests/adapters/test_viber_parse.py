"""Viber callbacks → model events: every message kind, receipts, subscriptions, fuzz."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.viber.parse import parse_callback
from gateway.errors import BadPayload
from gateway.model import AccountId, InboundMessage, InboundReceipt, InboundStatus, Kind
from tests.strategies import json_values

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
TOKEN = 5741311803571721087  # above 2**53, as Viber's are
USER = {"id": "01234567890A=", "name": "Ivan", "avatar": "https://a/x.jpg", "language": "ru"}


def parse(payload: Any) -> list[Any]:
    return list(parse_callback(payload, account=AccountId("viber_shop"), received_at=NOW))


def message(**body: Any) -> dict[str, Any]:
    return {
        "event": "message",
        "timestamp": 1795460000123,
        "chat_hostname": "SN-CHAT-05_",
        "message_token": TOKEN,
        "sender": USER,
        "message": body,
        "silent": False,
    }


def test_text_keeps_the_big_token_exactly_and_the_sender() -> None:
    [m] = parse(message(type="text", text="Здравствуйте"))
    assert isinstance(m, InboundMessage)
    assert m.message_id == str(TOKEN) and m.key == f"viber:viber_shop:{TOKEN}:message"
    assert m.sender.user_id == m.sender.chat_id == "01234567890A="
    assert m.sender.display_name == "Ivan" and m.sender.language == "ru"
    assert m.content.text == "Здравствуйте"
    assert m.sent_at == datetime.fromtimestamp(1795460000.123, UTC)


def test_every_message_kind() -> None:
    media = "https://dl-media.viber.com/1/share/2/long/bots/generic/x.jpg"
    kinds = {
        "picture": message(type="picture", media=media, text="чек", size=1200, file_name="x.jpg"),
        "video": message(type="video", media=media, size=90000, duration=12),
        "file": message(type="file", media=media, size=4800, file_name="invoice.pdf"),
        "sticker": message(type="sticker", sticker_id=40133, media=media),
        "contact": message(
            type="contact", contact={"name": "Ivan", "phone_number": "+79161234567"}
        ),
        "location": message(type="location", location={"lat": 55.75, "lon": 37.62}),
        "url": message(type="url", media="https://example.com/item/42"),
        "rich": message(type="rich_media", rich_media={"Type": "rich_media"}),
        "odd": message(type="carousel"),
    }
    got = {name: parse(p)[0].content for name, p in kinds.items()}
    assert got["picture"].kind is Kind.PHOTO and got["picture"].text == "чек"
    assert got["picture"].attachment.file_id == media
    assert got["video"].kind is Kind.VIDEO and got["video"].attachment.duration == 12
    assert got["file"].kind is Kind.DOCUMENT
    assert got["file"].attachment.file_name == "invoice.pdf"
    assert got["sticker"].kind is Kind.STICKER
    assert got["contact"].kind is Kind.CONTACT
    assert got["contact"].contact.phone == "+79161234567"
    assert got["contact"].contact.user_id == USER["id"]  # their own: it feeds dedup
    assert got["location"].location.latitude == pytest.approx(55.75)
    assert got["url"].text == "https://example.com/item/42"
    assert got["rich"].kind is Kind.TEXT
    assert got["odd"].kind is Kind.UNSUPPORTED


def test_receipts_subscriptions_and_ignored_events() -> None:
    base = {"timestamp": 1795460000000, "message_token": TOKEN, "user_id": USER["id"]}
    [seen] = parse({"event": "seen", **base})
    assert isinstance(seen, InboundReceipt) and seen.status == "seen"
    assert seen.message_id == str(TOKEN) and seen.key.endswith(":seen")
    [failed] = parse({"event": "failed", "desc": "user blocked", **base})
    assert isinstance(failed, InboundReceipt) and failed.reason == "user blocked"
    [subscribed] = parse({"event": "subscribed", "timestamp": 1, "message_token": 7, "user": USER})
    assert isinstance(subscribed, InboundStatus) and subscribed.allowed
    [gone] = parse({"event": "unsubscribed", **base})
    assert isinstance(gone, InboundStatus) and not gone.allowed
    assert parse({"event": "webhook", "timestamp": 1, "message_token": 1}) == []
    opened = {"event": "conversation_started", "type": "open", "user": USER, **base}
    assert parse(opened) == []
    assert parse({"event": "brand_new_event", "message_token": 1}) == []


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"timestamp": 1},
        {"event": "message", "message_token": 1.5, "sender": USER, "message": {}},
        message(type="text", text="x") | {"sender": {"id": 5}},
        message(type="location", location={"lat": "north"}),
        message(type="picture"),  # no media
        {"event": "seen", "message_token": "abc", "user_id": "u"},
        {"event": "delivered", "message_token": 1},
    ],
)
def test_malformed_callbacks_are_bad_payloads(payload: Any) -> None:
    with pytest.raises(BadPayload):
        parse(payload)


@settings(max_examples=300, deadline=None)
@given(
    event=st.sampled_from(["message", "seen", "failed", "subscribed", "unsubscribed", "x"]),
    fields=st.dictionaries(
        st.sampled_from(["message_token", "timestamp", "sender", "user", "user_id", "desc"]),
        json_values,
    ),
    body=json_values,
)
def test_arbitrary_json_never_raises_anything_but_bad_payload(
    event: str, fields: dict[str, Any], body: Any
) -> None:
    with contextlib.suppress(BadPayload):
        parse({"event": event, "message": body, **fields})
