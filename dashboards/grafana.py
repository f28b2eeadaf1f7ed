"""Rendering for Grafana: InfluxQL targets, alert rules as unified-alerting provisioning, and
the datasource / dashboard-provider provisioning files.

grafanalib 0.7.1 only accepts its `Target` class as an alert trigger, and `Target` has no
`rawQuery`; `InfluxQLTarget` is the small subclass that adds what Grafana's InfluxDB datasource
needs (`rawQuery: true`, `resultFormat`), used for panels and alert rules alike.

A rule becomes three alert queries: A (the InfluxQL query over the rule's window), B (reduce A
with the rule's reducer, dropping nulls) and C (math: `$B <op> threshold`), the condition.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import attr
from grafanalib import core

from fobs.dashboards.rules import Rule
from fobs.dashboards.templates import to_grafana

DATASOURCE_UID = "fobs-influxdb"
DATASOURCE = {"type": "influxdb", "uid": DATASOURCE_UID}
ALERT_FOLDER = "fobs"
EXPRESSION_UID = "__expr__"          # Grafana's server-side expressions (reduce, math)
NO_DATA_STATES = {"ok": core.ALERTRULE_STATE_DATA_OK,
                  "alerting": core.ALERTRULE_STATE_DATA_ALERTING,
                  "nodata": core.ALERTRULE_STATE_DATA_NODATA}


@attr.s
class InfluxQLTarget(core.Target):  # type: ignore[misc]  # grafanalib is untyped: Target is Any
    """A raw InfluxQL query target that grafanalib also accepts in `AlertRulev9` triggers.

    To mypy's attrs plugin the fields inherited from the untyped `core.Target` (refId,
    datasource, hide, interval) do not exist, so the calls passing them carry an ignore."""

    query: str = attr.ib(default="")
    alias: str = attr.ib(default="")
    resultFormat: str = attr.ib(default="time_series")
    intervalMs: int | None = attr.ib(default=None)

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "refId": self.refId,
            "datasource": self.datasource,
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.resultFormat,
            "alias": self.alias,
            "hide": self.hide,
        }
        if self.interval:
            data["interval"] = self.interval
        if self.intervalMs is not None:
            data["intervalMs"] = self.intervalMs
            data["maxDataPoints"] = 43200
        return data


def alert_rule(rule: Rule) -> core.AlertRulev9:
    interval_ms = int(rule.interval_seconds * 1000)
    return core.AlertRulev9(
        title=rule.name,
        uid=rule.rule_uid,
        triggers=[
            InfluxQLTarget(refId="A", query=rule.query,  # type: ignore[call-arg]
                           datasource=DATASOURCE, intervalMs=interval_ms),
            core.AlertExpression(refId="B", expression="A",
                                 expressionType=core.EXP_TYPE_REDUCE,
                                 reduceFunction=rule.reduce,
                                 reduceMode=core.EXP_REDUCER_FUNC_DROP_NN),
            core.AlertExpression(refId="C", expression=f"$B {rule.operator} {rule.threshold:g}",
                                 expressionType=core.EXP_TYPE_MATH),
        ],
        condition="C",
        evaluateFor=rule.for_,
        labels=dict(rule.labels),
        annotations={k: to_grafana(v, "B") for k, v in rule.annotations.items()},
        noDataAlertState=NO_DATA_STATES[rule.no_data],
        errorAlertState=core.ALERTRULE_STATE_DATA_ERROR,
        timeRangeFrom=int(rule.window_seconds),
        timeRangeTo=0,
    )


def alert_provisioning(rules: Sequence[Rule], evaluate_every: str = "10s",
                       folder: str = ALERT_FOLDER, org_id: int = 1) -> dict[str, Any]:
    """Grafana's alerting file-provisioning document for `rules` (one group per rule group).

    grafanalib renders a rule in the shape of Grafana's ruler API (`grafana_alert: {title,
    condition, data, no_data_state, …}`); file provisioning wants the same facts flat
    (`title`, `condition`, `data`, `noDataState`, `execErrState`, `for`, …) with plain uid
    strings, so the rendered rules are reshaped here.
    """
    groups: dict[str, list[Rule]] = {}
    for rule in rules:
        groups.setdefault(rule.group, []).append(rule)
    document: dict[str, Any] = {"apiVersion": 1, "groups": []}
    for name, members in groups.items():
        group = core.AlertGroup(name=name, folder=folder, evaluateInterval=evaluate_every,
                                rules=[alert_rule(r) for r in members])
        rendered = _plain(group.to_json_data())
        document["groups"].append({
            "orgId": org_id, "name": rendered["name"], "folder": rendered["folder"],
            "interval": rendered["interval"],
            "rules": [_provisioned(r) for r in rendered["rules"]],
        })
    return document


def _provisioned(rendered: dict[str, Any]) -> dict[str, Any]:
    alert = rendered["grafana_alert"]
    data = []
    for query in alert["data"]:
        query = dict(query)
        uid = query.get("datasourceUid")
        if isinstance(uid, dict):
            query["datasourceUid"] = uid["uid"]
        elif uid == "-100":           # grafanalib's legacy uid of server-side expressions
            query["datasourceUid"] = EXPRESSION_UID
            query["model"] = {**query["model"],
                              "datasource": {"type": EXPRESSION_UID, "uid": EXPRESSION_UID}}
        data.append(query)
    return {
        "uid": rendered["uid"], "title": alert["title"], "condition": alert["condition"],
        "data": data, "noDataState": alert["no_data_state"],
        "execErrState": alert["exec_err_state"], "for": rendered["for"],
        "labels": rendered["labels"], "annotations": rendered["annotations"],
        "isPaused": False,
    }


def _plain(value: Any) -> Any:
    """grafanalib objects → plain JSON data, the way its own generator serialises them."""
    return json.loads(json.dumps(value, cls=_Encoder))


class _Encoder(json.JSONEncoder):
    def default(self, obj: Any) -> Any:
        to_json = getattr(obj, "to_json_data", None)
        if to_json is not None:
            return to_json()
        return super().default(obj)


@dataclass(frozen=True)
class DatasourceSettings:
    """Where Grafana finds InfluxDB (written into the datasource provisioning file)."""

    url: str = "http://127.0.0.1:8086"
    database: str = "fobs"
    user: str = ""
    password_env: str = "FOBS_INFLUXDB_PASSWORD"   # Grafana expands $VAR in provisioning


def datasource_provisioning(settings: DatasourceSettings) -> dict[str, Any]:
    source: dict[str, Any] = {
        "name": "fobs InfluxDB",
        "uid": DATASOURCE_UID,
        "type": "influxdb",
        "access": "proxy",
        "url": settings.url,
        "database": settings.database,
        "isDefault": True,
        "editable": False,
        "jsonData": {"dbName": settings.database, "httpMode": "POST", "version": "InfluxQL",
                     "timeInterval": "10s"},
    }
    if settings.user:
        source["user"] = settings.user
        source["secureJsonData"] = {"password": f"${settings.password_env}"}
    return {"apiVersion": 1, "datasources": [source]}


def provider_provisioning(dashboards_path: str, folder: str = "fobs") -> dict[str, Any]:
    return {"apiVersion": 1, "providers": [{
        "name": "fobs",
        "orgId": 1,
        "folder": folder,
        "type": "file",
        "disableDeletion": False,
        "allowUiUpdates": False,
        "updateIntervalSeconds": 30,
        "options": {"path": dashboards_path, "foldersFromFilesStructure": False},
    }]}
