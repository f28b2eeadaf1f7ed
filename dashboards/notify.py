"""NotifyFuncs for the evaluator: NATS (every state change) and Alertmanager (firing/resolved).

NATS gets one JSON message per state change on `fobs.alerts` (pending, firing, resolved,
inactive), for anyone who wants to react or watch (`nats sub fobs.alerts`). Alertmanager gets
what Prometheus sends it (`POST /api/v2/alerts`): firing alerts, again every `resend_delay`
with `endsAt` four resend delays ahead (so an evaluator that dies lets them expire), and
resolved alerts once, with `endsAt` = the time they resolved. A failed delivery is logged and
counted; it never stops the evaluation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
from loguru import logger

from fobs.dashboards.evaluator import FIRING, RESOLVED, Alert


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def message(alert: Alert, now: float) -> dict[str, Any]:
    return {**alert.to_json(), "time": now}


class NatsNotifier:
    """Publishes state changes on `subject`; `client()` returns the connected NATS client."""

    def __init__(self, client: Callable[[], Any], subject: str = "fobs.alerts") -> None:
        self.client = client
        self.subject = subject
        self.stats = {"published": 0, "failed": 0}

    async def __call__(self, alerts: Sequence[Alert], now: float) -> None:
        changed = [a for a in alerts if a.changed]
        if not changed:
            return
        nc = self.client()
        try:
            for alert in changed:
                await nc.publish(self.subject, json.dumps(message(alert, now)).encode())
            await nc.flush(timeout=2)
            self.stats["published"] += len(changed)
        except Exception as e:  # nats-py raises a zoo of types; a lost message is counted
            self.stats["failed"] += len(changed)
            logger.warning("Publishing {} alert changes on NATS failed: {}", len(changed), e)


class AlertmanagerNotifier:
    """POSTs firing and resolved alerts to every configured Alertmanager (`/api/v2/alerts`)."""

    def __init__(self, urls: Sequence[str], *, timeout: float = 5.0, resend_delay: float = 60.0,
                 interval: float = 10.0, generator_url: str = "") -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.valid_for = 4 * max(resend_delay, interval)
        self.generator_url = generator_url
        self.stats = {"sent": 0, "failed": 0}
        self._session: aiohttp.ClientSession | None = None

    def payload(self, alerts: Sequence[Alert], now: float) -> list[dict[str, Any]]:
        out = []
        for alert in alerts:
            if alert.state not in (FIRING, RESOLVED):
                continue
            ends = alert.resolved_at if alert.state == RESOLVED else now + self.valid_for
            item: dict[str, Any] = {
                "labels": {"alertname": alert.rule, **alert.labels},
                "annotations": dict(alert.annotations),
                "startsAt": iso(alert.fired_at if alert.fired_at is not None
                                else alert.active_at),
                "endsAt": iso(ends if ends is not None else now),
            }
            if self.generator_url:
                item["generatorURL"] = self.generator_url
            out.append(item)
        return out

    async def __call__(self, alerts: Sequence[Alert], now: float) -> None:
        body = self.payload(alerts, now)
        if not body or not self.urls:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        await asyncio.gather(*(self._post(url, body) for url in self.urls))

    async def _post(self, url: str, body: list[dict[str, Any]]) -> None:
        assert self._session is not None
        try:
            async with self._session.post(f"{url}/api/v2/alerts", json=body) as resp:
                if resp.status >= 300:
                    raise RuntimeError(f"HTTP {resp.status}: {(await resp.text())[:200]}")
            self.stats["sent"] += len(body)
        except (TimeoutError, aiohttp.ClientError, RuntimeError) as e:
            self.stats["failed"] += len(body)
            logger.warning("Sending {} alerts to Alertmanager {} failed: {}", len(body), url,
                           str(e) or type(e).__name__)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
