"""A real Alertmanager (Debian's prometheus-alertmanager) on free loopback ports."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.services import Service, find_binary, free_port, http_status


class Alertmanager(Service):
    """Clustering off (no fixed gossip port), its own config and storage under workdir."""

    name = "alertmanager"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.port = free_port()
        self.config_path = workdir / "alertmanager.yml"
        self.config_path.write_text(
            'route:\n  receiver: "null"\n  group_wait: 0s\nreceivers:\n  - name: "null"\n')

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> Sequence[str]:
        return [find_binary("prometheus-alertmanager", "alertmanager"),
                f"--config.file={self.config_path}", f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
                "--log.level=warn"]

    def ready(self) -> bool:
        return http_status(f"{self.url}/-/ready") == 200

    def alerts(self) -> list[dict[str, Any]]:
        """The active alerts Alertmanager holds (resolved ones are not listed)."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as r:
            return list(json.load(r))


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    with Alertmanager(tmp_path / "alertmanager") as server:
        yield server
