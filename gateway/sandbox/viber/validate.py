"""Checking a message the way ``send_message`` does, for sends and welcome messages.

A bot's message is a JSON object: ``type`` and the type's fields, ``sender`` (``name``
required, at most 28 characters; ``avatar``), and optionally ``tracking_data``,
``min_api_version`` and ``keyboard``
(https://developers.viber.com/docs/api/rest-bot-api/#send-message). A message with a
``keyboard`` and no ``type`` only shows the keyboard (viberbot's ``KeyboardMessage``);
``"type": "keyboard"`` is taken as the same. Anything wrong is status 3 (badData) with
``details`` naming the field. Fields sent as JSON ``null`` count as absent (viberbot
sends ``"thumbnail": null`` and the like).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yarl import URL

from .models import MESSAGE_TYPES, JsonDict, bad_data

MAX_TEXT = 7000
MAX_DESCRIPTION = 120
"""A picture's ``text``."""
MAX_SENDER_NAME = 28
MAX_TRACKING_DATA = 4096
MAX_URL = 2000
MAX_FILE_NAME = 256
MAX_VIDEO_DURATION = 180
FORBIDDEN_EXTENSIONS = frozenset(
    {"exe", "bat", "cmd", "com", "scr", "msi", "dll", "vbs", "js", "jar", "apk", "ps1", "sh"}
)
"""Executables and scripts Viber refuses to pass on as files."""


@dataclass
class Checked:
    """A valid message, split into what the conversation stores."""

    type: str
    content: JsonDict
    sender: JsonDict
    keyboard: JsonDict | None
    tracking_data: str | None
    min_api_version: int | None


def _int(body: JsonDict, name: str, *, required: bool = False, low: int = 0) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_data(f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise bad_data(f"{name} must be an integer of at least {low}")
    return value


def _str(
    body: JsonDict, name: str, limit: int, *, required: bool = False, within: str = ""
) -> str | None:
    """A string field; ``within`` names the enclosing object in messages."""
    label = f"{within}.{name}" if within else name
    value = body.get(name)
    if value is None:
        if required:
            raise bad_data(f"{label} is required")
        return None
    if not isinstance(value, str):
        raise bad_data(f"{label} must be a string")
    if required and not value:
        raise bad_data(f"{label} must not be empty")
    if len(value) > limit:
        raise bad_data(f"{label} is longer than {limit} characters ({len(value)})")
    return value


def _url(body: JsonDict, name: str, *, required: bool = False, within: str = "") -> str | None:
    value = _str(body, name, MAX_URL, required=required, within=within)
    if value is not None:
        url = URL(value)
        if url.scheme not in ("http", "https") or not url.host:
            label = f"{within}.{name}" if within else name
            raise bad_data(f"{label} must be an absolute http(s) URL, got {value[:80]!r}")
    return value


def _object(body: JsonDict, name: str) -> JsonDict:
    value = body.get(name)
    if not isinstance(value, dict):
        raise bad_data(f"{name} must be an object")
    return value


def _number(obj: JsonDict, name: str, limit: float) -> float:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or abs(value) > limit:
        raise bad_data(f"location.{name} must be a number between -{limit} and {limit}")
    return float(value)


def _buttons(obj: JsonDict, what: str) -> None:
    buttons = obj.get("Buttons")
    if not isinstance(buttons, list) or not buttons:
        raise bad_data(f"{what}.Buttons must be a non-empty array")
    if not all(isinstance(button, dict) for button in buttons):
        raise bad_data(f"{what}.Buttons must hold button objects")


def _content(kind: str, body: JsonDict) -> JsonDict:
    """The type's own fields, checked; keys with ``None`` values are dropped."""
    found: dict[str, Any]
    match kind:
        case "text":
            found = {"text": _str(body, "text", MAX_TEXT, required=True)}
        case "picture":
            found = {
                "text": _str(body, "text", MAX_DESCRIPTION),
                "media": _url(body, "media", required=True),
                "thumbnail": _url(body, "thumbnail"),
            }
        case "video":
            found = {
                "text": _str(body, "text", MAX_DESCRIPTION),
                "media": _url(body, "media", required=True),
                "thumbnail": _url(body, "thumbnail"),
                "size": _int(body, "size", required=True, low=1),
                "duration": _int(body, "duration"),
            }
            if (found["duration"] or 0) > MAX_VIDEO_DURATION:
                raise bad_data(f"duration is over {MAX_VIDEO_DURATION} seconds")
        case "file":
            name = _str(body, "file_name", MAX_FILE_NAME, required=True) or ""
            if name.rsplit(".", 1)[-1].lower() in FORBIDDEN_EXTENSIONS and "." in name:
                raise bad_data(f"file_name: files of type .{name.rsplit('.', 1)[-1]} are refused")
            found = {
                "media": _url(body, "media", required=True),
                "size": _int(body, "size", required=True, low=1),
                "file_name": name,
            }
        case "sticker":
            found = {"sticker_id": _int(body, "sticker_id", required=True, low=1)}
        case "contact":
            contact = _object(body, "contact")
            found = {
                "contact": {
                    "name": _str(contact, "name", 28, required=True, within="contact"),
                    "phone_number": _str(
                        contact, "phone_number", 18, required=True, within="contact"
                    ),
                }
            }
        case "location":
            location = _object(body, "location")
            lat, lon = _number(location, "lat", 90), _number(location, "lon", 180)
            found = {"location": {"lat": lat, "lon": lon}}
        case "url":
            found = {"media": _url(body, "media", required=True)}
        case "rich_media":
            rich = _object(body, "rich_media")
            _buttons(rich, "rich_media")
            found = {"rich_media": rich, "alt_text": _str(body, "alt_text", MAX_TEXT)}
        case _:  # keyboard only
            found = {}
    return {key: value for key, value in found.items() if value is not None}


def check_message(body: JsonDict) -> Checked:
    """Check a message as ``send_message`` (without ``receiver``) takes it."""
    kind = body.get("type")
    keyboard = body.get("keyboard")
    if kind is None and keyboard is not None:
        kind = "keyboard"
    if kind is None:
        raise bad_data("type is required")
    if kind not in MESSAGE_TYPES:
        raise bad_data(f"type must be one of {', '.join(MESSAGE_TYPES)}, got {kind!r}")
    sender = _object(body, "sender")
    name = _str(sender, "name", MAX_SENDER_NAME, required=True, within="sender")
    checked_sender: JsonDict = {"name": name}
    if (avatar := _url(sender, "avatar", within="sender")) is not None:
        checked_sender["avatar"] = avatar
    if keyboard is not None:
        if not isinstance(keyboard, dict) or keyboard.get("Type", "keyboard") != "keyboard":
            raise bad_data('keyboard must be an object with "Type": "keyboard"')
        _buttons(keyboard, "keyboard")
    elif kind == "keyboard":
        raise bad_data("keyboard is required for a keyboard message")
    return Checked(
        type=str(kind),
        content=_content(str(kind), body),
        sender=checked_sender,
        keyboard=keyboard,
        tracking_data=_str(body, "tracking_data", MAX_TRACKING_DATA),
        min_api_version=_int(body, "min_api_version", low=1),
    )
