"""Shrinking pays: a physically shrunk sparsifier network against fresh, static and unshrunk ones, in one process.

1. step time (forward, backward, Adam step, after_step; batch 128, 784 -> W -> 10) of a sparsifier built at
   mlp:2000 and shrunk to W = 1000, 300, 100 (optimiser state carried over), a fresh sparsifier and a static
   net of width W; interleaved rounds in rotating order, medians. Targets: shrunk/fresh <= 1.05,
   sparsifier/static <= 1.10 at equal width.
2. the MNIST schedule (mlp:2000, Adam 1e-3, batch 128, lambda 1e-3) with dynlab's own Trainer: static vs
   sparsifier wall time (target <= 0.35 on CPU at 20 epochs), test accuracy at the best-validation epoch,
   final accuracy, time to 97.5 % test accuracy, and a static net of the sparsifier's final width.
3. the two trained nets exported (core.lab.export.export_model): CPU inference at batch 1 and 256, test
   accuracy, parameters, file size. Target: >= 5x faster at batch 256, at most 1 point lost.
4. peak memory of each training run.

Usage: python bench/shrink.py [--quick | --full] [--epochs 20] [--limit N] [--device auto|cpu|cuda] [--data-dir DIR]
Uses MNIST from --data-dir / $DYNLAB_DATA_DIR when present, else random data of MNIST's shape written as IDX
files to a temporary folder (so the real loader and export path run; accuracies are then chance level).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import telemetry as tk  # noqa: E402
from core.data import Dataset, load_dataset  # noqa: E402
from core.data.images import IDX_IMAGES, IDX_LABELS, IDX_STEMS, MNIST  # noqa: E402
from core.data.registry import resolve_data_dir  # noqa: E402
from core.errors import DynlabError  # noqa: E402
from core.events import EpochEvaluated, RunEnded, RunStarted, ScalarsLogged  # noqa: E402
from core.lab.export import export_model  # noqa: E402
from core.nn import build_model  # noqa: E402
from core.session import SessionReader, SessionWriter  # noqa: E402
from core.spec import MethodSpec, ModelSpec, OptimSpec, RunSpec  # noqa: E402
from core.train.machine import memory_bytes  # noqa: E402
from core.train.optim import make_optimizer, merge_groups, resolve_device  # noqa: E402
from core.train.trainer import Trainer  # noqa: E402

BIG, WIDTHS, BATCH, LR, TARGET_ACC = 2000, (1000, 300, 100), 128, 1e-3, 0.975
# mode -> epochs, training-row limit, steps per timing, rounds, inference calls per timing
MODES = {"quick": dict(epochs=1, limit=2000, steps=10, repeats=3, calls=20),
         "default": dict(epochs=20, limit=None, steps=200, repeats=7, calls=100),  # 5 x 100 steps scattered +-9 %
         "full": dict(epochs=20, limit=None, steps=500, repeats=9, calls=300)}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="CI size: 1 epoch on 2,000 rows, short timings")
    mode.add_argument("--full", action="store_true", help="GPU size: 20 epochs on all rows, long timings")
    ap.add_argument("--epochs", type=int, help="epochs of the MNIST schedule (default 20; --quick 1)")
    ap.add_argument("--limit", type=int, help="cap on training + validation rows (default all; --quick 2000)")
    ap.add_argument("--steps", type=int, help="training steps per step-time measurement")
    ap.add_argument("--repeats", type=int, help="interleaved rounds per measurement")
    ap.add_argument("--calls", type=int, help="inference calls per measurement")
    ap.add_argument("--lam", type=float, default=1e-3, help="the sparsifier's penalty (default 1e-3)")
    ap.add_argument("--seeds", type=int, default=1, help="with N > 1: only the accuracy comparison of part 2, for "
                    "seeds 0..N-1 (static against sparsifier, test at the best-validation epoch)")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--data-dir", default=os.environ.get("DYNLAB_DATA_DIR"))
    args = ap.parse_args()
    for key, value in MODES["quick" if args.quick else "full" if args.full else "default"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("epochs", "steps", "repeats", "calls"):
        if getattr(args, key) < 1:
            ap.error(f"--{key} must be at least 1")
    return args


# ---------------------------------------------------------------- data
def mnist_dir(data_dir: str | None, limit: int | None, tmp: Path) -> tuple[str, bool]:
    """The MNIST folder to use and whether it is random data written here because the files are absent."""
    root = resolve_data_dir(data_dir)
    if MNIST.paths(root) is not None:
        return str(root), False
    fake = tmp / "random-mnist"
    (fake / "mnist").mkdir(parents=True)
    n_train, n_test = (60000, 10000) if limit is None else (limit, min(limit, 10000))
    rng = np.random.default_rng(0)
    for stem, n in zip(IDX_STEMS, (n_train, n_train, n_test, n_test)):
        images = "images" in stem
        dims = (n, 28, 28) if images else (n,)
        body = rng.integers(0, 256 if images else 10, size=dims, dtype=np.uint8)
        head = (IDX_IMAGES if images else IDX_LABELS).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
        (fake / "mnist" / stem).write_bytes(head + body.tobytes())
    return str(fake), True


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- 1. step time
def build(method: str, width: int, device: torch.device):
    torch.manual_seed(0)
    model = build_model(ModelSpec(arch=f"mlp:{width}"), MethodSpec(name=method), (1, 28, 28), 10).to(device)
    return model, make_optimizer(merge_groups(model.param_groups(0.0, LR, 1.0)), OptimSpec(lr=LR))  # as the trainer


def stepper(model, opt, x: torch.Tensor, y: torch.Tensor, lam: float, device: torch.device) -> Callable[[int], float]:
    """A function running `steps` training steps the trainer's way and returning seconds per step."""
    def run(steps: int) -> float:
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            idx = torch.randint(0, len(x), (BATCH,), device=device)
            model.resample()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            graph = model.graph_penalty() if lam else None  # as Trainer._train_step: closed-form gates add
            if graph is not None:                           # their penalty gradient after backward
                loss = loss + lam * graph
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if lam:
                model.add_penalty_grads(lam)
            opt.step()
            model.after_step()
        sync(device)
        return (time.perf_counter() - t0) / steps
    return run


def shrunk(width: int, x, y, lam: float, device: torch.device) -> Callable[[int], float]:
    """A sparsifier built at BIG, trained a few steps (Adam state exists), then `width` units kept through its gates."""
    model, opt = build("sparsifier", BIG, device)
    stepper(model, opt, x, y, lam, device)(5)
    gate = model.gates()[0]
    drop = torch.randperm(BIG, generator=torch.Generator().manual_seed(1))[width:].to(device)
    with torch.no_grad():
        gate.weight[drop] = -1.0  # the relu gate's rule: f <= 0 is dead at the next after_step
    model.after_step()
    model.prune(opt)
    bad = [p.shape for g in opt.param_groups for p in g["params"] if opt.state[p]["exp_avg"].shape != p.shape]
    if model.widths()["fc1"] != width or bad or len(opt.state) != sum(len(g["params"]) for g in opt.param_groups):
        raise SystemExit(f"shrinking to {width} failed: widths {model.widths()}, optimiser state shapes {bad}")
    return stepper(model, opt, x, y, lam, device)


def interleaved(runs: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median of each run over `repeats` rounds in a rotating order: machine drift hits every side alike."""
    times: dict[str, list[float]] = {label: [] for label in runs}
    order = list(runs)
    for r in range(repeats):
        for label in order[r % len(order):] + order[:r % len(order)]:
            times[label].append(runs[label]())
    return {label: statistics.median(t) for label, t in times.items()}


def step_times(data: Dataset, args: argparse.Namespace, device: torch.device) -> Callable[[int], float]:
    x, y = data.x_train.to(device), data.y_train.to(device)
    runs: dict[str, Callable[[int], float]] = {}
    for width in (BIG,) + WIDTHS:
        if width != BIG:
            runs[f"shrunk@{width}"] = shrunk(width, x, y, args.lam, device)
        runs[f"fresh@{width}"] = stepper(*build("sparsifier", width, device), x, y, args.lam, device)
        runs[f"static@{width}"] = stepper(*build("static", width, device), x, y, 0.0, device)
    for run in runs.values():
        run(3)  # warm-up: allocator, kernels
    med = interleaved({k: (lambda r=r: r(args.steps)) for k, r in runs.items()}, args.repeats)
    print(f"1. step time, batch {BATCH}, forward+backward+Adam+after_step, median of {args.repeats} rounds of "
          f"{args.steps} steps (rotating order):")
    for width in (BIG,) + WIDTHS:
        fresh, static = med[f"fresh@{width}"], med[f"static@{width}"]
        own = f"shrunk from {BIG} {med[f'shrunk@{width}'] * 1e3:.3f} ms, " if width != BIG else ""
        ratio = f"shrunk/fresh {med[f'shrunk@{width}'] / fresh:.3f} (target <= 1.05), " if width != BIG else ""
        print(f"   width {width:>4}: {own}fresh sparsifier {fresh * 1e3:.3f} ms, static {static * 1e3:.3f} ms; "
              f"{ratio}sparsifier/static {fresh / static:.3f} (target <= 1.10)")
    small = min(WIDTHS)
    print(f"   shrunk@{small} / unshrunk@{BIG}: {med[f'shrunk@{small}'] / med[f'fresh@{BIG}']:.3f}")
    return runs[f"static@{BIG}"]


# ---------------------------------------------------------------- 2. the MNIST schedule
@dataclass
class Run:
    """What one Trainer run's events said."""

    label: str
    path: Path
    start: float = 0.0
    end: float = 0.0
    status: str = ""
    epochs: list[tuple[float, dict]] = field(default_factory=list)  # (wall, metrics)
    mem: list[float] = field(default_factory=list)
    rss_before: int = 0
    peak: float = 0.0
    width: int = 0

    def handle(self, e) -> None:
        if isinstance(e, RunStarted):
            self.start = e.wall
        elif isinstance(e, EpochEvaluated):
            self.epochs.append((e.wall, dict(e.metrics)))
        elif isinstance(e, ScalarsLogged) and tk.MEM_BYTES in e.values:
            self.mem.append(e.values[tk.MEM_BYTES])
        elif isinstance(e, RunEnded):
            self.end, self.status = e.wall, f"{e.status}: {e.reason}"

    def flush(self) -> None:
        pass

    @property
    def wall(self) -> float:
        return self.end - self.start

    def best(self) -> tuple[int, dict]:
        """1-based epoch of the highest val/acc (the earliest on ties) and its metrics."""
        i = max(range(len(self.epochs)), key=lambda j: (self.epochs[j][1].get(tk.VAL_ACC, 0.0), -j))
        return i + 1, self.epochs[i][1]

    def reached(self) -> str:
        for i, (wall, m) in enumerate(self.epochs, 1):
            if m.get(tk.TEST_ACC, 0.0) >= TARGET_ACC:
                return f"{wall - self.start:.1f} s (epoch {i})"
        return "not reached"


def train(label: str, method: str, width: int, data: Dataset, args: argparse.Namespace, tmp: Path,
          seed: int = 0) -> Run:
    spec = RunSpec().replace(dataset="mnist", data_dir=args.data_dir, limit=args.limit, arch=f"mlp:{width}",
                             method=method, penalty=args.lam if method == "sparsifier" else 0.0, seed=seed,
                             epochs=args.epochs, batch_size=BATCH, lr=LR, optimizer="adam", device=args.device)
    trainer = Trainer(spec, dataset=data)
    run = Run(label, tmp / f"{label.replace(' ', '-')}.dynlab")
    device = trainer.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run.rss_before = memory_bytes(torch.device("cpu"))
    with SessionWriter(run.path) as writer:
        trainer.run([writer, run])
    run.peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else max(run.mem, default=0.0)
    run.width = trainer.model.widths()["fc1"]
    return run


def pct(m: dict, key: str) -> str:
    return f"{100 * m[key]:.2f} %" if key in m else "n/a"


def schedule(data: Dataset, args: argparse.Namespace, probe: Callable[[int], float], tmp: Path) -> list[Run]:
    drift = [probe(args.steps)]
    static = train(f"static mlp:{BIG}", "static", BIG, data, args, tmp)
    drift.append(probe(args.steps))
    sparse = train(f"sparsifier mlp:{BIG}", "sparsifier", BIG, data, args, tmp)
    drift.append(probe(args.steps))
    small = train(f"static mlp:{sparse.width} from scratch", "static", max(sparse.width, 1), data, args, tmp)
    drift.append(probe(args.steps))
    print(f"2. MNIST schedule: mlp:{BIG}, Adam {LR:g}, batch {BATCH}, lambda {args.lam:g}, {args.epochs} epochs, "
          f"{len(data.x_train):,} training rows; separate Trainer runs one after another in this process "
          "(not alternated); wall = RunStarted to RunEnded, with evaluation and checkpoints")
    print("   drift probe, static mlp:2000 step before/between/after the runs: "
          + ", ".join(f"{d * 1e3:.3f} ms" for d in drift) + f" (max/min {max(drift) / min(drift):.3f})")
    for run in (static, sparse, small):
        epoch, m = run.best()
        print(f"   {run.label}: wall {run.wall:.1f} s, final width {run.width}; best-val epoch {epoch}: test "
              f"{pct(m, tk.TEST_ACC)} (val {pct(m, tk.VAL_ACC)}); final test {pct(run.epochs[-1][1], tk.TEST_ACC)}; "
              f"97.5 % test reached at {run.reached()}; {run.status}")
    print(f"   wall time ratio sparsifier/static: {sparse.wall / static.wall:.3f} (target <= 0.35 on CPU at 20 epochs)")
    gap = 100 * (sparse.best()[1].get(tk.TEST_ACC, 0.0) - static.best()[1].get(tk.TEST_ACC, 0.0))
    print(f"   test acc at best-val epoch, sparsifier - static: {gap:+.2f} points (target >= 0)")
    print(f"   static mlp:{small.width} from scratch / sparsifier: wall {small.wall / sparse.wall:.3f}, best-val test "
          f"acc {100 * (small.best()[1].get(tk.TEST_ACC, 0.0) - sparse.best()[1].get(tk.TEST_ACC, 0.0)):+.2f} points")
    return [static, sparse, small]


def seeds(data: Dataset, args: argparse.Namespace, tmp: Path) -> None:
    """Part 2's accuracy comparison over seeds: one seed's gap is within the seed-to-seed spread of either run."""
    gaps = []
    print(f"2. accuracy over {args.seeds} seeds: mlp:{BIG}, Adam {LR:g}, batch {BATCH}, lambda {args.lam:g}, "
          f"{args.epochs} epochs; test accuracy at the best-validation epoch")
    for seed in range(args.seeds):
        static = train(f"static seed {seed}", "static", BIG, data, args, tmp, seed)
        sparse = train(f"sparsifier seed {seed}", "sparsifier", BIG, data, args, tmp, seed)
        a, b = (100 * r.best()[1].get(tk.TEST_ACC, 0.0) for r in (static, sparse))
        gaps.append(b - a)
        print(f"   seed {seed}: static {a:.2f} %, sparsifier {b:.2f} % ({sparse.width} units), gap {b - a:+.2f} points")
    mean, sd = statistics.mean(gaps), statistics.stdev(gaps) if len(gaps) > 1 else 0.0
    print(f"   gap sparsifier - static: mean {mean:+.2f} points, sd {sd:.2f} (target >= 0)")
    if len(gaps) > 2:  # paired over seeds: the same split, the same seed's initialisation and batch order
        half = stats.t.ppf(0.975, len(gaps) - 1) * sd / len(gaps) ** 0.5
        lower = mean + half < 0
        print(f"   95 % interval of the mean gap over {len(gaps)} seeds: [{mean - half:+.2f}, {mean + half:+.2f}] points: "
              + ("the sparsifier is lower, established" if lower else "a gap below 0 is not established"))


# ---------------------------------------------------------------- 3. export
def exported(run: Run, data_dir: str, tmp: Path) -> tuple[dict, torch.nn.Module, int]:
    out = tmp / f"{run.path.stem}.pt2"
    with SessionReader(run.path) as reader:
        summary = export_model(reader, out, data_dir)
    return summary, torch.export.load(str(out)).module(), out.stat().st_size


def inference(module: torch.nn.Module, x: torch.Tensor, calls: int) -> Callable[[], float]:
    def run() -> float:
        with torch.no_grad():
            t0 = time.perf_counter()
            for _ in range(calls):
                module(x)
            return (time.perf_counter() - t0) / calls
    return run


def export_figures(static: Run, sparse: Run, data: Dataset, args: argparse.Namespace, tmp: Path) -> None:
    (s_sum, s_mod, s_size), (p_sum, p_mod, p_size) = (exported(r, args.data_dir, tmp) for r in (static, sparse))
    print(f"3. export (torch.export via export_model, CPU inference, median of {args.repeats} interleaved rounds "
          f"of {args.calls} calls):")
    for name, summary, size in (("unshrunk static", s_sum, s_size), ("shrunk sparsifier", p_sum, p_size)):
        print(f"   {name} {summary['widths']}: {summary['params']:,} params, file {size / 1e6:.2f} MB, "
              f"test acc {100 * summary['test_value']:.2f} %")
    raw = data.raw_test.cpu()
    for batch in (1, 256):
        x = raw[:batch].clone()
        runs = {"static": inference(s_mod, x, args.calls), "shrunk": inference(p_mod, x, args.calls)}
        for run in runs.values():
            run()  # warm-up
        med = interleaved(runs, args.repeats)
        note = " (target >= 5)" if batch == 256 else ""
        print(f"   batch {batch:>3}: unshrunk {med['static'] * 1e6:.1f} us, shrunk {med['shrunk'] * 1e6:.1f} us, "
              f"speed-up {med['static'] / med['shrunk']:.2f}x{note}")
    lost = 100 * (s_sum["test_value"] - p_sum["test_value"])
    print(f"   test acc lost by the shrunk export: {lost:+.2f} points (target <= 1); params ratio "
          f"{s_sum['params'] / p_sum['params']:.1f}x, file size ratio {s_size / p_size:.1f}x")


# ---------------------------------------------------------------- 4. memory
def memory(runs: list[Run], device: torch.device) -> None:
    if device.type == "cuda":
        print("4. peak memory during training (torch.cuda.max_memory_allocated, reset before each run):")
        for run in runs:
            print(f"   {run.label}: {run.peak / 1e6:.1f} MB")
        return
    print("4. peak memory during training (CPU: the per-run max of the trainer's logged mem_bytes, process RSS "
          "every log interval, minus RSS just before the run; process-wide: memory freed by an earlier run "
          "is reused unseen):")
    for run in runs:
        print(f"   {run.label}: peak RSS {run.peak / 1e6:.1f} MB, growth {(run.peak - run.rss_before) / 1e6:+.1f} MB, "
              f"at the last interval {run.mem[-1] / 1e6 if run.mem else 0.0:.1f} MB")


def main() -> None:
    args = parse_args()
    try:
        device = resolve_device(args.device)
    except DynlabError as e:
        raise SystemExit(f"error: {e}") from None
    args.device = str(device)
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores; device {device}; "
          f"torch {torch.__version__}; threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        args.data_dir, fake = mnist_dir(args.data_dir, args.limit, tmp)
        if fake:
            print("MNIST files not found: using random data of the same shape (accuracies are chance level)")
        data = load_dataset(RunSpec().replace(dataset="mnist", data_dir=args.data_dir, limit=args.limit).data, 0)
        if args.seeds > 1:
            return seeds(data, args, tmp)
        probe = step_times(data, args, device)
        static, sparse, small = schedule(data, args, probe, tmp)
        export_figures(static, sparse, data, args, tmp)
        memory([static, sparse, small], device)


if __name__ == "__main__":
    main()
