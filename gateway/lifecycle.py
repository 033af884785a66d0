"""Cancellation that cannot be lost.

On Python 3.11 a cancellation that arrives while a library's own timeout fires can
surface as ``TimeoutError`` (aiohttp, redis-py's ``wait_for``), which adapters turn
into a retryable error. A retry loop that catches it would then carry on as if nothing
happened, and the task would never stop. Every retry loop calls
:func:`raise_if_cancelling` before it sleeps and tries again.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelling() -> None:
    """Re-raise a cancellation of the current task that something swallowed."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
