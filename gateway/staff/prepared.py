"""Prepared answers operators send: quick replies (``//name``, ``/t name``) with their
macros filled, and approved WhatsApp templates (``/template``)."""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable

import structlog

from gateway.bus import Entry
from gateway.config import WhatsAppChannel
from gateway.jobs import StaffNotice, _Job
from gateway.model import Button, ContactId, Content, InboundMessage, Kind, Template
from gateway.staff.commands import Command
from gateway.staff.quick import expand, first_name
from gateway.worker import Worker

log = structlog.get_logger(__name__)
QUICK_LISTED = 30
QUICK_LABEL = 60  # characters of a quick reply's button (its name and the text's start)


class Prepared(Worker):
    _reply: Callable[..., Awaitable[None]]
    """Send content to the customer as the operator's reply (the desk's)."""

    async def quick(
        self,
        name: str,
        message: InboundMessage,
        entry: Entry,
        contact_id: ContactId,
        extra: _Job | None = None,
    ) -> str | None:
        """``//name``: send the quick reply with its macros filled; ``//`` alone lists
        them as buttons. Returns a notice when nothing is sent."""
        account = await self.account_of(contact_id)
        me = self.operator(message.sender.user_id)
        mine = set(me.roles) if me is not None and not me.admin else None
        line = self.settings.line_at(message.sender.chat_id) or self.settings.default_line
        offered = [
            t
            for t in (*self.settings.templates, *line.templates)
            if (not t.accounts or account in t.accounts)
            and (not t.roles or mine is None or mine.intersection(t.roles))
        ]
        if not name:
            if not offered:
                return "No quick replies here: add them under templates: in the config."
            buttons = tuple(
                (Button(text=f"{t.name}: {t.text}"[:QUICK_LABEL], data=f"q:{t.name}"),)
                for t in offered[:QUICK_LISTED]
            )
            listing = StaffNotice(
                out_id=f"quick:{message.key}",
                contact_id=contact_id,
                text="Quick replies — press one to send it to the customer:",
                reply_to=message.message_id,
                buttons=buttons,
            )
            await self.commit(entry, listing)
            return None
        chosen = next((t for t in offered if t.name == name), None)
        if chosen is None:
            return f"⚠️ No quick reply “{name}” here; nothing was sent. Send // for the list."
        contact = await self.contacts.get(contact_id)
        current = await self.processes.current(contact_id)
        operator = self.operators.get(message.sender.user_id) or message.sender.display_name
        values = {
            "contact.name": contact.get("display_name", ""),
            "contact.first_name": first_name(contact.get("display_name", "")),
            "operator.name": operator,
            "process.number": current.number if current is not None else "",
            "company.name": self.settings.company.name,
        }
        content = Content(kind=Kind.TEXT, text=expand(chosen.text, values))
        await self._reply(message, entry, contact_id, content, extra)
        log.info("staff.quick_reply", template=chosen.name)
        return None

    async def _template(
        self, command: Command, message: InboundMessage, entry: Entry, contact_id: ContactId
    ) -> str | None:
        """``/template NAME args…``: send an approved template (WhatsApp). Returns a
        notice when nothing is sent."""
        route = await self.contacts.reply_route(contact_id)
        channel = self.settings.channel(route[0]) if route else None
        if not isinstance(channel, WhatsAppChannel):
            return "⚠️ Templates are WhatsApp's; this customer's replies go elsewhere."
        known = {t.name: t for t in channel.templates}
        try:
            name, *args = shlex.split(command.args)
        except ValueError:
            name, args = "", []
        chosen = known.get(name)
        if chosen is None:
            listed = "\n".join(
                f"/template {t.name}"
                + "".join(f" <{n}>" for n in range(1, t.parameters + 1))
                + (f" — {t.text}" if t.text else "")
                for t in channel.templates
            )
            return (
                f"Templates of {channel.id}:\n{listed}"
                if listed
                else (f"⚠️ {channel.id} has no templates: add them under channels[].templates.")
            )
        if len(args) != chosen.parameters:
            return f"⚠️ {chosen.name} takes {chosen.parameters} parameter(s), got {len(args)}."
        preview = chosen.text or chosen.name
        for n, value in enumerate(args, start=1):
            preview = preview.replace(f"{{{{{n}}}}}", value)
        template = Template(name=chosen.name, language=chosen.language, parameters=tuple(args))
        content = Content(kind=Kind.TEXT, text=f"📋 {preview}", template=template)
        await self._reply(message, entry, contact_id, content)
        return None
