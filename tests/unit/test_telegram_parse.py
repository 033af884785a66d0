"""Telegram ``Update`` JSON → InboundMessage: every kind, keys, replies, and garbage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.telegram.parse import parse_update
from gateway.errors import BadPayload
from gateway.model import AccountId, Channel, InboundMessage, Kind

ACCOUNT = AccountId("tg")
BOT_ID = 1
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DATE = 1_767_225_600  # 2026-01-01T00:00:00Z

USER = {
    "id": 555,
    "is_bot": False,
    "first_name": "Ivan",
    "last_name": "Petrov",
    "username": "ivan",
    "language_code": "ru",
}
PRIVATE = {"id": 555, "type": "private", "first_name": "Ivan"}
GROUP = {"id": -4001, "type": "group", "title": "Friends"}
SUPERGROUP = {"id": -1001234, "type": "supergroup", "title": "Chat"}
FORUM = {"id": -1005550000001, "type": "supergroup", "title": "Staff", "is_forum": True}


def message(message_id: int = 10, chat: dict[str, Any] = PRIVATE, **fields: Any) -> dict[str, Any]:
    return {"message_id": message_id, "date": DATE, "chat": chat, "from": USER, **fields}


def parse(payload: Any) -> list[InboundMessage]:
    return parse_update(payload, account=ACCOUNT, bot_id=BOT_ID, received_at=NOW)


def parse_one(update_id: int = 1, **update: Any) -> InboundMessage:
    result = parse({"update_id": update_id, **update})
    assert len(result) == 1
    return result[0]


def file(file_id: str, **extra: Any) -> dict[str, Any]:
    return {"file_id": file_id, "file_unique_id": f"u-{file_id}", **extra}


# Kinds -------------------------------------------------------------------------------


def test_text_message() -> None:
    msg = parse_one(message=message(text="Hello"))
    assert msg.content.kind is Kind.TEXT
    assert msg.content.text == "Hello"
    assert msg.key == "tg:1:555:10"
    assert msg.message_id == "10"
    assert msg.sender.channel is Channel.TELEGRAM
    assert msg.sender.account == ACCOUNT
    assert msg.sender.user_id == "555"
    assert msg.sender.chat_id == "555"
    assert msg.sender.display_name == "Ivan Petrov"
    assert msg.sender.username == "ivan"
    assert msg.sender.language == "ru"
    assert msg.sent_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert msg.sent_at.tzinfo is not None
    assert msg.received_at == NOW
    assert msg.edited is False
    assert msg.reply_to is None
    assert msg.group_chat is False
    assert msg.thread_id is None
    assert msg.is_topic_message is False


def test_photo_picks_the_largest_size_and_keeps_the_caption() -> None:
    sizes = [
        file("small", width=90, height=67, file_size=1000),
        file("large", width=1280, height=960, file_size=90000),
        file("medium", width=320, height=240, file_size=9000),
    ]
    msg = parse_one(message=message(photo=sizes, caption="look", media_group_id="album1"))
    assert msg.content.kind is Kind.PHOTO
    assert msg.content.attachment is not None
    assert msg.content.attachment.file_id == "large"
    assert msg.content.attachment.file_unique_id == "u-large"
    assert (msg.content.attachment.width, msg.content.attachment.height) == (1280, 960)
    assert msg.content.attachment.size == 90000
    assert msg.content.attachment.account == ACCOUNT
    assert msg.content.text == "look"
    assert msg.content.media_group_id == "album1"


ANIMATION = file("anim", width=320, height=240, duration=3, file_name="a.mp4")
MEDIA: list[tuple[str, dict[str, Any], Kind]] = [
    (
        "document",
        {"document": file("doc", file_name="a.pdf", mime_type="application/pdf", file_size=5)},
        Kind.DOCUMENT,
    ),
    ("audio", {"audio": file("aud", duration=30, mime_type="audio/mpeg")}, Kind.AUDIO),
    ("voice", {"voice": file("voi", duration=2, mime_type="audio/ogg")}, Kind.VOICE),
    ("video", {"video": file("vid", width=640, height=480, duration=9)}, Kind.VIDEO),
    ("video_note", {"video_note": file("vn", length=240, duration=5)}, Kind.VIDEO_NOTE),
    # An animation also carries `document` (Bot API: "for backward compatibility").
    ("animation", {"animation": ANIMATION, "document": file("anim")}, Kind.ANIMATION),
]


@pytest.mark.parametrize(("fields", "kind"), [m[1:] for m in MEDIA], ids=[m[0] for m in MEDIA])
def test_media_kinds(fields: dict[str, Any], kind: Kind) -> None:
    msg = parse_one(message=message(caption="cap", **fields))
    assert msg.content.kind is kind
    assert msg.content.attachment is not None
    first = next(iter(fields.values()))
    assert msg.content.attachment.file_id == first["file_id"]
    assert msg.content.attachment.file_unique_id == first["file_unique_id"]
    assert msg.content.text == "cap"


def test_document_details_are_kept() -> None:
    doc = file("doc", file_name="a.pdf", mime_type="application/pdf", file_size=5)
    attachment = parse_one(message=message(document=doc)).content.attachment
    assert attachment is not None
    assert (attachment.file_name, attachment.mime_type, attachment.size) == (
        "a.pdf",
        "application/pdf",
        5,
    )


def test_sticker_carries_its_emoji() -> None:
    sticker = file(
        "stk", type="regular", width=512, height=512, is_animated=False, is_video=False, emoji="😀"
    )
    msg = parse_one(message=message(sticker=sticker))
    assert msg.content.kind is Kind.STICKER
    assert msg.content.attachment is not None
    assert msg.content.attachment.emoji == "😀"


def test_venue_wins_over_its_location() -> None:
    where = {"latitude": 55.75, "longitude": 37.62}
    venue = {"location": where, "title": "Cafe", "address": "Main st 1"}
    msg = parse_one(message=message(venue=venue, location=where))
    assert msg.content.kind is Kind.VENUE
    assert msg.content.venue is not None
    assert msg.content.venue.title == "Cafe"
    assert msg.content.venue.address == "Main st 1"
    assert msg.content.venue.location.latitude == pytest.approx(55.75)
    assert msg.content.text is not None
    assert "Cafe" in msg.content.text


def test_location() -> None:
    msg = parse_one(message=message(location={"latitude": -33.9, "longitude": 18.4}))
    assert msg.content.kind is Kind.LOCATION
    assert msg.content.location is not None
    assert msg.content.location.latitude == pytest.approx(-33.9)
    assert msg.content.location.longitude == pytest.approx(18.4)


def test_contact() -> None:
    contact = {"phone_number": "+79990000000", "first_name": "Bob", "user_id": 42}
    msg = parse_one(message=message(contact=contact))
    assert msg.content.kind is Kind.CONTACT
    assert msg.content.contact is not None
    assert msg.content.contact.phone == "+79990000000"
    assert msg.content.contact.first_name == "Bob"
    assert msg.content.contact.user_id == "42"


def test_poll_becomes_text_with_its_options() -> None:
    poll = {
        "id": "p1",
        "question": "Tea or coffee?",
        "options": [
            {"persistent_id": "o1", "text": "Tea", "voter_count": 0},
            {"persistent_id": "o2", "text": "Coffee", "voter_count": 0},
        ],
        "total_voter_count": 0,
        "is_closed": False,
        "is_anonymous": True,
        "type": "regular",
        "allows_multiple_answers": False,
        "allows_revoting": False,
        "members_only": False,
    }
    msg = parse_one(message=message(poll=poll))
    assert msg.content.kind is Kind.POLL
    text = msg.content.text or ""
    assert "Tea or coffee?" in text
    assert text.index("Tea or coffee?") < text.index("Tea\n") < text.index("Coffee")


def test_dice_is_unsupported_with_a_readable_placeholder() -> None:
    msg = parse_one(message=message(dice={"emoji": "🎲", "value": 4}))
    assert msg.content.kind is Kind.UNSUPPORTED
    assert msg.content.text is not None
    assert "dice" in msg.content.text
    assert "not supported" in msg.content.text


@pytest.mark.parametrize(
    "fields",
    [
        {"new_chat_members": [USER]},
        {"left_chat_member": USER},
        {"forum_topic_created": {"name": "Ivan", "icon_color": 7322096}},
        {"forum_topic_closed": {}},
        {"pinned_message": message(11, text="pinned")},
        {"new_chat_title": "New title"},
    ],
    ids=lambda f: next(iter(f)),
)
def test_service_messages_are_dropped(fields: dict[str, Any]) -> None:
    assert parse({"update_id": 1, "message": message(chat=FORUM, **fields)}) == []


@pytest.mark.parametrize(
    "update",
    [
        {"callback_query": {"id": "1", "from": USER, "chat_instance": "x", "data": "d"}},
        {"channel_post": {"message_id": 1, "date": DATE, "chat": {"id": -100, "type": "channel"}}},
        {"message": {"message_id": 1, "date": DATE, "chat": SUPERGROUP, "text": "anon admin"}},
    ],
    ids=["callback_query", "channel_post", "no_sender"],
)
def test_updates_without_a_customer_message_are_ignored(update: dict[str, Any]) -> None:
    assert parse({"update_id": 1, **update}) == []


# Keys, edits, replies, groups -----------------------------------------------------------


def test_key_is_bot_chat_message_not_update_id() -> None:
    a = parse_one(update_id=100, message=message(text="x"))
    b = parse_one(update_id=999_999, message=message(text="x"))
    assert a.key == b.key == "tg:1:555:10"
    other_bot = parse_update(
        {"update_id": 1, "message": message(text="x")},
        account=ACCOUNT,
        bot_id=2,
        received_at=NOW,
    )[0]
    assert other_bot.key == "tg:2:555:10"
    assert parse_one(message=message(11, text="x")).key == "tg:1:555:11"


def test_edited_message_is_flagged_and_keyed_by_edit_date() -> None:
    original = parse_one(message=message(text="helo"))
    first = parse_one(edited_message=message(text="hello", edit_date=DATE + 60))
    second = parse_one(edited_message=message(text="hello!", edit_date=DATE + 120))
    assert first.edited is True
    assert first.content.text == "hello"
    assert first.key == f"tg:1:555:10:e{DATE + 60}"
    assert len({original.key, first.key, second.key}) == 3
    assert original.edited is False


def test_topic_creation_message_is_not_a_reply() -> None:
    created = message(77, chat=FORUM, forum_topic_created={"name": "Ivan", "icon_color": 1})
    msg = parse_one(
        message=message(
            80,
            chat=FORUM,
            text="hi",
            message_thread_id=77,
            is_topic_message=True,
            reply_to_message=created,
        )
    )
    assert msg.reply_to is None
    assert msg.thread_id == 77
    assert msg.is_topic_message is True
    assert msg.group_chat is True


def test_quoted_reply_inside_a_topic_is_a_reply() -> None:
    quoted = message(79, chat=FORUM, text="earlier", message_thread_id=77, is_topic_message=True)
    msg = parse_one(
        message=message(
            80,
            chat=FORUM,
            text="answer",
            message_thread_id=77,
            is_topic_message=True,
            reply_to_message=quoted,
        )
    )
    assert msg.reply_to == "79"
    assert msg.thread_id == 77


def test_quoted_reply_in_a_private_chat() -> None:
    msg = parse_one(message=message(12, text="yes", reply_to_message=message(5, text="q?")))
    assert msg.reply_to == "5"


def test_quoted_reply_in_a_supergroup_without_topics() -> None:
    # Shape of a real update (supergroup, no topics, a reply to message 111).
    msg = parse_one(
        message=message(
            112,
            chat=SUPERGROUP,
            text="reply",
            message_thread_id=111,
            reply_to_message=message(111, chat=SUPERGROUP, text="original"),
        )
    )
    assert msg.thread_id is None
    assert msg.is_topic_message is False
    assert msg.reply_to == "111"


@pytest.mark.parametrize(
    ("chat", "group"),
    [(PRIVATE, False), (GROUP, True), (SUPERGROUP, True), (FORUM, True)],
    ids=["private", "group", "supergroup", "forum"],
)
def test_group_chat_flag(chat: dict[str, Any], group: bool) -> None:
    msg = parse_one(message=message(chat=chat, text="x"))
    assert msg.group_chat is group
    assert msg.sender.chat_id == str(chat["id"])


def test_sender_without_last_name_or_username() -> None:
    user = {"id": 7, "is_bot": False, "first_name": "Ann"}
    msg = parse_one(message={**message(text="x"), "from": user})
    assert msg.sender.display_name == "Ann"
    assert msg.sender.username is None


def test_big_ids_are_kept_exactly() -> None:
    chat = {"id": -1009_007_199_254_740_993, "type": "supergroup", "title": "Big"}
    msg = parse_one(message=message(2**53 + 1, chat=chat, text="x"))
    assert msg.sender.chat_id == "-1009007199254740993"
    assert msg.message_id == str(2**53 + 1)


# Malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"message": message(text="x")},
        {"update_id": "1", "message": message(text="x")},
        {"update_id": 1.5, "message": message(text="x")},
        {"update_id": None},
        [],
        "update",
        None,
        42,
    ],
    ids=["empty", "missing", "str", "float", "null", "list", "string", "none", "int"],
)
def test_update_id_missing_or_not_an_int_is_bad_payload(payload: Any) -> None:
    with pytest.raises(BadPayload):
        parse(payload)


@pytest.mark.parametrize(
    "broken",
    [
        {"message": {"message_id": "x", "date": DATE, "chat": PRIVATE, "from": USER}},
        {"message": {"message_id": 1, "chat": PRIVATE, "from": USER}},
        {"message": message(chat={"id": 1})},
        {"message": message(photo="not a list")},
        {"message": []},
    ],
    ids=["id_type", "no_date", "chat_type", "photo_type", "message_list"],
)
def test_malformed_message_is_bad_payload(broken: dict[str, Any]) -> None:
    with pytest.raises(BadPayload):
        parse({"update_id": 1, **broken})


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)

MESSAGE_FIELDS = [
    "message_id",
    "date",
    "chat",
    "from",
    "text",
    "caption",
    "photo",
    "document",
    "animation",
    "audio",
    "voice",
    "video",
    "video_note",
    "sticker",
    "venue",
    "location",
    "contact",
    "poll",
    "dice",
    "edit_date",
    "reply_to_message",
    "message_thread_id",
    "is_topic_message",
    "media_group_id",
    "new_chat_members",
    "forum_topic_created",
]


def _check(payload: Any) -> None:
    try:
        result = parse(payload)
    except BadPayload:
        return
    assert isinstance(result, list)
    for msg in result:
        assert isinstance(msg, InboundMessage)
        # What comes out must survive the trip through a Redis stream.
        assert InboundMessage.model_validate_json(msg.model_dump_json()) == msg


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(payload=json_values)
def test_arbitrary_json_raises_only_bad_payload(payload: Any) -> None:
    _check(payload)


@FUZZ
@given(
    update_id=st.integers(min_value=-(2**63), max_value=2**63) | json_values,
    key=st.sampled_from(["message", "edited_message", "channel_post", "callback_query"]),
    body=json_values,
)
def test_arbitrary_update_bodies_raise_only_bad_payload(
    update_id: Any, key: str, body: Any
) -> None:
    _check({"update_id": update_id, key: body})


@FUZZ
@given(
    mutations=st.dictionaries(st.sampled_from(MESSAGE_FIELDS), json_values, max_size=4),
    drop=st.sets(st.sampled_from(["message_id", "date", "chat", "from"]), max_size=2),
    edited=st.booleans(),
)
def test_almost_valid_messages_raise_only_bad_payload(
    mutations: dict[str, Any], drop: set[str], edited: bool
) -> None:
    body = {**message(text="base"), **mutations}
    for field in drop:
        body.pop(field, None)
    _check({"update_id": 1, ("edited_message" if edited else "message"): body})


@FUZZ
@given(
    kind=st.sampled_from([m[1] for m in MEDIA]),
    caption=st.none() | st.text(max_size=50),
    message_id=st.integers(min_value=1, max_value=2**63),
    chat_id=st.integers(min_value=-(2**63), max_value=2**63),
)
def test_valid_media_always_parses(
    kind: dict[str, Any], caption: str | None, message_id: int, chat_id: int
) -> None:
    chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup", "title": "t"}
    body = message(message_id, chat=chat, **kind)
    if caption is not None:
        body["caption"] = caption
    msg = parse_one(message=body)
    assert msg.key == f"tg:1:{chat_id}:{message_id}"
    assert msg.content.text == caption
