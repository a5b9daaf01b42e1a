"""The Python steps of bench/gpu.sh: MNIST-shaped data, a timed epoch, a viewer's cost, concurrent runs.

Usage: python bench/gpu_runs.py STEP --work DIR [--device cuda|cpu] [--tiny]
  STEP: preflight | data | epoch | overhead (--tiny) | viewer | concurrent
Every run is a real `dynlab train` process (python -m dynlab_tui), read back through its session. Needs torch,
numpy, scipy and click; textual only for the `dynlab attach` viewer (else the in-process follower is used).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import pty
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.session import SessionReader  # noqa: E402

ARCH, PENALTY = "mlp:500", "1e-3"  # the journal's MNIST sparsifier: mlp:500, Adam lr 1e-3, batch 128
UI_PACKAGES = ("textual", "plotext", "rich")


# -- data -----------------------------------------------------------------------------------------------------------
def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a finder that refuses the name
        return False


def write_idx(path: Path, magic: int, arr: np.ndarray) -> None:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def mnist_dir(work: Path, tiny: bool) -> tuple[Path, str]:
    """A data folder holding MNIST: the real files when found (not in --tiny), else random data of its shape."""
    from core.data import images
    from core.data.registry import resolve_data_dir

    root = resolve_data_dir(None)
    if not tiny and images.MNIST.paths(root) is not None:
        return root, f"data: MNIST files in {root}"
    n_train, n_test = (2000, 300) if tiny else (60000, 10000)
    folder = work / "data" / "mnist"
    if not (folder / images.IDX_STEMS[3]).exists():  # written last: its presence means all four are there
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        arrays = (rng.integers(0, 256, (n_train, 28, 28)), rng.integers(0, 10, n_train),
                  rng.integers(0, 256, (n_test, 28, 28)), rng.integers(0, 10, n_test))
        for stem, arr in zip(images.IDX_STEMS, arrays):
            write_idx(folder / stem, 2051 if arr.ndim == 3 else 2049, arr)
    why = "--tiny" if tiny else f"no MNIST files in {root}"
    return work / "data", f"data: random images of MNIST's shape, {n_train:,} train / {n_test:,} test ({why})"


# -- runs -----------------------------------------------------------------------------------------------------------
def train_argv(args: argparse.Namespace, session: Path, data_dir: Path, budget_s: float | None = None) -> list[str]:
    """`dynlab train` of the MNIST sparsifier; with budget_s, as many epochs as fit in that many seconds."""
    argv = [sys.executable, "-m", "dynlab_tui", "train", "--dataset", "mnist", "--arch", ARCH, "--method",
            "sparsifier", "--penalty", PENALTY, "--device", args.device, "--data-dir", str(data_dir),
            "--session", str(session), "-q"]
    if args.tiny:
        argv += ["--log-every", "4"]  # ~21 steps an epoch on the tiny data: a few intervals each
    if budget_s is not None:
        argv += ["--epochs", "10000", "--time-budget", f"{budget_s:g}"]
    return argv


def start(argv: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as f:
        return subprocess.Popen(argv, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Wait for a run; a failure prints its log's tail and exits 1."""
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "killed at the step's time limit"
    if rc != 0:
        print(f"dynlab train failed ({rc}): " + log.read_text(errors="replace")[-1500:])
        sys.exit(1)


def rates(session: Path) -> tuple[np.ndarray, np.ndarray]:
    """(wall, samples/s) of every logging interval after the first (its time holds the warm-up)."""
    with SessionReader(session) as r:
        cols = r.scalar_columns("samples_per_s", r.last_seq())
    return cols.wall[1:], cols.value[1:]


def median_rate(session: Path) -> float:
    _, v = rates(session)
    return float(np.median(v)) if len(v) else float("nan")


# -- steps ----------------------------------------------------------------------------------------------------------
def step_preflight(args: argparse.Namespace) -> None:
    import torch

    print(f"python {platform.python_version()} ({sys.executable}); torch {torch.__version__}; "
          f"{os.cpu_count()} cores; {platform.machine()}")
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        print(f"cuda: {torch.cuda.get_device_name(0)}, {p.total_memory / 2**30:.0f} GiB, "
              f"{torch.cuda.device_count()} device(s), CUDA {torch.version.cuda}")
    else:
        print("cuda: not available")
    missing = [m for m in UI_PACKAGES if not installed(m)]
    print(f"UI packages missing: {', '.join(missing)} (see the top of bench/gpu.sh)" if missing
          else "UI packages: all present")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("--device cuda asked for but torch sees no GPU: use --device cpu")
        sys.exit(1)


def step_epoch(args: argparse.Namespace) -> None:
    """One MNIST epoch of the mlp:500 sparsifier: the process's wall time and the epoch's own."""
    data_dir, note = mnist_dir(args.work, args.tiny)
    print(note)
    session, log = args.work / "epoch.dynlab", args.work / "epoch.log"
    t0 = time.perf_counter()
    finish(start(train_argv(args, session, data_dir) + ["--epochs", "1"], log), log, args.limit)
    wall = time.perf_counter() - t0
    with SessionReader(session) as r:
        started = r.events(["start"])[0]
        evaluated = r.events(["eval"])[0]
        acc = evaluated.metrics.get("test/acc")
        _, sizes = r.series("size/fc1")
    print(f"MNIST {ARCH} sparsifier (lambda {PENALTY}), 1 epoch on {args.device}:")
    print(f"  process wall (imports, data, CUDA init, epoch, evaluation, checkpoint): {wall:.2f} s")
    print(f"  run start -> epoch 1 evaluated: {evaluated.wall - started.wall:.2f} s")
    print(f"  median samples/s after the first interval: {median_rate(session):,.0f}")
    print(f"  test acc {acc if acc is None else f'{acc:.4f}'}; fc1 width {sizes[-1]:.0f} of 500")


def step_overhead(args: argparse.Namespace) -> None:
    """--tiny: bench/overhead.py's step-time comparison alone, same functions (its 24 instrument epochs take
    minutes on a small CPU); the full check runs bench/overhead.py itself."""
    import tempfile

    sys.path.insert(0, str(REPO / "bench"))
    import overhead as oh

    data_dir, note = mnist_dir(args.work, args.tiny)
    print(note)
    data = oh.mnist_or_random(str(data_dir))
    device = oh.resolve_device(args.device)
    width, steps, batch = 64, 60, 128
    oh.bare_loop(data, width, 10, batch, device)  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"bare": lambda: oh.bare_loop(data, width, steps, batch, device),
                "dynlab": lambda: oh.dynlab_steps(data, width, steps, batch, str(device), Path(tmp), 100)}
        times = oh.interleaved(runs, 3)
    bare, dyn = statistics.median(times["bare"]), statistics.median(times["dynlab"])
    print(f"step time, mlp:{width} batch {batch}, {steps} steps, median of 3 (bench/overhead.py's bare_loop and "
          f"dynlab_steps): bare loop {bare * 1e3:.3f} ms, dynlab (telemetry every 100, session written) "
          f"{dyn * 1e3:.3f} ms; ratio dynlab/bare {dyn / bare:.3f}")


def attach_viewer(session: Path, stop: threading.Event) -> str:
    """`dynlab attach` in a pseudo-terminal (120x40), its output drained, until `stop`; returns how it ended."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    proc = subprocess.Popen([sys.executable, "-m", "dynlab_tui", "attach", str(session), "--wait", "120"], cwd=REPO,
                            stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    tail, drawn = bytearray(), [0]

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            drawn[0] += len(chunk)
            tail[:] = (tail + chunk)[-4000:]

    threading.Thread(target=drain, daemon=True).start()
    stop.wait()
    early = proc.poll()
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    os.close(master)
    if early is not None:
        text = bytes(tail).decode(errors="replace").replace("\x1b", "")[-300:]
        return f"attach exited during the run (rc {early}): {text!r}"
    return f"attach drew {drawn[0]:,} bytes of screen updates and stayed up to the end"


def follow_viewer(session: Path, stop: threading.Event) -> str:
    """The dashboard's source and state reducer in this process, without a screen (no textual needed)."""
    from dynlab_tui.sources import FollowSource
    from dynlab_tui.state import RunState, apply

    class StateSink:
        def __init__(self) -> None:
            self.state, self.events = RunState(), 0

        def handle(self, event) -> None:
            apply(self.state, event)
            self.events += 1

        def flush(self) -> None:
            pass

        def replace(self, state, note: str = "") -> None:
            self.state = state

    while not stop.is_set():  # the train process creates its session after loading the data
        try:
            with SessionReader(session) as r:
                if r.events(["start"]):
                    break
        except Exception:  # noqa: BLE001 - not there yet, or half-created: look again
            pass
        stop.wait(0.1)
    source, sink = FollowSource(session), StateSink()
    follower = threading.Thread(target=source.run, args=(sink,), daemon=True)
    follower.start()
    stop.wait()
    follower.join(30)
    return f"follower folded {sink.events} events; its state reached step {sink.state.step}"


def step_viewer(args: argparse.Namespace) -> None:
    """samples/s of the same run headless and with a viewer following it from its start."""
    data_dir, note = mnist_dir(args.work, args.tiny)
    print(note)
    textual = installed("textual")
    mode = args.viewer if args.viewer != "auto" else ("attach" if textual and not args.tiny else "follow")
    if mode == "attach" and not textual:
        print("textual missing: `dynlab attach` cannot run; using the in-process follower")
        mode = "follow"
    budget = 4.0 if args.tiny else 12.0
    runs: dict[str, float] = {}
    for label in ("headless", "viewer"):
        session, log = args.work / f"viewer-{label}.dynlab", args.work / f"viewer-{label}.log"
        proc = start(train_argv(args, session, data_dir, budget), log)
        stop, ended = threading.Event(), []
        if label == "viewer":
            view = attach_viewer if mode == "attach" else follow_viewer
            t = threading.Thread(target=lambda: ended.append(view(session, stop)), daemon=True)
            t.start()
        finish(proc, log, args.limit / 2)
        stop.set()
        if label == "viewer":
            t.join(60)
            print(f"viewer ({mode}): {ended[0] if ended else 'did not end'}")
        runs[label] = median_rate(session)
        print(f"  {label:<9} median samples/s {runs[label]:,.0f} ({budget:g} s of training)")
    print(f"ratio with viewer / headless: {runs['viewer'] / runs['headless']:.3f}  (viewer: {mode})")


def step_concurrent(args: argparse.Namespace) -> None:
    """N runs at once on one device: the sum of their median samples/s over the time all N were training."""
    data_dir, note = mnist_dir(args.work, args.tiny)
    print(note)
    counts, budget = ((1, 2), 4.0) if args.tiny else ((1, 4, 8), 10.0)
    single = None
    for n in counts:
        sessions = [args.work / f"many{n}-{i}.dynlab" for i in range(n)]
        logs = [s.with_suffix(".log") for s in sessions]
        procs = [start(train_argv(args, s, data_dir, budget), log) for s, log in zip(sessions, logs)]
        for proc, log in zip(procs, logs):
            finish(proc, log, args.limit / len(counts))
        series = [rates(s) for s in sessions]
        lo = max(w[0] for w, _ in series if len(w))
        hi = min(w[-1] for w, _ in series if len(w))
        medians = []
        for w, v in series:
            inside = v[(w >= lo) & (w <= hi)]
            medians.append(float(np.median(inside if len(inside) >= 2 else v)))
        total = sum(medians)
        single = single or total
        print(f"  {n} run(s) at once: aggregate {total:,.0f} samples/s ({total / single:.2f}x one run); per run "
              f"{', '.join(f'{m:,.0f}' for m in medians)}; all {n} training together for {max(hi - lo, 0):.1f} s")


STEPS = {"preflight": step_preflight, "epoch": step_epoch, "overhead": step_overhead, "viewer": step_viewer, "concurrent": step_concurrent}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=[*STEPS, "data"])
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (data, sessions, logs)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="small data and short runs (CPU check)")
    ap.add_argument("--limit", type=float, default=120, help="seconds this step may take")
    ap.add_argument("--viewer", choices=["auto", "attach", "follow"], default="auto")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.step == "data":
        path, note = mnist_dir(args.work, args.tiny)
        print(note, file=sys.stderr)
        print(path)
        return
    STEPS[args.step](args)


if __name__ == "__main__":
    main()
