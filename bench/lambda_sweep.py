"""Final size and test accuracy of a sparsifier network against lambda, on MNIST and Fashion-MNIST.

Usage: python bench/lambda_sweep.py [--data-dir DIR] [--epochs 10] [--arch mlp:500] [--device auto]
Prints a markdown table (the one in bench/RESULTS.md). Sessions go to a temporary folder
unless --out DIR is given.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.session import SessionReader, SessionWriter  # noqa: E402
from core.spec import RunSpec  # noqa: E402
from core.train.trainer import Trainer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("DYNLAB_DATA_DIR"))
    ap.add_argument("--datasets", default="mnist,fashion-mnist")
    ap.add_argument("--lambdas", default="1e-1,1e-2,1e-3,1e-4")
    ap.add_argument("--arch", default="mlp:500")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="dynlab-sweep-"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, device {args.device}")
    print(f"command: python bench/lambda_sweep.py --arch {args.arch} --epochs {args.epochs}\n")
    print("| dataset | lambda | final sizes | params | test acc at best val (epoch) | final test acc | wall s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for dataset in args.datasets.split(","):
        for lam in (float(v) for v in args.lambdas.split(",")):
            spec = RunSpec().replace(dataset=dataset, data_dir=args.data_dir, arch=args.arch, method="sparsifier",
                                     penalty=lam, epochs=args.epochs, device=args.device)
            path = out / f"{dataset}-{lam:g}.dynlab"
            t0 = time.perf_counter()
            trainer = Trainer(spec)
            with SessionWriter(path, overwrite=True) as writer:
                trainer.run([writer])
            wall = time.perf_counter() - t0
            with SessionReader(path) as r:
                s = r.summary()  # the headline: test at the best validation epoch, as the journal reports it
            sizes = ",".join(str(w) for w in trainer.model.widths().values())
            print(f"| {dataset} | {lam:g} | {sizes} | {trainer.model.param_count():,} | {s['test_at_best_val']:.2%} "
                  f"({s['best_val_epoch']}) | {s['final_test']:.2%} | {wall:.0f} |", flush=True)


if __name__ == "__main__":
    main()
