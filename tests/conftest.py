"""Fixtures that start real services; see tests/services.py."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fobs.components import Component, ComponentConfig, NatsConfig
from tests.services import Influxd, NatsCluster, NatsServer, VictoriaMetrics


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    cluster = NatsCluster(tmp_path / "nats-cluster")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def influxd_shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """One influxd for the session; tests that only read/write use their own database."""
    with Influxd(tmp_path_factory.mktemp("influxd")) as server:
        yield server


@pytest.fixture
def influxd(tmp_path: Path) -> Iterator[Influxd]:
    """A private influxd a test may kill and restart."""
    with Influxd(tmp_path / "influxd") as server:
        yield server


@pytest.fixture
def victoria_metrics(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    with VictoriaMetrics(tmp_path / "vm") as server:
        yield server


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs for full-disk tests (root only; skipped where mounting is refused)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 1 MiB tmpfs: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
async def start_component(nats_server: Any) -> AsyncIterator[Callable[..., Awaitable[Component]]]:
    """Factory: components on the test's nats-server, with optional custom varz/routes."""
    started: list[Component] = []

    async def make(type: str = "Test", index: int = 0, varz: dict[str, Any] | None = None,
                   **kw: Any) -> Component:
        config = ComponentConfig(index=index, nats=NatsConfig(servers=(nats_server.url,),
                                                              reconnect_wait=0.1), **kw)
        comp = Component(type, config)
        comp.varz.update(varz or {})
        await comp.start()
        started.append(comp)
        return comp

    yield make
    for comp in started:
        await comp.stop()
