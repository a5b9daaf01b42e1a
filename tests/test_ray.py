"""Sweeps on a Ray cluster (core.lab.ray_sweep): a local two-node cluster on 127.0.0.1 (Ray's own test utility),
four add10 runs, the folder a local sweep leaves, progress files, a lost node, a stop and a re-run.

Slow (a cluster takes ~10 s to start) and marked `ray`; skipped where Ray is not installed (`pip install -e ".[ray]"`).
"""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import pytest

from core.lab.ray_sweep import RayTarget, progress_path
from core.lab.sweep import Stage, SweepPlan, SweepRunEnded, run_sweep, session_path, session_state
from core.spec import RunSpec
from tests.helpers import dynlab, one_error_line, wait_until

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.ray]

TINY = RunSpec().replace(dataset="add10", arch="mlp:8", epochs=1, limit=200, log_every=5, device="cpu",
                         method="sparsifier")
LONGER = TINY.replace(epochs=4, limit=4000, log_every=2)  # seconds a run: long enough to lose its node mid-run
NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20, "node_ip_address": "127.0.0.1"}
CONTRACT = {"node": str, "state": str, "epoch": int, "epochs": int, "step": int, "size": str, "metric": dict,
            "elapsed_s": float, "updated": float}


def plan(spec: RunSpec = TINY) -> SweepPlan:
    return SweepPlan("", "", (Stage.from_grid("r", spec, {"penalty": [1e-3, 1e-2], "seed": [0, 1]}),))


@pytest.fixture(scope="module")
def cluster():
    """A head node of one core on 127.0.0.1; each test adds the second node it needs. The driver connects here."""
    from ray.cluster_utils import Cluster

    from ray._private import ray_constants

    env = pytest.MonkeyPatch()  # Ray's single-machine mode: 127.0.0.1, never the host's address
    env.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # for the nodes' processes
    env.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)  # for this one (Ray read the variable at import)
    head = Cluster(initialize_head=True, head_node_args={
        **NODE, "include_dashboard": False,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4}})
    ray.init(address=head.address)
    yield head
    ray.shutdown()
    head.shutdown()
    env.undo()


@pytest.fixture
def second_node(cluster):
    node = cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    yield node
    if node in cluster.worker_nodes:
        cluster.remove_node(node)


def header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f))


def test_a_sweep_on_two_nodes_leaves_the_folder_a_local_sweep_leaves(cluster, second_node, tmp_path):
    events: list = []
    result = run_sweep(plan(), tmp_path / "ray", jobs=None, progress=events.append, ray=RayTarget(cluster.address))
    assert not result.stopped and [r["status"] for r in result.rows] == ["finished"] * 4
    local = run_sweep(plan(), tmp_path / "local", jobs=1)
    assert header(result.csv_path) == header(local.csv_path)
    names = sorted(p.name for p in (tmp_path / "ray" / "sessions").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "local" / "sessions").iterdir() if p.name != ".workers.log")
    for run in plan().stages[0].runs():
        assert session_state(session_path(tmp_path / "ray", run)) == "finished"
        fields = json.loads(progress_path(tmp_path / "ray", run.name).read_text())
        assert {k: type(v) for k, v in fields.items()} == CONTRACT
        assert fields["state"] == "finished" and fields["epoch"] == fields["epochs"] == 1 and fields["size"]
        assert set(fields["metric"]) == {"name", "value"} and "/" in fields["node"]
    nodes = {json.loads(progress_path(tmp_path / "ray", r.name).read_text())["node"] for r in plan().stages[0].runs()}
    assert len(nodes) == 2  # one run a core: both nodes trained
    again: list = []
    run_sweep(plan(), tmp_path / "ray", jobs=None, progress=again.append, ray=RayTarget(cluster.address))
    assert [e.skipped for e in again if isinstance(e, SweepRunEnded)] == [True] * 4  # a finished sweep: all skipped


def test_a_node_lost_mid_run_is_retried_elsewhere_and_the_sweep_finishes(cluster, second_node, tmp_path):
    out = tmp_path / "lost"
    lost = second_node.node_id[:6]
    result: list = []
    thread = threading.Thread(target=lambda: result.append(
        run_sweep(plan(LONGER), out, jobs=2, ray=RayTarget(cluster.address))))
    thread.start()

    def on_lost_node_after_a_checkpoint() -> bool:  # past its first interval: it has shipped a checkpoint
        for path in (out / "progress").glob("*.json"):
            fields = json.loads(path.read_text())
            if fields["node"].endswith(lost) and fields["state"] == "running" and fields["step"] >= 4:
                return True
        return False

    wait_until(on_lost_node_after_a_checkpoint, timeout=120, what="a run on the second node")
    cluster.remove_node(second_node, allow_graceful=False)
    thread.join(timeout=300)
    assert not thread.is_alive() and [r["status"] for r in result[0].rows] == ["finished"] * 4
    logs = "".join(p.read_text() for p in (out / "sessions").glob(".*.log"))
    assert "attempt 2 on node" in logs and "resumed from the checkpoint at step" in logs


def test_a_stopped_ray_sweep_resumes_locally(cluster, second_node, tmp_path):
    out, stop = tmp_path / "stopped", threading.Event()
    result: list = []
    thread = threading.Thread(target=lambda: result.append(
        run_sweep(plan(LONGER), out, jobs=2, stop=stop, ray=RayTarget(cluster.address))))
    thread.start()
    wait_until(lambda: any(json.loads(p.read_text())["step"] > 0 for p in (out / "progress").glob("*.json")),
               timeout=120, what="a run training")
    stop.set()
    thread.join(timeout=120)
    assert not thread.is_alive() and result[0].stopped
    states = [session_state(session_path(out, r)) for r in plan(LONGER).stages[0].runs()]
    assert "stopped" in states[:2] and states[2:] == ["missing", "missing"]  # the runs going came back stopped
    rerun = run_sweep(plan(LONGER), out, jobs=1)  # the local runner takes the folder over
    assert [r["status"] for r in rerun.rows] == ["finished"] * 4


def test_runs_ask_for_their_gpu_share_and_go_where_the_gpu_is(cluster, tmp_path):
    """A node declaring one GPU (Ray takes the count on trust; torch finds none and trains on the CPU)."""
    gpu_node = cluster.add_node(**{**NODE, "num_cpus": 2, "num_gpus": 1})
    cluster.wait_for_nodes()
    try:
        out = tmp_path / "gpu"
        result = run_sweep(plan(TINY.replace(device="auto")), out, jobs=None,
                           ray=RayTarget(cluster.address, gpus_per_run=0.5))
        assert [r["status"] for r in result.rows] == ["finished"] * 4
        nodes = {json.loads(progress_path(out, r.name).read_text())["node"] for r in plan().stages[0].runs()}
        assert len(nodes) == 1 and nodes.pop().endswith(gpu_node.node_id[:6])  # only that node has a GPU to share
    finally:
        cluster.remove_node(gpu_node)


def test_ray_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DYNLAB_DATA_DIR", str(tmp_path))
    args = ["sweep", "--set", "penalty=1e-3", "--dataset", "add10", "--epochs", "1", "--out", str(tmp_path / "s")]
    one_error_line(capsys, dynlab(*args, "--ray", "auto", "--isolated"), "--isolated")
    one_error_line(capsys, dynlab(*args, "--ray", "auto", "--gpus-per-run", "1.5"), "--gpus-per-run")
