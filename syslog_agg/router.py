"""Which component a message belongs to: the name of its directory in the store and its varz key.

Cloud Foundry's aggregator kept only messages whose program name starts with `vcap.` and filed
them under the rest of the name; its forwarder also stamps every line with `[job=… index=…]`.
The router tries, in a configurable order, the sources below and takes the first that gives a
name:
- "rules": the user's `[[routing.rules]]`, a regex on one field, first match wins;
- "prefix": APP-NAME/TAG starting with the prefix (`vcap.dea_next` → `dea_next`);
- "sd": an SD parameter (default `job`) in any SD element (the forwarder's `[job=… index=…]`);
- "app_name", then "hostname".
Names are made safe for a path: characters other than letters, digits, `.`, `_`, `-` become `_`.

Every name is a directory, a file a day, counters and a tail bucket, and names come from the
senders: at most `max_components` distinct names are admitted; messages of any further name go
to the `overflow` component (its message count is varz `overflow_messages`). `default`,
`unparsed` and `overflow` are always admitted. With UDP workers each process admits its own
names, and the aggregator caps again what their batches bring (`admit`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from fobs.components.config import ConfigError
from fobs.syslog_agg.message import SyslogMessage

__all__ = ["RouteRule", "RoutingConfig", "Router", "safe_name"]

Source = Literal["rules", "prefix", "sd", "app_name", "hostname"]
RuleField = Literal["app_name", "hostname", "procid", "msgid", "message"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_NAME = 64
_CACHE_SIZE = 4096


@dataclass(frozen=True)
class RouteRule:
    """`pattern` (a regex, searched) on `field`; the component is `component`, where `\\1` or
    `\\g<name>` refer to the match's groups."""

    field: RuleField = "app_name"
    pattern: str = ""
    component: str = ""

    def validate(self) -> None:
        if not self.pattern or not self.component:
            raise ConfigError("pattern and component must both be set")
        try:
            re.compile(self.pattern)
        except re.error as e:
            raise ConfigError(f"pattern: invalid regex {self.pattern!r}: {e}") from None


@dataclass(frozen=True)
class RoutingConfig:
    order: tuple[Source, ...] = ("rules", "prefix", "sd", "app_name", "hostname")
    prefix: str = "vcap."
    sd_param: str = "job"
    rules: tuple[RouteRule, ...] = ()
    default: str = "unknown"       # when no source gives a name
    unparsed: str = "unparsed"     # where messages that did not parse go
    discard_unmatched: bool = False  # drop (and count) what only `default` would take
    max_components: int = 1000     # distinct names; the rest go to `overflow`
    overflow: str = "overflow"

    def validate(self) -> None:
        if not self.order:
            raise ConfigError("order: must name at least one source")
        for name, value in (("default", self.default), ("unparsed", self.unparsed),
                            ("overflow", self.overflow)):
            if safe_name(value) != value:
                raise ConfigError(f"{name}: {value!r} is not a safe directory name")
        if not 1 <= self.max_components <= 1_000_000:
            raise ConfigError(f"max_components: must be 1..1000000, got {self.max_components}")


def safe_name(name: str) -> str:
    """A component name usable as one path element."""
    name = _UNSAFE.sub("_", name[:_MAX_NAME])
    return "_" if name in ("", ".", "..") else name


class Router:
    """Maps messages to component names; results are cached per (app_name, hostname, sd)."""

    def __init__(self, config: RoutingConfig) -> None:
        self.config = config
        self._rules = [(r.field, re.compile(r.pattern), r.component) for r in config.rules]
        self._rules_on_header = all(f in ("app_name", "hostname") for f, _, _ in self._rules)
        self._cache: dict[tuple[str | None, str | None, str | None], str | None] = {}
        self._admitted = {config.default, config.unparsed, config.overflow}
        self._max = config.max_components + len(self._admitted)

    def route(self, msg: SyslogMessage) -> str | None:
        """The component for `msg`, or None when it is to be discarded."""
        if msg.error is not None:
            return self.config.unparsed
        job = self._sd_value(msg) if msg.structured_data else None
        if not self._rules_on_header:
            return self._resolve(msg, job)
        key = (msg.app_name, msg.hostname, job)
        try:
            return self._cache[key]
        except KeyError:
            pass
        name = self._resolve(msg, job)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = name
        return name

    def _sd_value(self, msg: SyslogMessage) -> str | None:
        param = self.config.sd_param
        for params in msg.structured_data.values():
            value = params.get(param)
            if value:
                return value
        return None

    def _resolve(self, msg: SyslogMessage, job: str | None) -> str | None:
        cfg = self.config
        for source in cfg.order:
            name: str | None = None
            if source == "prefix":
                app = msg.app_name
                if app and app.startswith(cfg.prefix) and len(app) > len(cfg.prefix):
                    name = app[len(cfg.prefix):]
            elif source == "sd":
                name = job
            elif source == "app_name":
                name = msg.app_name
            elif source == "hostname":
                name = msg.hostname
            elif source == "rules":
                name = self._match_rules(msg)
            if name:
                return self.admit(safe_name(name))
        return None if cfg.discard_unmatched else cfg.default

    def admit(self, name: str) -> str:
        """`name` if it is known or there is room for one more, else the overflow component."""
        admitted = self._admitted
        if name in admitted:
            return name
        if len(admitted) >= self._max:
            return self.config.overflow
        admitted.add(name)
        return name

    def _match_rules(self, msg: SyslogMessage) -> str | None:
        for field_name, regex, component in self._rules:
            value = getattr(msg, field_name)
            if value is None:
                continue
            m = regex.search(value)
            if m is not None:
                return m.expand(component)
        return None

