"""The config is strict and its errors name the key; the shipped sample loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from fobs.components.config import ConfigError
from fobs.syslog_agg.monit import ProcessConfig, Supervisor, SupervisorConfig, TcpCheck
from fobs.syslog_agg.monit.config import load_config

SAMPLE = Path(__file__).parents[2] / "syslog_agg" / "monit" / "fobs-monit.toml"

BAD = [
    ('cycle = 0', "cycle: must be greater than 0"),
    ('[[process]]\nname = "a"\n', "process[0].command: give either command"),
    ('[[process]]\nname = "a"\ncommand = "x"\nstart = "y"\n', "process[0].command: give either"),
    ('[[process]]\nname = "a"\nstart = "x"\n', "process[0].pidfile: a process with a start"),
    ('[[process]]\nname = "a"\ncommand = "x"\npidfile = "/p"\n',
     "process[0].stop: stop and pidfile"),
    ('[[process]]\nname = "a b"\ncommand = "x"\n', "process[0].name: must be a non-empty word"),
    ('[[process]]\nname = "a"\ncommand = "x"\n[[process.tcp]]\nport = 70000\n',
     "process[0].tcp[0].port: must be between 1 and 65535"),
    ('[[process]]\nname = "a"\ncommand = "x"\n[[process.tcp]]\nport = 1\nbogus = 1\n',
     "unknown key 'process[0].tcp[0].bogus'"),
    ('[[process]]\nname = "a"\ncommand = "x"\n[[process.http]]\nurl = "ftp://x"\n',
     "process[0].http[0].url: expected an http"),
    ('[[process]]\nname = "a"\ncommand = "x"\n[[process.memory]]\nabove_mb = 1\ncycles = 65\n',
     "process[0].memory[0].cycles: must be between 1 and 64"),
    ('[[process]]\nname = "a"\ncommand = "x"\n[[process.cpu]]\nabove_percent = 5\n'
     'action = "reboot"\n', "process[0].cpu[0].action: must be one of"),
    ('[[process]]\nname = "a"\ncommand = "x"\ndepends_on = ["z"]\n',
     "process[0].depends_on: unknown service 'z'"),
    ('[[process]]\nname = "a"\ncommand = "x"\ndepends_on = ["b"]\n'
     '[[program]]\nname = "b"\ncommand = "y"\ndepends_on = ["a"]\n',
     "process[0].depends_on: dependency cycle a -> b -> a"),
    ('[[process]]\nname = "a"\ncommand = "x"\n[[program]]\nname = "a"\ncommand = "y"\n',
     "program[0].name: 'a' is already used by process[0]"),
    ('[[program]]\nname = "p"\ncommand = "y"\naction = "restart"\n',
     "program[0].action: must be one of"),
    ('[[process]]\nname = "a"\ncommand = "sh -c \'unclosed"\n', "cannot split command"),
    ('[http]\naddress = "nowhere"\n', "http.address: expected HOST:PORT"),
    ('[component.nats]\nservers = ["localhost:4222"]\n', "is not a URL"),
]


@pytest.mark.parametrize("text,error", BAD)
def test_bad_configs_name_the_key(tmp_path, text, error):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert error in str(e.value)


def test_sample_config_loads_with_documented_defaults():
    config = load_config(SAMPLE)
    names = [p.name for p in config.process]
    assert "syslog" in names
    syslog = next(p for p in config.process if p.name == "syslog")
    assert syslog.udp and syslog.http  # a UDP port check and its /healthz


def test_defaults():
    cfg = load_config(None)
    assert cfg.cycle == 5.0 and cfg.http.address == "127.0.0.1:2812" and cfg.component is None
    proc = ProcessConfig(name="x", command="sleep 1")
    assert (proc.start_timeout, proc.stop_timeout, proc.stop_signal) == (30.0, 10.0, "TERM")
    assert (proc.restart_limit.restarts, proc.restart_limit.cycles) == (5, 10)
    assert proc.alive.action == "restart"


def test_configs_built_in_code_are_validated_too():
    with pytest.raises(ConfigError, match=r"process\[0\]\.tcp\[0\]\.port"):
        Supervisor(SupervisorConfig(process=(
            ProcessConfig(name="x", command="sleep 1", tcp=(TcpCheck(port=0),)),)))
