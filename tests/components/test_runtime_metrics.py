"""Declared metrics through the runtime: varz layout, published declarations, /metrics types."""

from __future__ import annotations

from typing import Any

from fobs.components import Counter, Gauge, Summary
from fobs.components.metrics import DECLARATIONS_KEY
from tests.components.conftest import http_get, varz


async def test_varz_carries_declared_values_and_their_declarations(start_component: Any) -> None:
    comp = await start_component("Shop", index=1)
    comp.varz["http"] = {"version": "1.1"}          # free-form varz shares the subtree
    requests = Counter("shop", "requests", "HTTP requests served", tags=("method",),
                       varz="http.requests.{method}", registry=comp.metrics)
    Gauge("shop", "queue_length", "Orders waiting", registry=comp.metrics).set_function(
        lambda: 4)
    requests.labels("GET").inc(2)
    body = await varz(comp)
    assert body["http"] == {"version": "1.1", "requests": {"GET": 2}}
    assert body["queue_length"] == 4.0
    assert body["type"] == "Shop" and "cpu" in body                 # the generic CF fields
    assert body[DECLARATIONS_KEY] == [
        {"measurement": "shop", "field": "requests", "type": "int", "kind": "counter",
         "tags": ["method"], "path": ["http", "requests", "{method}"], "series": [["GET"]]},
        {"measurement": "shop", "field": "queue_length", "type": "float", "kind": "gauge",
         "tags": [], "path": ["queue_length"], "series": [[]]}]


async def test_no_declarations_key_without_declared_metrics(start_component: Any) -> None:
    comp = await start_component("Router")
    assert DECLARATIONS_KEY not in await varz(comp)


async def test_metrics_has_help_and_type_lines_from_the_declarations(start_component: Any
                                                                     ) -> None:
    comp = await start_component("Shop", index=2)
    comp.varz["legacy"] = 7
    requests = Counter("shop", "requests", "HTTP requests\nserved", tags=("method",),
                       varz="requests.{method}", registry=comp.metrics)
    latency = Summary("shop", "latency_{q}_seconds", "Request latency", registry=comp.metrics)
    requests.labels("GET").inc(3)
    latency.observe(0.5)
    status, text = await http_get(comp, "/metrics")
    assert status == 200
    assert "# HELP shop_requests HTTP requests\\nserved\n# TYPE shop_requests counter\n" in text
    assert 'shop_requests{type="Shop",index="2",method="GET"} 3.0\n' in text
    assert "# TYPE shop_latency_seconds summary\n" in text
    assert 'shop_latency_seconds{type="Shop",index="2",quantile="0.99"} 0.5\n' in text
    assert 'shop_latency_seconds_count{type="Shop",index="2"} 1.0\n' in text
    assert 'legacy{type="Shop",index="2"} 7.0' in text                 # the rest of varz
    assert "requests_GET" not in text                 # declared values are not also gauges
