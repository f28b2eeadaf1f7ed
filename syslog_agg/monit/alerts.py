"""Alerts: every event is logged, kept for the status page and published on NATS when connected.

Publishing never blocks supervision: it runs in its own short-lived tasks with a time limit, and
events raised before NATS is connected wait in a bounded backlog that is sent once it is.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import deque
from typing import Any

from loguru import logger

PUBLISH_TIMEOUT = 2.0
BACKLOG = 100


class Alerts:
    """Raise alert events for one supervisor."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.host = socket.gethostname()
        self.recent: deque[dict[str, Any]] = deque(maxlen=50)
        self.raised = 0
        self.published = 0
        self.publish_errors = 0
        self._client: Any = None
        self._backlog: deque[bytes] = deque(maxlen=BACKLOG)
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, client: Any) -> None:
        """Start publishing on `client` (a connected nats-py client), backlog first."""
        self._client = client
        while self._backlog:
            self._publish(self._backlog.popleft())

    def detach(self) -> None:
        self._client = None

    def raise_(self, service: str, event: str, state: str, message: str,
               action: str | None = None) -> dict[str, Any]:
        """Log and publish one event; `state` is "failed", "succeeded" or "changed"."""
        record = {"service": service, "event": event, "state": state, "message": message,
                  "action": action, "host": self.host, "time": time.time()}
        self.raised += 1
        self.recent.append(record)
        level = {"failed": "ERROR", "succeeded": "INFO"}.get(state, "WARNING")
        suffix = f" ({action})" if action and action != "alert" else ""
        logger.log(level, "Alert for '{}': {}{}", service, message, suffix)
        data = json.dumps(record).encode()
        if self._client is None:
            self._backlog.append(data)
        else:
            self._publish(data)
        return record

    def _publish(self, data: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._send(data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, data: bytes) -> None:
        try:
            await asyncio.wait_for(self._client.publish(self.subject, data), PUBLISH_TIMEOUT)
            self.published += 1
        except Exception as e:  # NATS trouble is counted, never allowed to stop supervision
            self.publish_errors += 1
            logger.warning("Could not publish alert on {}: {}", self.subject,
                           str(e) or type(e).__name__)

    async def flush(self, timeout: float = PUBLISH_TIMEOUT) -> None:
        """Give in-flight publishes a bounded chance to leave (before shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        if self._client is not None:
            try:
                await self._client.flush(timeout=timeout)
            except Exception:
                pass
