"""Polling with a deadline, for what no event can be awaited on (another process's state)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any


async def until(check: Callable[[], Any], what: str, timeout: float = 15.0, *,
                interval: float = 0.05, in_thread: bool = False,
                errors: tuple[type[BaseException], ...] = ()) -> Any:
    """Call `check()` (sync or async; in a thread when it blocks) until it returns something
    truthy, and return that; an exception in `errors` counts as "not yet"."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            result = await asyncio.to_thread(check) if in_thread else check()
            if inspect.isawaitable(result):
                result = await result
        except errors:
            result = None
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)
