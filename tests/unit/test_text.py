"""Text helpers: splitting long messages, log redaction, staff commands, topic names."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.telegram.send import TEXT_LIMIT, split_text
from adapters.telegram.styles import _python_index, from_entities
from adapters.telegram.styles import to_entities as entities
from gateway.logging import REDACTED, Redactor
from gateway.model import (
    AccountId,
    Channel,
    Contact,
    ContactId,
    Content,
    Kind,
    Mention,
    PlatformUserId,
)
from gateway.staff.commands import Command, parse_command
from gateway.staff.render import TOPIC_NAME_LIMIT, topic_name

# split_text --------------------------------------------------------------------------

# Mostly words and separators (to hit every split rule), sometimes anything at all.
texts = st.lists(
    st.sampled_from(["a", "bb", "слово", "😀", " ", "  ", "\n", "\n\n", "\t", "-"]), max_size=200
).map("".join) | st.text(max_size=400)
limits = st.integers(min_value=1, max_value=64)


def non_space(text: str) -> list[str]:
    return [c for c in text if not c.isspace()]


@settings(max_examples=500, deadline=None)
@given(text=texts, limit=limits)
def test_split_text_chunks_fit_and_lose_nothing(text: str, limit: int) -> None:
    chunks = split_text(text, limit)
    assert chunks
    assert all(len(chunk) <= limit for chunk in chunks)
    joined = "".join(chunks)
    # No visible character is lost, duplicated or reordered...
    assert non_space(joined) == non_space(text)
    # ...only whitespace at cut points is dropped, and no chunk is blank unless the
    # whole text is (Telegram rejects an empty message).
    lost = Counter(text) - Counter(joined)
    assert all(ch.isspace() for ch in lost)
    assert not Counter(joined) - Counter(text)
    if text.strip():
        assert all(chunk.strip() for chunk in chunks)


@given(text=st.text(max_size=100))
def test_short_text_is_one_chunk(text: str) -> None:
    assert split_text(text, 100) == [text]


def test_split_prefers_paragraphs_then_lines_then_words() -> None:
    para = "a" * 30 + "\n\n" + "b" * 30 + "\n" + "c" * 10
    assert split_text(para, 50) == ["a" * 30, "b" * 30 + "\n" + "c" * 10]
    lines = "a" * 30 + "\n" + "b" * 30
    assert split_text(lines, 40) == ["a" * 30, "b" * 30]
    words = "alpha beta gamma delta"
    assert split_text(words, 11) == ["alpha beta", "gamma delta"]
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_split_text_default_limit_is_telegrams() -> None:
    long = ("word " * 2000).strip()
    chunks = split_text(long)
    assert all(len(c) <= TEXT_LIMIT == 4096 for c in chunks)
    assert len(chunks) == 3


@pytest.mark.parametrize(
    "text",
    [
        "a" * 4000 + "\n\n" + " " * 200 + "\n" + "b" * 4000,
        "x" * 4096 + " ",
    ],
    ids=["blank_line_after_paragraph", "trailing_space"],
)
def test_split_text_never_yields_a_blank_chunk(text: str) -> None:
    assert all(chunk.strip() for chunk in split_text(text))


# Redactor ------------------------------------------------------------------------------

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def redact_event(redactor: Redactor, **event: object) -> dict[str, object]:
    return dict(redactor(None, "info", dict(event)))


def test_redactor_removes_configured_secrets() -> None:
    redactor = Redactor(["hunter2-password", "s3cr3t-webhook"])
    out = redact_event(
        redactor,
        event="login with hunter2-password",
        url="https://x/?secret=s3cr3t-webhook&a=1",
        count=3,
    )
    assert out["event"] == f"login with {REDACTED}"
    assert out["url"] == f"https://x/?secret={REDACTED}&a=1"
    assert out["count"] == 3


def test_redactor_secrets_can_be_replaced() -> None:
    redactor = Redactor(["first-secret"])
    redactor.set_secrets(["second-secret"])
    assert redactor.redact("first-secret second-secret") == f"first-secret {REDACTED}"


def test_redactor_ignores_very_short_secrets() -> None:
    # A 1-5 character "secret" would shred every log line.
    assert Redactor(["a", "abc"]).redact("a cabbage") == "a cabbage"


def test_redactor_removes_anything_shaped_like_a_bot_token() -> None:
    redactor = Redactor()
    assert redactor.redact(TOKEN) == REDACTED
    assert redactor.redact(f"token={TOKEN} end") == f"token={REDACTED} end"
    assert redactor.redact("123456:" + "A" * 20) == REDACTED
    # Not token-shaped: too short after the colon, or a time / a ratio.
    assert redactor.redact("123456:" + "A" * 19) == "123456:" + "A" * 19
    assert redactor.redact("at 12:30, 1:2") == "at 12:30, 1:2"


def test_redactor_handles_exceptions() -> None:
    out = redact_event(Redactor(), event="boom", error=RuntimeError(f"bad token {TOKEN}"))
    assert isinstance(out["error"], str)
    assert TOKEN not in out["error"]
    assert "RuntimeError" in out["error"]


@pytest.mark.parametrize(
    "text",
    [
        f"POST https://api.telegram.org/bot{TOKEN}/sendMessage",
        f"https://api.telegram.org/file/bot{TOKEN}/photos/file_1.jpg",
    ],
    ids=["method_url", "file_url"],
)
def test_redactor_removes_tokens_inside_bot_api_urls(text: str) -> None:
    assert TOKEN.split(":")[1] not in Redactor().redact(text)


def test_redactor_reaches_nested_values() -> None:
    out = redact_event(Redactor(), event="x", request={"url": TOKEN}, args=[TOKEN])
    assert TOKEN not in repr(out)


# parse_command -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/help", Command("help", "")),
        ("/HELP", Command("help", "")),
        ("/id", Command("id", "")),
        ("/help@staff_bot", Command("help", "")),
        ("/help@Staff_Bot  some  args ", Command("help", "some  args")),
        ("/note hello world", Command("note", "hello world")),
    ],
)
def test_parse_command(text: str, expected: Command) -> None:
    assert parse_command(text, "staff_bot") == expected


@pytest.mark.parametrize(
    "text",
    [
        "//x",
        "//",
        "/",
        "/@staff_bot",
        "help",
        "",
        " /help",
    ],
)
def test_parse_command_rejects(text: str) -> None:
    assert parse_command(text, "staff_bot") is None


def test_parse_command_marks_commands_for_other_bots() -> None:
    assert parse_command("/help@other_bot args", "staff_bot") == Command(
        "help", "args", elsewhere=True
    )


def test_parse_command_without_a_known_username_accepts_any_target() -> None:
    assert parse_command("/help@whoever") == Command("help", "")


def test_parse_command_ends_at_a_newline() -> None:
    assert parse_command("/id\nmore", "staff_bot") == Command("id", "more")


# topic_name -------------------------------------------------------------------------------


def contact(name: str) -> Contact:
    return Contact(
        id=ContactId("42"),
        display_name=name,
        channel=Channel.TELEGRAM,
        account=AccountId("tg_shop"),
        first_seen=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_topic_name_fills_the_template() -> None:
    assert topic_name("{name} · {channel} #{id}", contact("Ivan")) == "Ivan · Telegram #42"


@given(name=st.text(max_size=400))
def test_topic_name_is_at_most_128_characters(name: str) -> None:
    result = topic_name("{name} · {channel} #{id}", contact(name))
    assert 1 <= len(result) <= TOPIC_NAME_LIMIT == 128
    assert result == result.strip()


def test_long_topic_name_is_truncated() -> None:
    result = topic_name("{name} ({channel})", contact("N" * 300))
    assert result == "N" * 128


def test_blank_topic_name_falls_back_to_the_contact_id() -> None:
    assert topic_name("{name}", contact("   ")) == "Contact 42"


# entities ----------------------------------------------------------------------------


@given(st.text(max_size=20), st.text(min_size=1, max_size=10), st.text(max_size=20))
def test_mention_offsets_are_counted_in_utf16_units(before: str, name: str, after: str) -> None:
    content = Content(
        kind=Kind.TEXT,
        text=before + name + after,
        mentions=(Mention(offset=len(before), length=len(name), user_id=PlatformUserId("7")),),
    )
    found = entities(content)
    assert found is not None and len(found) == 1
    units = (before + name + after).encode("utf-16-le")
    entity = found[0]
    covered = units[2 * entity.offset : 2 * (entity.offset + entity.length)]
    assert covered.decode("utf-16-le") == name
    assert entity.type == "text_mention" and entity.user is not None and entity.user.id == 7


def _index_by_walking(text: str) -> list[int]:
    """UTF-16 position → Python index, one code unit at a time (the reference)."""
    index = [0]
    for i, char in enumerate(text):
        index += [i + 1] * (2 if ord(char) > 0xFFFF else 1)
    return index


@given(st.text())
def test_utf16_positions_map_to_python_indices(text: str) -> None:
    # Telegram counts entity offsets in UTF-16 code units; most texts have no
    # surrogate pairs, and their positions are taken as they are.
    assert list(_python_index(text)) == _index_by_walking(text)


@given(st.text(), st.lists(st.tuples(st.integers(-3, 80), st.integers(-3, 80)), max_size=4))
def test_entities_become_styles_on_the_same_characters(
    text: str, spans: list[tuple[int, int]]
) -> None:
    entities = [{"type": "bold", "offset": o, "length": n} for o, n in spans]
    index = _index_by_walking(text)
    expected = []
    for offset, length in spans:
        start = index[min(max(offset, 0), len(index) - 1)]
        end = index[min(max(offset + length, 0), len(index) - 1)]
        if end > start:
            expected.append((start, end - start))
    assert [(s.offset, s.length) for s in from_entities(text, entities)] == expected
