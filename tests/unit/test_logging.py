"""The production log configuration: one JSON line per event on the root handler's stream,
the gateway's lines and the libraries' alike, levels from stdlib, secrets redacted."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from gateway import logging as gateway_logging
from tests.logs import production_logs

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    with production_logs("info", ["webhook-secret-value"]) as stream:
        yield stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_gateway_line_is_one_json_object_with_its_context(output: io.StringIO) -> None:
    log = structlog.get_logger("gateway.pipeline")
    gateway_logging.new_context(account="tg")
    gateway_logging.bind_context(contact_id="42")
    try:
        log.info("inbound.accepted", kind="text", process="BP-20261124-0001")
    finally:
        gateway_logging.new_context()
    (line,) = lines(output)
    assert line.pop("timestamp")
    assert line == {
        "account": "tg",
        "contact_id": "42",
        "kind": "text",
        "process": "BP-20261124-0001",
        "event": "inbound.accepted",
        "level": "info",
        "logger": "gateway.pipeline",
    }


def test_levels_follow_stdlib_also_when_changed_at_run_time(output: io.StringIO) -> None:
    log = structlog.get_logger("gateway.delivery")
    log.debug("hidden")
    logging.getLogger().setLevel("DEBUG")  # what a config reload does
    log.debug("shown")
    logging.getLogger("gateway.delivery").setLevel("ERROR")
    log.warning("hidden too")
    log.error("shown too")
    assert [(line["event"], line["level"]) for line in lines(output)] == [
        ("shown", "debug"),
        ("shown too", "error"),
    ]
    logging.getLogger("gateway.delivery").setLevel(logging.NOTSET)


def test_secrets_are_redacted_in_fields_and_in_exceptions(output: io.StringIO) -> None:
    log = structlog.get_logger("gateway.web")
    try:
        raise RuntimeError(f"POST https://api.telegram.org/bot{TOKEN}/sendMessage failed")
    except RuntimeError:
        log.exception("send.failed", url=f"/bot{TOKEN}/getMe", note="webhook-secret-value")
    (line,) = lines(output)
    assert line["level"] == "error"
    assert "RuntimeError" in str(line["exception"])
    assert line["note"] == gateway_logging.REDACTED
    text = output.getvalue()
    assert TOKEN.split(":")[1] not in text
    assert "webhook-secret-value" not in text


def test_library_lines_are_rendered_alike_in_order(output: io.StringIO) -> None:
    structlog.get_logger("gateway.app").info("first")
    logging.getLogger("aiohttp.client").warning("second with %s", f"bot{TOKEN}")
    logging.getLogger("aiohttp.access").info("below the access log's level")
    structlog.get_logger("gateway.app").info("third")
    got = lines(output)
    assert [line["event"] for line in got] == [
        "first",
        f"second with bot{gateway_logging.REDACTED}",
        "third",
    ]
    assert got[1]["logger"] == "aiohttp.client"
    assert got[1]["level"] == "warning"


async def test_each_unit_of_work_logs_its_own_context(output: io.StringIO) -> None:
    """A new context drops the previous unit's fields; a task keeps the context it was
    started with, whatever its parent binds later; a line's own fields win."""
    log = structlog.get_logger("gateway.delivery")
    gateway_logging.new_context(job="a", contact_id="1")
    gateway_logging.new_context(job="b")
    started = asyncio.Event()
    go_on = asyncio.Event()

    async def child() -> None:
        started.set()
        await go_on.wait()
        log.info("child")

    task = asyncio.create_task(child())
    await started.wait()
    gateway_logging.bind_context(contact_id="2")
    go_on.set()
    await task
    log.info("parent", job="own")
    gateway_logging.new_context()
    log.info("none")
    assert [
        {k: v for k, v in line.items() if k in ("event", "job", "contact_id")}
        for line in lines(output)
    ] == [
        {"event": "child", "job": "b"},
        {"event": "parent", "job": "own", "contact_id": "2"},
        {"event": "none"},
    ]
