"""The collector's status API (Prometheus' `/api/v1/targets`) and the `fobs status` table.

A small aiohttp server on a loopback address (`[status] address`, no auth unless configured):

- `GET /api/v1/targets` — `{"status": "success", "data": {"activeTargets": [...],
  "droppedTargets": [...]}}`; one active entry per target and endpoint (`scrapePool` is `varz` or
  `healthz`) with Prometheus' fields (labels, scrapeUrl, health, lastError, lastScrape,
  lastScrapeDuration, scrapeInterval, scrapeTimeout) plus fobs' `uuid` and, for healthz,
  `healthy`. Targets that another collector owns (sharding) are listed as dropped; with
  sharding, `data.collectors` lists the members (name, state, targets each scrapes).
- `GET /healthz` — `ok` (200) or the reasons the collector is unhealthy (503); what
  `fobs collector --check` reads.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from aiohttp import web
from loguru import logger

from fobs.collector.config import StatusConfig
from fobs.collector.registry import Registry
from fobs.collector.scrape import Scraper
from fobs.collector.target import EndpointState, Target
from fobs.components import auth, server
from fobs.components.config import ConfigError, host_port
from fobs.components.text import escape_controls

NEVER = "0001-01-01T00:00:00Z"      # what Prometheus shows for a target not yet scraped


def rfc3339(epoch: float) -> str:
    if not epoch:
        return NEVER
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def duration(seconds: float) -> str:
    return f"{seconds:g}s"


def discovered_labels(target: Target) -> dict[str, str]:
    info = target.info
    return {"__address__": info.host, "__scheme__": info.scheme, "type": info.type,
            "index": str(info.index), "uuid": info.uuid, "source": info.source}


def target_entries(target: Target, scraper: Scraper) -> list[dict[str, Any]]:
    entries = []
    for endpoint in scraper.endpoints_of(target):
        state = target.endpoints.get(endpoint) or EndpointState()
        interval, timeout = scraper.schedule_of(target, endpoint)
        entry: dict[str, Any] = {
            "discoveredLabels": discovered_labels(target),
            "labels": target.labels,
            "scrapePool": endpoint,
            "scrapeUrl": target.info.url(endpoint),
            "globalUrl": target.info.url(endpoint),
            "lastError": state.last_error,
            "lastScrape": rfc3339(state.last_scrape),
            "lastScrapeDuration": round(state.last_duration, 6),
            "health": state.health,
            "scrapeInterval": duration(interval),
            "scrapeTimeout": duration(timeout),
            "uuid": target.uuid,
        }
        if endpoint == "healthz":
            entry["healthy"] = state.healthy
        entries.append(entry)
    return entries


Members = Callable[[], list[dict[str, Any]]]


def targets_document(registry: Registry, scraper: Scraper,
                     members: Members | None = None) -> dict[str, Any]:
    active: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    for target in sorted(registry.targets.values(),
                         key=lambda t: (t.info.type, t.info.index, t.uuid)):
        if target.owned:
            active.extend(target_entries(target, scraper))
        else:
            dropped.append({"discoveredLabels": discovered_labels(target)})
    data: dict[str, Any] = {"activeTargets": active, "droppedTargets": dropped}
    if members is not None:
        data["collectors"] = members()
    return {"status": "success", "data": data}


class StatusServer:
    """Serves the status API; `address` is the bound "host:port" once started."""

    def __init__(self, config: StatusConfig, registry: Registry, scraper: Scraper,
                 health: server.Health, members: Members | None = None) -> None:
        self.config = config
        self.members = members
        self.registry = registry
        self.scraper = scraper
        self.health = health
        self.address = ""
        self._server: server.Server | None = None

    async def start(self) -> None:
        host, port = host_port(self.config.address, "status.address")
        credentials = (self.config.user, self.config.password) if self.config.user else None
        try:
            self._server = await server.serve(
                host, port, [("GET", "/api/v1/targets", self._targets)],
                credentials=credentials, realm="fobs-collector", health=self.health)
        except OSError as e:
            raise ConfigError(f"status.address: cannot listen on {self.config.address}: "
                              f"{e.strerror}") from None
        self.address = f"{self._server.host}:{self._server.port}"
        logger.info("Collector status API on http://{}/api/v1/targets", self.address)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None

    async def _targets(self, request: web.Request) -> web.Response:
        return web.json_response(targets_document(self.registry, self.scraper, self.members))


# -- client side (fobs status, fobs collector --check) -------------------------------------

def fetch(url: str, path: str, timeout: float = 5.0,
          credentials: tuple[str, str] | None = None) -> tuple[int, bytes]:
    """GET a status URL; (status, body). Raises OSError when the collector is unreachable."""
    request = urllib.request.Request(url.rstrip("/") + path)
    if credentials:
        request.add_header("Authorization", auth.basic_auth_header(*credentials))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def fetch_targets(url: str, timeout: float = 5.0,
                  credentials: tuple[str, str] | None = None) -> dict[str, Any]:
    status, body = fetch(url, "/api/v1/targets", timeout, credentials)
    if status != 200:
        raise OSError(f"{url}/api/v1/targets answered HTTP {status}")
    document = json.loads(body)
    if not isinstance(document, dict) or "data" not in document:
        raise OSError(f"{url}/api/v1/targets is not a targets document")
    return document


def component_rows(document: dict[str, Any], now: float | None = None) -> list[list[str]]:
    """One row per component: type, index, host, up, healthy, last scrape, error."""
    now = time.time() if now is None else now
    merged: dict[str, dict[str, Any]] = {}
    for entry in document.get("data", {}).get("activeTargets", []):
        key = entry.get("uuid") or entry.get("scrapeUrl", "")
        merged.setdefault(key, {})[entry.get("scrapePool", "varz")] = entry
    rows = []
    for pools in merged.values():
        varz = pools.get("varz") or next(iter(pools.values()))
        healthz = pools.get("healthz")
        labels = varz.get("labels", {})
        up = {"up": "up", "down": "DOWN"}.get(varz.get("health"), "?")
        healthy = "-" if healthz is None else {True: "yes", False: "NO"}.get(
            healthz.get("healthy"), "?")
        cells = [labels.get("job", "?"), labels.get("index", "?"),
                 labels.get("instance", "?"), up, healthy,
                 _age(varz.get("lastScrape", NEVER), now),
                 varz.get("lastError") or (healthz or {}).get("lastError") or ""]
        rows.append([escape_controls(str(cell)) for cell in cells])   # text from the network
    rows.sort(key=lambda r: (r[0], int(r[1]) if r[1].isdigit() else 0, r[2]))
    return rows


def _age(stamp: str, now: float) -> str:
    if not stamp or stamp == NEVER:
        return "never"
    try:
        seconds = now - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return "?"
    return f"{max(0.0, seconds):.1f}s ago"


def print_components(document: dict[str, Any], out: TextIO | None = None,
                     now: float | None = None) -> None:
    """Print the components table of a collector's targets document (to stdout by default)."""
    out = out or sys.stdout
    header = ["TYPE", "INDEX", "HOST", "UP", "HEALTHY", "LAST SCRAPE", "ERROR"]
    rows = component_rows(document, now)
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i])
              for i in range(len(header))]
    for row in [header, *rows]:
        out.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
                  + "\n")
    dropped = len(document.get("data", {}).get("droppedTargets", []))
    summary = f"{len(rows)} components"
    if dropped:
        summary += f" ({dropped} more scraped by other collectors)"
    out.write(summary + "\n")
    members = document.get("data", {}).get("collectors")
    if members:
        print_members(members, out)


def print_members(members: list[dict[str, Any]], out: TextIO) -> None:
    """The collectors sharing the fleet and how many targets each scrapes (sharding)."""
    header = ["COLLECTOR", "STATE", "TARGETS", "HEARD", "STATUS"]
    rows = [[escape_controls(str(m.get("name", "?"))) + (" (this)" if m.get("self") else ""),
             escape_controls(str(m.get("state", "?"))), str(m.get("owned", "?")),
             f"{m.get('heard_ago', 0):.1f}s ago", escape_controls(str(m.get("status") or "-"))]
            for m in members]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    out.write("\n")
    for row in [header, *rows]:
        out.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
                  + "\n")
    out.write(f"{len(members)} collectors sharing the fleet\n")
