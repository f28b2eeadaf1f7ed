"""The collector's config: defaults, the sample file, flags, and every bad value's exact message."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest

from fobs.cli import build_parser
from fobs.collector.cli import load_config
from fobs.collector.config import CollectorConfig, ScrapeConfig, StaticTarget, TypeScrapeConfig
from fobs.collector.config import load_config as load_file
from fobs.components.config import ConfigError, load

SAMPLE = Path(__file__).parents[2] / "collector" / "fobs-collector.toml"

BAD = [
    ("[scrape]\nvarz_interval = 5\nvarz_timeout = 6",
     "scrape.varz_timeout: 6s is greater than the varz interval (5s)"),
    ("[scrape]\nhealthz_interval = 2\nhealthz_timeout = 2.5",
     "scrape.healthz_timeout: 2.5s is greater than the healthz interval (2s)"),
    ("[scrape.types.DEA]\nvarz_interval = 3\nvarz_timeout = 4",
     "scrape.types.DEA.varz_timeout: 4s is greater than the varz interval (3s)"),
    ("[scrape]\nhealthz_interval = 0",
     "scrape.healthz_interval: must be greater than 0, got 0.0"),
    ("[scrape]\nvarz_timeout = -1",
     "scrape.varz_timeout: must be 0 (automatic) or more, got -1.0"),
    ("[scrape.types.DEA]\nvarz_timeot = 4",
     "unknown key 'scrape.types.DEA.varz_timeot' in [scrape.types.DEA] (known keys: healthz, "
     "healthz_interval, healthz_timeout, varz_interval, varz_timeout)"),
    ("[scrape.types.DEA]\nvarz_interval = -1",
     "scrape.types.DEA.varz_interval: must be greater than 0, got -1.0"),
    ("[scrape]\nmax_in_flight = 0", "scrape.max_in_flight: must be at least 1, got 0"),
    ("[scrape]\nmax_response_bytes = 10",
     "scrape.max_response_bytes: must be at least 1024, got 10"),
    ("[scrape]\nfirst_scrape_window = 2",
     "scrape.first_scrape_window: must be between 0 and 1 s, got 2.0"),
    ('[scrape]\nvarz_interval = "10s"',
     "scrape.varz_interval: expected a number, got a string ('10s')"),
    ("scrape = 5", "scrape: expected a table, got an integer (5)"),
    ('deployment = ""', "deployment: must not be empty"),
    ("deployment = 5", "deployment: expected a string, got an integer (5)"),
    ('[component]\nlog_level = "LOUD"',
     "component.log_level: must be one of TRACE, DEBUG, INFO, SUCCESS, WARNING, ERROR, "
     "CRITICAL, got 'LOUD'"),
    ("stop_timeout = 0", "stop_timeout: must be greater than 0, got 0.0"),
    ("bogus = 1", "unknown key 'bogus' in the top level (known keys: component, deployment, "
                  "discovery, nats_ping_interval, outputs, scrape, status, stop_timeout)"),
    ("[component]\nnats = 1", "component.nats: expected a table, got an integer (1)"),
    ("[component.syslog]\nfacility = 24", "component.syslog.facility: must be 0..23, got 24"),
    ('[component]\nuser = "a"',
     "component.user: user and password go together (or leave both empty)"),
    # The keys older collector configs had at the top level: where they went.
    ('[nats]\nservers = ["nats://a:1"]',
     "unknown key 'nats' in the top level: it moved to [component.nats]"),
    ('[syslog]\naddress = "h:514"',
     "unknown key 'syslog' in the top level: it moved to [component.syslog]"),
    ('log_level = "DEBUG"',
     "unknown key 'log_level' in the top level: it moved to component.log_level"),
    ('[discovery]\nsharding = "hash"',
     "discovery.sharding: must be one of 'none', 'rendezvous', got 'hash'"),
    ("[discovery]\nprune_interval = 30",
     "discovery.prune_interval: 30s is shorter than discover_interval (60s): every target "
     "would be pruned between two discover rounds"),
    ('[[discovery.static]]\nurl = "http://h:1"',
     "discovery.static[0].type: a static target needs a component type"),
    ('[[discovery.static]]\ntype = "DEA"\nurl = "h:1"',
     "discovery.static[0].url: expected http://HOST:PORT[/PATH], got 'h:1'"),
    ('[[discovery.static]]\ntype = "DEA"\nurl = "http://h:1"\ncredentials = ["a"]',
     'discovery.static[0].credentials: expected ["user", "password"]'),
    ('[[discovery.static]]\ntype = "DEA"\nurl = "http://h:1"\n'
     '[[discovery.static]]\ntype = "DEA"\nurl = "http://h:2"',
     "discovery.static[1]: duplicate static target DEA/0"),
    ('[status]\naddress = "nowhere"', "status.address: expected HOST:PORT, got 'nowhere'"),
    ('[status]\nuser = "a"',
     "status.user: user and password go together (or leave both empty)"),
    ("[component]\nport = 70000", "component.port: must be 0..65535, got 70000"),
    ("[component]\nindex = -1", "component.index: must be 0 or more, got -1"),
    ('[component.nats]\nservers = ["localhost:4222"]',
     "component.nats.servers: 'localhost:4222' is not a URL (nats://host:port)"),
    ("[scrape", None),   # invalid TOML: the parser's own message
]


@pytest.mark.parametrize("text,message", BAD, ids=[b[1] or b[0] for b in BAD])
def test_bad_config_is_refused_naming_the_key(tmp_path: Path, text: str,
                                              message: str | None) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_file(path)
    if message is None:
        assert str(raised.value).startswith(f"{path}: invalid TOML:")
    else:
        assert str(raised.value) == f"{path}: {message}"


def test_the_sample_config_is_all_defaults_and_lists_every_key() -> None:
    assert load(CollectorConfig, SAMPLE) == CollectorConfig()
    text = SAMPLE.read_text()
    uncommented = "\n".join(re.sub(r"^# ", "", line) for line in text.splitlines())
    assert load(CollectorConfig, _write(uncommented)) is not None

    def keys(cls: object) -> list[str]:
        out = []
        for name, hint in typing.get_type_hints(cls).items():
            out += keys(hint) if dataclasses.is_dataclass(hint) else [name]
        return out

    for key in keys(CollectorConfig):
        assert re.search(rf"^#? ?({key} =|\[\[?.*\.{key}[.\]])", text, re.M), \
            f"{key} is missing from the sample"
    for cls in (TypeScrapeConfig, StaticTarget):
        for f in dataclasses.fields(cls):
            assert re.search(rf"^# {f.name} =", text, re.M), f"{f.name} not in the sample"


def _write(text: str) -> Path:
    import tempfile
    path = Path(tempfile.mkdtemp()) / "c.toml"
    path.write_text(text)
    return path


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[component]\nlog_level = "ERROR"\n[component.nats]\n'
                    'servers = ["nats://a:1"]\nuser = "u"\n[scrape]\nvarz_interval = 30.0\n')
    args = build_parser().parse_args(["collector", "--config", str(path), "--nats",
                                      "nats://b:2,nats://c:3", "--healthz-interval", "7",
                                      "--status", "127.0.0.1:0", "--log-level", "debug"])
    config = load_config(args)
    assert config.component.nats.servers == ("nats://b:2", "nats://c:3")
    assert config.component.nats.user == "u"       # the rest of the file's table stays
    assert config.component.log_level == "debug"
    assert config.scrape.varz_interval == 30.0 and config.scrape.healthz_interval == 7.0
    assert config.status.address == "127.0.0.1:0"


def test_influx_flags_make_one_output() -> None:
    parse = build_parser().parse_args
    v1 = load_config(parse(["collector", "--influx-url", "http://db:8086", "--influx-db", "m",
                            "--spool-dir", "/tmp/spool"])).outputs
    assert [(o.url, o.database) for o in v1.influxdb_v1] == [("http://db:8086", "m")]
    assert v1.spool_dir == "/tmp/spool" and not v1.influxdb_v2
    v2 = load_config(parse(["collector", "--influx-url", "http://db:8086", "--influx-org", "o",
                            "--influx-bucket", "b", "--influx-token", "t"])).outputs
    assert [(o.url, o.org, o.bucket, o.token) for o in v2.influxdb_v2] == [
        ("http://db:8086", "o", "b", "t")]
    with pytest.raises(ConfigError, match="^--influx-db: the 1.x database"):
        load_config(parse(["collector", "--influx-db", "m", "--influx-org", "o"]))


def test_a_flag_is_validated_like_the_file() -> None:
    args = build_parser().parse_args(["collector", "--varz-interval", "2",
                                      "--healthz-interval", "0"])
    with pytest.raises(ConfigError, match=r"^scrape\.healthz_interval: must be greater"):
        load_config(args)


def test_schedule_resolution() -> None:
    config = ScrapeConfig(varz_interval=20.0, healthz_timeout=1.0,
                          types={"Router": TypeScrapeConfig(varz_interval=2.0)})
    assert config.schedule("DEA", "varz") == (20.0, 5.0)
    assert config.schedule("Router", "varz") == (2.0, 2.0)
    assert config.schedule("Router", "healthz") == (5.0, 1.0)
    assert config.schedule(None, "healthz") == (5.0, 1.0)
