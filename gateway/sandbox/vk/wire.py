"""VK API wire format: reading a call's parameters, writing ``response``/``error`` answers.

Clients call ``{base}/method/{name}`` with parameters in the query string or a form body
(vk_api POSTs ``application/x-www-form-urlencoded``); every value is a string. Success is
HTTP 200 ``{"response": ...}``; failure is *also* HTTP 200, with
``{"error": {"error_code", "error_msg", "request_params": [{"key", "value"}, ...]}}``
(https://dev.vk.com/ru/reference/errors). ``request_params`` never repeats the
``access_token``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import BodyPartReader, web

from ..common.net import optional
from .models import JsonDict, VkApiError, invalid, missing

MAX_BODY = 200 * 1024 * 1024
"""VK's upload limit for documents; also the aiohttp ``client_max_size``."""
SECRET_PARAMS = frozenset({"access_token"})


class Params:
    """Typed access to one call's parameters."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def opt_str(self, name: str) -> str | None:
        """A parameter as sent, ``None`` if absent."""
        return self.values.get(name)

    def req_str(self, name: str) -> str:
        """A required non-empty parameter (error 100 "... is undefined" otherwise)."""
        value = self.values.get(name)
        if value is None or value == "":
            raise missing(name)
        return value

    def opt_int(self, name: str) -> int | None:
        """An integer parameter, ``None`` if absent; error 100 when not a number."""
        return optional(self.values.get(name), int, lambda: invalid(f"{name} not integer"))

    def req_int(self, name: str) -> int:
        """A required integer parameter."""
        value = self.opt_int(name)
        if value is None:
            raise missing(name)
        return value

    def opt_float(self, name: str) -> float | None:
        """A number parameter (coordinates), ``None`` if absent."""
        return optional(self.values.get(name), float, lambda: invalid(f"{name} not a number"))

    def flag(self, name: str) -> bool | None:
        """A 0/1 switch (``groups.setCallbackSettings``); ``None`` if absent."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        return value.strip().lower() in ("1", "true", "yes", "on")

    def csv(self, name: str) -> list[str]:
        """A comma-separated list (``user_ids``, ``fields``, ``attachment``)."""
        return [item.strip() for item in (self.values.get(name) or "").split(",") if item.strip()]

    def loggable(self) -> dict[str, str]:
        """The parameters without the access token."""
        return {k: v for k, v in self.values.items() if k not in SECRET_PARAMS}


async def read_params(request: web.Request) -> Params:
    """Query string and form body of an API request, merged (the body wins)."""
    values = dict(request.query)
    if request.can_read_body and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()
        values.update({k: v for k, v in form.items() if isinstance(v, str)})
    return Params(values)


@dataclass(frozen=True)
class UploadedFile:
    """A file part of an upload server POST."""

    field: str
    filename: str
    data: bytes
    content_type: str


async def read_files(request: web.Request) -> list[UploadedFile]:
    """Every file part of a multipart POST (non-file fields are ignored)."""
    if request.content_type != "multipart/form-data":
        return []
    files: list[UploadedFile] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None or part.filename is None:
            continue
        data = bytes(await part.read(decode=True))
        mime = part.headers.get("Content-Type", "application/octet-stream")
        files.append(UploadedFile(part.name, part.filename, data, mime))
    return files


def error_body(error: VkApiError, method: str, params: Params) -> JsonDict:
    """The ``{"error": ...}`` object, echoing the request like VK does."""
    echoed = [{"key": "method", "value": method}, {"key": "oauth", "value": "1"}]
    echoed += [{"key": k, "value": v} for k, v in params.loggable().items()]
    return {
        "error": {
            "error_code": error.code,
            "error_msg": error.message,
            "request_params": echoed,
        }
    }
