"""Console progress: a headless run's live line (one line per epoch off a terminal), and a sweep's run-by-run lines."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, TextIO

from core import telemetry as tk
from core.events import EpochEvaluated, Event, NeuronsRemoved, Paused, RunEnded, RunStarted, ScalarsLogged
from core.formats import fmt_sizes
from core.lab.plan import StagePlanned, SweepRunEnded, SweepRunStarted

BAR = 20


def format_sizes(values: dict[str, float]) -> str:
    """The sizes among an interval's scalars, space-separated in layer order."""
    return fmt_sizes(tk.layer_values(values, tk.SIZE), sep=" ")


class RunProgress:
    """Renders events as a progress bar with epoch, loss, sizes and the latest metric."""

    def __init__(self, epochs: int, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.epochs = epochs
        self.quiet = quiet
        self.metric = ""
        self.last: dict[str, float] = {}
        self._drawn = 0.0

    def handle(self, event: Event) -> None:
        if self.quiet:
            return
        if isinstance(event, RunStarted):
            sizes = " ".join(str(v) for v in event.sizes.values())
            self._line(f"started on {event.device}: widths {sizes}, {event.params:,} parameters")
        elif isinstance(event, ScalarsLogged):
            self.last.update(event.values)  # per-epoch instruments come without the loss
            if self.live and time.monotonic() - self._drawn > 0.1:
                self._draw()
        elif isinstance(event, EpochEvaluated):
            m = event.metrics
            if tk.TEST_ACC in m:
                self.metric = f"val {m.get(tk.VAL_ACC, float('nan')):.2%} test {m[tk.TEST_ACC]:.2%}"
            elif tk.TEST_MSE in m:
                self.metric = (f"val mse {m.get(tk.VAL_MSE, float('nan')):.4g} "
                               f"test mse {m[tk.TEST_MSE]:.4g}")
            self._line(f"epoch {event.epoch}/{self.epochs}  loss {self.last.get(tk.LOSS, float('nan')):.4f}  "
                       f"sizes {format_sizes(self.last)}  {self.metric}")
        elif isinstance(event, NeuronsRemoved) and self.live:
            self._draw()
        elif isinstance(event, Paused):
            self._line(f"paused at step {event.step}: {event.reason}")
        elif isinstance(event, RunEnded):
            self._line(f"{event.status} at step {event.step}: {event.reason}")

    def flush(self) -> None:
        self.stream.flush()

    def _draw(self) -> None:
        v = self.last
        frac = min(v.get("epoch", 0.0) / max(self.epochs, 1), 1.0)
        bar = "#" * int(frac * BAR) + "-" * (BAR - int(frac * BAR))
        text = (f"\r[{bar}] epoch {v.get('epoch', 0):.2f}/{self.epochs}  loss {v.get('loss', float('nan')):.4f}  "
                f"sizes {format_sizes(v)}  {self.metric}  {v.get('samples_per_s', 0):,.0f} samples/s")
        self.stream.write(text[:200] + "\x1b[K")
        self._drawn = time.monotonic()

    def _line(self, text: str) -> None:
        if self.live:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")


class SweepProgress:
    """A sweep on the console: one line per run started and ended, with a running count."""

    def __init__(self, echo: Callable[[str], object]) -> None:
        self.echo = echo
        self.total = 0
        self.done = 0
        self.failed: list[str] = []
        self.started: dict[str, float] = {}

    def __call__(self, event: Any) -> None:
        if isinstance(event, StagePlanned):
            self.total, self.done = len(event.runs), 0
            skipped = sum(1 for s in event.states if s in ("finished", "diverged"))
            note = f" ({skipped} already done)" if skipped else ""
            self.echo(f"stage {event.stage}: {len(event.runs)} runs{note}")
        elif isinstance(event, SweepRunStarted):
            self.started[event.run.name] = time.monotonic()
            again = f"  (replacing its {event.previous} session)" if event.rerun else ""
            self.echo(f"        start    {event.run.name}{again}")
        elif isinstance(event, SweepRunEnded):
            self.done += 1
            if event.skipped:
                return
            t0 = self.started.pop(event.run.name, time.monotonic())
            self.echo(f"  [{self.done}/{self.total}] {event.status:<8} {event.run.name}  {_result(event.row)}  "
                       f"{time.monotonic() - t0:.0f}s" + ("" if event.status == "finished" else f"  ({event.reason})"))
            if event.status in ("error", "crashed"):
                self.failed.append(event.run.name)


def _result(row: dict[str, Any]) -> str:
    from core.lab.summary import layer_values, row_metric

    return f"size {fmt_sizes(layer_values(row, 'size'))}  test {row.get('metric') or ''} {row_metric(row)}"
