"""Component routing: vcap. prefix, the forwarder's [job=…], app-name, hostname, user rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fobs.components.config import ConfigError, build
from fobs.syslog_agg.parser import parse
from fobs.syslog_agg.router import Router, RoutingConfig, safe_name

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def route(raw: bytes, config: RoutingConfig | None = None) -> str | None:
    return Router(config or RoutingConfig()).route(parse(raw, now=NOW))


@pytest.mark.parametrize("raw,component", [
    (b"<14>1 - host vcap.dea_next - - - hi", "dea_next"),
    (b"<14>May  1 10:00:00 10.0.0.1 vcap.router[12]: hi", "router"),
    (b"<14>2014-05-01T12:00:00Z 10.0.0.1 vcap.cloud_controller [job=api_z1 index=0] x",
     "cloud_controller"),
    (b"<14>2014-05-01T12:00:00Z 10.0.0.1 nginx [job=router_z1 index=2] x", "router_z1"),
    (b'<14>1 - host app - - [origin job="uaa" index="1"] x', "uaa"),
    (b"<14>1 - host sshd 12 - - x", "sshd"),
    (b"<14>1 - web-01 - - - - x", "web-01"),
    (b"<14>1 - - - - - - x", "unknown"),
    (b"<14>1 - - vcap. - - - x", "vcap."),
    (b"garbage without pri", "unparsed"),
    (b"<14>1 - - ../../etc - - - x", ".._.._etc"),
])
def test_default_order(raw: bytes, component: str) -> None:
    assert route(raw) == component


def test_rules_and_order_are_configurable() -> None:
    cfg = build(RoutingConfig, {
        "order": ["rules", "hostname"],
        "rules": [{"field": "app_name", "pattern": r"^php-fpm(\d+)$", "component": r"php\1"},
                  {"field": "message", "pattern": "ERROR", "component": "errors"}],
        "default": "misc"})
    router = Router(cfg)
    assert router.route(parse(b"<14>1 - h1 php-fpm7 - - - x", now=NOW)) == "php7"
    assert router.route(parse(b"<14>1 - h1 vcap.dea - - - an ERROR", now=NOW)) == "errors"
    assert router.route(parse(b"<14>1 - h1 vcap.dea - - - fine", now=NOW)) == "h1"
    assert router.route(parse(b"<14>1 - - vcap.dea - - - fine", now=NOW)) == "misc"


def test_discard_unmatched() -> None:
    cfg = RoutingConfig(order=("prefix",), discard_unmatched=True)
    assert route(b"<14>1 - h sshd - - - x", cfg) is None
    assert route(b"<14>1 - h vcap.nats - - - x", cfg) == "nats"


def test_cache_does_not_mix_components() -> None:
    router = Router(RoutingConfig(max_components=10_000))
    for i in range(5000):
        assert router.route(parse(b"<14>1 - h app%d - - - x" % i, now=NOW)) == f"app{i}"


def test_distinct_components_are_capped() -> None:
    router = Router(RoutingConfig(max_components=3, order=("app_name",)))
    got = [router.route(parse(b"<14>1 - h app%d - - - x" % (i % 5), now=NOW))
           for i in range(10)]
    assert got == ["app0", "app1", "app2", "overflow", "overflow"] * 2
    assert route(b"<14>1 - - - - - - x", RoutingConfig(max_components=1)) == "unknown"
    assert router.route(parse(b"garbage", now=NOW)) == "unparsed"
    assert router.admit("app1") == "app1" and router.admit("new") == "overflow"


@pytest.mark.parametrize("data,error", [
    ({"rules": [{"pattern": "(", "component": "x"}]}, "invalid regex"),
    ({"rules": [{"pattern": "x"}]}, "pattern and component"),
    ({"order": ["nope"]}, "order"),
    ({"default": "a/b"}, "default: "),
    ({"overflow": ".."}, "overflow: "),
    ({"max_components": 0}, "max_components: "),
])
def test_bad_config(data: dict, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        build(RoutingConfig, data)


def test_safe_name() -> None:
    assert safe_name("a b/c") == "a_b_c"
    assert safe_name("..") == "_"
    assert len(safe_name("x" * 200)) == 64
