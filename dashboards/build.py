"""`fobs dashboards build`: dashboards JSON + Grafana provisioning, ready for a stock Grafana.

Layout of the output directory:

    OUT/dashboards/<name>.json                  one per dashboards/*.dashboard.py
    OUT/provisioning/datasources/fobs.yaml      the InfluxDB datasource (InfluxQL mode)
    OUT/provisioning/dashboards/fobs.yaml       a file provider reading OUT/dashboards
    OUT/provisioning/alerting/fobs.yaml         the alert rules (unified alerting)

Provisioning files are YAML to Grafana; fobs writes them as JSON, which is valid YAML, so no
YAML library is needed. Point Grafana at them with `GF_PATHS_PROVISIONING=OUT/provisioning`.
"""

from __future__ import annotations

import json
import runpy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fobs.components.config import ConfigError
from fobs.dashboards import grafana
from fobs.dashboards.errors import RuleError
from fobs.dashboards.rules import Rule, load_rules

DASHBOARD_DIR = Path(__file__).parent
SUFFIX = ".dashboard.py"


def dashboard_files(directory: Path = DASHBOARD_DIR) -> list[Path]:
    return sorted(directory.glob(f"*{SUFFIX}"))


def load_dashboard(path: Path) -> dict[str, Any]:
    """Run a `*.dashboard.py` and return its `dashboard` as plain JSON data."""
    namespace = runpy.run_path(str(path))
    if "dashboard" not in namespace:
        raise ConfigError(f"{path}: defines no `dashboard`")
    data: dict[str, Any] = grafana._plain(namespace["dashboard"].to_json_data())
    return data


def load_dashboards(paths: Sequence[Path] | None = None) -> dict[str, dict[str, Any]]:
    """name (file name without `.dashboard.py`) → dashboard JSON."""
    return {p.name[:-len(SUFFIX)]: load_dashboard(p) for p in paths or dashboard_files()}


@dataclass(frozen=True)
class BuildOptions:
    out: Path
    datasource: grafana.DatasourceSettings = grafana.DatasourceSettings()
    dashboards_path: str = ""           # as Grafana sees OUT/dashboards; "" = its real path
    rule_files: tuple[str, ...] = ()
    evaluate_every: str = "10s"


def build(options: BuildOptions) -> dict[str, Path]:
    """Write everything; returns what was written by kind."""
    out = options.out
    try:
        rules: list[Rule] = load_rules(options.rule_files)
    except RuleError as e:
        raise ConfigError(str(e)) from None
    boards_dir = out / "dashboards"
    prov = out / "provisioning"
    for sub in (boards_dir, prov / "datasources", prov / "dashboards", prov / "alerting"):
        sub.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, data in load_dashboards().items():
        path = boards_dir / f"{name}.json"
        _write(path, data)
        written[f"dashboard {name}"] = path
    dashboards_path = options.dashboards_path or str(boards_dir.resolve())
    written["datasource"] = _write(prov / "datasources" / "fobs.yaml",
                                   grafana.datasource_provisioning(options.datasource))
    written["dashboard provider"] = _write(prov / "dashboards" / "fobs.yaml",
                                           grafana.provider_provisioning(dashboards_path))
    written["alert rules"] = _write(prov / "alerting" / "fobs.yaml",
                                    grafana.alert_provisioning(rules, options.evaluate_every))
    return written


def _write(path: Path, data: Any) -> Path:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True, indent=2) + "\n")
    tmp.replace(path)
    return path
