"""The status page and control API over real HTTP."""

from __future__ import annotations

import aiohttp

from fobs.components.auth import basic_auth_header
from fobs.syslog_agg.monit import HttpConfig, ProcessConfig, TcpCheck
from fobs.syslog_agg.monit.render import summary, uptime
from tests.monit.conftest import child, svc
from tests.services import free_port


async def test_status_json_html_and_control(supervise):
    port = free_port()
    sup = await supervise(
        processes=(ProcessConfig(name="srv", command=child("tcp", port),
                                 tcp=(TcpCheck(port=port),)),),
        http=HttpConfig(address="127.0.0.1:0", user="admin", password="secret"))
    await sup.wait_for(lambda: svc(sup, "srv")["monitoring_status"] == "Monitored")
    auth = {"Authorization": basic_auth_header("admin", "secret")}
    url = sup.http_url
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/status") as r:
            assert r.status == 401
        async with http.get(f"{url}/status", headers=auth) as r:
            body = await r.json()
        srv = body["services"][0]
        assert srv["name"] == "srv" and srv["type"] == "Process" and srv["status"] == "OK"
        assert srv["monitoring_status"] == "Monitored" and srv["pid"] > 0
        assert {"uptime", "restarts", "cpu", "memory", "children", "checks"} <= set(srv)
        assert [c["kind"] for c in srv["checks"]] == ["alive", "tcp"]
        assert body["supervisor"]["cycle"] == 0.2

        async with http.get(f"{url}/", headers=auth) as r:
            page = await r.text()
        assert r.content_type == "text/html" and "srv" in page and "Process &#x27;srv&#x27;" in page

        async with http.post(f"{url}/service/srv/nope", headers=auth) as r:
            assert r.status == 400
        async with http.post(f"{url}/service/ghost/stop", headers=auth) as r:
            assert r.status == 404
        first = srv["pid"]
        async with http.post(f"{url}/service/srv/restart", headers=auth) as r:
            assert r.status == 202 and (await r.json())["action"] == "restart"
        await sup.wait_for(lambda: svc(sup, "srv")["pid"] not in (None, first)
                           and svc(sup, "srv")["status"] == "OK")
        async with http.post(f"{url}/service/srv/unmonitor", headers=auth) as r:
            assert r.status == 202
        assert svc(sup, "srv")["status"] == "Not monitored" and svc(sup, "srv")["pid"]


def test_uptime_and_summary_layout():
    assert [uptime(s) for s in (5, 3600 + 120, 2 * 86400 + 3 * 3600 + 4 * 60)] == \
        ["0m", "1h 2m", "2d 3h 4m"]
    status = {"supervisor": {"version": "fobs-monit 0.1", "uptime": 61.0},
              "services": [{"name": "a-very-long-service-name-that-goes-on-and-on",
                            "status": "Execution failed - restart pending", "type": "Process"}]}
    lines = summary(status).splitlines()
    assert lines[0] == "fobs-monit 0.1 uptime: 1m"
    assert lines[2] == " a-very-long-service-name-that... Execution failed - resta... Process"
