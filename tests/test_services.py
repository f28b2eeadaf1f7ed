"""The real-service fixtures themselves: they start, answer, and survive kill/restart."""

from tests.services import Influxd, NatsCluster, NatsServer, VictoriaMetrics, tcp_open


def test_nats_kill_and_restart_on_same_port(nats_server: NatsServer) -> None:
    port = nats_server.port
    assert tcp_open(port)
    nats_server.kill()
    assert not tcp_open(port)
    nats_server.start()
    assert nats_server.port == port and tcp_open(port)


def test_nats_cluster_routes(nats_cluster: NatsCluster) -> None:
    assert len(set(nats_cluster.urls)) == 3


def test_influxd_write_and_query(influxd_shared: Influxd) -> None:
    import urllib.request
    influxd_shared.create_database("fixture")
    req = urllib.request.Request(f"{influxd_shared.url}/write?db=fixture",
                                 data=b"m,t=a v=1i\nm,t=b v=2i\n", method="POST")
    with urllib.request.urlopen(req) as r:
        assert r.status == 204
    assert influxd_shared.count("fixture", "m", "v") == 2


def test_victoria_metrics_v2_write(victoria_metrics: VictoriaMetrics) -> None:
    import urllib.request
    req = urllib.request.Request(f"{victoria_metrics.url}/api/v2/write?bucket=b",
                                 data=b"m,t=a v=1 1700000000000000000\n", method="POST")
    with urllib.request.urlopen(req) as r:
        assert r.status == 204
    series = victoria_metrics.export('{__name__="m_v"}')
    assert series and series[0]["values"] == [1]
