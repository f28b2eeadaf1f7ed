"""The NATS connection every fobs process holds: config, connect-forever, and reconnect hooks.

nats-py keeps retrying forever when `max_reconnect_attempts` is -1, also for the first connect,
so a daemon started before nats-server simply waits. Its fixed `reconnect_time_wait` rotates
through the server pool; that is the backoff NATS clients use. Several components in one process
(the fleet runner) share one `Bus`, so reconnect hooks are a list rather than one callback.

TLS cannot be downgraded: nats-py upgrades to TLS only when the server's INFO says
`tls_required`, so a server (or a man in the middle) that leaves it out would receive CONNECT,
user and password in plaintext. When the config asks for TLS, `_TlsClient` refuses such an INFO
before CONNECT is written (the attempt fails, is counted in `errors`, and the next server is
tried). `tls_handshake_first` starts TLS before INFO (nats-server 2.10.4+ with `handshake_first`).

A flush that times out must not leave the connection half-dead. nats-py (2.16 included) keeps a
flush's PONG future in its queue after `wait_for` cancelled it; when the late PONG comes (a node
frozen longer than the timeout, then thawed), `set_result` on the cancelled future raises
`InvalidStateError` inside the read loop, which logs "nats: encountered error" and ends — while
the client still says CONNECTED and keeps publishing. Nothing is read any more until its own
pings go unanswered (ping_interval × (max_outstanding_pings + 1), 60 s by default): a collector
heard by the others but deaf to them. `_Client` skips a PONG whose flush gave up (the PONGs
still pair with the PINGs in order) and, should the read loop end on any other unexpected
error, reports it through the error callback and forces a reconnect instead of staying deaf
(the fix nats.py#914 proposes upstream; nats.py2#36 fixed the PONG pairing in the old client).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from loguru import logger
from nats import errors as nats_errors
from nats.aio.client import Client
from nats.aio.subscription import Subscription

from fobs.components.config import ConfigError, positive

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"

Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class NatsConfig:
    """[nats] — where the message bus is and how to authenticate to it."""

    servers: tuple[str, ...] = (DEFAULT_NATS_URL,)
    user: str = ""
    password: str = ""
    token: str = ""
    tls_ca: str = ""      # CA bundle to verify the server; enables TLS
    tls_cert: str = ""    # client certificate (mutual TLS)
    tls_key: str = ""
    tls_verify: bool = True
    tls_handshake_first: bool = False   # TLS before the server's INFO (nats-server 2.10.4+)
    connect_timeout: float = 2.0
    reconnect_wait: float = 1.0   # seconds between attempts on one server
    ping_interval: float = 20.0

    def validate(self) -> None:
        if not self.servers:
            raise ConfigError("servers: at least one NATS URL is needed")
        for url in self.servers:
            if "://" not in url:
                raise ConfigError(f"servers: {url!r} is not a URL (nats://host:port)")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert: tls_cert and tls_key go together")
        if self.tls_handshake_first and not self.wants_tls:
            raise ConfigError("tls_handshake_first: needs TLS (a tls:// URL or tls_ca)")
        if self.token and self.user:
            raise ConfigError("token: use either token or user/password, not both")
        positive(self.connect_timeout, "connect_timeout")
        positive(self.reconnect_wait, "reconnect_wait")

    @property
    def wants_tls(self) -> bool:
        return bool(self.tls_ca or self.tls_cert
                    or any(u.startswith("tls://") for u in self.servers))

    def tls_context(self) -> ssl.SSLContext | None:
        if not self.wants_tls:
            return None
        ctx = ssl.create_default_context(cafile=self.tls_ca or None)
        if not self.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.tls_cert:
            ctx.load_cert_chain(self.tls_cert, self.tls_key)
        return ctx


class TlsDowngradeError(nats_errors.Error):
    """The server offered a connection without TLS where the config asks for TLS."""

    def __str__(self) -> str:
        return "nats: server did not require TLS although TLS is configured; not connecting"


class DeafReadLoopError(nats_errors.Error):
    """nats-py's read loop ended on an error it only logged, the connection still up."""

    def __str__(self) -> str:
        return "nats: the read loop stopped on an unexpected error; reconnecting"


class _Client(Client):
    """nats-py's client that a timed-out flush cannot leave deaf (see the module's docstring)."""

    async def _process_pong(self) -> None:
        if self._pongs and self._pongs[0].done():   # its flush timed out: nobody waits for it
            self._pongs.pop(0)
            self._pongs_received += 1
            self._pings_outstanding = 0
            return
        await super()._process_pong()

    async def _read_loop(self) -> None:
        await super()._read_loop()
        # It returns by itself when closing or reconnecting; still CONNECTED and still this
        # connection's reader means it stopped on an error it only logged.
        if self._status == Client.CONNECTED and self._reading_task is asyncio.current_task():
            await self._error_cb(DeafReadLoopError())
            await self.force_reconnect()


class _TlsClient(_Client):
    """nats-py's client, refusing an INFO without `tls_required` before CONNECT is sent."""

    async def _process_info(self, info: dict[str, object],
                            initial_connection: bool = False) -> None:
        if initial_connection and not info.get("tls_required"):
            raise TlsDowngradeError()
        await super()._process_info(info, initial_connection)


@dataclass
class Bus:
    """A NATS client plus the hooks to run after every reconnect (re-announce, re-discover)."""

    client: Client
    name: str
    reconnect_hooks: list[Hook] = field(default_factory=list)
    reconnects: int = 0
    errors: int = 0
    closing: bool = False

    @classmethod
    async def connect(cls, config: NatsConfig, name: str) -> Bus:
        """Connect, waiting (forever, retrying) until a server answers."""
        tls = config.tls_context()
        handshake_first = tls is not None and config.tls_handshake_first
        bus = cls(_TlsClient() if tls is not None and not handshake_first else _Client(), name)
        # Seconds as floats: nats-py uses them so (tests reconnect within 0.1 s), though its
        # hints say int; they travel in `options`, whose one ignore covers the stub's types.
        options: dict[str, object] = {"connect_timeout": config.connect_timeout,
                                      "reconnect_time_wait": config.reconnect_wait,
                                      "ping_interval": config.ping_interval}
        if config.user:
            options.update(user=config.user, password=config.password)
        if config.token:
            options["token"] = config.token
        if tls is not None:
            options.update(tls=tls, tls_handshake_first=handshake_first)
        await bus.client.connect(
            servers=list(config.servers),
            name=name,
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            error_cb=bus._on_error,
            disconnected_cb=bus._on_disconnected,
            reconnected_cb=bus._on_reconnected,
            **options,  # type: ignore[arg-type]
        )
        logger.info("Connected to NATS at {}", _safe_url(bus.client))
        return bus

    async def _on_error(self, e: Exception) -> None:
        self.errors += 1
        logger.warning("NATS error: {}", e or type(e).__name__)

    async def _on_disconnected(self) -> None:
        if not self.closing:
            logger.warning("Disconnected from NATS; reconnecting")

    async def _on_reconnected(self) -> None:
        self.reconnects += 1
        logger.info("Reconnected to NATS at {}", _safe_url(self.client))
        for hook in list(self.reconnect_hooks):
            try:
                await hook()
            except Exception as e:  # a hook failing must not stop the others
                logger.warning("Reconnect hook failed: {}", e)

    async def release(self, hook: Hook, subscriptions: list[Subscription]) -> None:
        """Undo what one user of the bus set up: its reconnect hook and its subscriptions.

        Never raises: it runs on the way out, when NATS may already be gone. Empties the list.
        """
        if hook in self.reconnect_hooks:
            self.reconnect_hooks.remove(hook)
        for sub in subscriptions:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        subscriptions.clear()

    async def close(self, timeout: float = 2.0) -> None:
        """Drain (deliver what is buffered) within `timeout`; never raises, NATS may be gone."""
        self.closing = True
        if self.client.is_closed:
            return
        try:
            await asyncio.wait_for(self.client.drain(), timeout)
        except Exception:
            try:
                await asyncio.wait_for(self.client.close(), timeout)
            except Exception:
                pass


def _safe_url(client: Client) -> str:
    url = client.connected_url
    return f"{url.hostname}:{url.port}" if url else "?"  # never log credentials in the URL
