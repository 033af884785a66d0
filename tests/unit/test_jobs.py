"""Outbound jobs survive the JSON trip through a Redis stream unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.jobs import (
    JOB,
    CustomerRead,
    CustomerSend,
    StaffEdit,
    StaffNotice,
    StaffPost,
    StaffReminder,
    family,
)
from gateway.model import (
    AccountId,
    Attachment,
    Button,
    Channel,
    ChatId,
    ContactId,
    Content,
    Destination,
    InboundMessage,
    Kind,
    Location,
    Mention,
    MessageId,
    PlatformUserId,
    Sender,
    SharedContact,
    Venue,
)
from gateway.store import keys

BIG_CHAT = -1009007199254740993  # beyond 2**53: a float (JSON number in JS) would round it
BIG_USER = 2**53 + 1
BIG_MESSAGE = 2**63 - 1


def inbound(chat_id: int = BIG_CHAT, user_id: int = BIG_USER, **content: object) -> InboundMessage:
    return InboundMessage(
        key=f"tg:1:{chat_id}:{BIG_MESSAGE}",
        sender=Sender(
            account=AccountId("tg_shop"),
            channel=Channel.TELEGRAM,
            user_id=PlatformUserId(str(user_id)),
            chat_id=ChatId(str(chat_id)),
            display_name="Иван 😀",
            username="ivan",
            language="ru",
        ),
        message_id=MessageId(str(BIG_MESSAGE)),
        sent_at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
        received_at=datetime(2026, 1, 1, 12, 0, 1, 123456, tzinfo=UTC),
        content=Content.model_validate(content) if content else Content(kind=Kind.TEXT, text="hi"),
        reply_to=MessageId(str(BIG_MESSAGE - 1)),
        thread_id=2**40,
        is_topic_message=True,
        group_chat=True,
    )


PHOTO = Content(
    kind=Kind.PHOTO,
    text="caption",
    attachment=Attachment(
        account=AccountId("tg_shop"),
        file_id="AgACAgIAAxkBAAIB",
        file_unique_id="AQADx",
        size=12345,
        width=1280,
        height=960,
    ),
    media_group_id="13579",
)
VENUE = Content(
    kind=Kind.VENUE,
    venue=Venue(location=Location(latitude=55.75, longitude=37.62), title="Cafe", address="Main"),
)

JOBS = [
    StaffPost(out_id="post:1", contact_id=ContactId("1"), message=inbound()),
    StaffPost(out_id="post:2", contact_id=ContactId("1"), message=inbound(**PHOTO.model_dump())),
    StaffEdit(out_id="edit:1", contact_id=ContactId("1"), message=inbound()),
    StaffNotice(out_id="notice:1", contact_id=ContactId("1"), text="⚠️ not delivered"),
    StaffNotice(
        out_id="notice:2",
        contact_id=ContactId("1"),
        text="x",
        reply_to=MessageId(str(BIG_MESSAGE)),
    ),
    CustomerSend(
        out_id="send:1",
        contact_id=ContactId("7"),
        destination=Destination(
            account=AccountId("tg_shop"),
            chat_id=ChatId(str(BIG_USER)),
            reply_to=MessageId(str(BIG_MESSAGE)),
        ),
        content=VENUE,
        staff_chat=str(BIG_CHAT),
        staff_message=MessageId("99"),
        operator_id="700001",
        created_at=1767268800.123456,
    ),
    CustomerSend(
        out_id="send:2",
        contact_id=ContactId("7"),
        destination=Destination(
            account=AccountId("tg_shop"), chat_id=ChatId(str(BIG_CHAT)), thread_id=2**60
        ),
        content=Content(
            kind=Kind.CONTACT,
            contact=SharedContact(phone="+1", first_name="Bob", user_id=str(BIG_USER)),
        ),
        staff_chat=str(BIG_CHAT),
        staff_message=MessageId("100"),
        operator_id="700001",
        created_at=0.0,
    ),
]


@pytest.mark.parametrize("job", JOBS, ids=lambda j: j.out_id)
def test_every_job_round_trips(job: object) -> None:
    raw = job.model_dump_json()  # type: ignore[attr-defined]
    back = JOB.validate_json(raw)
    assert back == job
    assert type(back) is type(job)
    assert back.model_dump_json() == raw


def test_every_job_type_is_covered() -> None:
    assert {type(j) for j in JOBS} == {StaffPost, StaffEdit, StaffNotice, CustomerSend}


def test_big_telegram_ids_stay_exact_strings() -> None:
    job = JOBS[0]
    raw = job.model_dump_json()
    data = json.loads(raw)
    sender = data["message"]["sender"]
    assert sender["chat_id"] == str(BIG_CHAT)
    assert sender["user_id"] == str(BIG_USER)
    assert data["message"]["message_id"] == str(BIG_MESSAGE)
    assert data["message"]["reply_to"] == str(BIG_MESSAGE - 1)
    back = JOB.validate_json(raw)
    assert isinstance(back, StaffPost)
    assert isinstance(job, StaffPost)
    assert int(back.message.sender.chat_id) == BIG_CHAT
    assert back.message.sent_at == job.message.sent_at
    assert back.message.sent_at.tzinfo is not None


def test_big_ids_in_customer_send_stay_exact() -> None:
    job = JOBS[5]
    assert isinstance(job, CustomerSend)
    data = json.loads(job.model_dump_json())
    assert data["destination"]["chat_id"] == str(BIG_USER)
    assert data["destination"]["reply_to"] == str(BIG_MESSAGE)
    assert data["staff_chat"] == str(BIG_CHAT)
    back = JOB.validate_json(job.model_dump_json())
    assert isinstance(back, CustomerSend)
    assert back.destination.chat_id == str(BIG_USER)
    assert back.created_at == job.created_at


def test_ids_are_not_coerced_from_numbers() -> None:
    # Ids are strings in the model: a JSON number is refused, not silently converted.
    raw = JOBS[3].model_dump_json().replace('"contact_id":"1"', '"contact_id":1')
    with pytest.raises(ValidationError):
        JOB.validate_json(raw)


@pytest.mark.parametrize(
    "raw",
    [
        '{"type":"staff.unknown","out_id":"x","contact_id":"1","text":"t"}',
        '{"out_id":"x","contact_id":"1","text":"t"}',
        '{"type":"staff.notice","out_id":"x","contact_id":"1","text":"t","extra":1}',
        '{"type":"staff.notice","out_id":"x","contact_id":"1"}',
    ],
    ids=["unknown_type", "no_type", "extra_field", "missing_field"],
)
def test_invalid_jobs_are_rejected(raw: str) -> None:
    with pytest.raises(ValidationError):
        JOB.validate_json(raw)


def test_jobs_are_frozen() -> None:
    with pytest.raises(ValidationError):
        JOBS[3].out_id = "changed"  # type: ignore[misc]


ids = st.integers(min_value=-(2**63), max_value=2**63).map(str)


@given(
    chat=ids,
    message=ids,
    text=st.text(max_size=200),
    thread=st.none() | st.integers(min_value=1, max_value=2**63),
    created_at=st.floats(min_value=0, max_value=4e9, allow_nan=False),
)
def test_customer_send_round_trips(
    chat: str, message: str, text: str, thread: int | None, created_at: float
) -> None:
    job = CustomerSend(
        out_id=f"send:{message}",
        contact_id=ContactId("1"),
        destination=Destination(
            account=AccountId("a"),
            chat_id=ChatId(chat),
            thread_id=thread,
            reply_to=MessageId(message),
        ),
        content=Content(kind=Kind.TEXT, text=text),
        staff_chat=chat,
        staff_message=MessageId(message),
        operator_id="1",
        created_at=created_at,
    )
    assert JOB.validate_json(job.model_dump_json()) == job


@given(chat=ids, user=ids, text=st.text(max_size=200), edited=st.booleans())
def test_staff_post_round_trips(chat: str, user: str, text: str, edited: bool) -> None:
    message = inbound().model_copy(
        update={
            "sender": inbound().sender.model_copy(
                update={"chat_id": ChatId(chat), "user_id": PlatformUserId(user)}
            ),
            "content": Content(kind=Kind.TEXT, text=text),
            "edited": edited,
        }
    )
    job = StaffPost(out_id="p", contact_id=ContactId("1"), message=message)
    assert JOB.validate_json(job.model_dump_json()) == job


def test_a_button_has_exactly_one_action_and_short_data() -> None:
    assert Button(text="Open", url="https://t.me/c/1/2").url
    with pytest.raises(ValidationError, match="exactly one"):
        Button(text="Both", data="x", url="https://t.me")
    with pytest.raises(ValidationError, match="exactly one"):
        Button(text="Neither")
    # 64 bytes, not characters: 32 Cyrillic letters are 64 bytes, 33 are too many.
    assert Button(text="ok", data="я" * 32).data
    with pytest.raises(ValidationError, match="1-64 bytes"):
        Button(text="long", data="я" * 33)


def test_reminder_and_read_jobs_round_trip_and_pick_their_family() -> None:
    reminder = StaffReminder(
        out_id="remind:1",
        contact_id=ContactId("1"),
        text="⏰ Anna, please answer.",
        mentions=(Mention(offset=2, length=4, user_id=PlatformUserId("700001")),),
    )
    read = CustomerRead(
        out_id="read:1",
        contact_id=ContactId("1"),
        destination=Destination(account=AccountId("vk_shop"), chat_id=ChatId("42")),
        message_id=MessageId("17"),
    )
    for job in (reminder, read):
        assert JOB.validate_json(job.model_dump_json()) == job
    assert family(reminder) == keys.STAFF_OUT and family(read) == keys.CUSTOMER_OUT
