"""Writing first: whether the business may start a conversation with a person, through
which account, and what the messenger demands — the rules are explained, not hidden.

- **Telegram**: a bot writes only to people who started it (wrote to that very bot).
- **Viber**: a bot writes only to subscribers; someone who unsubscribed cannot be
  written to until they write again.
- **VK**: a community writes only to people who wrote to it or allowed its messages
  (``messages.allowed``); a ``message_deny`` stops it until they allow them again.
- **WhatsApp**: a business may write first to any phone number, but outside the 24
  hours after the customer's last message only with an approved template.

Used by ``/new`` in a line's General topic and by the HTTP API's "send a message".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.config import AnyChannel, Line, Settings, WhatsAppChannel
from gateway.contacts import Contacts, chats_of
from gateway.errors import GatewayError
from gateway.model import AccountId, Channel, ChatId, ContactId, PlatformUserId, Sender
from gateway.store import keys
from gateway.store.redis import Redis, text

WHATSAPP_WINDOW = timedelta(hours=24)


class Unreachable(GatewayError):
    """The person cannot be written to that way; the message says why (for staff)."""


@dataclass(frozen=True, slots=True)
class Reach:
    account: str
    chat: ChatId
    channel: AnyChannel
    note: str = ""
    """What the operator must know before writing (a template is required)."""


def _rule(kind: str, account: str) -> str:
    """Why an account cannot write to someone who never wrote to it."""
    return {
        "telegram": f"Telegram bots write only to people who started the bot, and they "
        f"never wrote to {account}",
        "viber": f"Viber bots write only to subscribers, and they never wrote to {account}",
        "vk": f"VK communities write only to people who wrote to them or allowed their "
        f"messages (messages.allowed), and they never wrote to {account}",
        "whatsapp": f"{account} writes to a phone number, and their phone is not known: "
        "save it with /phone first",
    }.get(kind, f"they never wrote to {account}")


def _denied(kind: str, account: str, since: str) -> str:
    what = {
        "viber": "unsubscribed from the bot",
        "vk": "forbade the community to message them (message_deny)",
    }.get(kind, "stopped the account writing to them")
    return (
        f"they {what} on {since[:16].replace('T', ' ')} UTC: {account} cannot write to them "
        "until they write again or allow it"
    )


def template_note(channel: WhatsAppChannel) -> str:
    names = ", ".join(t.name for t in channel.templates) or "none configured yet"
    return (
        "WhatsApp: more than 24 hours since they last wrote (or never), so the first "
        f"message must be an approved template — /template NAME args… ({names})."
    )


class Reacher:
    def __init__(self, redis: Redis, settings: Settings, contacts: Contacts) -> None:
        self.redis = redis
        self.settings = settings
        self.contacts = contacts

    async def reach(
        self, contact_id: ContactId, at: datetime, account: str | None, line: Line | None = None
    ) -> Reach:
        """How to write to the person: through ``account``, or (``None``) the one they
        wrote from last — preferring ``line``'s accounts — or WhatsApp by their phone.
        Raises :class:`Unreachable` with the messenger's rule."""
        data = await self.contacts.get(contact_id)
        chats = chats_of(data)
        phones = await self.redis.smembers(keys.contact_phones(contact_id))
        chosen = account or self._choose(data, chats, bool(phones), line)
        channel = self.settings.channel(chosen)
        if channel is None:
            raise Unreachable(f"there is no channel account {chosen!r}")
        identity = next((i for i in sorted(chats) if i.partition(":")[0] == chosen), None)
        if identity is None and isinstance(channel, WhatsAppChannel) and phones:
            numbers = sorted(text(p) for p in phones)
            identity = await self._whatsapp(contact_id, data, numbers, at, channel)
            if identity is None:
                raise Unreachable("their phone's WhatsApp is another contact (dedup is off)")
            chats[identity] = identity.partition(":")[2]
        if identity is None:
            raise Unreachable(_rule(channel.kind, chosen))
        user = identity.partition(":")[2]
        since = await self.redis.get(keys.denied(chosen, user))
        if since is not None:
            raise Unreachable(_denied(channel.kind, chosen, text(since)))
        note = ""
        if isinstance(channel, WhatsAppChannel):
            seen = await self.contacts.last_seen(contact_id, chosen, user)
            if seen is None or at - seen > WHATSAPP_WINDOW:
                note = template_note(channel)
        return Reach(chosen, ChatId(chats[identity]), channel, note)

    def _choose(
        self, data: dict[str, str], chats: dict[str, str], phone: bool, line: Line | None
    ) -> str:
        """The account to write through when none is named."""
        mine = [i.partition(":")[0] for i in sorted(chats)]
        last = data.get("reply_account")

        def served(account: str) -> bool:
            return line is None or self.settings.line_of(account).name == line.name

        for account in ([last] if last in mine else []) + mine:
            if account is not None and served(account) and self.settings.channel(account):
                return account
        if last in mine and last is not None:
            return last
        whatsapp = [c.id for c in self.settings.channels if isinstance(c, WhatsAppChannel)]
        if phone and whatsapp:
            return next((a for a in whatsapp if served(a)), whatsapp[0])
        raise Unreachable(
            "they have no messenger to write to: only WhatsApp lets a business write first, "
            "to a phone number (save one with /phone)"
        )

    async def _whatsapp(
        self,
        contact_id: ContactId,
        data: dict[str, str],
        phones: list[str],
        at: datetime,
        channel: WhatsAppChannel,
    ) -> str | None:
        """Give the person a WhatsApp identity from their phone (its ``wa_id`` is the
        number's digits); ``None`` if it belongs to someone else."""
        account = AccountId(channel.id)
        wa_id = phones[0].lstrip("+")
        sender = Sender(
            account=account,
            channel=Channel.WHATSAPP,
            user_id=PlatformUserId(wa_id),
            chat_id=ChatId(wa_id),
            display_name=data.get("display_name") or phones[0],
            username=data.get("username") or None,
        )
        resolved = await self.contacts.resolve(sender, at, None, phone=phones[0])
        return f"{account}:{wa_id}" if resolved.contact.id == contact_id else None
