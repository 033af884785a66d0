"""Which queued staff posts may share one message (gateway.coalesce), as pure logic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.bus import Entry
from gateway.coalesce import (
    MAX_MESSAGES,
    Queued,
    ahead,
    album,
    combined,
    drop_if_superseded,
    followers,
)
from gateway.jobs import StaffCard, StaffNotice, StaffPost, _Job
from gateway.model import (
    AccountId,
    Attachment,
    Channel,
    ChatId,
    ContactId,
    Content,
    InboundMessage,
    Kind,
    MessageId,
    PlatformUserId,
    Sender,
)
from gateway.store.redis import Redis

AT = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


def post(
    n: int, text: str = "hi", contact: str = "1", chat: str = "42", **extra: object
) -> StaffPost:
    sender = Sender(
        channel=Channel.TELEGRAM,
        account=AccountId("tg_shop"),
        user_id=PlatformUserId(chat),
        chat_id=ChatId(chat),
        display_name="Ivan",
    )
    message = InboundMessage(
        key=f"k{n}",
        sender=sender,
        message_id=MessageId(str(n)),
        sent_at=AT + timedelta(seconds=n),
        received_at=AT + timedelta(seconds=n),
        content=Content(kind=Kind.TEXT, text=text),
        **extra,  # type: ignore[arg-type]
    )
    return StaffPost(out_id=f"post:{n}", contact_id=ContactId(contact), message=message)


def queued(*jobs: _Job) -> list[Queued]:
    return [Queued(Entry("s", f"{i}-0", b"{}"), job) for i, job in enumerate(jobs)]


def test_a_run_of_one_senders_texts_skips_other_contacts_and_cards() -> None:
    card = StaffCard(out_id="card", contact_id=ContactId("1"))
    other = post(9, contact="2", chat="77")
    run = followers(post(0), queued(post(1), card, other, post(2), post(3)))
    assert [item.job.out_id for item in run] == ["post:1", "post:2", "post:3"]


def test_the_run_ends_at_anything_that_cannot_be_combined() -> None:
    notice = StaffNotice(out_id="n", contact_id=ContactId("1"), text="📌 Assigned")
    photo = post(2)
    photo = photo.model_copy(
        update={"message": photo.message.model_copy(update={"content": Content(kind=Kind.PHOTO)})}
    )
    assert [i.job.out_id for i in followers(post(0), queued(post(1), notice, post(3)))] == [
        "post:1"
    ]
    assert followers(post(0), queued(photo, post(3))) == []
    quoting = post(1, reply_to=MessageId("0"))
    assert followers(post(0), queued(quoting)) == []
    assert followers(quoting, queued(post(2))) == []  # a quote is never folded into others
    assert len(followers(post(0), queued(*(post(n) for n in range(1, 100))))) == MAX_MESSAGES - 1
    long = "x" * 3000
    assert len(followers(post(0, long), queued(post(1, long), post(2)))) == 0


def test_combined_lines_keep_their_time_and_order() -> None:
    messages = [post(0, "hello").message, post(65, "anyone?").message]
    text = combined(messages, ZoneInfo("Europe/Moscow")).text
    assert text == "10:00:00 hello\n10:01:05 anyone?"


async def test_lookahead_reads_one_contacts_queue_and_spots_a_later_card(
    redis: Redis,
) -> None:
    stream = "gw:test:out"
    jobs: list[_Job] = [
        StaffCard(out_id="c1", contact_id=ContactId("1")),
        post(1),
        post(2, contact="12", chat="77"),  # "12" must not pass for "1"
        StaffCard(out_id="c12", contact_id=ContactId("12")),
    ]
    ids = [await redis.xadd(stream, {"e": job.model_dump_json()}) for job in jobs]
    first = Entry(stream, ids[0].decode(), b"")
    assert [q.job.out_id for q in await ahead(redis, first, "1")] == ["post:1"]
    card = StaffCard(out_id="c1", contact_id=ContactId("1"))
    await redis.set("gw:test:process:1", "P")
    # Only contact 12's card is later: not superseded, and the reads come back.
    read = await drop_if_superseded(
        redis, first, card, "gw:test:done:c1", 60, ["gw:test:process:1"]
    )
    assert read == [b"P"] and not await redis.exists("gw:test:done:c1")
    await redis.xadd(
        stream, {"e": StaffCard(out_id="c2", contact_id=ContactId("1")).model_dump_json()}
    )
    # Now a later refresh is queued: this one is marked done and acknowledged, in one go.
    assert await drop_if_superseded(redis, first, card, "gw:test:done:c1", 60) is None
    assert await redis.get("gw:test:done:c1") == b"[]"
    assert await redis.xlen(stream) == len(jobs)  # c1 deleted, c2 added


def media(n: int, kind: Kind) -> StaffPost:
    job = post(n)
    content = Content(kind=kind, attachment=Attachment(account=AccountId("tg_shop"), file_id="f"))
    return job.model_copy(update={"message": job.message.model_copy(update={"content": content})})


def test_albums_group_photos_with_videos_up_to_ten_and_nothing_else() -> None:
    photos = [media(n, Kind.PHOTO) for n in range(1, 15)]
    assert len(album(media(0, Kind.PHOTO), queued(*photos))) == 9  # ten in all
    mixed = queued(media(1, Kind.VIDEO), media(2, Kind.DOCUMENT), media(3, Kind.PHOTO))
    assert [i.job.out_id for i in album(media(0, Kind.PHOTO), mixed)] == ["post:1"]
    assert album(media(0, Kind.VOICE), queued(media(1, Kind.VOICE))) == []
    assert album(post(0), queued(media(1, Kind.PHOTO))) == []  # a text is not an album
