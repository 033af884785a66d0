"""Slash commands operators type in a contact's topic."""

from __future__ import annotations

from dataclasses import dataclass

HELP = """Commands in a customer's topic:
/task — the current business process and task
/take — take the task (replying takes it too)
/close [reason] — close the task
/transfer [operator or role] — hand the task over (no name: buttons); it waits to be taken
/reopen — reopen today's last closed task
/rename <text> — name the business process
/history — this customer's processes, tasks and messages, all messengers
/attachments [kind] — their files and photos (kind: photo, document, voice…)
/contact — who this is: messengers, phones, e-mails
/phone <number> — save a phone (the same phone elsewhere merges the contacts)
/email <address> — save an e-mail (likewise)
/merge <contact id or topic link> — merge that contact into this one
/unmerge <account> — split a messenger back out into a contact of its own
/via <account> — send replies through another of the person's messengers
/template [name args…] — send an approved WhatsApp template (the list without a name)
//name or /t name — send a quick reply (// alone lists them as buttons)
/id — the contact's id and where replies go
/line <name> — move the conversation (and its open task) to another line's group
/delete — (as a reply to your message) take it back from the customer
Editing your message corrects it for the customer too.
/ban [reason], /unban — keep their messages out of here (stored, no tasks)
/watch, /unwatch — be told privately of each of their messages; /watching — whom you watch
/online, /offline, /status — your availability; everyone's, with their load
/help — this list

Any other message here is sent to the customer.
Start a message with ! to keep it as an internal note (not sent)."""


GENERAL_HELP = """Commands in the General topic:
/overdue — tasks past their deadline, longest waiting first, with links
/find <name, @username, phone or e-mail> — find a person and their topic
/online, /offline — say whether you take work now (online hands you waiting tasks)
/status — every operator: online or not, and open tasks against capacity
/queue — new tasks waiting for an owner, by role, oldest first, with links
/new <phone, @username or contact id> [via <account>] — write to someone first
/watching — the customers you watch, with links
/help — this list

In a customer's topic, /help lists the task commands."""


def topic_link(staff_chat: str, topic: int) -> str:
    """A link that opens a forum topic (https://t.me/c/<chat without -100>/<topic>)."""
    internal = staff_chat[4:] if staff_chat.startswith("-100") else staff_chat.lstrip("-")
    return f"https://t.me/c/{internal}/{topic}"


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: str
    elsewhere: bool = False
    """Addressed to another bot in the group (``/help@crm_bot``): not ours to answer,
    and not a message for the customer either."""


def parse_command(text: str, bot_username: str | None = None) -> Command | None:
    """``/name@bot args`` → Command; ``None`` if the text is not a command.

    ``bot_username`` is the staff bot's own (from getMe); unknown, every command counts
    as ours."""
    if not text.startswith("/") or text.startswith("//") or text[1:2].isspace():
        return None
    # The command ends at the first whitespace, a newline included ("/id\nmore").
    head, *rest = text[1:].split(maxsplit=1) or [""]
    args = rest[0] if rest else ""
    name, _, target = head.partition("@")
    if not name:
        return None
    elsewhere = bool(target and bot_username and target.lower() != bot_username.lower())
    return Command(name=name.lower(), args=args.strip(), elsewhere=elsewhere)
