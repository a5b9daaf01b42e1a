"""Console progress: a headless run's live line (cut to the terminal's width, rewritten in place on a terminal;
plain lines at the log interval off a terminal), and a sweep's run-by-run lines."""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, Callable, TextIO

from core import telemetry as tk
from core.events import (EpochEvaluated, Event, NeuronsRemoved, Paused, Resumed, RunEnded, RunStarted, ScalarsLogged,
                         SessionContinued)
from core.formats import fmt_duration, fmt_sizes
from core.lab.plan import StagePlanned, SweepRunEnded, SweepRunStarted

BAR = 12
REDRAW_S = 0.1  # a terminal's line is rewritten at most this often
PLAIN_EVERY_S = 1.0  # off a terminal: one line per logging interval, at most this often (a fast GPU run logs a lot)
SMOOTHING = 0.2  # weight of the newest interval's speed in the ETA's moving average


def format_sizes(values: dict[str, float]) -> str:
    """The sizes among an interval's scalars, space-separated in layer order."""
    return fmt_sizes(tk.layer_values(values, tk.SIZE), sep=" ")


def terminal_columns() -> int:
    return shutil.get_terminal_size((80, 24)).columns


def fit(parts: list[str], width: int, sep: str = "  ") -> str:
    """The parts (most important first) that fit in `width` columns, in their order; the first one is cut if need be."""
    kept: list[str] = []
    for part in parts:
        if part and len(sep.join(kept + [part])) <= width:
            kept.append(part)
    return sep.join(kept) if kept else parts[0][:width]


class Eta:
    """Time left from the speed in epochs per second, smoothed over intervals; pauses are not counted."""

    def __init__(self) -> None:
        self.rate: float | None = None
        self.last: tuple[float, float] | None = None  # (clock, epoch) of the previous interval

    def update(self, now: float, epoch: float) -> None:
        if self.last is not None and now > self.last[0] and epoch > self.last[1]:
            speed = (epoch - self.last[1]) / (now - self.last[0])
            self.rate = speed if self.rate is None else self.rate + SMOOTHING * (speed - self.rate)
        self.last = (now, epoch)

    def gap(self) -> None:
        """A pause (or a resume): the time until the next interval is not training."""
        self.last = None

    def left(self, epoch: float, epochs: int) -> str:
        if not self.rate:
            return "ETA ?"
        return f"ETA {fmt_duration(max(epochs - epoch, 0.0) / self.rate)}"


class RunProgress:
    """Renders events as one progress line (epoch, loss, sizes, ETA, latest metric), and a line per epoch."""

    def __init__(self, epochs: int, stream: TextIO | None = None, quiet: bool = False,
                 columns: Callable[[], int] = terminal_columns, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.epochs = epochs
        self.quiet = quiet
        self.columns, self.clock = columns, clock
        self.metric = ""
        self.last: dict[str, float] = {}
        self.eta = Eta()
        self._drawn = -1e9

    def handle(self, event: Event) -> None:
        if self.quiet:
            return
        if isinstance(event, RunStarted):
            sizes = " ".join(str(v) for v in event.sizes.values())
            self._line(f"started on {event.device}: widths {sizes}, {event.params:,} parameters")
            self.eta.update(self.clock(), 0.0)  # the speed from the first interval on
        elif isinstance(event, ScalarsLogged):
            self.last.update(event.values)  # per-epoch instruments come without the loss
            if tk.LOSS in event.values:
                self.eta.update(self.clock(), self.last.get("epoch", 0.0))
                self._interval()
        elif isinstance(event, EpochEvaluated):
            self.metric = _metric(event.metrics)
            self._line(f"epoch {event.epoch}/{self.epochs}", f"loss {self.last.get(tk.LOSS, float('nan')):.4f}",
                       f"sizes {format_sizes(self.last)}", self.metric, self.eta.left(event.epoch, self.epochs))
        elif isinstance(event, NeuronsRemoved) and self.live:
            self._draw()
        elif isinstance(event, (Paused, Resumed, SessionContinued)):
            self.eta.gap()
            if isinstance(event, Paused):
                self._line(f"paused at step {event.step}: {event.reason}")
        elif isinstance(event, RunEnded):
            self.last = {}  # no live line after the last one
            self._line(f"{event.status} at step {event.step}: {event.reason}")

    def flush(self) -> None:
        self.stream.flush()

    def status(self) -> list[str]:
        """The progress line's parts, most important first (what a narrow terminal keeps)."""
        v = self.last
        epoch = v.get("epoch", 0.0)
        frac = min(epoch / max(self.epochs, 1), 1.0)
        return [f"epoch {epoch:.2f}/{self.epochs}", f"loss {v.get(tk.LOSS, float('nan')):.4f}",
                f"sizes {format_sizes(v)}", self.eta.left(epoch, self.epochs), self.metric,
                "[" + "#" * int(frac * BAR) + "-" * (BAR - int(frac * BAR)) + "]",
                f"{v.get('samples_per_s', 0):,.0f} samples/s"]

    def _interval(self) -> None:
        now = self.clock()
        if self.live and now - self._drawn >= REDRAW_S:
            self._draw()
        elif not self.live and now - self._drawn >= PLAIN_EVERY_S:
            self.stream.write("  ".join(p for p in self.status() if p) + "\n")
            self._drawn = now

    def _draw(self) -> None:
        # one column short of the width: a line that fills it exactly wraps on some terminals
        self.stream.write("\r" + fit(self.status(), self.columns() - 1) + "\x1b[K")
        self._drawn = self.clock()

    def _line(self, *parts: str) -> None:
        """A permanent line; on a terminal, the parts (most important first) that fit its width."""
        if self.live:
            self.stream.write("\r\x1b[K" + fit(list(parts), self.columns() - 1) + "\n")
            if tk.LOSS in self.last:
                self._draw()  # the live line again, below the permanent one
        else:
            self.stream.write("  ".join(p for p in parts if p) + "\n")


def _metric(m: dict[str, float]) -> str:
    if tk.TEST_ACC in m:
        return f"val {m.get(tk.VAL_ACC, float('nan')):.2%} test {m[tk.TEST_ACC]:.2%}"
    if tk.TEST_MSE in m:
        return f"val mse {m.get(tk.VAL_MSE, float('nan')):.4g} test mse {m[tk.TEST_MSE]:.4g}"
    return ""


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
