"""`fobs up --collectors N --nats-cluster 3`: N sharing collectors on a 3-node NATS cluster under
the supervisor, and `fobs status` showing the members and how many targets each scrapes."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from fobs.collector.config import load_config as load_collector
from fobs.plan import nats_nodes, plan_stack, supervisor_config, write_configs
from fobs.up import add_commands
from tests.test_up import fobs_up, stop_up


def parse(tmp_path: Path, *flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    return parser.parse_args(["up", "--dir", str(tmp_path / "var"), "--influx-url",
                              "http://127.0.0.1:1", *flags])


def test_collectors_and_a_nats_cluster_are_planned_for_the_supervisor(tmp_path: Path) -> None:
    stack = plan_stack(parse(tmp_path, "--collectors", "3", "--nats-cluster", "3"))
    files = write_configs(stack)
    configs = [load_collector(files[n]) for n in ("collector", "collector-1", "collector-2")]
    assert [c.component.index for c in configs] == [0, 1, 2]
    assert {c.discovery.sharding for c in configs} == {"rendezvous"}
    assert len({c.outputs.spool_dir for c in configs}) == 3          # a spool each
    assert len({c.status.address for c in configs}) == 3
    assert all(list(c.component.nats.servers) == stack.nats_urls for c in configs)
    assert len(set(stack.nats_urls)) == 3
    nodes = nats_nodes(stack)
    assert [n for n, _, _ in nodes] == ["nats", "nats-1", "nats-2"]
    for n, (_, command, _) in enumerate(nodes):     # each node routes to the two others
        conf = Path(command[command.index("-c") + 1]).read_text()
        routes = next(line for line in conf.splitlines() if "routes" in line)
        assert all((f"127.0.0.1:{stack.ports[f'nats_cluster-{m}']}" in routes) == (m != n)
                   for m in range(3)), conf
    procs = {p.name: p for p in supervisor_config(stack, files, 2.0).process}
    assert {"nats", "nats-1", "nats-2", "collector", "collector-1", "collector-2"} <= set(procs)
    assert set(procs["collector-2"].depends_on) >= {"nats", "nats-1", "nats-2"}


def test_one_collector_and_one_nats_node_by_default(tmp_path: Path) -> None:
    stack = plan_stack(parse(tmp_path))
    files = write_configs(stack)
    assert load_collector(files["collector"]).discovery.sharding == "none"
    assert [n for n, _, _ in nats_nodes(stack)] == ["nats"]
    conf = nats_nodes(stack)[0][1][-1]
    assert "cluster" not in Path(conf).read_text()


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_fobs_up_with_three_collectors_on_a_nats_cluster(tmp_path: Path) -> None:
    proc, output = await fobs_up(tmp_path, "--collectors", "3", "--nats-cluster", "3",
                                 "--deas", "4", "--routers", "2", "--stagers", "1",
                                 "--varz-interval", "2")
    try:
        text = "".join(output)
        assert len([line for line in text.splitlines() if "/api/v1/targets" in line]) == 3, text

        async def fobs_status(*flags: str) -> str:
            """`fobs status` as a user runs it, from where `fobs up` ran (it reads var/)."""
            status = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "fobs", "status", *flags, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
            out, _ = await status.communicate()
            assert status.returncode == 0, out.decode()
            return out.decode()

        async def shared() -> list[dict[str, Any]] | None:
            """The members once all three are active and their shares add up to the fleet
            (each share is what that collector's last heartbeat said)."""
            data = json.loads(await fobs_status("--json"))["data"]
            members = data.get("collectors") or []
            known = len({t["uuid"] for t in data["activeTargets"]}) + len(data["droppedTargets"])
            settled = (len(members) == 3 and all(m["state"] == "active" for m in members)
                       and sum(int(m["owned"]) for m in members) == known)
            return members if settled else None

        members = await until_async(shared, "three collectors sharing")
        # 4 DEAs, 2 routers, a stager, 3 collectors, the syslog aggregator, the supervisor...
        assert sum(int(m["owned"]) for m in members) >= 4 + 2 + 1 + 3, members
        table = await fobs_status("--supervisor", "")
        assert "3 collectors sharing the fleet" in table, table
        for m in members:
            assert re.search(rf"^{m['name']}( \(this\))?\s+active\s+\d+\s", table, re.M), table
    finally:
        await stop_up(proc, output)


async def until_async(check: Any, what: str, timeout: float = 60.0) -> Any:
    """Await `check()` until it returns something (the stack runs in other processes)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.25)
    raise TimeoutError(f"{what}: not after {timeout:g}s")
