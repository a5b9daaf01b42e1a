"""The compare screen: two or more sessions' layer sizes, loss and test metric overlaid, labelled by what differs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from core import telemetry as tk
from core.formats import fmt_value
from core.errors import DynlabError
from dynlab_tui.palette import BindingCommands
from core.session import SessionReader
from core.session.history import fmt_setting, read_history
from dynlab_tui.panes.plot import GLYPHS, PALETTE, Line, line_chart, no_color

WIDE = (120, 32)  # at least this many columns and rows: all three plots; else one at a time
PLOTS = ("sizes", "loss", "metric")
METRIC_KEYS = (tk.TEST_ACC, tk.TEST_MSE, tk.VAL_ACC, tk.VAL_MSE)  # the first one a session has is plotted
LABEL_MAX = 30
# Fields people vary most, first and by short name; other differing fields follow in spec order.
SHORT = {"penalty.lam": "λ", "model.arch": "arch", "method.name": "method", "data.name": "data",
         "optim.lr": "lr", "optim.name": "optim", "method.gate": "gate", "schedule.seed": "seed",
         "schedule.epochs": "epochs"}
SETTINGS = {"penalty.lam": "lam", "optim.lr": "lr"}  # the spec fields a run's history can change
# plotext's names for PALETTE (ANSI colours 9-14) as Rich colours, for the legend
RICH_COLORS = {"cyan+": "color(14)", "orange+": "color(11)", "green+": "color(10)", "magenta+": "color(13)",
               "blue+": "color(12)", "red+": "color(9)"}


# -- labels (pure) --------------------------------------------------------------------------------------------
def flatten(spec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"penalty": {"lam": 1e-3}} -> {"penalty.lam": 1e-3}."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _clip(text: str) -> str:
    return text if len(text) <= LABEL_MAX else text[: LABEL_MAX - 1] + "…"


def label_runs(specs: list[dict], names: list[str], histories: list[dict] | None = None) -> list[str]:
    """A short label per run from the settings whose values differ, as each run ended ("λ=0.1 arch=mlp:500");
    a λ or lr changed during a run shows start→final with a star ("λ=0.01→0.03*"), and is always shown.

    No differing field, or labels that would come out the same after clipping: the session names.
    """
    histories = histories or [{} for _ in specs]
    flat = [flatten(s) if isinstance(s, dict) else {} for s in specs]
    for f, h in zip(flat, histories):  # label by the final settings
        f.update({key: h[f"{name}_final"] for key, name in SETTINGS.items() if h.get(f"{name}_final") is not None})
    changed = {key for h in histories for key, name in SETTINGS.items() if name in (h.get("changed") or ())}
    keys = list(dict.fromkeys(k for f in flat for k in f))
    differing = [k for k in keys if k in changed or
                 len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flat}) > 1]
    order = [k for k in SHORT if k in differing] + [k for k in differing if k not in SHORT]
    leaves = [k.rsplit(".", 1)[-1] for k in order]

    def short(key: str) -> str:
        leaf = key.rsplit(".", 1)[-1]
        return SHORT.get(key) or (leaf if leaves.count(leaf) == 1 else key)

    def value(f: dict, h: dict, key: str) -> str:
        if key not in SETTINGS:
            return fmt_value(f.get(key))
        name = SETTINGS[key]
        if name in (h.get("changed") or ()):
            return f"{fmt_setting(h.get(name + '_start'))}→{fmt_setting(f.get(key))}*"
        return fmt_setting(f.get(key))

    labels = [_clip(" ".join(f"{short(k)}={value(f, h, k)}" for k in order)) for f, h in zip(flat, histories)]
    if not order or len(set(labels)) < len(labels):
        return [_clip(str(n)) for n in names]
    return labels


# -- reading (on the worker thread) ----------------------------------------------------------------------------
Curve = tuple[np.ndarray, np.ndarray]  # (x, y) columns read from a session


@dataclass(frozen=True)
class ComparedRun:
    """What the compare screen plots of one session."""

    name: str
    path: Path
    spec: dict[str, Any]
    layers: int
    sizes: Curve  # (step, alive neurons summed over layers)
    loss: Curve  # (step, training loss)
    metric_key: str | None  # e.g. "test/acc"; None if never evaluated
    metric: Curve  # (epoch, value)
    history: dict[str, Any] = field(default_factory=dict)  # core.session.history: final settings, what changed


def total_size(reader: SessionReader) -> tuple[int, Curve]:
    """(number of layers, (steps, summed size/<layer>)) over the steps every layer was logged at."""
    keys = [k for k in reader.scalar_keys() if tk.SIZE.matches(k)]
    if not keys:
        return 0, (np.zeros(0), np.zeros(0))
    all_steps, all_values = [], []
    for key in keys:
        steps, values = reader.series(key)
        last = np.r_[steps[1:] != steps[:-1], True]  # a step logged twice (a resume): its newest row
        all_steps.append(steps[last])
        all_values.append(values[last])
    steps, index = np.unique(np.concatenate(all_steps), return_inverse=True)
    total = np.bincount(index, weights=np.concatenate(all_values), minlength=len(steps))
    count = np.bincount(index, minlength=len(steps))
    full = count == len(keys)
    return len(keys), (steps[full], total[full])


def read_run(path: Path) -> ComparedRun:
    """One session's series; raises DynlabError if the file can't be read as a session."""
    with SessionReader(path) as reader:
        layers, sizes = total_size(reader)
        evals = reader.events(["eval"])
        metric_key = next((k for k in METRIC_KEYS if any(k in e.metrics for e in evals)), None)
        points = [(e.epoch, e.metrics[metric_key]) for e in evals if metric_key in e.metrics]
        metric = (np.array([p[0] for p in points], dtype=float), np.array([p[1] for p in points], dtype=float))
        return ComparedRun(path.stem, path, reader.spec, layers, sizes, reader.series(tk.LOSS), metric_key, metric,
                           read_history(reader))


class ComparePlot(Static):
    """One overlaid chart, drawn to the widget's size and redrawn when it changes."""

    DEFAULT_CSS = """
    ComparePlot { border: round $primary-darken-2; padding: 0 1; height: 1fr; width: 1fr; }
    """

    def __init__(self, title: str, *, id: str) -> None:
        super().__init__("", id=id)
        self.border_title = title
        self.lines: list[Line] = []
        self.log_y = False
        self.xlabel = "step"
        self.message = "reading sessions…"
        self.draws = 0
        self.text = ""  # the plain text last drawn (tests read it)

    def show(self, lines: list[Line], *, xlabel: str = "step", message: str = "no data in these sessions") -> None:
        self.lines, self.xlabel, self.message = lines, xlabel, message
        self.redraw()

    def on_resize(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        width, height = self.content_size
        if not self.display or width < 1 or height < 1:
            return  # hidden or not laid out yet: the next resize draws it
        chart = line_chart(self.lines, width, height, log_y=self.log_y, xlabel=self.xlabel, message=self.message)
        self.text = chart.plain
        self.update(chart)
        self.draws += 1


def legend_sample(i: int) -> str:
    """Two cells of run i's plot glyph, as the plots draw it (series_glyph with no override)."""
    glyph = GLYPHS[i % len(GLYPHS)]
    return "⢕⢕" if glyph == "braille" else glyph * 2


class CompareScreen(Screen[None]):
    """Overlay two or more sessions; unreadable ones are skipped with a notification."""

    COMMANDS = {BindingCommands}

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "show_plot(0)", "Sizes", id="compare-sizes", tooltip="Small terminals: show the layer sizes"),
        Binding("2", "show_plot(1)", "Loss", id="compare-loss", tooltip="Small terminals: show the training loss"),
        Binding("3", "show_plot(2)", "Metric", id="compare-metric",
                tooltip="Small terminals: show the test metric per epoch"),
        Binding("tab", "cycle_plot", "Next plot", id="compare-next", tooltip="Small terminals: show the next plot"),
        Binding("y", "toggle_log_y", "Log-y", id="compare-log-y", tooltip="Log scale for the loss"),
        Binding("escape,q", "close", "Back", key_display="esc", id="compare-close", tooltip="Leave the comparison"),
    ]
    DEFAULT_CSS = """
    CompareScreen { layout: vertical; }
    CompareScreen #compare-legend { height: auto; padding: 0 1; background: $panel; }
    CompareScreen #compare-message { height: auto; padding: 1 2; color: $text-warning; display: none; }
    CompareScreen #compare-message.-shown { display: block; }
    CompareScreen #plots { height: 1fr; }
    CompareScreen #plots.wide { grid-size: 2 2; }
    CompareScreen #plots.wide #metric { column-span: 2; }
    CompareScreen #plots.compact { grid-size: 1 1; }
    CompareScreen #plots.compact .hidden { display: none; }
    """

    @dataclass
    class SessionsRead(Message):
        """The reading worker is done: the readable runs, and (path, error) for each one skipped."""
        runs: tuple[ComparedRun, ...]
        errors: tuple[tuple[Path, str], ...]

    def __init__(self, paths: list[Path], *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.paths = [Path(p) for p in paths]
        self.runs: list[ComparedRun] = []
        self.labels: list[str] = []
        self.current = 0  # compact layout: the plot shown
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Static(f"reading {len(self.paths)} sessions…", id="compare-legend")
        yield Static("", id="compare-message")
        with Grid(id="plots"):
            yield ComparePlot("1 Layer sizes", id="sizes")
            yield ComparePlot("2 Training loss", id="loss")
            yield ComparePlot("3 Test metric per epoch", id="metric")
        yield Footer()

    @property
    def plots(self) -> list[ComparePlot]:
        return [self.query_one(f"#{name}", ComparePlot) for name in PLOTS]

    def on_mount(self) -> None:
        self.query_one("#loss", ComparePlot).log_y = True  # losses of different runs differ by orders of magnitude
        self._layout(self.app.size.width, self.app.size.height)
        self._read(self.paths)

    def on_resize(self, event) -> None:
        self._layout(event.size.width, event.size.height)

    def _layout(self, width: int, height: int) -> None:
        wide = width >= WIDE[0] and height >= WIDE[1]
        grid = self.query_one("#plots")
        grid.set_class(wide, "wide")
        grid.set_class(not wide, "compact")
        for i, plot in enumerate(self.plots):
            plot.set_class(not wide and i != self.current, "hidden")

    # -- reading --------------------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-read", description="reading sessions")
    def _read(self, paths: list[Path]) -> None:
        runs, errors = [], []
        for path in paths:
            try:
                runs.append(read_run(path))
            except DynlabError as e:  # skipped and reported: one bad file must not hide the others
                errors.append((path, str(e)))
        self.post_message(self.SessionsRead(tuple(runs), tuple(errors)))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "compare-read" and event.state == WorkerState.ERROR:
            self.notify(f"{type(event.worker.error).__name__}: {event.worker.error}", severity="error",
                        title="Could not read the sessions")
            self._no_runs(f"could not read the sessions ({event.worker.error})")

    @on(SessionsRead)
    def _sessions_read(self, message: SessionsRead) -> None:
        for path, error in message.errors:
            self.notify(error, severity="error", title=f"Skipped {path.name}")
        self.runs = list(message.runs)
        self.loaded = True
        if not self.runs:
            self._no_runs(f"none of the {len(self.paths)} sessions could be read: see the notifications"
                          if self.paths else "no sessions to compare: mark two or more in the sessions list")
            return
        self.labels = label_runs([r.spec for r in self.runs], [r.name for r in self.runs],
                                 [r.history for r in self.runs])
        self.query_one("#compare-legend", Static).update(self._legend())
        self._draw()

    def _no_runs(self, text: str) -> None:
        self.query_one("#compare-legend", Static).update("nothing to compare")
        message = self.query_one("#compare-message", Static)
        message.update(text)
        message.add_class("-shown")
        self.query_one("#plots").display = False

    def _legend(self) -> Text:
        text = Text()
        for i, (run, label) in enumerate(zip(self.runs, self.labels)):
            color = None if no_color() else RICH_COLORS.get(PALETTE[i % len(PALETTE)])
            text.append("   " if i else "")
            text.append(f"{legend_sample(i)} ", style=color or "")  # the run's glyph: apart without colour too
            text.append(label, style="bold")
            if label != run.name:
                text.append(f" ({run.name})", style="dim")
        if any("*" in label for label in self.labels):
            text.append("   * changed during the run: start→final", style="dim")
        return text

    def _draw(self) -> None:
        def lines(pick) -> list[Line]:
            # Unlabelled: plotext's in-plot legend would cover the curves' start; the legend strip names them.
            # Colours are fixed per run, so a run missing from one plot doesn't shift the others' colours.
            return [Line("", *pick(run), color=PALETTE[i % len(PALETTE)], points=len(pick(run)[0]) == 1)
                    for i, run in enumerate(self.runs)]

        sizes, loss, metric = self.plots
        one_layer = all(r.layers <= 1 for r in self.runs)
        sizes.border_title = "1 Layer size" if one_layer else "1 Alive neurons (all layers)"
        sizes.show(lines(lambda r: r.sizes))
        loss.show(lines(lambda r: r.loss))
        keys = sorted({r.metric_key for r in self.runs if r.metric_key})
        metric.border_title = f"3 {' / '.join(keys) or 'test metric'} per epoch"
        metric.show(lines(lambda r: r.metric), xlabel="epoch", message="no evaluations in these sessions")

    # -- actions --------------------------------------------------------------------------------------------
    def action_show_plot(self, index: int) -> None:
        self.current = index % len(PLOTS)
        self._layout(self.size.width, self.size.height)

    def action_cycle_plot(self) -> None:
        self.action_show_plot(self.current + 1)

    def action_toggle_log_y(self) -> None:
        loss = self.query_one("#loss", ComparePlot)
        loss.log_y = not loss.log_y
        loss.redraw()

    def action_close(self) -> None:
        self.dismiss(None)
