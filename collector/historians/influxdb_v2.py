"""InfluxDB 2.x (or anything speaking `/api/v2/write`, e.g. VictoriaMetrics) via influxdb-client.

Only `WriteApiAsync.write` is used: one POST per call, no batching, retry or buffer of its own
(those are the running output's). The client is made inside `connect`, a coroutine, as
`InfluxDBClientAsync` requires. Its failures arrive as `ApiException` (with status, headers and
body) or, when the server is down, as raw aiohttp errors; both become our typed outcomes here.
"""

from __future__ import annotations

from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.client.write_api_async import WriteApiAsync
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from fobs.collector.historians.config import InfluxV2Config, compresses
from fobs.collector.historians.errors import from_status, network_errors


class InfluxV2:
    """`Historian` for the InfluxDB 2.x write API."""

    def __init__(self, config: InfluxV2Config, name: str = "influxdb_v2") -> None:
        self.config = config
        self.name = name
        self._client: InfluxDBClientAsync | None = None
        self._api: WriteApiAsync | None = None

    async def connect(self) -> None:
        if self._client is None:
            self._client = InfluxDBClientAsync(
                url=self.config.url, token=self.config.token, org=self.config.org,
                timeout=int(self.config.timeout * 1000),
                enable_gzip=compresses(self.config.url, self.config.gzip))
            self._api = self._client.write_api()

    async def write(self, data: bytes) -> None:
        if self._api is None:
            await self.connect()
        assert self._api is not None
        try:
            with network_errors(self.config.url, self.config.timeout):
                # The client hints its WritePrecision class; the values it takes are the
                # class's str constants.
                await self._api.write(bucket=self.config.bucket, org=self.config.org,
                                      record=data,
                                      write_precision=WritePrecision.NS)  # type: ignore[arg-type]
        except ApiException as e:
            body = e.body if isinstance(e.body, (bytes, str)) else (e.reason or "")
            raise from_status(int(e.status or 0), body, dict(e.headers or {})) from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()  # type: ignore[no-untyped-call]  # unannotated upstream
            self._client = None
            self._api = None
