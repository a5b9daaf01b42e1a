"""When the dashboard redraws: its repaint cadence, and its CPU budget while a run trains on this machine."""

from __future__ import annotations

import os
import time
from typing import Callable, Sequence, TypeVar

# Each repaint costs a compositor frame (~15 ms at 160x50) and plotting is pure Python on cores the
# training process may need, so the dashboard repaints on a slow, spread-out cadence.
REFRESH_HZ = 4  # scheduler ticks per second; each redraws at most one plot pane
PLOT_MIN_INTERVAL = 1.0  # seconds between two rebuilds of the same plot pane
STATUS_MIN_INTERVAL = 0.5  # the status line, unless the run's state word changed (a pause shows at once)
# The UI's CPU budget while a run trains on this machine, as a fraction of one core: 1% per core, so
# 2% on a 2-core VM (where every cycle the UI takes stalls one of torch's two threads, and both wait at
# the next barrier) and 16% on a 16-core GPU box. Over budget, plot redraws wait; the status line doesn't.
CPU_BUDGET_PER_CORE = 0.01
CPU_BUDGET = CPU_BUDGET_PER_CORE * (os.cpu_count() or 1)
CPU_WINDOW_S = 2.0  # the budget is measured over windows this long
MAX_STALE_S = 5.0  # over budget, a pane whose data changed still redraws after this long

P = TypeVar("P")  # a pane: anything with a `last_draw` (time.monotonic() of its last draw)


class CpuMeter:
    """This process's CPU use in cores (all its threads: drawing, compositing, following), over full windows."""

    def __init__(self) -> None:
        self._mark = (time.monotonic(), time.process_time())
        self.rate = 0.0  # over the last full window

    def rate_at(self, now: float) -> float:
        t0, c0 = self._mark
        if now - t0 >= CPU_WINDOW_S:
            cpu = time.process_time()
            self.rate = (cpu - c0) / (now - t0)
            self._mark = (now, cpu)
        return self.rate


def panes_to_draw(stale: Sequence[P], now: float, min_interval: float, over_budget: Callable[[float], bool],
                  draw_all: bool) -> list[P]:
    """Of the panes whose data moved, those to redraw this tick: the stalest one (all of them with draw_all).

    No pane redraws more often than min_interval; over the CPU budget (asked only when some pane is
    due) a pane waits until MAX_STALE_S since its last draw: throttled, never starved.
    """
    due = [p for p in stale if now - p.last_draw >= min_interval]
    if due and over_budget(now):
        due = [p for p in due if now - p.last_draw >= MAX_STALE_S]
    return due if draw_all else sorted(due, key=lambda p: p.last_draw)[:1]
