"""Sending business messages and marking customers' messages read (``/messages``).

After :mod:`.outbound` validated the body, a send is checked against the world, in this
order: sending to the number itself (131021); a template must exist in that language and
be approved (132001; paused 132015, disabled 132016) and get exactly as many parameters
as its body has ``{{n}}`` variables (132000); any other message needs an open customer
service window — the customer wrote within 24 hours of the emulator's clock — or fails
with 131047; media ``id`` s must be this business's uploads of a fitting type; a
reaction's ``message_id`` must belong to the conversation; then ``pair_limit`` (131056).

Accepted messages answer at once with their ``wamid``; what happens next is reported by
status webhooks, like Meta does: ``sent`` and (with ``auto_deliver``) ``delivered``; for
a ``link`` the file is fetched first and an unreachable or oversized file ends in
``failed`` with 131053; a template to someone who is not a WhatsApp user ends in
``failed`` with 131026; with ``window_errors = "async"`` a message outside the window is
accepted and then ``failed`` with 131047 (what Meta often does in practice).
"""

from __future__ import annotations

from collections import deque

from .media import LIMITS, MIME_TYPES, fits, kind_of, sniff_image
from .models import (
    PAIR_WINDOW,
    GraphError,
    JsonDict,
    Message,
    Number,
    graph_error,
    invalid,
    wamid,
)
from .outbound import MEDIA_TYPES, Draft, ReadMark, parse_request
from .state import WhatsAppWorld


def handle(world: WhatsAppWorld, number: Number, body: object) -> JsonDict:
    """The ``/messages`` endpoint after authentication: a send or a read mark."""
    request = parse_request(body)
    if isinstance(request, ReadMark):
        return mark_read(world, number, request)
    return send(world, number, request)


def send(world: WhatsAppWorld, number: Number, draft: Draft) -> JsonDict:
    """Check, store and answer one business message; its statuses follow as webhooks."""
    if draft.wa_id == number.display_phone_number:
        raise graph_error(131021)
    message = Message(
        id=wamid(draft.wa_id, inbound=False),
        direction="out",
        phone_number_id=number.id,
        wa_id=draft.wa_id,
        type=draft.type,
        timestamp=int(world.now()),
        payload=draft.payload,
        text=draft.text,
        status="accepted",
    )
    deferred: GraphError | None = None
    if draft.type == "template":
        _template(world, draft, message)
    elif not world.in_window(number.id, draft.wa_id):
        if world.window_errors != "async":
            raise graph_error(131047)
        deferred = graph_error(131047)
    if draft.type in MEDIA_TYPES and "id" in draft.payload:
        _stored_media(world, number, draft, message)
    if draft.type == "reaction":
        target = world.messages.get(str(draft.payload["message_id"]))
        if target is None or (target.phone_number_id, target.wa_id) != (number.id, draft.wa_id):
            raise invalid("Param reaction['message_id'] is not a message of this conversation.")
    _pair_limit(world, number, draft.wa_id)
    if draft.context_id is not None:
        message.context = {"id": draft.context_id}
    world.add_message(message)
    if deferred is not None:
        world.set_status(message, "failed", [deferred.webhook_error()])
    elif draft.type in MEDIA_TYPES and "link" in draft.payload:
        world.delivery.spawn(_fetch_link(world, message, str(draft.payload["link"])))
    else:
        _dispatch(world, message)
    item: JsonDict = {"id": message.id}
    if draft.type == "template":
        item["message_status"] = "accepted"
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": draft.to, "wa_id": draft.wa_id}],
        "messages": [item],
    }


def _template(world: WhatsAppWorld, draft: Draft, message: Message) -> None:
    name = str(draft.payload["name"])
    language = str(draft.payload["language"]["code"])
    template = world.template(name, language)
    params = draft.template_params.get("body", [])
    if len(params) != template.param_count:
        raise graph_error(
            132000,
            f"body: number of localizable_params ({len(params)}) does not match the expected "
            f"number of params ({template.param_count})",
        )
    for kind in ("header", "button"):
        extra = draft.template_params.get(kind, [])
        if extra:
            raise graph_error(
                132000,
                f"{kind}: number of params ({len(extra)}) does not match the expected number "
                "of params (0)",
            )
    message.text = template.render(params)
    message.template = {
        "name": name,
        "language": language,
        "params": params,
        "category": template.category.lower(),
    }


def _stored_media(world: WhatsAppWorld, number: Number, draft: Draft, message: Message) -> None:
    kind = draft.type
    media_id = str(draft.payload["id"])
    stored = world.media.get(media_id)
    owner = world.numbers.get(stored.owner) if stored is not None else None
    if stored is None or owner is None or owner.waba_id != number.waba_id:
        raise invalid(
            f"Param {kind}['id'] is not a valid whatsapp business account media attachment ID."
        )
    if not fits(kind, stored.mime_type):
        raise graph_error(
            131053,
            f"Media of type {stored.mime_type} cannot be sent as {kind}; "
            f"supported: {', '.join(MIME_TYPES[kind])}",
        )
    message.media, message.media_id, message.mime_type = stored.data, stored.id, stored.mime_type
    message.filename = draft.payload.get("filename") or stored.filename


def _pair_limit(world: WhatsAppWorld, number: Number, wa_id: str) -> None:
    if world.pair_limit is None:
        return
    sends = number.pair_sends.setdefault(wa_id, deque())
    now = world.now()
    while sends and now - sends[0] >= PAIR_WINDOW:
        sends.popleft()
    if len(sends) >= world.pair_limit:
        raise graph_error(131056)
    sends.append(now)


def _dispatch(world: WhatsAppWorld, message: Message) -> None:
    """``sent`` then ``delivered`` (with ``auto_deliver``); ``failed`` 131026 for people
    who are not WhatsApp users."""
    if message.wa_id not in world.users:
        world.set_status(message, "failed", [graph_error(131026).webhook_error()])
        return
    world.set_status(message, "sent")
    if world.auto_deliver:
        world.set_status(message, "delivered")


async def _fetch_link(world: WhatsAppWorld, message: Message, link: str) -> None:
    """Download a ``link`` as Meta does before sending; ``failed`` 131053 if it fails."""
    fetched = await world.delivery.fetch(link, LIMITS[message.type])
    if isinstance(fetched, str):
        world.set_status(message, "failed", [graph_error(131053, fetched).webhook_error()])
        return
    data, mime = fetched
    if kind_of(mime) is None and message.type in ("image", "sticker"):
        mime = sniff_image(data)
    message.media, message.mime_type = data, mime.split(";", 1)[0].strip()
    message.filename = message.payload.get("filename")
    _dispatch(world, message)


def mark_read(world: WhatsAppWorld, number: Number, request: ReadMark) -> JsonDict:
    """Mark a customer's message (and the earlier ones) read → ``{"success": true}``."""
    target = world.messages.get(request.message_id)
    if target is None or target.direction != "in" or target.phone_number_id != number.id:
        raise invalid(f"Param message_id is not a received message: {request.message_id}.")
    for message in world.conversation(number.id, target.wa_id):
        if message.direction == "in":
            message.read_by_business = True
        if message is target:
            break
    mark = {
        "message_id": target.id,
        "wa_id": target.wa_id,
        "timestamp": int(world.now()),
        "typing_indicator": request.typing,
    }
    number.read_marks.append(mark)
    world.feed.emit("read_mark", number.id, target.wa_id, mark=mark)
    return {"success": True}
