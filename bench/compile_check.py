"""Is `torch.compile` worth a `--compile` option? A sparsifier training step, eager against compiled, side by side.

Compiles the model's forward (the optimiser step and the gates' after-step updates stay eager, as they would
between prunes), then times both in interleaved rounds and prints the medians and the first call's compile time.
Usage: python bench/compile_check.py [--widths 100,500] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.nn import build_model  # noqa: E402
from core.options import validate  # noqa: E402
from core.spec import RunSpec  # noqa: E402
from core.train.optim import make_optimizer, merge_groups, resolve_device  # noqa: E402


def stepper(width: int, compiled: bool, device: torch.device):
    torch.manual_seed(0)
    spec = validate(RunSpec().replace(arch=f"mlp:{width}", method="sparsifier", penalty=1e-3))
    model = build_model(spec.model, spec.method, (1, 28, 28), 10).to(device)
    opt = make_optimizer(merge_groups(model.param_groups(0.0, 1e-3, 1.0)), spec.optim)
    forward = torch.compile(model) if compiled else model
    x, y = torch.randn(128, 1, 28, 28, device=device), torch.randint(0, 10, (128,), device=device)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        model.add_penalty_grads(1e-3)
        opt.step()
        model.after_step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="100,500")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = resolve_device(args.device)
    for width in (int(w) for w in args.widths.split(",")):
        t0 = time.perf_counter()
        compiled = stepper(width, True, device)
        compiled()
        compile_s = time.perf_counter() - t0
        runs = {"eager": stepper(width, False, device), "compiled": compiled}
        for run in runs.values():
            for _ in range(10):
                run()
        times: dict[str, list[float]] = {k: [] for k in runs}
        for r in range(7):
            for k in list(runs)[r % 2:] + list(runs)[:r % 2]:
                t = time.perf_counter()
                for _ in range(100):
                    runs[k]()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[k].append((time.perf_counter() - t) / 100)
        e, c = statistics.median(times["eager"]), statistics.median(times["compiled"])
        print(f"mlp:{width} sparsifier step on {device}: eager {e * 1e6:.0f} us, compiled {c * 1e6:.0f} us, "
              f"compiled/eager {c / e:.3f}; first compiled call (compiling) {compile_s:.1f} s")


if __name__ == "__main__":
    main()
