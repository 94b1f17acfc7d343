"""Tasks across two replicas (`python -m app`, production, Entra stand-in tokens) sharing one Redis behind real nginx:
a task created on one replica is polled, answered and cancelled through the other (directly, and through nginx), the
per-caller cap counts tasks on every replica, and a task whose replica is killed reads as `failed` once its lease
runs out, never `working` forever.

Each request is pinned: `TaskCluster.direct` sends it to one replica's own port (with the public Host nginx would
forward), and `routed_to` finds a token of the same caller that nginx's hash sends to the replica wanted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.support.entra import EntraStandIn
from tests.support.nginx import require_nginx
from tests.support.task_replicas import LOST, TaskCluster, accept, routed_to, task_cluster, task_replica

require_nginx()

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

LEASE = 3  # TASKS__LEASE_SECONDS on every replica: a killed replica's task fails within seconds
ENV = {"TASKS__LEASE_SECONDS": str(LEASE), "TASKS__MAX_PER_PRINCIPAL": "2", "TASKS__POLL_INTERVAL_MS": "200"}


@pytest.fixture(scope="module")
def cluster(entra: EntraStandIn) -> Iterator[TaskCluster]:
    with task_cluster(entra, **ENV) as started:
        yield started


def _caller(token: Callable[..., str], n: int) -> Callable[..., str]:
    """The `n`th caller's tokens: the same principal and client app, a different token for each `k`."""

    def mint(k: int = 0) -> str:
        return token("notes.read", oid=f"dddddddd-0000-4000-8000-{n:012d}", lifetime=600 + k)

    return mint


def _eventually(check: Callable[[], bool], within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_task_made_on_one_replica_is_polled_and_answered_on_the_other(
    cluster: TaskCluster, token: Callable[..., str]
) -> None:
    mint = _caller(token, 1)
    a, b = cluster.replicas
    on_a, on_b = cluster.direct(a, mint()), cluster.direct(b, mint())
    via_nginx = routed_to(cluster, b, mint)  # nginx sends this caller's requests to B

    task_id = on_a.start("asking_report", {"topic": "budget", "seconds": 0.1})
    asked = on_b.wait_for(task_id, "input_required")
    assert list(asked["inputRequests"]) == ["input-0"]
    assert "budget" in str(asked["inputRequests"]["input-0"])
    assert asked["statusMessage"] == "asking"
    assert via_nginx.get(task_id).result["status"] == "input_required"

    assert on_b.update(task_id, {"input-0": accept(archived=True)}).ack == {}
    done = via_nginx.wait_for(task_id, "completed")
    assert done["result"]["content"][0]["text"] == "report on budget: archived=True"
    assert done["result"].get("isError") is not True
    assert "inputRequests" not in done
    assert on_a.get(task_id).result == on_b.get(task_id).result  # one record, whichever replica reads it


def test_a_cancel_sent_to_the_other_replica_stops_the_run(cluster: TaskCluster, token: Callable[..., str]) -> None:
    mint = _caller(token, 2)
    a, b = cluster.replicas
    on_a, on_b = cluster.direct(a, mint()), cluster.direct(b, mint())
    run = "cancel-across"
    task_id = on_a.start("long_job", {"seconds": 60, "run": run})
    assert _eventually(lambda: a.mark(run, "started")), "replica A never started the tool"
    assert on_b.get(task_id).result["status"] == "working"

    assert on_b.cancel(task_id).ack == {}
    cancelled = on_b.wait_for(task_id, "cancelled")
    assert "result" not in cancelled and "error" not in cancelled
    assert _eventually(lambda: a.mark(run, "cancelled")), "the tool on replica A did not see the cancellation"
    assert not a.mark(run, "finished")
    assert not b.mark(run, "started")  # B only relayed the cancel: it never ran the tool
    assert on_a.cancel(task_id).ack == {}  # a cancel of a finished task is acknowledged and changes nothing
    assert on_a.get(task_id).result["status"] == "cancelled"


def test_the_per_caller_cap_counts_tasks_on_every_replica(cluster: TaskCluster, token: Callable[..., str]) -> None:
    mint = _caller(token, 3)
    a, b = cluster.replicas
    on_a, on_b = cluster.direct(a, mint()), cluster.direct(b, mint())
    first = on_a.start("long_job", {"seconds": 60})
    second = on_a.start("long_job", {"seconds": 60})

    refused = on_b.call("long_job", {"seconds": 60})
    assert refused.status == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "TASKS__MAX_PER_PRINCIPAL" in refused.error["message"]
    other = cluster.direct(b, _caller(token, 4)())  # another caller is not held back by this one's tasks
    other_task = other.start("long_job", {"seconds": 0.1})
    assert other.wait_for(other_task, "completed")["status"] == "completed"
    assert on_b.call("plain_tool", {"n": 1}).status == 200  # nor is a synchronous call

    for task_id in (first, second):
        assert on_b.cancel(task_id).ack == {}
        on_b.wait_for(task_id, "cancelled")
    accepted: list[int] = []  # the slots are handed back by A's runs as they end: retry for a moment

    def admitted() -> bool:
        answer = on_b.call("long_job", {"seconds": 0.1})
        accepted.append(answer.status)
        return answer.status == 200

    assert _eventually(admitted), accepted


def test_a_task_whose_replica_is_killed_fails_within_its_lease(
    cluster: TaskCluster, entra: EntraStandIn, token: Callable[..., str]
) -> None:
    """A third replica (same Redis, same settings) runs the task and is killed: the two behind nginx report it."""
    mint = _caller(token, 5)
    doomed = task_replica(entra, cluster.workdir, cluster.public, cluster.redis, **cluster.env)
    try:
        doomed.app.wait_healthy()
        on_doomed, on_b = cluster.direct(doomed, mint()), cluster.direct(cluster.replicas[1], mint())
        runs = ["killed-1", "killed-2"]
        task_ids = [on_doomed.start("long_job", {"seconds": 60, "run": run}) for run in runs]
        assert _eventually(lambda: all(doomed.mark(run, "started") for run in runs))
        time.sleep(LEASE)  # past the first lease: the run has renewed it at least once
        assert [on_b.get(t).result["status"] for t in task_ids] == ["working", "working"]

        doomed.app.proc.kill()  # SIGKILL: no shutdown, nobody marks the tasks
        doomed.app.proc.wait(timeout=10)
        for task_id in task_ids:
            failed = on_b.wait_for(task_id, "failed", within=LEASE + 10)
            assert failed["statusMessage"] == LOST
            assert failed["error"] == {"code": -32603, "message": LOST}
        assert cluster.through_nginx(mint()).get(task_ids[0]).result["status"] == "failed"
        assert not any(doomed.mark(run, "finished") for run in runs)

        # The dead replica's slots dropped out with its lease: the caller (cap 2) may start tasks again.
        again = on_b.start("long_job", {"seconds": 0.1})
        assert on_b.wait_for(again, "completed")["status"] == "completed"
    finally:
        doomed.app.stop()
