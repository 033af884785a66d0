"""Per-adapter parse + normalise throughput (events/s) on realistic payloads.

    python -m bench.parse             # ~6 s per adapter (parse, then json.loads)
    python -m bench.parse --seconds 1 # quicker

Each adapter's ``parse`` turns raw webhook bodies (already ``json.loads``-ed, as the
web handler does) into model events. The baseline, measured in the same run, is
``json.loads`` of the same bodies: the least any webhook must spend on an event. The
table prints events/s, the ratio to that baseline and the ratio to the Telegram adapter.
The VK row adds :meth:`VkAdapter.enrich` with the names cached (the steady state;
a cache miss is one ``users.get`` call for the whole batch).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from adapters.telegram import TelegramAdapter
from adapters.viber import ViberAdapter
from adapters.vk import VkAdapter
from adapters.vk.profiles import Profile
from adapters.whatsapp import WhatsAppAdapter
from bench._common import CUSTOMER_TOKEN, TEXTS, UpdateFactory
from gateway.config import (
    DeliverySettings,
    TelegramChannel,
    ViberChannel,
    VkChannel,
    WhatsAppChannel,
)

GROUP = 229000001
WA_NUMBER = "106540352242922"
NOW = datetime.now(UTC)


def vk_bodies(count: int, seed: int = 1) -> list[bytes]:
    """message_new events of API 5.199: mostly text, some photos, documents and voice."""
    rng = random.Random(seed)
    bodies = []
    for n in range(count):
        user = 100_000 + rng.randrange(5000)
        text = TEXTS[n % len(TEXTS)][0]
        attachments: list[dict[str, Any]] = []
        roll = rng.random()
        if roll < 0.15:
            sizes = [
                {
                    "type": t,
                    "url": f"https://sun9-1.userapi.com/{n}{t}.jpg",
                    "width": w,
                    "height": w,
                }
                for t, w in (("s", 75), ("m", 130), ("x", 604), ("y", 807), ("z", 1280))
            ]
            photo = {"id": n, "owner_id": user, "access_key": "ab12", "sizes": sizes}
            attachments.append({"type": "photo", "photo": photo})
        elif roll < 0.2:
            doc = {"id": n, "owner_id": user, "title": "invoice.pdf", "size": 48213, "ext": "pdf"}
            doc["url"] = f"https://vk.com/doc{user}_{n}"
            attachments.append({"type": "doc", "doc": doc})
        elif roll < 0.25:
            voice = {"id": n, "owner_id": user, "duration": 7, "link_ogg": f"https://vk/{n}.ogg"}
            attachments.append({"type": "audio_message", "audio_message": voice})
        message = {
            "date": int(NOW.timestamp()),
            "from_id": user,
            "id": n + 1,
            "out": 0,
            "peer_id": user,
            "text": text,
            "conversation_message_id": n + 1,
            "fwd_messages": [],
            "important": False,
            "is_hidden": False,
            "attachments": attachments,
            "random_id": 0,
        }
        event = {
            "type": "message_new",
            "event_id": f"{rng.getrandbits(160):040x}",
            "v": "5.199",
            "object": {"message": message, "client_info": {"keyboard": True, "lang_id": 0}},
            "group_id": GROUP,
        }
        bodies.append(json.dumps(event, ensure_ascii=False).encode())
    return bodies


def viber_bodies(count: int, seed: int = 2) -> list[bytes]:
    """Viber ``message`` callbacks: mostly text, some pictures and files."""
    rng = random.Random(seed)
    bodies = []
    for n in range(count):
        message: dict[str, Any] = {"type": "text", "text": TEXTS[n % len(TEXTS)][0]}
        roll = rng.random()
        if roll < 0.15:
            media = f"https://dl-media.viber.com/1/share/2/long/bots/generic/{n}.jpg"
            message = {"type": "picture", "text": "", "media": media, "size": 120_000}
        elif roll < 0.2:
            media = f"https://dl-media.viber.com/1/share/2/long/bots/generic/{n}.pdf"
            message = {"type": "file", "media": media, "size": 48213, "file_name": "a.pdf"}
        sender = {"id": f"{rng.getrandbits(128):032x}=", "name": "Иван Петров", "language": "ru"}
        event = {
            "event": "message",
            "timestamp": int(NOW.timestamp() * 1000),
            "chat_hostname": "SN-CHAT-05_",
            "message_token": 5_741_311_803_571_721_087 + n,
            "sender": sender | {"avatar": "https://a/x.jpg", "api_version": 10},
            "message": message,
            "silent": False,
        }
        bodies.append(json.dumps(event, ensure_ascii=False).encode())
    return bodies


def whatsapp_bodies(count: int, seed: int = 3) -> list[bytes]:
    """Cloud API webhooks with one message each (Meta batches only under load)."""
    rng = random.Random(seed)
    bodies = []
    for n in range(count):
        wa_id = str(79_000_000_000 + rng.randrange(10**9))
        message: dict[str, Any] = {"type": "text", "text": {"body": TEXTS[n % len(TEXTS)][0]}}
        if rng.random() < 0.2:
            message = {"type": "image", "image": {"id": str(n), "mime_type": "image/jpeg"}}
        message |= {"from": wa_id, "id": f"wamid.HBgL{n:020d}", "timestamp": "1795460000"}
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": WA_NUMBER},
            "contacts": [{"profile": {"name": "Иван Петров"}, "wa_id": wa_id}],
            "messages": [message],
        }
        entry = {"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}
        bodies.append(
            json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()
        )
    return bodies


def rate(step: Callable[[Any], object], items: Sequence[Any], seconds: float) -> float:
    """Events per second of ``step`` over ``items``, cycled, for about ``seconds``."""
    done, started = 0, time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for item in items:
            step(item)
        done += len(items)
    return done / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--seconds", type=float, default=3.0)
    args.add_argument("--events", type=int, default=2000)
    opts = args.parse_args(argv)
    limits = DeliverySettings()

    updates = UpdateFactory(users=1000)
    tg_bodies = [updates() for _ in range(opts.events)]
    telegram = TelegramAdapter(
        "tg_shop",
        TelegramChannel(id="tg_shop", kind="telegram", token=CUSTOMER_TOKEN),
        limits,
    )
    vk = VkAdapter(
        "vk_shop",
        VkChannel(id="vk_shop", kind="vk", token="vk1.bench", group_id=GROUP),
        limits,
    )
    viber = ViberAdapter(
        "viber_shop",
        ViberChannel(id="viber_shop", kind="viber", token="bench-viber", name="Shop"),
        limits,
    )
    whatsapp = WhatsAppAdapter(
        "wa_shop",
        WhatsAppChannel(
            id="wa_shop",
            kind="whatsapp",
            token="bench",
            phone_number_id=WA_NUMBER,
            app_secret="s",
            verify_token="v",
        ),
        limits,
    )
    bodies = vk_bodies(opts.events)
    for body in bodies:  # warm the name cache: the steady state of a busy community
        user = str(json.loads(body)["object"]["message"]["from_id"])
        vk.profiles.put(user, Profile(name="Иван Петров", username=None, photo_url=None))

    rows: list[tuple[str, float, float]] = []
    runs: list[tuple[str, Any, list[bytes]]] = [
        ("telegram", telegram, tg_bodies),
        ("vk", vk, bodies),
        ("viber", viber, viber_bodies(opts.events)),
        ("whatsapp", whatsapp, whatsapp_bodies(opts.events)),
    ]
    for name, adapter, raw in runs:
        payloads = [json.loads(b) for b in raw]
        baseline = rate(json.loads, raw, opts.seconds)
        parsed = rate(lambda p, a=adapter: a.parse(p, NOW), payloads, opts.seconds)
        rows.append((name, parsed, baseline))

    loop = asyncio.new_event_loop()
    payloads = [json.loads(b) for b in bodies]
    events = [vk.parse(p, NOW) for p in payloads]
    enriched = rate(lambda e: loop.run_until_complete(vk.enrich(e)), events, opts.seconds)
    loop.close()

    telegram_rate = rows[0][1]
    print(f"{'adapter':<22}{'events/s':>12}{'json.loads/s':>14}{'ratio':>8}{'vs telegram':>13}")
    for name, parsed, baseline in rows:
        print(
            f"{name + ' parse':<22}{parsed:>12,.0f}{baseline:>14,.0f}"
            f"{parsed / baseline:>8.2f}{parsed / telegram_rate:>13.2f}"
        )
    vs_telegram = enriched / telegram_rate
    print(f"{'vk enrich (cached)':<22}{enriched:>12,.0f}{'':>14}{'':>8}{vs_telegram:>13.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
