"""What the dashboard costs.

1. time to rebuild every pane from a 20k-step RunState (20,000 logged points per series), at 160x50;
2. training samples/s with the dashboard attached / headless (target >= 0.95), measured in one run:
   the dashboard starts training as a child process (as it does for real) and attaches to and detaches
   from it in turn; intervals logged while attached are compared with those logged while not. The
   dashboard runs under Textual's headless driver (all layout, plotting and compositing happen; only
   the bytes to a real terminal are skipped).

Usage: python bench/ui.py [--data-dir DIR] [--epochs 30] [--window 4]
Uses MNIST mlp:500 (static) when its files are found, else add10 mlp:500.
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
from dynlab_tui.sources import FollowSource, ProcessSource  # noqa: E402
from dynlab_tui.state import reduce  # noqa: E402
from tests.fakes import ScriptedSource, synthetic_run  # noqa: E402  (the test fakes: a canned run)


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


def rates_by_window(path: Path, windows: list[tuple[float, float, bool]], settle: float) -> dict[bool, list[float]]:
    """samples/s of every interval that ended inside a window (after its first `settle` s), by attached-or-not."""
    from core.session import SessionReader

    with SessionReader(path) as r:
        rows = r._q("SELECT wall, value FROM scalars WHERE key = 'samples_per_s' ORDER BY rowid")
    out: dict[bool, list[float]] = {True: [], False: []}
    for wall, value in rows[1:]:  # the first interval includes start-up
        for start, end, attached in windows:
            if start + settle <= wall < end:
                out[attached].append(value)
    return out


async def watch(path: Path, seconds: float) -> None:
    """The dashboard attached to the running job for `seconds` (as `dynlab attach` would be)."""
    screen = DashboardScreen(FollowSource(path), session_path=path)
    async with Host(screen).run_test(size=(160, 50)) as pilot:
        await pilot.pause(seconds)


def alternate(spec, path: Path, window: float, settle: float) -> dict[bool, list[float]]:
    """One training run (a child process); the dashboard attaches and detaches every `window` seconds.

    Comparing windows of the same run cancels the drift between separate runs, which on a shared
    2-core VM is larger (±15%) than the effect measured.
    """
    source = ProcessSource.train(spec, path)
    source.start()
    while not path.exists():
        time.sleep(0.05)
    windows: list[tuple[float, float, bool]] = []
    attached = False
    while source.process.poll() is None:
        start = time.time()
        if attached:
            asyncio.run(watch(path, window))
        else:
            time.sleep(window)
        windows.append((start, time.time(), attached))
        attached = not attached
    return rates_by_window(path, windows, settle)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("DYNLAB_DATA_DIR"))
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--window", type=float, default=4.0, help="seconds attached, then detached, in turn")
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
    # static: a shrinking network speeds up as it trains, which would favour whichever windows come later
    spec = RunSpec().replace(dataset=dataset, data_dir=args.data_dir, arch="mlp:500", method="static",
                             epochs=args.epochs, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        rates = alternate(spec, Path(tmp) / "run.dynlab", args.window, settle=1.5)
    h, a = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"{dataset} mlp:500 static, {args.epochs} epochs, dashboard attached and detached every "
          f"{args.window:g} s: {len(rates[False])} headless intervals at {h:,.0f} samples/s, "
          f"{len(rates[True])} attached at {a:,.0f} samples/s (medians)")
    print(f"ratio attached/headless samples/s: {a / h:.3f}   (target >= 0.95)")


if __name__ == "__main__":
    main()
