"""The TLS downgrade attack on the NATS connection (issue 9, finding 7).

A server that answers a `tls://` client with an INFO lacking `tls_required` used to receive
CONNECT, user and password in plaintext (nats-py upgrades only when the server asks). The
attacker here is a plain TCP listener speaking NATS' INFO line; it records every byte a client
sends. The client must go on retrying without ever writing CONNECT or the password.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from fobs.components.bus import Bus, NatsConfig
from fobs.components.config import ConfigError
from tests.services import self_signed_certificate

PASSWORD = "s3cret-never-in-clear"


class DowngradingServer:
    """Answers each connection with an INFO that omits tls_required, then records what comes."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.attempts = 0
        self.retried = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> DowngradingServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.attempts += 1
        info = {"server_id": "evil", "version": "2.9.10", "proto": 1, "max_payload": 1048576,
                "auth_required": True, "host": "127.0.0.1", "port": self.port}
        writer.write(f"INFO {json.dumps(info)}\r\n".encode())
        await writer.drain()
        try:
            while data := await asyncio.wait_for(reader.read(4096), 5):
                self.received += data
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            if self.attempts >= 2:
                self.retried.set()


async def test_tls_url_never_sends_credentials_to_a_server_without_tls(tmp_path: Path) -> None:
    cert, _ = self_signed_certificate(tmp_path / "tls")
    async with DowngradingServer() as evil:
        config = NatsConfig(servers=(f"tls://127.0.0.1:{evil.port}",), user="fobs",
                            password=PASSWORD, tls_ca=str(cert), reconnect_wait=0.05)
        connecting = asyncio.create_task(Bus.connect(config, "victim"))
        try:
            await asyncio.wait_for(evil.retried.wait(), 10)
        finally:
            connecting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await connecting
    assert evil.attempts >= 2, "the client gave up instead of retrying"
    assert b"CONNECT" not in evil.received
    assert PASSWORD.encode() not in evil.received


def test_handshake_first_needs_tls() -> None:
    with pytest.raises(ConfigError, match="tls_handshake_first"):
        NatsConfig(tls_handshake_first=True).validate()
