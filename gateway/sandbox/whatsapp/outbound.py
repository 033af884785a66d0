"""Validating the body of ``POST /{phone_number_id}/messages`` the way the Cloud API does.

https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages describes the
body: ``messaging_product: "whatsapp"`` (required), ``recipient_type: "individual"``,
``to``, ``type`` (``text`` by default) and an object named after the type, plus an
optional ``context: {message_id}`` that makes the message a reply. The same endpoint
marks an incoming message as read with ``{"status": "read", "message_id"}``.

Every problem is error 100 naming the parameter Meta's way (``Param text['body'] must be
at most 4096 characters long.``), so an adapter's logs say exactly what was wrong. What
needs the world — templates, media ids, the 24-hour window — is checked by
:mod:`.api_messages` after this.

Limits enforced: text 4096 characters; captions 1024; interactive body 1024, header and
footer 60; reply buttons 1–3 with titles up to 20 characters and unique ids and titles;
lists with a button label up to 20, 1–10 sections, 1–10 rows in all (row titles 24,
descriptions 72). Interactive types other than ``button`` and ``list`` are refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .models import MAX_CAPTION, MAX_TEXT, GraphError, JsonDict, digits_of, invalid, required

TYPES = (
    "text",
    "image",
    "document",
    "audio",
    "video",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "template",
    "reaction",
)
MEDIA_TYPES = ("image", "document", "audio", "video", "sticker")
CAPTIONED = ("image", "video", "document")


@dataclass
class Draft:
    """A validated message request."""

    to: str
    """``to`` as sent."""
    wa_id: str
    """``to`` as digits."""
    type: str
    payload: JsonDict
    """The type object (for contacts: ``{"contacts": [...]}``)."""
    text: str | None = None
    context_id: str | None = None
    template_params: dict[str, list[str]] = field(default_factory=dict)
    """Template parameters by component type (``body``, ``header``, ``button``)."""


@dataclass
class ReadMark:
    """A validated mark-as-read request."""

    message_id: str
    typing: bool


def _param(path: str, problem: str) -> GraphError:
    return invalid(f"Param {path} {problem}")


def _object(value: Any, path: str) -> JsonDict:
    if value is None:
        raise required(path)
    if not isinstance(value, dict):
        raise _param(path, "must be a JSON object.")
    return value


def _string(
    obj: JsonDict, key: str, path: str, *, need: bool = True, limit: int | None = None
) -> str | None:
    name = f"{path}['{key}']" if path else key
    value = obj.get(key)
    if value is None:
        if need:
            raise required(name)
        return None
    if not isinstance(value, str):
        raise _param(name, "must be a string.")
    if need and not value.strip():
        raise _param(name, "must be a non-empty string.")
    if limit is not None and len(value) > limit:
        raise _param(name, f"must be at most {limit} characters long.")
    return value


def _number(obj: JsonDict, key: str, path: str, bound: float) -> float:
    name = f"{path}['{key}']"
    value = obj.get(key)
    if value is None:
        raise required(name)
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not -bound <= number <= bound:
        raise _param(name, f"must be a number between -{bound:g} and {bound:g}.")
    return number


def parse_request(body: Any) -> Draft | ReadMark:
    """The validated request, or error 100 saying what is wrong."""
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object.")
    product = body.get("messaging_product")
    if product is None:
        raise required("messaging_product")
    if product != "whatsapp":
        raise _param("messaging_product", f'must be one of {{WHATSAPP}} - got "{product}".')
    if body.get("status") is not None:
        return _read_mark(body)
    recipient_type = body.get("recipient_type", "individual")
    if recipient_type != "individual":
        raise _param("recipient_type", f'must be one of {{INDIVIDUAL}} - got "{recipient_type}".')
    to = body.get("to")
    if to is None or to == "":
        raise required("to")
    if not isinstance(to, str) or not digits_of(to).isdigit() or not 7 <= len(digits_of(to)) <= 15:
        raise _param("to", "must be a phone number: 7 to 15 digits, optionally with '+'.")
    kind = body.get("type", "text")
    if kind not in TYPES:
        choices = ", ".join(t.upper() for t in sorted(TYPES))
        raise _param("type", f'must be one of {{{choices}}} - got "{kind}".')
    draft = Draft(to, digits_of(to), kind, {})
    if kind == "contacts":
        draft.payload = {"contacts": _contacts(body.get("contacts"))}
    else:
        obj = _object(body.get(kind), kind)
        draft.payload = dict(obj)
        _PARSERS[kind](draft, obj)
    context = body.get("context")
    if context is not None:
        draft.context_id = _string(_object(context, "context"), "message_id", "context")
    return draft


def _read_mark(body: JsonDict) -> ReadMark:
    if body["status"] != "read":
        raise _param("status", f'must be one of {{READ}} - got "{body["status"]}".')
    message_id = _string(body, "message_id", "") or ""
    typing = body.get("typing_indicator")
    if typing is not None:
        _string(_object(typing, "typing_indicator"), "type", "typing_indicator")
    return ReadMark(message_id, typing is not None)


def _text(draft: Draft, obj: JsonDict) -> None:
    draft.text = _string(obj, "body", "text", limit=MAX_TEXT)
    preview = obj.get("preview_url")
    if preview is not None and not isinstance(preview, bool):
        raise _param("text['preview_url']", "must be a boolean.")


def _media(draft: Draft, obj: JsonDict) -> None:
    kind = draft.type
    has_id, has_link = obj.get("id") is not None, obj.get("link") is not None
    if has_id == has_link:
        raise _param(kind, "must have exactly one of 'id' or 'link'.")
    if has_id:
        _string(obj, "id", kind)
    else:
        link = _string(obj, "link", kind) or ""
        if not link.startswith(("http://", "https://")):
            raise _param(f"{kind}['link']", "must be an HTTP or HTTPS URL.")
    if kind in CAPTIONED:
        draft.text = _string(obj, "caption", kind, need=False, limit=MAX_CAPTION)
    elif obj.get("caption") is not None:
        raise _param(f"{kind}['caption']", f"is not supported for {kind} messages.")
    if kind == "document":
        _string(obj, "filename", kind, need=False, limit=240)
    elif obj.get("filename") is not None:
        raise _param(f"{kind}['filename']", "is only supported for document messages.")


def _location(draft: Draft, obj: JsonDict) -> None:
    obj["latitude"] = _number(obj, "latitude", "location", 90)
    obj["longitude"] = _number(obj, "longitude", "location", 180)
    draft.payload = dict(obj)
    for key in ("name", "address"):
        _string(obj, key, "location", need=False, limit=1000)


def _contacts(value: Any) -> list[JsonDict]:
    if value is None:
        raise required("contacts")
    if not isinstance(value, list) or not value:
        raise _param("contacts", "must be a non-empty array.")
    for index, contact in enumerate(value):
        path = f"contacts[{index}]"
        name = _object(_object(contact, path).get("name"), f"{path}['name']")
        _string(name, "formatted_name", f"{path}['name']")
        phones = contact.get("phones", [])
        if not isinstance(phones, list) or not all(isinstance(p, dict) for p in phones):
            raise _param(f"{path}['phones']", "must be an array of objects.")
    return [dict(contact) for contact in value]


def _interactive(draft: Draft, obj: JsonDict) -> None:
    kind = obj.get("type")
    if kind not in ("button", "list"):
        raise _param("interactive['type']", f'must be one of {{BUTTON, LIST}} - got "{kind}".')
    body = _object(obj.get("body"), "interactive['body']")
    draft.text = _string(body, "text", "interactive['body']", limit=1024)
    for part in ("header", "footer"):
        if obj.get(part) is not None:
            section = _object(obj[part], f"interactive['{part}']")
            need = part == "footer" or section.get("type", "text") == "text"
            _string(section, "text", f"interactive['{part}']", need=need, limit=60)
    action = _object(obj.get("action"), "interactive['action']")
    if kind == "button":
        _buttons(action)
    else:
        _sections(action)


def _buttons(action: JsonDict) -> None:
    path = "interactive['action']['buttons']"
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise _param(path, "must be an array of 1 to 3 buttons.")
    ids: set[str] = set()
    titles: set[str] = set()
    for index, button in enumerate(buttons):
        item = _object(button, f"{path}[{index}]")
        if item.get("type") != "reply":
            raise _param(f"{path}[{index}]['type']", "must be reply.")
        reply = _object(item.get("reply"), f"{path}[{index}]['reply']")
        button_id = _string(reply, "id", f"{path}[{index}]['reply']", limit=256) or ""
        title = _string(reply, "title", f"{path}[{index}]['reply']", limit=20) or ""
        if button_id in ids or title in titles:
            raise invalid("Buttons must have unique ids and titles.")
        ids.add(button_id)
        titles.add(title)


def _sections(action: JsonDict) -> None:
    path = "interactive['action']"
    _string(action, "button", path, limit=20)
    sections = action.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
        raise _param(f"{path}['sections']", "must be an array of 1 to 10 sections.")
    row_ids: set[str] = set()
    for index, section in enumerate(sections):
        where = f"{path}['sections'][{index}]"
        item = _object(section, where)
        _string(item, "title", where, need=len(sections) > 1, limit=24)
        rows = item.get("rows")
        if not isinstance(rows, list) or not rows:
            raise _param(f"{where}['rows']", "must be a non-empty array.")
        for number, row in enumerate(rows):
            row_path = f"{where}['rows'][{number}]"
            entry = _object(row, row_path)
            row_id = _string(entry, "id", row_path, limit=200) or ""
            _string(entry, "title", row_path, limit=24)
            _string(entry, "description", row_path, need=False, limit=72)
            if row_id in row_ids:
                raise invalid("Row ids must be unique.")
            row_ids.add(row_id)
    if len(row_ids) > 10:
        raise invalid("The total number of rows in all sections must be at most 10.")


def _template(draft: Draft, obj: JsonDict) -> None:
    _string(obj, "name", "template", limit=512)
    language = _object(obj.get("language"), "template['language']")
    _string(language, "code", "template['language']")
    components = obj.get("components", [])
    if not isinstance(components, list):
        raise _param("template['components']", "must be an array.")
    for index, component in enumerate(components):
        path = f"template['components'][{index}]"
        item = _object(component, path)
        kind = _string(item, "type", path) or ""
        values = draft.template_params.setdefault(kind.lower(), [])
        parameters = item.get("parameters", [])
        if not isinstance(parameters, list):
            raise _param(f"{path}['parameters']", "must be an array.")
        for number, parameter in enumerate(parameters):
            where = f"{path}['parameters'][{number}]"
            values.append(_template_value(_object(parameter, where), where))


def _template_value(parameter: JsonDict, path: str) -> str:
    kind = parameter.get("type")
    if kind == "text":
        return _string(parameter, "text", path, limit=32768) or ""
    if kind in ("currency", "date_time"):
        inner = _object(parameter.get(kind), f"{path}['{kind}']")
        return _string(inner, "fallback_value", f"{path}['{kind}']") or ""
    if kind in ("image", "video", "document", "payload"):
        return str(kind)
    choices = "TEXT, CURRENCY, DATE_TIME, IMAGE, VIDEO, DOCUMENT, PAYLOAD"
    raise _param(f"{path}['type']", f'must be one of {{{choices}}} - got "{kind}".')


def _reaction(draft: Draft, obj: JsonDict) -> None:
    _string(obj, "message_id", "reaction")
    emoji = obj.get("emoji")
    if not isinstance(emoji, str):
        raise required("reaction['emoji']")
    draft.text = emoji


_PARSERS = {
    "text": _text,
    "image": _media,
    "document": _media,
    "audio": _media,
    "video": _media,
    "sticker": _media,
    "location": _location,
    "interactive": _interactive,
    "template": _template,
    "reaction": _reaction,
}
