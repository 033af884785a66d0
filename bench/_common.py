"""What the benchmark's processes share: the setup, realistic updates, small helpers.

Light on purpose (no aiogram): the benchmark process imports it, and so do the server
processes (:mod:`bench._server`) and the breakdown (:mod:`bench._breakdown`).
"""

from __future__ import annotations

import json
import os
import random
import socket
import sys
import time
from pathlib import Path
from typing import Any

CUSTOMER_TOKEN = "1001:bench-customer-token-aaaaaaaaaaaaaaaa"
STAFF_TOKEN = "2002:bench-staff-token-bbbbbbbbbbbbbbbbbbbb"
STAFF_CHAT = -1005550000001
OPERATOR_ID = 700001
ACCOUNT = "tg_shop"
WEBHOOK_SECRET = "bench-secret_123"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
PARTITIONS = 16  # the production default (bus.partitions)
UNUSED_API = "http://127.0.0.1:9"  # the throughput run never calls the Bot API
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# --- realistic updates ------------------------------------------------------------------

FIRST_NAMES = ["Ivan", "Maria", "Olga", "Dmitry", "Anna", "Sergey", "Elena", "Alex", "Nina", "Oleg"]
LAST_NAMES = ["Petrov", "Ivanova", "Smirnov", "Kuznetsova", "Popov", "Sokolova", None, None]
TEXTS: list[tuple[str, list[dict[str, Any]] | None]] = [
    ("Здравствуйте! Заказ ещё не пришёл, подскажите, пожалуйста, где он?", None),
    ("Hello, is the shop open on Sunday?", None),
    ("ok", None),
    ("спасибо 🙏", None),
    ("Можно поменять размер на M? Номер заказа 48213", None),
    (
        "Here is the tracking link https://track.example.com/RU1234567890 — it says "
        "'delivered' but I got nothing",
        [{"type": "url", "offset": 26, "length": 39}],
    ),
    ("Do you deliver to Kazan? How much is it and how long does it take?", None),
    ("/start", [{"type": "bot_command", "offset": 0, "length": 6}]),
    (
        "Добрый вечер. Купила у вас куртку 12.03, молния сломалась через неделю. "
        "Хочу вернуть деньги или обменять на другую модель, что для этого нужно? "
        "Чек сохранился, фото могу прислать.",
        None,
    ),
    ("👍", None),
]


class UpdateFactory:
    """Unique Telegram ``message`` updates (private text) from many different users.

    Bodies are built from pre-encoded fragments so that the load generator spends its
    time sending, not encoding. Every body has a new ``update_id`` and, per user, a new
    ``message_id``, so the gateway's dedup never short-circuits.
    """

    def __init__(self, users: int = 5000, seed: int = 1) -> None:
        rng = random.Random(seed)
        self._users: list[str] = []
        for i in range(users):
            uid = 100_000_000 + i * 7919 + rng.randrange(7919)
            person: dict[str, Any] = {"first_name": rng.choice(FIRST_NAMES)}
            last = rng.choice(LAST_NAMES)
            if last:
                person["last_name"] = last
            if rng.random() < 0.6:
                person["username"] = f"user{uid}"
            sender = {"id": uid, "is_bot": False, **person}
            sender["language_code"] = rng.choice(["ru", "ru", "en", "uk"])
            chat = {"id": uid, **person, "type": "private"}
            self._users.append('"from":' + _dumps(sender) + ',"chat":' + _dumps(chat))
        self._texts = [
            '"text":' + _dumps(t) + (',"entities":' + _dumps(e) if e else "") for t, e in TEXTS
        ]
        self._next_message = [rng.randrange(1, 5000) for _ in range(users)]
        self._update_id = rng.randrange(100_000_000, 800_000_000)
        self._rng = rng
        self.made = 0

    def __call__(self) -> bytes:
        user = self._rng.randrange(len(self._users))
        message_id = self._next_message[user]
        self._next_message[user] = message_id + 1
        self._update_id += 1
        self.made += 1
        text = self._texts[self.made % len(self._texts)]
        return (
            f'{{"update_id":{self._update_id},"message":{{"message_id":{message_id},'
            f'{self._users[user]},"date":{int(time.time())},{text}}}}}'
        ).encode()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- helpers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc; None elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def gateway_config(
    redis_url: str, api_server: str, data_dir: Path, log_level: str = "info"
) -> dict[str, Any]:
    endpoint = {"api_server": api_server, "mode": "webhook", "webhook_secret": WEBHOOK_SECRET}
    return {
        "timezone": "Europe/Moscow",
        "data_dir": str(data_dir),
        "redis": {"url": redis_url},
        "server": {"listen": "127.0.0.1:0"},
        "log": {"level": log_level, "format": "json"},
        "bus": {"partitions": PARTITIONS},
        "delivery": {"flood_limits": False},
        "staff": {
            "token": STAFF_TOKEN,
            "chat_id": STAFF_CHAT,
            "operators": [{"id": OPERATOR_ID, "name": "Anna"}],
            **endpoint,
        },
        "channels": [{"id": ACCOUNT, "kind": "telegram", "token": CUSTOMER_TOKEN, **endpoint}],
    }


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


# --- progress ------------------------------------------------------------------------------

_T0 = time.perf_counter()
_VERBOSE = [False]


def set_verbose(on: bool) -> None:
    """``-v``: :func:`note` prints progress lines."""
    _VERBOSE[0] = on


def note(message: str) -> None:
    """A timestamped progress line on stderr (``--verbose``)."""
    if _VERBOSE[0]:
        sys.stdout.flush()  # the report so far first, then the progress line
        print(f"  [{time.perf_counter() - _T0:6.1f} s] {message}", file=sys.stderr, flush=True)
