"""Webhook bodies are parsed as standard JSON only, as ``json.loads`` with the strict
hooks would: the decoder built once must take and refuse exactly the same bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import strictjson


def reference(body: bytes | str) -> Any:
    return json.loads(body, parse_constant=strictjson._not_json, parse_float=strictjson._finite)


def outcome(parse: Any, body: bytes | str) -> tuple[str, Any]:
    try:
        return "value", parse(body)
    except (ValueError, RecursionError) as exc:
        return "error", type(exc).__name__


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(json_values, st.sampled_from(["utf-8", "utf-16", "utf-32-le"]))
def test_any_document_parses_as_json_loads_does(value: Any, encoding: str) -> None:
    text = json.dumps(value, ensure_ascii=False)  # NaN and Infinity included: refused
    body = text.encode(encoding, "surrogatepass")
    assert repr(outcome(strictjson.loads, body)) == repr(outcome(reference, body))
    assert repr(outcome(strictjson.loads, text)) == repr(outcome(reference, text))


@given(st.binary(max_size=64) | st.text(max_size=64))
def test_any_bytes_are_taken_or_refused_as_json_loads_does(body: bytes | str) -> None:
    assert repr(outcome(strictjson.loads, body)) == repr(outcome(reference, body))


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":NaN}',
        b'{"a":-Infinity}',
        b'{"a":1e400}',
        b'{"a":1E400}',
        b'{"a":"x\ny"}',
        b'{"a":1,}',
        b'{"a":1} x',
        "\ufeff{}",
        b"\xff",
    ],
)
def test_what_is_not_standard_json_is_refused(body: bytes | str) -> None:
    assert outcome(strictjson.loads, body) == ("error", outcome(reference, body)[1])


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (b'\xef\xbb\xbf{"a":1}', {"a": 1}),  # a UTF-8 BOM on bytes, as json.loads
        (b'"\\ud83d"', "\ud83d"),  # a lone surrogate escape, as json.loads
        ('{"a":1e-400,"b":-0}', {"a": 0.0, "b": 0}),
        ('{"a":1,"a":2}', {"a": 2}),
    ],
)
def test_what_json_loads_takes_is_taken(body: bytes | str, value: Any) -> None:
    assert strictjson.loads(body) == value
