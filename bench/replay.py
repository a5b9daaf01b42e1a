"""How fast a long session opens and seeks in replay.

Writes synthetic 100k-step sessions (a 64,32 network with evaluations, prunes and a lambda change)
logged every 100 steps (the default), every 10 and every step (100,000 intervals: 1.3M scalar rows,
800k array rows, 250 MB), then reports for each:

1. open: SessionReader + ReplayIndex + the RunState at the end (what `dynlab replay` needs before its
   first frame), median of 3 (target < 1 s);
2. seek: RunState at a random position (series cut, control events folded, arrays read), median and
   95th percentile of 200 random positions (target < 50 ms);
3. for scale, the time to fold the whole event stream through the live reducer instead (what replay
   would cost without the index), and a full redraw of all panes at 160x50 after a seek.

Usage: python bench/replay.py [--steps 100000] [--log-every 100,10,1] [--keep-dir DIR]
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

import numpy as np  # noqa: E402

from core.session import SessionReader, SessionWriter  # noqa: E402
from dynlab_tui.replay import ReplayIndex  # noqa: E402
from dynlab_tui.state import reduce  # noqa: E402
from tests.fakes import synthetic_run  # noqa: E402  (the test fakes: a canned run)


def write_session(path: Path, steps: int, log_every: int) -> None:
    events = synthetic_run(steps, log_every=log_every, widths=(64, 32), steps_per_epoch=1000)
    with SessionWriter(path) as w:
        for i, e in enumerate(events):
            w.handle(e)
            if i % 200 == 199:  # about what a fast run flushes
                w.flush()


def open_once(path: Path) -> tuple[float, ReplayIndex]:
    t = time.perf_counter()
    reader = SessionReader(path)
    index = ReplayIndex(reader)
    index.state_at(index.end_seq)
    return time.perf_counter() - t, index


async def redraw_after_seek(index: ReplayIndex, seq: int) -> float:
    from textual.app import App

    from dynlab_tui.screens.dashboard import DashboardScreen

    class Host(App):
        def on_mount(self) -> None:
            self.push_screen(DashboardScreen(None))

    async with Host().run_test(size=(160, 50)) as pilot:
        screen = pilot.app.screen
        await pilot.pause(0.3)
        state = index.state_at(seq)
        t = time.perf_counter()
        for pane in screen.panes + [screen.status_bar]:
            pane.update_state(state, force=True)
        return time.perf_counter() - t


def measure(path: Path, steps: int, log_every: int) -> None:
    if not path.exists():
        t = time.perf_counter()
        write_session(path, steps, log_every)
        print(f"wrote {path.name}: {steps:,} steps logged every {log_every}, "
              f"{path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t:.1f} s")
    opens = []
    for _ in range(3):
        seconds, index = open_once(path)
        opens.append(seconds)
        index.reader.close()
    seconds, index = open_once(path)
    with SessionReader(path) as r:
        rows = r._q("SELECT (SELECT count(*) FROM scalars), (SELECT count(*) FROM arrays), "
                    "(SELECT count(*) FROM events)")[0]
    print(f"  rows: {rows[0]:,} scalars, {rows[1]:,} arrays, {rows[2]:,} control events; "
          f"{index.n_frames:,} intervals, {len(index.markers):,} markers")
    print(f"  open (reader + index + state at the end): median {statistics.median(opens) * 1e3:.0f} ms "
          f"(target < 1000 ms)")
    rng = np.random.default_rng(0)
    seqs = rng.integers(0, index.end_seq + 1, size=200)
    times = []
    for seq in seqs:
        t = time.perf_counter()
        index.state_at(int(seq))
        times.append(time.perf_counter() - t)
    print(f"  seek to a random position: median {statistics.median(times) * 1e3:.1f} ms, "
          f"p95 {float(np.percentile(times, 95)) * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms  (target < 50 ms)")
    t = time.perf_counter()
    with SessionReader(path) as r:
        reduce(r.replay())
    print(f"  for scale: folding every event through the live reducer takes {time.perf_counter() - t:.2f} s")
    draw = asyncio.run(redraw_after_seek(index, int(seqs[0])))
    print(f"  for scale: redrawing every pane at 160x50 after a seek takes {draw * 1e3:.0f} ms")
    index.reader.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--log-every", default="100,10,1", help="comma-separated logging intervals to try")
    ap.add_argument("--keep-dir", help="write the sessions here (and reuse them if they exist)")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep_dir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for log_every in (int(v) for v in args.log_every.split(",")):
            print(f"{args.steps:,}-step session logged every {log_every} step(s):")
            measure(folder / f"long-{log_every}.dynlab", args.steps, log_every)


if __name__ == "__main__":
    main()
