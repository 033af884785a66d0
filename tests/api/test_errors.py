"""Bad requests and faults get the API's JSON error shape, with the right status: unknown
paths and methods, oversized and non-JSON bodies, malformed JSON, Redis away."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

from gateway.store.redis import EmbeddedRedis
from tests.api.conftest import CRM_TOKEN, StartApi

AUTH = {"Authorization": f"Bearer {CRM_TOKEN}"}


def _code(body: dict[str, Any]) -> str:
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return str(body["error"]["code"])


async def test_bad_requests_get_json_errors(
    start_api: StartApi, redis_server: EmbeddedRedis
) -> None:
    api = await start_api()
    http = api.http
    for path in ("/api/v1/nope", "/api/v1/", "/api/v1/contacts/1/nothing"):
        async with http.get(api.running.url + path, headers=AUTH) as response:
            assert response.status == 404
            assert _code(await response.json()) == "not_found"
    async with http.delete(f"{api.base}/contacts", headers=AUTH) as response:
        assert response.status == 405
        assert "GET" in response.headers["Allow"]
        assert _code(await response.json()) == "method_not_allowed"

    merge = f"{api.base}/contacts/1/merge"

    async def post(data: Any, **headers: str) -> tuple[int, str, dict[str, Any]]:
        async with http.post(merge, data=data, headers=AUTH | headers) as response:
            body = await response.json()
            return response.status, _code(body), body

    json_type = {"Content-Type": "application/json"}
    padded = io.BytesIO(b"{" + b" " * 70_000 + b"}")
    assert (await post(padded, **json_type))[:2] == (413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read, then refused
        for _ in range(100):
            yield b" " * 1000

    assert (await post(chunks(), **json_type))[:2] == (413, "payload_too_large")
    too_big = io.BytesIO(b"x" * (2 * 1024 * 1024))  # beyond the whole server's limit too
    assert (await post(too_big, **json_type))[:2] == (413, "payload_too_large")
    assert (await post(b'{"contact_id": "2"}', **{"Content-Type": "text/plain"}))[:2] == (
        415,
        "unsupported_media_type",
    )
    for raw in (
        b"{bad",
        b"[1, 2]",
        b'"text"',
        b'{"contact_id": NaN}',
        b'{"contact_id": 1e999}',
        io.BytesIO(b"[" * 30_000 + b"]" * 30_000),
        b'{"contact_id": "\xff\xfe"}',
    ):
        status, code, body = await post(raw, **json_type)
        assert (status, code) == (400, "invalid_request"), repr(raw)[:40]
        assert body["error"]["details"][0]["loc"][0] == "body"
    # No body at all counts as {}: the missing field is named.
    status, code, body = await post(None)
    assert (status, code) == (400, "invalid_request")
    assert body["error"]["details"] == [
        {"loc": ["body", "contact_id"], "message": "Field required", "type": "missing"}
    ]
    status, code, body = await post(json.dumps({"contact_id": "2"}), **{"Idempotency-Key": "ä" * 3})
    assert status == 400 and body["error"]["details"][0]["loc"] == ["header", "Idempotency-Key"]
    status, body = await api.call("GET", "/operators?x=1")
    assert status == 400 and body["error"]["details"][0]["type"] == "extra_forbidden"
    status, body = await api.call("GET", "/tasks?limit=1&limit=2")
    assert status == 400 and body["error"]["details"][0]["loc"] == ["query", "limit"]

    # Redis away: 503 (retry later), never a traceback.
    redis_server.stop()
    try:
        async with http.get(f"{api.base}/operators", headers=AUTH) as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "5"
            assert _code(await response.json()) == "unavailable"
        status, body = await api.call("POST", "/contacts/1/task/close", json={})
        assert (status, _code(body)) == (503, "unavailable")
    finally:
        redis_server.start()
        await redis_server.wait_ready()
    assert (await api.get("/operators"))["items"]
