"""The evaluator's QueryFunc for InfluxDB 1.x: InfluxQL over `POST /query`, answers as Series.

Writing is not here: `write_lines` hands line protocol to the collector's InfluxDB 1.x
historian (collector/historians/influxdb_v1.py), the one `/write` client, and turns its
categorised errors into QueryFailed.

Usage:

    async with InfluxQuery("http://127.0.0.1:8086", "fobs") as query:
        series = await query('SELECT last("up") FROM "scrape" WHERE time >= … GROUP BY "job"', t)
    await write_lines("http://127.0.0.1:8086", "fobs_test", ['m,host=a v=1 1000000000'])
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

import aiohttp

from fobs.collector.historians.config import InfluxV1Config
from fobs.collector.historians.errors import HistorianError
from fobs.collector.historians.influxdb_v1 import InfluxV1
from fobs.dashboards.errors import QueryFailed
from fobs.dashboards.evaluator import Series


class InfluxQuery:
    """Runs one InfluxQL statement per call on a reused HTTP session."""

    def __init__(self, url: str, database: str, *, username: str = "", password: str = "",
                 timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.auth = (username, password) if username else None
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> InfluxQuery:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def raw(self, statement: str, database: str | None = None) -> dict[str, Any]:
        """POST one statement; the decoded first result, or QueryFailed with InfluxDB's error."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        data = {"q": statement, "epoch": "ns"}
        db = self.database if database is None else database
        if db:
            data["db"] = db
        # Basic auth: influxd reads u/p from the URL's query string, never from a POST body.
        auth = aiohttp.BasicAuth(*self.auth) if self.auth else None
        try:
            async with self._session.post(f"{self.url}/query", data=data, auth=auth) as resp:
                body = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as e:
            raise QueryFailed(
                f"InfluxDB at {self.url}: {type(e).__name__}: {e}".rstrip(": ")) from None
        if not isinstance(body, dict):
            raise QueryFailed(f"InfluxDB at {self.url}: unexpected answer {body!r:.200}")
        if body.get("error"):
            raise QueryFailed(f"InfluxDB: {body['error']}")
        results = body.get("results") or [{}]
        if results[0].get("error"):
            raise QueryFailed(f"InfluxDB: {results[0]['error']}")
        return dict(results[0])

    async def __call__(self, statement: str, t: float) -> list[Series]:
        result = await self.raw(statement)
        out = []
        for raw in result.get("series") or []:
            columns = raw.get("columns") or []
            if len(columns) != 2:
                raise QueryFailed(f"a rule query must return one value column, got "
                                  f"{', '.join(columns[1:])}")
            out.append(Series(dict(raw.get("tags") or {}),
                              [(int(row[0]), row[1]) for row in raw.get("values") or []]))
        return out


WRITE_BATCH = 5000  # lines per POST /write


async def write_lines(url: str, database: str, lines: Sequence[str], *, username: str = "",
                      password: str = "", timeout: float = 10.0) -> None:
    """Write line protocol (ns precision) to an existing database; used by the rule test runner.

    No CREATE DATABASE on a missing database (the caller made it) and no gzip (tests write a
    few thousand lines to a local server); a refused write is QueryFailed with the server's reason.
    """
    historian = InfluxV1(InfluxV1Config(url=url, database=database, username=username,
                                        password=password, create_database=False, gzip=False,
                                        timeout=timeout))
    try:
        for start in range(0, len(lines), WRITE_BATCH):
            await historian.write("\n".join(lines[start:start + WRITE_BATCH]).encode())
    except HistorianError as e:
        raise QueryFailed(f"InfluxDB at {url}: {e}") from None
    finally:
        await historian.close()
