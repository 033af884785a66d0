"""Turning an HTTP request into a validated :class:`~gateway.api.registry.Call`, and a
handler's model (or error) into the answer.

Order matters: the token is checked first (401, then 403), so nobody learns anything
about an operation's input rules without a valid token; then the path, the query, the
``Idempotency-Key`` header and the body (415, 413, 400); then the handler. Whatever
happens inside — a bug included — the answer is the JSON error shape, never a
traceback; Redis being away is a 503 the client may retry.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway import strictjson
from gateway.api.auth import Tokens, require
from gateway.api.errors import ApiError, from_validation, invalid
from gateway.api.registry import IDEMPOTENCY_KEY, Call, Route
from gateway.app import App
from gateway.logging import bind_context, new_context
from gateway.store.redis import RETRYABLE

log = structlog.get_logger(__name__)
JSON = "application/json"
_KEY = re.compile(IDEMPOTENCY_KEY)


def answer(
    model: BaseModel, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=model.model_dump_json(), status=status, content_type=JSON, headers=headers
    )


def error_answer(exc: ApiError) -> web.Response:
    return answer(exc.body(), exc.status, exc.headers)


def handler_for(
    route: Route, gateway: App, tokens: Tokens
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler of ``route``."""

    async def handle(request: web.Request) -> web.Response:
        started = time.perf_counter()
        client = None
        # A keep-alive connection serves its requests in one task: start each clean.
        new_context(operation=route.operation_id)
        try:
            if route.scope is not None:
                client = tokens.client(request.headers.get("Authorization"))
                bind_context(client=client.name)
                require(client, route.scope)
            call = Call(
                request=request,
                gateway=gateway,
                client=client,
                operation=route.operation_id,
                idempotency_key=_idempotency_key(request, route),
                path_params=_validate(route.path_params, dict(request.match_info), "path"),
                query_params=_query(route, request),
                body_params=await _body(route, request),
            )
            result = await route.handler(call)
            if not isinstance(result, route.response):  # the document would lie
                raise TypeError(f"{route.operation_id} returned {type(result).__name__}")
            response = answer(result, route.status)
        except ApiError as exc:
            response = error_answer(exc)
        except RETRYABLE as exc:
            log.warning("api.store_unavailable", error=str(exc))
            response = error_answer(
                ApiError(
                    503, "The store is unavailable; retry later.", headers={"Retry-After": "5"}
                )
            )
        except Exception:
            log.exception("api.failed")
            response = error_answer(ApiError(500, "Internal error; it has been logged."))
        ms = round((time.perf_counter() - started) * 1000, 1)
        log.info(
            "api.request",
            operation=route.operation_id,
            client=client.name if client is not None else None,
            status=response.status,
            ms=ms,
        )
        return response

    return handle


def _validate(
    model: type[BaseModel] | None, data: Mapping[str, Any], where: str
) -> BaseModel | None:
    if model is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(where, exc) from None


def _query(route: Route, request: web.Request) -> BaseModel | None:
    if route.query is None:
        if request.query:
            name = next(iter(request.query))
            raise invalid(
                ["query", name], "This operation takes no query parameters.", "extra_forbidden"
            )
        return None
    data: dict[str, str] = {}
    for name in request.query:
        values = request.query.getall(name)
        if len(values) > 1:
            raise invalid(["query", name], "Give this parameter once.", "repeated")
        data[name] = values[0]
    return _validate(route.query, data, "query")


def _idempotency_key(request: web.Request, route: Route) -> str | None:
    value = request.headers.get("Idempotency-Key")
    if value is None or not route.idempotent:
        return None
    if not _KEY.fullmatch(value):
        raise invalid(
            ["header", "Idempotency-Key"],
            "1-64 characters: letters, digits, '_', '.', ':' or '-'.",
            "pattern_mismatch",
        )
    return value


async def _body(route: Route, request: web.Request) -> BaseModel | None:
    """The JSON body validated by the route's model. No body at all counts as ``{}`` (an
    action whose fields are all optional can be posted bare)."""
    if route.body is None:
        return None
    if request.content_length is not None and request.content_length > route.max_body:
        raise _too_big(route)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_big(route) from None
    if len(raw) > route.max_body:
        raise _too_big(route)
    if not raw.strip():
        return _validate(route.body, {}, "body")
    if request.content_type != JSON:
        raise ApiError(415, f"Send the body as {JSON} (got {request.content_type or 'nothing'}).")
    try:
        data = strictjson.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise invalid(["body"], "The body is not JSON (RFC 8259).", "json_invalid") from None
    if not isinstance(data, dict):
        raise invalid(["body"], "The body must be a JSON object.", "model_type")
    return _validate(route.body, data, "body")


def _too_big(route: Route) -> ApiError:
    return ApiError(413, f"The body may have at most {route.max_body} bytes.")


def fallback_middleware() -> Any:
    """Answers for what no route handles under ``/api/v1`` (404, 405) in the same JSON
    shape as every other error."""

    @web.middleware
    async def json_errors(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
            message = exc.reason if exc.status != 404 else f"No operation at {request.path}."
            return error_answer(ApiError(exc.status, message, headers=headers))

    return json_errors
