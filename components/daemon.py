"""Process lifecycle shared by every fobs daemon: one event loop, SIGTERM/SIGINT → clean stop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any

Main = Callable[[asyncio.Event], Coroutine[Any, Any, int | None]]


def run(main: Main, *, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
        ) -> int:
    """Run `main(stop)` on a new event loop (made by `loop_factory`, default asyncio's) and
    return its exit code.

    SIGTERM and SIGINT set `stop`; `main` is expected to flush, close and return (0 for a clean
    stop). A second signal while stopping cancels `main` outright.
    """
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_run(main))


async def _run(main: Main) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    task = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set() and task is not None:
            task.cancel()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        return int(await main(stop) or 0)
    except asyncio.CancelledError:
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
