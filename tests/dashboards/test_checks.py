"""The offline dashboard checks: the shipped dashboards pass, and each check catches its defect."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from fobs.dashboards.build import dashboard_files, load_dashboards
from fobs.dashboards.checks import check_all, panels
from fobs.dashboards.grafana import DATASOURCE_UID

PROVISIONED = {DATASOURCE_UID}


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    return load_dashboards()


def test_the_six_dashboards_exist() -> None:
    assert [p.name for p in dashboard_files()] == [
        "collector.dashboard.py", "dea.dashboard.py", "fleet.dashboard.py",
        "router.dashboard.py", "stager.dashboard.py", "syslog.dashboard.py"]


def test_shipped_dashboards_pass_every_check(dashboards: dict[str, dict[str, Any]]) -> None:
    assert check_all(dashboards, PROVISIONED) == []
    for name, dashboard in dashboards.items():
        names = [v["name"] for v in dashboard["templating"]["list"]]
        assert names == ["deployment", "job", "index"], name
        assert all(v["query"].startswith("SHOW TAG VALUES")
                   for v in dashboard["templating"]["list"])
        targets = [t for p in panels(dashboard) for t in p.get("targets") or []]
        assert targets and all(t["rawQuery"] is True for t in targets)


def first_panel(d: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in d["panels"] if p.get("targets"))


def duplicate_id(d: dict[str, Any]) -> None:
    d["panels"][1]["id"] = d["panels"][0]["id"]


def too_wide(d: dict[str, Any]) -> None:
    d["panels"][0]["gridPos"].update(x=20, w=6)


def overlap(d: dict[str, Any]) -> None:
    first = d["panels"][0]["gridPos"]
    d["panels"][1]["gridPos"] = dict(first, x=first["x"] + 1)


def duplicate_ref(d: dict[str, Any]) -> None:
    panel = first_panel(d)
    panel["targets"].append(dict(panel["targets"][0]))


def undefined_variable(d: dict[str, Any]) -> None:
    first_panel(d)["targets"][0]["query"] += ' AND "x" =~ /^$cluster$/'


def unprovisioned(d: dict[str, Any]) -> None:
    first_panel(d)["targets"][0]["datasource"] = {"type": "influxdb", "uid": "elsewhere"}


def no_time_filter(d: dict[str, Any]) -> None:
    target = first_panel(d)["targets"][0]
    target["query"] = target["query"].replace("$timeFilter", "time > now() - 1h")


def not_raw(d: dict[str, Any]) -> None:
    first_panel(d)["targets"][0]["rawQuery"] = False


def alias_without_tag(d: dict[str, Any]) -> None:
    first_panel(d)["targets"][0]["alias"] = "$tag_dea_index"


@pytest.mark.parametrize("mutate, message", [
    (duplicate_id, "already used by"),
    (too_wide, "is outside the 24-column grid"),
    (overlap, "overlaps panel"),
    (duplicate_ref, "refId A used twice"),
    (undefined_variable, "$cluster is not defined"),
    (unprovisioned, "datasource 'elsewhere' is not provisioned"),
    (no_time_filter, "is not filtered by $timeFilter"),
    (not_raw, "rawQuery is not true"),
    (alias_without_tag, 'alias uses $tag_dea_index but the query does not GROUP BY "dea_index"'),
], ids=lambda v: getattr(v, "__name__", ""))
def test_each_check_catches_its_defect(dashboards: dict[str, dict[str, Any]],
                                       mutate: Callable[[dict[str, Any]], None],
                                       message: str) -> None:
    broken = copy.deepcopy(dashboards["router"])
    mutate(broken)
    problems = check_all({"router": broken}, PROVISIONED)
    assert problems and all(message in p for p in problems), problems


def test_dashboard_uids_are_unique(dashboards: dict[str, dict[str, Any]]) -> None:
    twin = copy.deepcopy(dashboards["dea"])
    assert any("uid 'fobs-dea' already used" in p
               for p in check_all({"dea": dashboards["dea"], "twin": twin}, PROVISIONED))
