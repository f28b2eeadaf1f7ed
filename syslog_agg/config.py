"""The aggregator's config file (TOML); see syslog_agg/fobs-syslog.toml and docs/syslog.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fobs.components.config import ConfigError, host_port, nats_subject, positive
from fobs.components.runtime import ComponentConfig
from fobs.syslog_agg.router import RoutingConfig
from fobs.syslog_agg.store import StoreConfig

__all__ = ["ListenConfig", "TailConfig", "SyslogAggConfig"]


@dataclass(frozen=True)
class ListenConfig:
    udp: str = "0.0.0.0:5514"        # "" = no UDP listener
    tcp: str = "0.0.0.0:5514"        # "" = no TCP listener
    tls: str = "0.0.0.0:6514"        # used only when tls_cert and tls_key are set
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""                 # CA of client certificates
    tls_client_auth: bool = False    # require a client certificate signed by tls_ca
    udp_rcvbuf: int = 8 << 20        # bytes asked of the kernel (0 = system default)
    reuse_port: bool = False         # SO_REUSEPORT, to run several aggregators on one port
    udp_workers: int = 0             # processes receiving and parsing UDP (0 = this process)
    max_message_size: int = 8192     # longer messages are truncated, flagged and counted
    queue_size: int = 4096           # messages between receiving and writing (memory)
    idle_timeout: float = 60.0       # seconds a TCP connection may stay silent
    max_connections: int = 1024      # TCP + TLS connections at once, counted from accept
    max_connections_per_source: int = 64  # of those, from one peer address
    tls_handshake_timeout: float = 10.0   # seconds a TLS handshake may take

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls and self.tls_cert and self.tls_key)

    def validate(self) -> None:
        for key in ("udp", "tcp", "tls"):
            value = getattr(self, key)
            if value:
                host_port(value, key)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert: tls_cert and tls_key go together")
        if self.tls_client_auth and not self.tls_ca:
            raise ConfigError("tls_client_auth: needs listen.tls_ca")
        for path_key in ("tls_cert", "tls_key", "tls_ca"):
            path = getattr(self, path_key)
            if path and not Path(path).is_file():
                raise ConfigError(f"{path_key}: file not found: {path}")
        if not (self.udp or self.tcp or self.tls_enabled):
            raise ConfigError("udp: no listener configured (set udp, tcp or tls)")
        if not 0 <= self.udp_workers <= 64:
            raise ConfigError(f"udp_workers: must be 0..64, got {self.udp_workers}")
        if self.udp_rcvbuf < 0:
            raise ConfigError(f"udp_rcvbuf: must be 0 or more, got {self.udp_rcvbuf}")
        if not 480 <= self.max_message_size <= 65507 * 16:
            raise ConfigError("max_message_size: must be 480..1048112 "
                              f"(RFC 5424 requires 480), got {self.max_message_size}")
        for key in ("queue_size", "idle_timeout", "max_connections",
                    "max_connections_per_source", "tls_handshake_timeout"):
            positive(getattr(self, key), key)


@dataclass(frozen=True)
class TailConfig:
    enabled: bool = True
    subject_prefix: str = "logs"     # messages go to <prefix>.<component>
    rate: float = 100.0              # messages per second per component, at most
    burst: int = 200

    def validate(self) -> None:
        nats_subject(self.subject_prefix, "subject_prefix")
        positive(self.rate, "rate")
        positive(self.burst, "burst")


@dataclass(frozen=True)
class SyslogAggConfig:
    listen: ListenConfig = field(default_factory=ListenConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    tail: TailConfig = field(default_factory=TailConfig)
    component: ComponentConfig = field(default_factory=ComponentConfig)
    register: bool = True            # register as a component (NATS + /varz); false = standalone
