"""Applying a changed ``bridge_config.yaml`` to a running gateway: ``SIGHUP``, or
``gateway reload`` (which validates the file, then asks every replica on the same Redis
to apply theirs).

The file is read and validated first; an invalid one is refused whole — the running
config stays, and the errors (with their YAML paths) are logged and posted to the staff
group's General topic, where whoever edited it is likely to look. A valid one is
applied by :meth:`gateway.app.App.reconfigure`: the workers stop after the entry they are
on (their effects and acknowledgements are one transaction, so nothing is half done),
the components are rebuilt with the new settings and started again. Every message
waits in Redis meanwhile — webhooks keep answering — so nothing is dropped or handled
twice. New accounts start; a removed account stops taking webhooks at once and keeps
delivering what was already queued for it (see :data:`DRAIN_SECONDS`).

A few settings are the process's own (where Redis is, what port it listens on, the
staff bot itself); a change of those is refused with the list of what needs a restart.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from gateway.config import Settings, load_config
from gateway.errors import ConfigError
from gateway.jobs import StaffGeneral, family
from gateway.lifecycle import raise_if_cancelling
from gateway.logging import REDACTOR
from gateway.model import ContactId
from gateway.store import keys
from gateway.store.redis import RETRYABLE, EmbeddedRedis, close, connect

if TYPE_CHECKING:
    from gateway.app import App

log = structlog.get_logger(__name__)

RESTART_ONLY = (
    "redis",
    "server",
    "data_dir",
    "bus",
    "staff.token",
    "staff.chat_id",
    "staff.mode",
    "staff.relay_bots",
    "staff.webhook_secret",
    "log.format",
)
"""Settings a running process cannot change (dotted paths of the config)."""
DRAIN_SECONDS = 120.0
"""How long a removed account keeps delivering the jobs queued for it before reload."""


@dataclass(frozen=True, slots=True)
class Outcome:
    applied: bool
    message: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    errors: tuple[tuple[str, str], ...] = field(default=())


def _at(settings: Settings, dotted: str) -> Any:
    node: Any = settings
    for part in dotted.split("."):
        node = getattr(node, part, None)
    return node


def restart_needed(old: Settings, new: Settings) -> list[str]:
    """The restart-only settings that differ."""
    return [path for path in RESTART_ONLY if _at(old, path) != _at(new, path)]


def accounts_diff(old: Settings, new: Settings) -> tuple[list[str], list[str], list[str]]:
    """Accounts added, removed and changed (by ``id``)."""
    before = {c.id: c for c in old.channels}
    after = {c.id: c for c in new.channels}
    added = [a for a in after if a not in before]
    removed = [a for a in before if a not in after]
    changed = [a for a in after if a in before and after[a] != before[a]]
    return added, removed, changed


class Reloader:
    """Re-reads ``path`` and applies it to ``app``, one reload at a time."""

    def __init__(self, app: App, path: str | Path) -> None:
        self.app = app
        self.path = Path(path)
        self._lock = asyncio.Lock()

    async def reload(self) -> Outcome:
        async with self._lock:
            outcome = await self._reload()
        if outcome.applied:
            log.info(
                "config.reloaded",
                added=outcome.added,
                removed=outcome.removed,
                changed=outcome.changed,
            )
        else:
            log.error("config.reload_refused", reason=outcome.message, errors=outcome.errors)
        await self._announce(outcome)
        return outcome

    async def _reload(self) -> Outcome:
        old = self.app.settings
        try:
            new = load_config(self.path)
        except ConfigError as exc:
            lines = "\n".join(f"• {path}: {message}" for path, message in exc.errors)
            return Outcome(
                False, f"{self.path.name} is invalid:\n{lines}", errors=tuple(exc.errors)
            )
        restart = restart_needed(old, new)
        if restart:
            return Outcome(False, f"these settings need a restart: {', '.join(restart)}")
        added, removed, changed = accounts_diff(old, new)
        await self.app.reconfigure(new, drain_seconds=DRAIN_SECONDS)
        REDACTOR.set_secrets(new.secrets())  # new tokens never reach the logs either
        logging.getLogger().setLevel(new.log.level.upper())
        parts = [
            f"{label}: {', '.join(ids)}"
            for label, ids in (("added", added), ("removed", removed), ("changed", changed))
            if ids
        ]
        summary = "; ".join(parts) or "accounts unchanged"
        return Outcome(True, summary, tuple(added), tuple(removed), tuple(changed))

    async def _announce(self, outcome: Outcome) -> None:
        """Tell the staff group's General topic (best effort: the log has it anyway)."""
        if outcome.applied:
            text = f"✅ Configuration reloaded ({outcome.message})."
        else:
            text = f"⚠️ Configuration NOT reloaded — the running one stays.\n{outcome.message}"
        job = StaffGeneral(
            out_id=f"reload:{uuid.uuid4().hex}", contact_id=ContactId("general"), text=text[:4000]
        )
        try:
            bus = self.app.bus
            await bus.commit(
                lambda pipe: bus.add(pipe, family(job), job.contact_id, job.model_dump_json())
            )
        except Exception as exc:  # Redis down: the log line above is what remains
            log.warning("config.reload_not_announced", error=str(exc))

    async def listen(self) -> None:
        """Reload whenever ``gateway reload`` asks: a message on :data:`keys.RELOAD`
        that every replica on this Redis hears (each re-reads its own file)."""
        assert self.app.redis is not None
        backoff = 0.1
        while True:
            try:
                async with self.app.redis.pubsub() as pubsub:
                    await pubsub.subscribe(keys.RELOAD)
                    backoff = 0.1
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await self.reload()
            except RETRYABLE as exc:
                raise_if_cancelling()
                log.warning("config.reload_channel_unavailable", error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def install_signal(self) -> None:
        """Reload on ``SIGHUP`` (Unix)."""
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[Outcome]] = set()

        def on_hup() -> None:
            task = loop.create_task(self.reload())
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)


async def request_reload(settings: Settings) -> int:
    """``gateway reload``: ask every gateway on this config's Redis to reload; how many
    heard it (0: none is running)."""
    url = settings.redis.url
    if url is None:
        server = EmbeddedRedis(
            settings.data_dir / "redis", appendfsync=settings.redis.embedded.appendfsync
        )
        if not server.socket.exists():
            return 0
        url = server.url
    redis = connect(url, max_connections=1)
    try:
        return int(await redis.publish(keys.RELOAD, "reload"))
    except RETRYABLE:
        return 0
    finally:
        await close(redis)
