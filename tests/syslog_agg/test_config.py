"""The sample config: its commented-out values are exactly the defaults, and it loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fobs.components.config import ConfigError, build, load
from fobs.syslog_agg.config import SyslogAggConfig

SAMPLE = Path(__file__).parents[2] / "syslog_agg" / "fobs-syslog.toml"


def test_sample_loads_as_defaults() -> None:
    assert load(SyslogAggConfig, SAMPLE) == SyslogAggConfig()


def test_commented_out_values_are_the_defaults(tmp_path: Path) -> None:
    lines, in_example = [], False
    for line in SAMPLE.read_text().splitlines():
        if line.startswith("# [[routing.rules]]"):
            in_example = True
        elif line.startswith("["):
            in_example = False
        if not in_example and re.match(r"# [a-z_]+ = ", line):
            line = line[2:]
        lines.append(line)
    uncommented = tmp_path / "all.toml"
    uncommented.write_text("\n".join(lines))
    assert load(SyslogAggConfig, uncommented) == SyslogAggConfig()
    assert sum(1 for line in lines if re.match(r"[a-z_]+ = ", line)) > 50


@pytest.mark.parametrize("data,error", [
    ({"listen": {"udp": "nope"}}, "listen.udp: expected HOST:PORT"),
    ({"listen": {"udp": "", "tcp": "", "tls": ""}}, "no listener"),
    ({"listen": {"tls_cert": "/nonexistent.pem", "tls_key": "/nonexistent.key"}},
     "listen.tls_cert: file not found"),
    ({"listen": {"tls_cert": "x"}}, "tls_cert and tls_key go together"),
    ({"listen": {"max_message_size": 100}}, "listen.max_message_size"),
    ({"listen": {"queue_size": 0}}, "listen.queue_size"),
    ({"listen": {"max_connections_per_source": 0}}, "listen.max_connections_per_source"),
    ({"listen": {"tls_handshake_timeout": 0}}, "listen.tls_handshake_timeout"),
    ({"routing": {"max_components": 0}}, "routing.max_components"),
    ({"routing": {"overflow": "a/b"}}, "routing.overflow"),
    ({"tail": {"subject_prefix": "a b"}}, "tail.subject_prefix"),
    ({"store": {"bogus": 1}}, "unknown key 'store.bogus'"),
])
def test_bad_configs_name_the_key(data: dict, error: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(error)):
        build(SyslogAggConfig, data)
