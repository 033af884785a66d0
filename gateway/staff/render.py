"""What the staff group sees: topic names, header cards, notices."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from gateway.model import Channel, Contact, InboundMessage

CHANNEL_TITLES = {
    Channel.TELEGRAM: "Telegram",
    Channel.VK: "VK",
    Channel.VIBER: "Viber",
    Channel.WHATSAPP: "WhatsApp",
    Channel.WEBCHAT: "Website",
    Channel.API: "API",
}
CHANNEL_ICONS = {
    Channel.TELEGRAM: "✈️",
    Channel.VK: "🔵",
    Channel.VIBER: "🟣",
    Channel.WHATSAPP: "🟢",
    Channel.WEBCHAT: "🌐",
    Channel.API: "🔗",
}
TOPIC_NAME_LIMIT = 128  # Bot API createForumTopic: "Topic name, 1-128 characters"
EDITED_MARK = "✏️ edited"


def topic_name(template: str, contact: Contact) -> str:
    name = template.format(
        name=contact.display_name, channel=CHANNEL_TITLES[contact.channel], id=contact.id
    )
    return name[:TOPIC_NAME_LIMIT].strip() or f"Contact {contact.id}"


def header_card(contact: Contact, message: InboundMessage, zone: ZoneInfo) -> str:
    """The first message of a topic: who this is and where they write from."""
    sender = message.sender
    who = contact.display_name + (f" (@{contact.username})" if contact.username else "")
    lines = [
        f"👤 {who}",
        f"Channel: {CHANNEL_ICONS[contact.channel]} {CHANNEL_TITLES[contact.channel]} · "
        f"{contact.account}",
        f"Platform id: {sender.user_id}",
    ]
    if sender.channel is Channel.VK:
        lines.append(f"Profile: https://vk.com/id{sender.user_id}")
    if sender.language:
        lines.append(f"Language: {sender.language}")
    lines += [
        f"First seen: {contact.first_seen.astimezone(zone):%Y-%m-%d %H:%M %Z}",
        f"Contact #{contact.id} · {contact.kind}",
        "",
        "Reply in this topic to answer. Start a message with ! for an internal note.",
    ]
    return "\n".join(lines)


def badge(channel: Channel, account: str) -> str:
    """Which messenger a forwarded message came from (shown once a person has more
    than one)."""
    return f"{CHANNEL_ICONS[channel]} {account}"


def edited_text(text: str | None) -> str:
    return f"{text or ''}\n\n{EDITED_MARK}".strip()


def subscription(allowed: bool, channel: Channel, account: str) -> str:
    """The customer allowed or denied messages from an account."""
    where = badge(channel, account)
    if allowed:
        return f"🔔 The customer allowed messages from {where}: replies reach them again."
    return (
        f"🔕 The customer denied messages from {where}: replies there will not be delivered "
        "until they allow them again."
    )


def not_delivered(reason: str) -> str:
    return f"⚠️ Not delivered to the customer: {reason}."


def attachment_unavailable(kind: str, reason: str) -> str:
    return f"[{kind} — could not be forwarded: {reason}]"


def rating(value: int) -> str:
    """A task's satisfaction rating as staff see it (``0``: the survey went unanswered)."""
    return f"⭐ {value}/5" if value else "no answer to the survey"


def rated(value: int, process: str, task: int) -> str:
    """The notice in the topic when the customer rates a closed task."""
    return f"{rating(value)} from the customer for task {process}/{task}"


QUOTED = 200
"""Characters of a quoted message shown inline."""


def quoted(text: str) -> str:
    """A quote of a message the topic has no copy of, above the customer's reply."""
    short = " ".join(text.split())
    return f"↩️ «{short if len(short) <= QUOTED else short[: QUOTED - 1] + '…'}»"
