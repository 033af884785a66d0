"""Customers' reactions, shown on the staff side as the staff bot's own reaction.

A Telegram bot may set only reactions from Telegram's standard list (ReactionTypeEmoji,
https://core.telegram.org/bots/api#reactiontypeemoji); an emoji outside it is shown as a
short text instead. Messengers add a variation selector to some emoji (WhatsApp's
"❤️"); Telegram's list has them without.
"""

from __future__ import annotations

ZWJ = "\u200d"
STANDARD = frozenset(
    {
        "👍", "👎", "❤", "🔥", "🥰", "👏", "😁", "🤔", "🤯", "😱", "🤬", "😢", "🎉", "🤩",
        "🤮", "💩", "🙏", "👌", "🕊", "🤡", "🥱", "🥴", "😍", "🐳", f"❤{ZWJ}🔥", "🌚", "🌭",
        "💯", "🤣", "⚡", "🍌", "🏆", "💔", "🤨", "😐", "🍓", "🍾", "💋", "🖕", "😈", "😴",
        "😭", "🤓", "👻", f"👨{ZWJ}💻", "👀", "🎃", "🙈", "😇", "😨", "🤝", "✍", "🤗", "🫡",
        "🎅", "🎄", "☃", "💅", "🤪", "🗿", "🆒", "💘", "🙉", "🦄", "😘", "💊", "🙊", "😎",
        "👾", f"🤷{ZWJ}♂", "🤷", f"🤷{ZWJ}♀", "😡",
    }
)  # fmt: skip


def for_telegram(emoji: str) -> str | None:
    """``emoji`` as Telegram's standard list spells it, or ``None`` if a bot cannot set it."""
    bare = emoji.replace("\ufe0f", "")
    return bare if bare in STANDARD else None
