"""`fobs collector --once/--check`, `fobs status`, `python -m fobs.collector`, config errors."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fobs.cli import main
from tests.collector.collector_helpers import HttpTarget, collector_config
from tests.services import free_port

REPO = Path(__file__).parents[2]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


async def test_once_prints_line_protocol_and_writes_nothing(
        nats_server: Any, start_component: Any, tmp_path: Path) -> None:
    dea = await start_component("DEA", index=5)
    edge = await HttpTarget().start()
    edge.set_varz({"mem_bytes": 10})
    config = tmp_path / "c.toml"
    spool = tmp_path / "spool"
    config.write_text(f'[[discovery.static]]\ntype = "Edge"\nurl = "http://{edge.host}"\n'
                      f'[outputs]\nspool_dir = "{spool}"\n'
                      f'[[outputs.influxdb_v1]]\nurl = "http://127.0.0.1:{free_port()}"\n')
    try:
        def once() -> tuple[int, bytes]:
            buffer = io.BytesIO()
            stdout = io.TextIOWrapper(buffer, write_through=True)   # main writes bytes
            with contextlib.redirect_stdout(stdout):
                code = main(["collector", "--once", "--config", str(config), "--nats",
                             nats_server.url, "--wait", "0.5", "--log-level", "WARNING"])
            data = buffer.getvalue()
            stdout.detach()
            return code, data

        code, data = await asyncio.to_thread(once)
        assert code == 0
        lines = data.decode().splitlines()
        scrape = [line for line in lines if line.startswith("scrape,")]
        assert len(scrape) == 4                      # DEA and Edge, varz and healthz each
        assert any("job=DEA" in line and "index=5" in line and "up=1i" in line
                   for line in scrape)
        assert any(line.startswith("component,") and "job=Edge" in line for line in lines)
        assert not spool.exists()                    # --once writes nothing
        assert dea.uuid
    finally:
        await edge.stop()


async def test_check_and_status(nats_server: Any, start_component: Any,
                                make_collector: Any) -> None:
    await start_component("Router", index=2)
    collector = await make_collector(collector_config([nats_server.url]))
    await collector.outputs.wait_for(lambda: len(collector.outputs.scrapes(job="Router")) >= 2)
    address = collector.status.address
    code, out, _ = await asyncio.to_thread(run_cli, "collector", "--check", "--status", address)
    assert (code, out) == (0, "ok\n")
    code, _, err = await asyncio.to_thread(run_cli, "collector", "--check", "--status",
                                           f"127.0.0.1:{free_port()}")
    assert code == 1 and "is not answering" in err
    code, out, _ = await asyncio.to_thread(run_cli, "status", "--collector",
                                           f"http://{address}", "--supervisor", "")
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert rows[0][:3] == ["TYPE", "INDEX", "HOST"]
    assert ["Router", "2"] == rows[[r[0] for r in rows].index("Router")][:2]
    assert rows[-1][:2] == ["2", "components"]
    code, _, err = await asyncio.to_thread(run_cli, "status", "--collector",
                                           f"http://127.0.0.1:{free_port()}")
    assert code == 1 and err.startswith("fobs status: cannot read")


def test_a_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[scrape]\nvarz_interval = 5\nvarz_timeout = 6\n")
    proc = subprocess.run([sys.executable, "-m", "fobs.collector", "--config", str(config)],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr == (f"fobs collector: error: {config}: scrape.varz_timeout: 6s is "
                           f"greater than the varz interval (5s)\n")


def test_a_busy_status_address_is_a_config_error(tmp_path: Path) -> None:
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "c.toml"
        config.write_text(f'[discovery]\nnats = false\n[status]\naddress = "127.0.0.1:{port}"\n'
                          f'[outputs]\nspool_dir = "{tmp_path / "spool"}"\n')
        proc = subprocess.run([sys.executable, "-m", "fobs.collector", "--config", str(config)],
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                              capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[-1].startswith(
        f"fobs collector: error: status.address: cannot listen on 127.0.0.1:{port}")


async def test_sigterm_while_waiting_for_nats_exits_0(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[status]\naddress = "127.0.0.1:0"\n'
                      f'[outputs]\nspool_dir = "{tmp_path / "spool"}"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fobs.collector", "--config", str(config), "--nats",
        f"nats://127.0.0.1:{free_port()}", cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    while b"NATS error" not in await asyncio.wait_for(proc.stderr.readline(), 30):
        pass                                     # it is up and retrying: signals are handled
    proc.terminate()
    rest = await asyncio.wait_for(proc.stderr.read(), 30)
    assert await proc.wait() == 0, rest.decode()[-2000:]
    assert b"Stopped while starting" in rest


def test_once_without_nats_fails_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "fobs.collector", "--once", "--nats",
                           f"nats://127.0.0.1:{free_port()}", "--wait", "0.1",
                           "--log-level", "CRITICAL"],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1].startswith("fobs collector --once: no NATS server")
