"""Historians against real influxd and VictoriaMetrics; the error table; the file historian."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fobs.collector.config import OutputsConfig
from fobs.collector.historians import create
from fobs.collector.historians.config import FileConfig, compresses
from fobs.collector.historians.errors import (
    FatalError,
    PartialWriteError,
    RejectError,
    TooLargeError,
    WriteError,
    from_status,
    reason,
    retry_after,
)
from fobs.collector.historians.file import FileHistorian
from fobs.collector.historians.influxdb_v1 import InfluxV1
from fobs.collector.historians.influxdb_v2 import InfluxV2
from fobs.collector.lineprotocol import encode
from fobs.components.config import ConfigError, build
from tests.collector.write_helpers import Answer, FakeInflux, scrape, v1, v2
from tests.services import Influxd, VictoriaMetrics, free_port


def lines(n: int, measurement: str = "load") -> bytes:
    return encode([p for i in range(n // 10) for p in scrape(i, 10, measurement)])


# --- the table ----------------------------------------------------------------------------------

@pytest.mark.parametrize("status, kind", [
    (400, RejectError), (422, RejectError), (405, RejectError), (401, FatalError),
    (403, FatalError), (404, FatalError), (413, TooLargeError), (408, WriteError),
    (429, WriteError), (500, WriteError), (502, WriteError), (503, WriteError), (504, WriteError),
    (302, WriteError),
])
def test_status_table(status: int, kind: type[Exception]) -> None:
    error = from_status(status, '{"error":"boom"}')
    assert type(error) is kind and str(error) == f"write: HTTP {status}: boom"


def test_partial_write_counts_what_influxd_dropped() -> None:
    error = from_status(400, '{"error":"partial write: field type conflict: input field \\"v\\" '
                             'on measurement \\"m\\" is type string, already exists as type '
                             'float dropped=3"}')
    assert isinstance(error, PartialWriteError) and error.rejected == 3
    error = from_status(400, '{"error":"partial write: unable to parse \'x\': invalid field '
                             'format dropped=0"}')
    assert isinstance(error, PartialWriteError) and error.rejected == 1


def test_retry_after_forms() -> None:
    assert retry_after("7") == 7.0
    assert retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after("soon") is None and retry_after(None) is None
    error = from_status(429, "slow down", {"Retry-After": "3"})
    assert isinstance(error, WriteError) and error.retry_after == 3.0


def test_reason_is_short_and_single_line() -> None:
    assert reason(b'{"message": "a\\nb"}') == "a b"
    assert len(reason("x" * 1000)) == 301


# --- InfluxDB 1.x /write ------------------------------------------------------------------------

@pytest.mark.parametrize("gzip", [True, False])
async def test_v1_writes_exact_counts(influxd_shared: Influxd, db: str, gzip: bool) -> None:
    historian = InfluxV1(v1(influxd_shared.url, db, gzip=gzip))
    await historian.connect()
    await historian.write(lines(500))
    await historian.close()
    assert influxd_shared.count(db, "load", "v") == 500


async def test_v1_garbage_is_rejected_with_influxds_reason(influxd_shared: Influxd,
                                                           db: str) -> None:
    historian = InfluxV1(v1(influxd_shared.url, db))
    with pytest.raises(RejectError, match="unable to parse 'garbage line'"):
        await historian.write(b"garbage line\n")
    await historian.close()


async def test_v1_field_type_conflict_is_a_partial_write(influxd_shared: Influxd,
                                                         db: str) -> None:
    historian = InfluxV1(v1(influxd_shared.url, db))
    await historian.write(b"m f=1.0 1\n")
    with pytest.raises(PartialWriteError, match="field type conflict") as e:
        await historian.write(b'm f="text" 2\nm f=2.0 3\n')
    assert e.value.rejected == 1
    assert influxd_shared.count(db, "m", "f") == 2
    await historian.close()


async def test_v1_creates_a_missing_database(influxd_shared: Influxd) -> None:
    name = "created_on_first_write"
    historian = InfluxV1(v1(influxd_shared.url, name))
    await historian.write(lines(20))
    await historian.close()
    assert influxd_shared.count(name, "load", "v") == 20
    influxd_shared.query(f'DROP DATABASE "{name}"')


async def test_v1_missing_database_without_creation_is_fatal(influxd_shared: Influxd) -> None:
    historian = InfluxV1(v1(influxd_shared.url, "never", create_database=False))
    with pytest.raises(FatalError, match='database not found: "never"'):
        await historian.write(lines(10))
    await historian.close()


async def test_v1_missing_retention_policy_is_fatal(influxd_shared: Influxd, db: str) -> None:
    """influxd 1.6 answers 500 here; retrying would never help, so it is not a WriteError."""
    historian = InfluxV1(v1(influxd_shared.url, db, retention_policy="nope"))
    with pytest.raises(FatalError, match="retention policy not found"):
        await historian.write(lines(10))
    await historian.close()


async def test_v1_body_over_max_body_size_is_too_large(small_body_influxd: Influxd) -> None:
    small_body_influxd.create_database("small")
    historian = InfluxV1(v1(small_body_influxd.url, "small", gzip=False))
    with pytest.raises(TooLargeError, match="413"):
        await historian.write(lines(200))
    await historian.write(lines(20))
    await historian.close()


async def test_v1_nothing_listening_is_a_write_error() -> None:
    historian = InfluxV1(v1(f"http://127.0.0.1:{free_port()}", "x"))
    with pytest.raises(WriteError, match="Cannot connect"):
        await historian.write(lines(10))
    await historian.close()


async def test_v1_basic_auth_header(fake_influx: FakeInflux) -> None:
    historian = InfluxV1(v1(fake_influx.url, "db", username="u", password="p", gzip=False,
                            retention_policy="rp"))
    await historian.write(b"m f=1 1\n")
    await historian.close()
    seen = fake_influx.requests[0]
    assert (seen.path, seen.body) == ("/write", b"m f=1 1\n")
    assert seen.query == {"db": "db", "rp": "rp", "precision": "ns"}
    assert seen.headers["Authorization"] == "Basic dTpw"


# --- answers only a fake server gives on demand -------------------------------------------------

@pytest.mark.parametrize("make", [lambda url: InfluxV1(v1(url, "db")),
                                  lambda url: InfluxV2(v2(url, "b"))], ids=["v1", "v2"])
async def test_throttling_and_unavailable_are_retryable(fake_influx: FakeInflux, make) -> None:
    """A fake server: influxd cannot be made to answer 429 with Retry-After, or 503."""
    fake_influx.script = [Answer(429, {"Retry-After": "2"}, '{"message":"slow down"}'),
                          Answer(503, {}, "unavailable")]
    historian = make(fake_influx.url)
    with pytest.raises(WriteError, match="429: slow down") as e:
        await historian.write(b"m f=1 1\n")
    assert e.value.retry_after == 2.0
    with pytest.raises(WriteError, match="503") as e:
        await historian.write(b"m f=1 1\n")
    assert e.value.retry_after is None
    await historian.write(b"m f=1 1\n")
    await historian.close()
    assert len(fake_influx.requests) == 3


@pytest.mark.parametrize("make", [lambda url: InfluxV1(v1(url, "db", timeout=0.3)),
                                  lambda url: InfluxV2(v2(url, "b", timeout=0.3))],
                         ids=["v1", "v2"])
async def test_a_hung_server_is_a_timeout(fake_influx: FakeInflux, make) -> None:
    """A fake server that accepts the request and never answers."""
    fake_influx.script = [Answer(hang=True)]
    historian = make(fake_influx.url)
    with pytest.raises(WriteError):
        await asyncio.wait_for(historian.write(b"m f=1 1\n"), 5)
    await historian.close()


# --- InfluxDB 2.x API through influxdb-client ----------------------------------------------------

async def test_v2_writes_exact_counts_to_victoria_metrics(
        victoria_metrics: VictoriaMetrics) -> None:
    historian = InfluxV2(v2(victoria_metrics.url, "fobs"))
    await historian.connect()
    await historian.write(lines(300))
    await historian.close()
    series = victoria_metrics.export('{__name__="load_v"}')
    assert sum(len(s["values"]) for s in series) == 300
    assert {s["metric"]["host"] for s in series} == {"h1"}


async def test_v2_on_influxd_1_6_is_fatal(influxd_shared: Influxd) -> None:
    """Debian's influxd 1.6.7 has no /api/v2/write: 404, which retrying cannot fix."""
    historian = InfluxV2(v2(influxd_shared.url, "fobs"))
    with pytest.raises(FatalError, match="404"):
        await historian.write(lines(10))
    await historian.close()


async def test_v2_nothing_listening_is_a_write_error() -> None:
    historian = InfluxV2(v2(f"http://127.0.0.1:{free_port()}", "fobs"))
    with pytest.raises(WriteError, match="127.0.0.1"):
        await historian.write(lines(10))
    await historian.close()


# --- the file historian -------------------------------------------------------------------------

async def test_file_appends_and_rotates(tmp_path: Path) -> None:
    path = tmp_path / "out" / "points.lp"
    historian = FileHistorian(FileConfig(path=str(path), rotate_bytes=1000, keep=2))
    await historian.connect()
    batches = [lines(10, f"m{i}") for i in range(8)]
    for batch in batches:
        await historian.write(batch)
    await historian.close()
    files = [path, path.with_name("points.lp.1"), path.with_name("points.lp.2")]
    assert all(f.exists() for f in files) and not path.with_name("points.lp.3").exists()
    kept = b"".join(f.read_bytes() for f in reversed(files))
    assert b"".join(batches).endswith(kept)
    assert all(f.stat().st_size <= 1000 for f in files)


async def test_file_keep_zero_truncates(tmp_path: Path) -> None:
    path = tmp_path / "points.lp"
    historian = FileHistorian(FileConfig(path=str(path), rotate_bytes=500, keep=0))
    for i in range(5):
        await historian.write(lines(10, f"m{i}"))
    await historian.close()
    assert path.read_bytes() == lines(10, "m4") and list(tmp_path.iterdir()) == [path]


async def test_file_in_an_unwritable_place_is_a_write_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a directory")
    historian = create("file", FileConfig(path=str(tmp_path / "blocker" / "x.lp")), "file")
    with pytest.raises(WriteError, match="x.lp"):
        await historian.write(b"m f=1 1\n")


# --- config -------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, message", [
    ({"influxdb_v1": [{"url": "influx:8086"}]}, "outputs.influxdb_v1[0].url: expected http://"),
    ({"influxdb_v1": [{}, {}]},
     "outputs.influxdb_v1[1].name: output name 'influxdb_v1' is already used by influxdb_v1[0]"),
    ({"influxdb_v2": [{"name": "a"}], "file": [{"name": "a"}]},
     "outputs.file[0].name: output name 'a' is already used by influxdb_v2[0]"),
    ({"influxdb_v2": [{"bucket": ""}]}, "outputs.influxdb_v2[0].bucket: must not be empty"),
    ({"file": [{"name": "../etc"}]}, "outputs.file[0].name: must be 1-64 letters"),
    ({"file": [{"keep": -1}]}, "outputs.file[0].keep: must be 0 or more"),
    ({"influxdb_v1": [{"batch_size": 0}]}, "outputs.influxdb_v1[0].batch_size: must be greater"),
    ({"influxdb_v1": [{"retry": {"max_delay": 0.5}}]},
     "outputs.influxdb_v1[0].retry.max_delay: must be at least initial_delay"),
    ({"influxdb_v1": [{"spool": {"fsync": "maybe"}}]},
     "outputs.influxdb_v1[0].spool.fsync: must be one of"),
    ({"influxdb_v1": [{"tags": {}}]}, "unknown key 'outputs.influxdb_v1[0].tags'"),
    ({"close_timeout": -1}, "outputs.close_timeout: must be greater than 0"),
])
def test_config_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        build(OutputsConfig, data, "outputs")
    assert str(e.value).startswith(message), str(e.value)


def test_config_defaults_and_names() -> None:
    cfg = build(OutputsConfig, {"influxdb_v1": [{}], "influxdb_v2": [{"name": "vm"}],
                                "file": [{"path": "/tmp/x.lp"}]}, "outputs")
    assert [(k, n) for k, n, _ in cfg.outputs()] == [
        ("influxdb_v1", "influxdb_v1"), ("influxdb_v2", "vm"), ("file", "file")]
    assert cfg.quarantine_path() == "/var/lib/fobs/collector/spool/quarantine"
    first = cfg.influxdb_v1[0]
    assert (first.batch_size, first.flush_interval, first.gzip, first.timeout) == (5000, 1.0,
                                                                                  "auto", 5.0)


def test_gzip_auto_is_off_for_a_loopback_host_only() -> None:
    for url in ("http://127.0.0.1:8086", "http://127.9.9.9", "http://[::1]:8086",
                "https://localhost:8086"):
        assert not compresses(url, "auto"), url
    for url in ("http://10.0.0.2:8086", "https://influx.example:8086", "http://[2001:db8::1]"):
        assert compresses(url, "auto"), url
    assert compresses("http://127.0.0.1:8086", True)
    assert not compresses("http://10.0.0.2:8086", False)
    with pytest.raises(ConfigError, match="gzip"):
        build(OutputsConfig, {"influxdb_v1": [{"gzip": "yes"}]}, "outputs")
