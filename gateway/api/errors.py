"""The API's errors: one exception type, one JSON shape.

Every error the API answers — authentication, validation, a missing resource, a rule
that refuses an action, Redis away — is ``{"error": {"code", "message", "details"}}``
with the matching HTTP status, so a client needs one error handler. ``code`` is stable
(clients branch on it); ``message`` is for people; ``details`` lists the fields a
validation error is about, each with its path (``["body", "text"]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CODES: Mapping[int, str] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
    503: "unavailable",
}
"""The default ``code`` of each status (a handler may name a more precise one)."""

DESCRIPTIONS: Mapping[int, str] = {
    400: "Malformed or invalid input; `details` names each field.",
    401: "No bearer token, or an unknown one.",
    403: "The token lacks the scope this operation needs, or the operator may not act.",
    404: "No such resource.",
    409: "The current state does not allow it (the message says why).",
    413: "The body is larger than this operation accepts.",
    415: "The body is not `application/json`.",
    503: "The store (Redis) is unavailable; retry later.",
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)


class ErrorDetail(_Model):
    loc: list[str | int]
    """Where the problem is: ``body``, ``query``, ``path`` or ``header``, then the field."""
    message: str
    type: str
    """pydantic's error type (``missing``, ``string_too_short``…), or the API's own."""


class ErrorInfo(_Model):
    code: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorBody(_Model):
    """Every error answer's body."""

    error: ErrorInfo


class ApiError(Exception):
    """Answer with ``status`` and the error body (raised anywhere inside a handler)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Sequence[ErrorDetail] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})

    def body(self) -> ErrorBody:
        return ErrorBody(
            error=ErrorInfo(code=self.code, message=self.message, details=self.details)
        )


def invalid(loc: Sequence[str | int], message: str, kind: str = "value_error") -> ApiError:
    """A 400 about one field (``loc`` as in :class:`ErrorDetail`)."""
    detail = ErrorDetail(loc=list(loc), message=message, type=kind)
    return ApiError(400, f"{'.'.join(map(str, loc))}: {message}", details=[detail])


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def conflict(message: str, code: str = "conflict") -> ApiError:
    return ApiError(409, message, code=code)


def from_validation(where: str, exc: ValidationError) -> ApiError:
    """pydantic's errors as a 400, each with its path prefixed by ``where``."""
    details = [
        ErrorDetail(
            loc=[where, *_loc(error.get("loc", ()))], message=error["msg"], type=error["type"]
        )
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    first = details[0] if details else None
    summary = f"{'.'.join(map(str, first.loc))}: {first.message}" if first else f"invalid {where}"
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return ApiError(400, summary + more, details=details)


def _loc(loc: Any) -> list[str | int]:
    return [part if isinstance(part, int) else str(part) for part in loc]
