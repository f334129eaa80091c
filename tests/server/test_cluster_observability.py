"""Issue 13, "Observability", with several processes: ``/readyz`` checks Redis too, and the
metrics tell the fan-out's and the tunnels' state (``tandem_fanout_shared``,
``tandem_fanout_connected``, ``tandem_tunnelled_sockets``), while Redis (the test's own,
tests/private_redis.py) is stopped and started again. Real servers, PostgreSQL and Redis."""

from __future__ import annotations

import httpx

from tests.conftest import RunningServer
from tests.private_redis import PrivateRedis
from tests.server import test_cluster_faults as faults
from tests.server.helpers import recv_json, send, start_session
from tests.server.test_cluster_faults import FAST, Cluster, wait_until
from tests.server.test_observability import TOKEN, sample, scrape
from tests.server.test_scale_out import join_on

# The cluster's fixtures, shared with tests/server/test_cluster_faults.py.
private_redis = faults.private_redis
cluster = faults.cluster


def ready(server: RunningServer) -> httpx.Response:
    return httpx.get(f"{server.base}/readyz")


def metric(server: RunningServer, name: str) -> float:
    return sample(scrape(server).text, name)


async def test_readiness_and_metrics_follow_redis_and_the_tunnels(
    cluster: Cluster, private_redis: PrivateRedis
) -> None:
    a, b = cluster.start(**FAST, metrics_token=TOKEN), cluster.start(**FAST, metrics_token=TOKEN)
    customer, created = await start_session(a)
    agent = await join_on(b, created["code"])  # B carries the agent's socket to A
    assert (await recv_json(agent))["type"] == "joined"
    assert (await recv_json(customer))["type"] == "agent_joined"
    for server in (a, b):
        assert ready(server).json() == {"status": "ready"}
        assert metric(server, "tandem_fanout_shared") == 1
        assert metric(server, "tandem_fanout_connected") == 1
    assert metric(a, "tandem_tunnelled_sockets") == 1  # the owner serves B's socket
    assert metric(b, "tandem_tunnelled_sockets") == 0

    private_redis.stop()
    await wait_until(lambda: ready(a).status_code == 503 and ready(b).status_code == 503)
    assert ready(a).json() == {"status": "unavailable", "failing": ["redis"]}
    assert metric(a, "tandem_fanout_connected") == 0
    assert metric(b, "tandem_fanout_connected") == 0
    # Nothing about sessions, to anyone: readiness names the failing part only.
    assert created["session_id"] not in ready(a).text

    private_redis.start()
    await wait_until(lambda: ready(a).status_code == 200 and ready(b).status_code == 200)
    assert metric(a, "tandem_fanout_connected") == 1
    assert metric(a, "tandem_tunnelled_sockets") == 1  # the session went on through the outage
    await send(agent, type="leave")
    while (message := await recv_json(customer, timeout=15))["type"] == "link":
        pass  # told the link was down, then back
    assert message == {"v": 1, "type": "ended", "reason": "agent_left"}
    await wait_until(lambda: metric(a, "tandem_tunnelled_sockets") == 0)
