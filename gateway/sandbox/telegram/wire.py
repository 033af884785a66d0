"""Bot API wire format: reading a call's parameters, writing ``ok``/error answers.

Telegram accepts the same parameters as query string, ``application/json``,
``x-www-form-urlencoded`` or ``multipart/form-data``; aiogram uses multipart with nested
objects JSON-encoded inside form fields. :class:`Params` hides those differences and gives
typed accessors that fail with Telegram-like 400 descriptions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web

from ..common.net import json_response, optional
from .models import ApiError, JsonDict, bad_request

MAX_BODY = 50 * 1024 * 1024
"""Telegram's upload limit for bots; also used as the aiohttp ``client_max_size``."""

_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "reply_parameters",
        "media",
        "options",
        "allowed_updates",
        "reaction",
        "entities",
        "caption_entities",
        "link_preview_options",
    }
)


@dataclass(frozen=True)
class Upload:
    """A file sent inside a multipart request."""

    filename: str
    data: bytes
    content_type: str


class Params:
    """Typed access to one call's parameters, whatever encoding the client used."""

    def __init__(self, values: JsonDict, uploads: dict[str, Upload] | None = None) -> None:
        self.values = values
        self.uploads = uploads or {}

    def has(self, name: str) -> bool:
        """Whether the parameter was sent (a file part counts)."""
        return self.values.get(name) is not None or name in self.uploads

    def opt_str(self, name: str) -> str | None:
        """A string parameter, ``None`` if absent."""
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, (dict, list)):
            return json.dumps(value)
        return str(value)

    def req_str(self, name: str, empty: str | None = None) -> str:
        """A required non-empty string; ``empty`` is the description suffix when missing."""
        value = self.opt_str(name)
        if not value:
            raise bad_request(empty or f"{name} is empty")
        return value

    def opt_int(self, name: str) -> int | None:
        """An integer parameter, ``None`` if absent; 400 when not a number."""
        return optional(
            self.values.get(name), int, lambda: bad_request(f"invalid {name} specified")
        )

    def req_int(self, name: str, empty: str | None = None) -> int:
        """A required integer parameter."""
        value = self.opt_int(name)
        if value is None:
            raise bad_request(empty or f"{name} is empty")
        return value

    def opt_float(self, name: str) -> float | None:
        """A float parameter (coordinates), ``None`` if absent."""
        return optional(
            self.values.get(name), float, lambda: bad_request(f"invalid {name} specified")
        )

    def req_float(self, name: str) -> float:
        """A required float parameter."""
        value = self.opt_float(name)
        if value is None:
            raise bad_request(f"{name} is empty")
        return value

    def opt_bool(self, name: str, default: bool = False) -> bool:
        """A boolean given as JSON ``true``, ``"true"``, ``"1"`` and the like."""
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in ("true", "1", "yes", "on")

    def opt_json(self, name: str) -> Any:
        """A nested object or array; form encodings carry it as a JSON string."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                raise bad_request(f"can't parse {name} JSON object") from None
        return value

    def opt_object(self, name: str) -> JsonDict | None:
        """A nested JSON object, 400 if it is something else."""
        value = self.opt_json(name)
        if value is not None and not isinstance(value, dict):
            raise bad_request(f"can't parse {name} JSON object")
        return value

    def loggable(self) -> JsonDict:
        """The parameters for :class:`~.models.Call`: nested JSON decoded, no file bytes."""
        logged: JsonDict = {}
        for key, value in self.values.items():
            if key in _JSON_FIELDS and isinstance(value, str):
                try:
                    logged[key] = json.loads(value)
                except json.JSONDecodeError:
                    logged[key] = value
            else:
                logged[key] = value
        for key, upload in self.uploads.items():
            logged.setdefault(key, f"<file {upload.filename} {len(upload.data)} bytes>")
        return logged


async def read_params(request: web.Request) -> Params:
    """Parse the query string and body of a Bot API request, whatever its encoding."""
    values: JsonDict = dict(request.query)
    uploads: dict[str, Upload] = {}
    if not request.can_read_body:
        return Params(values, uploads)
    content_type = request.content_type
    try:
        if content_type == "multipart/form-data":
            await read_multipart(await request.multipart(), values, uploads)
        elif content_type == "application/json":
            body = await request.json()
            if not isinstance(body, dict):
                raise bad_request("can't parse request JSON object")
            values.update(body)
        else:
            values.update({key: str(value) for key, value in (await request.post()).items()})
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "Request Entity Too Large") from None
    except (ValueError, UnicodeDecodeError):
        raise bad_request("can't parse request body") from None
    return Params(values, uploads)


async def read_multipart(
    reader: MultipartReader, values: JsonDict, uploads: dict[str, Upload]
) -> None:
    """Collect form fields into ``values`` and file parts into ``uploads``."""
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        if part.filename is not None:
            data = bytes(await part.read(decode=True))
            mime = part.headers.get("Content-Type", "application/octet-stream")
            uploads[part.name] = Upload(part.filename, data, mime)
        else:
            values[part.name] = await part.text()


def ok_response(result: Any) -> web.Response:
    """``{"ok": true, "result": ...}``."""
    return json_response({"ok": True, "result": result})


def error_response(error: ApiError) -> web.Response:
    """A Bot API failure answer with the error's HTTP status."""
    return json_response(error.payload(), status=error.status)
