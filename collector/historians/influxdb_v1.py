"""InfluxDB 1.x through `POST /write` with our own aiohttp client.

influxdb-client only speaks `/api/v2/write`, which InfluxDB before 1.8 (Debian's 1.6.7 among them)
answers with 404, so the 1.x path is this small client: one keep-alive session, gzip, basic auth.

"database not found" (404): like Telegraf (`skip_database_creation = false`) we issue
`CREATE DATABASE` once and write again, when `create_database` is on (the default); when it is
off, or the user may not create databases, that is a FatalError: the points stay in the spool
until someone creates the database.
"""

from __future__ import annotations

import base64
import gzip

import aiohttp
from loguru import logger

from fobs.collector.historians.config import InfluxV1Config, compresses
from fobs.collector.historians.errors import FatalError, from_status, network_errors, reason

GZIP_LEVEL = 1                          # ~3x smaller line protocol for a fraction of level 6's CPU
MAX_ERROR_BODY = 4096


def _quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxV1:
    """`Historian` for InfluxDB 1.x; see the module docstring."""

    def __init__(self, config: InfluxV1Config, name: str = "influxdb_v1") -> None:
        self.config = config
        self.name = name
        self._session: aiohttp.ClientSession | None = None
        base = config.url.rstrip("/")
        self._write_url = f"{base}/write"
        self._query_url = f"{base}/query"
        self._gzip = compresses(config.url, config.gzip)
        self._params = {"db": config.database, "precision": "ns"}
        if config.retention_policy:
            self._params["rp"] = config.retention_policy
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if config.username or config.password:
            token = base64.b64encode(f"{config.username}:{config.password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    async def connect(self) -> None:
        """Make the session; no request is sent, so a server that is down does not block start."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout))

    async def write(self, data: bytes) -> None:
        status, body, headers = await self._post_write(data)
        if status == 404 and "database not found" in body and self.config.create_database:
            await self._create_database()
            status, body, headers = await self._post_write(data)
        if status == 500 and "retention policy not found" in body:
            raise FatalError(f"write: HTTP 500: {reason(body)}")   # 1.x says 500 for a config error
        if status >= 300:
            raise from_status(status, body, headers)

    async def _post_write(self, data: bytes) -> tuple[int, str, dict[str, str]]:
        headers = dict(self._headers)
        if self._gzip:
            data = gzip.compress(data, GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        return await self._request(self._write_url, self._params, data, headers)

    async def _create_database(self) -> None:
        q = f"CREATE DATABASE {_quote_ident(self.config.database)}"
        status, body, _ = await self._request(
            self._query_url, {"q": q}, b"", self._headers, what="create database")
        if status >= 300 or '"error"' in body:
            raise FatalError(f"database {self.config.database!r} not found and CREATE DATABASE "
                             f"failed: HTTP {status}: {reason(body)}")
        logger.info("Created database {!r} on {}", self.config.database, self.config.url)

    async def _request(self, url: str, params: dict[str, str], data: bytes,
                       headers: dict[str, str], what: str = "write"
                       ) -> tuple[int, str, dict[str, str]]:
        if self._session is None:
            await self.connect()
        assert self._session is not None
        with network_errors(self.config.url, self.config.timeout, what):
            async with self._session.post(url, params=params, data=data, headers=headers) as resp:
                text = (await resp.content.read(MAX_ERROR_BODY)).decode(errors="replace") \
                    if resp.status >= 300 or what != "write" else ""
                return resp.status, text, dict(resp.headers)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
