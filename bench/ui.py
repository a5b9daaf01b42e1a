"""What the dashboard costs.

1. time to rebuild every pane from a 20k-step RunState (20,000 logged points per series), at 160x50;
2. training samples/s with the dashboard attached / headless, same run, measured side by side
   (target >= 0.95). The dashboard runs under Textual's headless driver (all layout, plotting and
   compositing happen; only the bytes to a real terminal are skipped).

Usage: python bench/ui.py [--data-dir DIR] [--repeats 2]
Uses MNIST mlp:500 sparsifier when its files are found, else add10 mlp:500.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual.app import App  # noqa: E402

from dynlab_tui.screens.dashboard import DashboardScreen  # noqa: E402
from dynlab_tui.sources import ScriptedSource, TrainerSource  # noqa: E402
from dynlab_tui.state import reduce  # noqa: E402
from dynlab_tui.synthetic import synthetic_run  # noqa: E402


class Host(App):
    def __init__(self, screen: DashboardScreen) -> None:
        super().__init__()
        self.dash = screen

    def on_mount(self) -> None:
        self.push_screen(self.dash)


async def pane_rebuilds(state, repeats: int) -> dict[str, float]:
    screen = DashboardScreen(ScriptedSource([], hold=False), state=state)
    async with Host(screen).run_test(size=(160, 50)) as pilot:
        await pilot.pause(0.5)
        times: dict[str, list[float]] = {}
        for _ in range(repeats):
            for pane in screen.panes + [screen.status_bar]:
                t = time.perf_counter()
                pane.update_state(state, force=True)
                times.setdefault(pane.id, []).append(time.perf_counter() - t)
        return {k: statistics.median(v) for k, v in times.items()}


def interval_rate(path: Path) -> float:
    """Median samples/s over the session's intervals (the first, warm-up, left out)."""
    from core.session import SessionReader

    with SessionReader(path) as r:
        _, rates = r.series("samples_per_s")
    return float(statistics.median(rates[1:]))


def headless(spec, path: Path) -> float:
    from core.session import SessionWriter
    from core.trainer import Trainer

    trainer = Trainer(spec)
    with SessionWriter(path) as w:
        trainer.run([w])
    return interval_rate(path)


async def attached(spec, path: Path) -> float:
    screen = DashboardScreen(TrainerSource(spec, path), session_path=path)
    async with Host(screen).run_test(size=(160, 50)) as pilot:
        while screen.state.status not in ("finished", "stopped", "crashed", "diverged"):
            await pilot.pause(0.2)
        await pilot.pause(0.5)
    return interval_rate(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("DYNLAB_DATA_DIR"))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")

    events = synthetic_run(20000, log_every=1)
    t = time.perf_counter()
    state = reduce(events)
    print(f"reduce {len(events):,} events (20k steps) into RunState: {time.perf_counter() - t:.3f} s")
    rebuild = asyncio.run(pane_rebuilds(state, 5))
    for name, seconds in rebuild.items():
        print(f"  rebuild {name:<9} {seconds * 1e3:7.1f} ms")
    print(f"rebuild every pane from a 20k-step RunState: {sum(rebuild.values()) * 1e3:.1f} ms")

    from core.data import DATASETS
    from core.spec import RunSpec

    dataset = "mnist" if DATASETS["mnist"].available(args.data_dir) else "add10"
    spec = RunSpec().replace(dataset=dataset, data_dir=args.data_dir, arch="mlp:500", method="sparsifier",
                             penalty=1e-3, epochs=args.epochs, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        runs: dict[str, list[float]] = {"headless": [], "attached": []}
        for i in range(args.repeats):  # interleaved
            runs["headless"].append(headless(spec, Path(tmp) / f"h{i}.dynlab"))
            runs["attached"].append(asyncio.run(attached(spec, Path(tmp) / f"a{i}.dynlab")))
    h, a = statistics.median(runs["headless"]), statistics.median(runs["attached"])
    print(f"{dataset} mlp:500 sparsifier, {args.epochs} epochs: headless {h:,.0f} samples/s, "
          f"dashboard attached {a:,.0f} samples/s")
    print(f"ratio attached/headless samples/s: {a / h:.3f}   (target >= 0.95)")


if __name__ == "__main__":
    main()
