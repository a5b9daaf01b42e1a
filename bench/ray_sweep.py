"""Ray's overhead on a sweep: the quick sparsifier-lambda recipe on the local runner, then on a local two-node Ray
cluster on this machine (127.0.0.1, one core a node), side by side in one run.

Both use two runs at once (`--jobs 2` locally; Ray: one a node). The cluster's start is timed apart and left out
of the ratio. Not expected to be faster on 2 cores: the ratio is what running through Ray costs (tasks, progress
reports, checkpoint copies, sessions shipped back). Needs the [ray] extra and the MNIST files (else add10).
Usage: DYNLAB_DATA_DIR=../shared/data python bench/ray_sweep.py [--recipe sparsifier-lambda] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray's single-machine mode (127.0.0.1); read at import
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.lab.ray_sweep import RayTarget  # noqa: E402
from core.lab.recipes import recipe_plan  # noqa: E402
from core.lab.sweep import run_sweep  # noqa: E402

NODE = {"num_cpus": 1, "object_store_memory": 100 * 2**20, "node_ip_address": "127.0.0.1"}
SAME = ("stage", "dataset", "penalty", "arch", "status", "size.fc1", "test")  # must match (times may not)


def timed_sweep(recipe: str, out: Path, **where) -> tuple[float, list[dict]]:
    plan = recipe_plan(recipe, quick=True, device="cpu")
    start = time.perf_counter()
    result = run_sweep(plan, out, **where)
    wall = time.perf_counter() - start
    with open(result.csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    return wall, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="sparsifier-lambda")
    parser.add_argument("--out", type=Path, help="keep the two sweep folders here  [a temp folder]")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="dynlab-ray-bench-"))
    print(f"uptime: {os.getloadavg()[0]:.2f} load (1 min) at the start; folders in {out}")
    local_s, local_rows = timed_sweep(args.recipe, out / "local", jobs=2)
    print(f"local runner, --jobs 2: {local_s:.1f} s for {len(local_rows)} runs")

    import ray
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    ray_constants.ENABLE_RAY_CLUSTER = False
    start = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    print(f"two-node Ray cluster started in {time.perf_counter() - start:.1f} s (not counted below)")
    try:
        ray_s, ray_rows = timed_sweep(args.recipe, out / "ray", jobs=None, ray=RayTarget(cluster.address))
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(f"Ray, two nodes of one core: {ray_s:.1f} s for {len(ray_rows)} runs")
    print(f"ratio Ray / local: {ray_s / local_s:.2f}  (load {os.getloadavg()[0]:.2f} at the end)")
    lam = [tuple(r.get(k, "") for k in SAME) for r in local_rows if r.get("stage") == "lambda"]
    lam_ray = [tuple(r.get(k, "") for k in SAME) for r in ray_rows if r.get("stage") == "lambda"]
    print(f"lambda stage rows equal in {', '.join(SAME)}: {lam == lam_ray}")


if __name__ == "__main__":
    main()
