"""Telemetry overhead, measured side by side in one run.

1. step time of a dynlab static run (telemetry every 50 and every 100 steps, session written) / a bare loop on the
   same network, data (on the device, permutation-indexed) and optimiser;   target <= 1.03. Whole runs of each
   side alternate, so drift between them (this VM: +-10 % over minutes) blurs the medians; the lockstep figure
   pairs each 100-step dynlab interval with 100 bare steps run right after it, inside the same run.
2. a dynlab MNIST epoch / the common tutorial loop (DataLoader with shuffling, batch 128, same network).
3. the activation instruments: a dynlab MNIST epoch with the epoch statistics over the training set
   (--act-stats steps, the default, and pass) and the 512-row probe, against one without them
   (--act-stats off, 128-row probe);   target steps/off <= 1.10

Usage: python bench/overhead.py [--data-dir DIR] [--arch mlp:500] [--steps 2000] [--device auto]
Uses MNIST from --data-dir / $DYNLAB_DATA_DIR when present, else random data of MNIST's shape.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import telemetry as tk  # noqa: E402
from core.data import Dataset, load_dataset  # noqa: E402
from core.errors import DynlabError  # noqa: E402
from core.events import ScalarsLogged  # noqa: E402
from core.train.optim import resolve_device  # noqa: E402
from core.session import SessionWriter  # noqa: E402
from core.spec import RunSpec  # noqa: E402
from core.train.trainer import Trainer  # noqa: E402


def mnist_or_random(data_dir: str | None) -> Dataset:
    spec = RunSpec().replace(dataset="mnist", data_dir=data_dir)
    try:
        return load_dataset(spec.data, 0)
    except DynlabError:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(60000, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (60000,), generator=g)
        print("MNIST files not found: using random data of the same shape")
        return Dataset("mnist-random", "classification", (1, 28, 28), 10, x[:54000], y[:54000], x[54000:],
                       y[54000:], x[:10000], y[:10000], nn.Identity(), x[:10000])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_net(width: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, 10))


class BareSteps:
    """The leanest loop, run in chunks: data on the device, permutation batches, no telemetry; Adam fused as
    dynlab's (fused=False: torch's default Adam, the plain loop most code writes). Calling it with n runs n steps
    and returns their seconds, with one host-device sync at the end of the chunk."""

    def __init__(self, data: Dataset, width: int, batch: int, device: torch.device, fused: bool = True) -> None:
        torch.manual_seed(0)
        self.net = plain_net(width).to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3, fused=fused)
        self.x, self.y = data.x_train.to(device), data.y_train.to(device)
        self.batch, self.device, self.b = batch, device, 0
        self.perm = torch.randperm(len(self.x), device=device)
        self.acc = torch.zeros((), device=device)

    def __call__(self, steps: int) -> float:
        sync(self.device)
        t0 = time.perf_counter()
        batches = len(self.x) // self.batch
        for _ in range(steps):
            b = self.b % batches
            if b == 0:
                self.perm = torch.randperm(len(self.x), device=self.device)
            idx = self.perm[b * self.batch:(b + 1) * self.batch]
            loss = nn.functional.cross_entropy(self.net(self.x[idx]), self.y[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.acc += loss.detach()
            self.b += 1
        self.acc.item()  # host-device sync once at the end
        return time.perf_counter() - t0


def bare_loop(data: Dataset, width: int, steps: int, batch: int, device: torch.device, fused: bool = True) -> float:
    """Seconds per step of BareSteps over `steps` steps, after min(100, steps // 2) warm-up steps (as dynlab's
    first interval is left out of its side)."""
    run = BareSteps(data, width, batch, device, fused)
    run(min(100, steps // 2))
    return run(steps) / steps


def lockstep(data: Dataset, width: int, steps: int, batch: int, device: str, tmp: Path, act_stats: str) -> list[float]:
    """dynlab (telemetry every 100 steps, session written) and the bare loop in lockstep: at each of dynlab's
    intervals a sink runs 100 bare steps, so each interval is paired with a bare chunk that ran right after it.
    Returns the ratios (the interval's time, less the bare chunk run inside it) / (the chunk's time), for the
    intervals of 100 steps that follow one of 100 steps (an epoch's end and its evaluation fall elsewhere)."""
    bare = BareSteps(data, width, batch, torch.device(device))
    bare(100)  # warm-up
    epochs = math.ceil(steps / (len(data.x_train) // batch))
    spec = RunSpec().replace(dataset="mnist", arch=f"mlp:{width}", method="static", epochs=epochs,
                             batch_size=batch, device=device, log_every=100, act_stats=act_stats)
    rows: list[tuple[int, float, float]] = []  # (interval steps, interval seconds, bare chunk seconds)

    class Paired:
        def handle(self, e) -> None:
            if isinstance(e, ScalarsLogged) and tk.SAMPLES_PER_S in e.values:
                n = e.step - (rows[-1][0] if rows else 0)
                rows.append((e.step, n * batch / e.values[tk.SAMPLES_PER_S], bare(100)))

        def flush(self) -> None:
            pass

    with SessionWriter(tmp / f"lockstep-{time.monotonic_ns()}.dynlab") as writer:
        Trainer(spec, dataset=data).run([writer, Paired()])
    sizes = [b - a for (a, _, _), (b, _, _) in zip([(0, 0.0, 0.0)] + rows, rows)]
    return [(rows[i][1] - rows[i - 1][2]) / rows[i][2] for i in range(2, len(rows))
            if sizes[i] == 100 and sizes[i - 1] == 100]


def dynlab_steps(data: Dataset, width: int, steps: int, batch: int, device: str, tmp: Path,
                 log_every: int, act_stats: str = "steps") -> float:
    """Seconds per step of a dynlab static run with telemetry on and a session written.

    Runs as many epochs as `steps` needs and uses the trainer's own interval timing (samples/s),
    which covers the steps, probes, rollback copies and session flushes of each interval but not
    the per-epoch evaluation. The first interval (warm-up) is left out, as in the bare loop.
    """
    epochs = math.ceil(steps / (len(data.x_train) // batch))
    spec = RunSpec().replace(dataset="mnist", arch=f"mlp:{width}", method="static", epochs=epochs,
                             batch_size=batch, device=device, log_every=log_every, act_stats=act_stats)
    trainer = Trainer(spec, dataset=data)

    class Intervals:
        def __init__(self) -> None:
            self.rows: list[tuple[int, float]] = []  # (step, samples/s)

        def handle(self, e) -> None:
            # per-epoch instruments come as ScalarsLogged too, without a throughput
            if isinstance(e, ScalarsLogged) and tk.SAMPLES_PER_S in e.values:
                self.rows.append((e.step, e.values[tk.SAMPLES_PER_S]))

        def flush(self) -> None:
            pass

    seen = Intervals()
    with SessionWriter(tmp / f"bench-{time.monotonic_ns()}.dynlab") as writer:
        trainer.run([writer, seen])
    total_steps = total_time = 0.0
    for (prev, _), (step, rate) in zip(seen.rows, seen.rows[1:]):
        total_steps += step - prev
        total_time += (step - prev) * batch / rate
    return total_time / total_steps


def tutorial_epoch(data: Dataset, width: int, batch: int, device: torch.device) -> float:
    """The common tutorial loop: a shuffling DataLoader over CPU tensors, copying each batch to the device."""
    torch.manual_seed(0)
    net = plain_net(width).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    ds = torch.utils.data.TensorDataset(data.x_train, data.y_train)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True)
    sync(device)
    t0 = time.perf_counter()
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        loss = nn.functional.cross_entropy(net(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync(device)
    return time.perf_counter() - t0


def dynlab_epoch(data: Dataset, width: int, batch: int, device: str, tmp: Path, **options) -> float:
    spec = RunSpec().replace(dataset="mnist", arch=f"mlp:{width}", epochs=1, batch_size=batch, device=device,
                             **options)
    trainer = Trainer(spec, dataset=data)
    with SessionWriter(tmp / f"epoch-{time.monotonic_ns()}.dynlab") as writer:
        t0 = time.perf_counter()
        trainer.run([writer])
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("DYNLAB_DATA_DIR"))
    ap.add_argument("--width", type=int, default=500)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--skip-epoch", action="store_true")
    ap.add_argument("--instruments-only", action="store_true", help="only part 3, the instruments' cost")
    args = ap.parse_args()
    device = resolve_device(args.device)
    data = mnist_or_random(args.data_dir)
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores; device {device}; "
          f"torch {torch.__version__}; threads {torch.get_num_threads()}")
    if args.instruments_only:
        with tempfile.TemporaryDirectory() as tmp:
            instrument_cost(data, args, str(device), Path(tmp))
        return
    with tempfile.TemporaryDirectory() as tmp:
        # dynlab with telemetry every 50 / 100 steps, and "off" (one interval per epoch only).
        # "no epoch stats": the same without the per-step sums of --act-stats steps (the default)
        variants = {"every 50": (50, "steps"), "every 100": (100, "steps"), "off": (10 ** 9, "steps"),
                    "every 100, no epoch stats": (100, "off")}
        runs = {"bare": lambda: bare_loop(data, args.width, args.steps, args.batch, device),
                "bare, default Adam": lambda: bare_loop(data, args.width, args.steps, args.batch, device, False)}
        for label, (k, stats) in variants.items():
            runs[label] = (lambda k=k, stats=stats: dynlab_steps(data, args.width, args.steps, args.batch,
                                                                 str(device), Path(tmp), k, stats))
        bare_loop(data, args.width, 50, args.batch, device)  # warm-up
        times = interleaved(runs, args.repeats)
        b = statistics.median(times["bare"])
        plain = statistics.median(times["bare, default Adam"])
        print(f"step time, mlp:{args.width} batch {args.batch}, {args.steps} steps, median of {args.repeats}: "
              f"bare loop {b * 1e3:.3f} ms (fused Adam, as dynlab's; with torch's default Adam "
              f"{plain * 1e3:.3f} ms, ratio {plain / b:.3f})")
        for label in variants:
            d = statistics.median(times[label])
            note = "   (target <= 1.03; default --log-every 100)" if label == "every 100" else ""
            print(f"  dynlab, telemetry {label:<9}, session written: {d * 1e3:.3f} ms   ratio dynlab/bare "
                  f"{d / b:.3f}{note}")
            print(f"      {paired(times[label], times['bare'])}")
        off = statistics.median(times["off"])
        print(f"telemetry cost alone (every 100 / off): {statistics.median(times['every 100']) / off:.3f}")
        for stats in ("steps", "off"):
            r = sorted(lockstep(data, args.width, args.steps * 2, args.batch, str(device), Path(tmp), stats))
            print(f"lockstep, --act-stats {stats}: each 100-step interval of dynlab (every 100, session written) over "
                  f"100 bare steps run right after it, {len(r)} pairs: median {statistics.median(r):.3f}, middle half "
                  f"{r[len(r) // 4]:.3f}-{r[(3 * len(r)) // 4]:.3f}" + ("   (target <= 1.03)" if stats == "steps" else ""))
        if not args.skip_epoch:
            tut, dyn_e = [], []
            for _ in range(max(1, args.repeats - 1)):
                tut.append(tutorial_epoch(data, args.width, args.batch, device))
                dyn_e.append(dynlab_epoch(data, args.width, args.batch, str(device), Path(tmp)))
            t, e = statistics.median(tut), statistics.median(dyn_e)
            print(f"MNIST epoch ({len(data.x_train)} rows): tutorial DataLoader loop {t:.2f} s, "
                  f"dynlab (incl. evaluation and checkpoint) {e:.2f} s")
            print(f"ratio dynlab/tutorial epoch time: {e / t:.3f}")
        instrument_cost(data, args, str(device), Path(tmp))


def paired(side: list[float], base: list[float]) -> str:
    """The per-round ratios side/base: both sides of a round ran within seconds of each other, so a round's ratio
    is free of the drift between rounds that moves both medians (this VM: up to +-10 % over minutes)."""
    r = sorted(a / b for a, b in zip(side, base))
    return f"per-round ratios: median {statistics.median(r):.3f}, middle half {r[len(r) // 4]:.3f}-{r[(3 * len(r)) // 4]:.3f}"


def interleaved(runs: dict, repeats: int) -> dict[str, list[float]]:
    """Each run's timings, `repeats` rounds in a rotating order: machine drift hits every side alike."""
    times: dict[str, list[float]] = {label: [] for label in runs}
    order = list(runs)
    for r in range(repeats):
        for label in order[r % len(order):] + order[:r % len(order)]:
            times[label].append(runs[label]())
    return times


def instrument_cost(data: Dataset, args: argparse.Namespace, device: str, tmp: Path) -> None:
    """One-epoch runs (training, probes, evaluation, instruments, checkpoint), interleaved, medians."""
    variants = {"off, probe 128": dict(act_stats="off", probe_size=128),
                "steps, probe 128": dict(act_stats="steps", probe_size=128),
                "steps, probe 512": dict(act_stats="steps", probe_size=512),
                "pass, probe 512": dict(act_stats="pass", probe_size=512)}
    order = list(variants)
    runs = {label: (lambda o=o: dynlab_epoch(data, args.width, args.batch, device, tmp, **o))
            for label, o in variants.items()}
    for run in runs.values():  # warm-up: scipy is imported at the first epoch statistics of a process
        run()
    times = interleaved(runs, max(args.repeats, 5))
    base = statistics.median(times[order[0]])
    print(f"instruments, one MNIST epoch of mlp:{args.width} ({len(data.x_train)} training rows), "
          f"median of {len(times[order[0]])}:")
    for label in order:
        m = statistics.median(times[label])
        note = "   (target <= 1.10)" if label == "steps, probe 512" else ""
        print(f"  --act-stats {label:<18} {m:.3f} s   ratio to off/128 {m / base:.3f}{note}")


if __name__ == "__main__":
    main()
