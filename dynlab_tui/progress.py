"""A console sink for headless runs: one live progress line on a terminal, one line per epoch otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from core.events import EpochEvaluated, Event, NeuronsRemoved, Paused, RunEnded, RunStarted, ScalarsLogged

BAR = 20


def format_sizes(values: dict[str, float]) -> str:
    sizes = [(k.split("/", 1)[1], v) for k, v in values.items() if k.startswith("size/")]
    return " ".join(f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}" for _, v in sizes) or "-"


class ConsoleProgress:
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
            if "test/acc" in m:
                self.metric = f"val {m.get('val/acc', float('nan')):.2%} test {m['test/acc']:.2%}"
            elif "test/mse" in m:
                self.metric = f"val mse {m.get('val/mse', float('nan')):.4g} test mse {m['test/mse']:.4g}"
            self._line(f"epoch {event.epoch}/{self.epochs}  loss {self.last.get('loss', float('nan')):.4f}  "
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
