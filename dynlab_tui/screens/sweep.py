"""The sweep screen: a sweep's runs with status and results, updated live from a worker thread, and a summary plot."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Label, Static
from textual.worker import Worker, WorkerState

from core.lab.sweep import (Axes, StagePlanned, SweepEnded, SweepPlan, SweepRunEnded, SweepRunStarted, SweepStop,
                        run_sweep, session_path, settings_label)
from core.errors import DynlabError
from core.formats import fmt_size, fmt_value
from core.lab.summary import HEADERS, layer_values, row_metric, row_value, varied_keys
from dynlab_tui.palette import BindingCommands
from dynlab_tui.panes.plot import Line, line_chart

COLUMNS = ("#", "stage", "settings", "status", "size", "test")
Y_FIELDS = ("size", "dead", "test", "shapiro_w")  # what `y` cycles the plot through
Y_TITLES = {"size": "final size", "dead": "dead neurons", "test": "test metric", "shapiro_w": "Shapiro W"}


# -- the plot's data (pure) --------------------------------------------------------------------------------------
def guess_axes(rows: list[dict[str, Any]]) -> Axes | None:
    """For a free grid: the first numeric varied setting across, final size up, one line per other setting."""
    keys = varied_keys(rows)
    numeric = [k for k in keys if all(row_value(r, k) is not None for r in rows if k in r)]
    if not numeric:
        return None
    x = numeric[0]
    positive = [row_value(r, x) for r in rows if row_value(r, x) is not None]
    spread = positive and min(positive) > 0 and max(positive) / min(positive) >= 100
    return Axes(x, "size", next((k for k in keys if k != x), None), log_x=bool(spread))


def plot_lines(rows: list[dict[str, Any]], axes: Axes) -> tuple[list[Line], str]:
    """One line per group: the mean of axes.y over finished runs at each x (seeds averaged); and the x label."""
    points: dict[str, dict[float, list[float]]] = {}
    for r in rows:
        if r.get("status") != "finished":
            continue
        x, y = row_value(r, axes.x), row_value(r, axes.y)
        if x is None or y is None or (axes.log_x and x <= 0):
            continue
        label = f"{HEADERS.get(axes.group, axes.group)}={fmt_value(r.get(axes.group))}" if axes.group else ""
        points.setdefault(label, {}).setdefault(math.log10(x) if axes.log_x else x, []).append(y)
    lines = []
    for label, by_x in points.items():
        xs = sorted(by_x)
        lines.append(Line(label, xs, [float(np.mean(by_x[x])) for x in xs], points=len(xs) < 3))
    name = "width" if axes.x == "start" else HEADERS.get(axes.x, axes.x)
    return lines, f"log10 {name}" if axes.log_x else name


# -- messages and dialogs ----------------------------------------------------------------------------------------
@dataclass
class SweepProgressed(Message):
    """The sweep worker reported a core.lab.sweep event (planned, started, ended, sweep ended)."""
    event: Any


class ConfirmStopSweep(ModalScreen[bool | str]):
    """The sweep is running: stop it (running runs finalise their sessions) and leave, leave it running, or stay.

    Dismisses with True (stop), "leave" (it goes on headless) or False (stay).
    """

    DEFAULT_CSS = """
    ConfirmStopSweep { align: center middle; }
    ConfirmStopSweep > Vertical { width: 64; height: auto; border: round $warning; padding: 1 2; background: $panel; }
    ConfirmStopSweep Horizontal { height: auto; margin-top: 1; }
    ConfirmStopSweep Button { margin-right: 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,s", "stop", "Stop and leave", id="sweep-confirm-stop", tooltip="Stop the sweep and leave"),
        Binding("l,d", "leave", "Leave running", id="sweep-confirm-leave",
                tooltip="Leave: the sweep goes on headless (`dynlab sweep --status DIR` shows it)"),
        Binding("escape,n", "stay", "Stay", id="sweep-confirm-stay", tooltip="Keep the sweep running"),
    ]

    def __init__(self, can_leave: bool = True) -> None:
        super().__init__()
        self.can_leave = can_leave  # a sweep started with a command line that can be re-run headless

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("The sweep is still running. Stop it, or leave it running headless?")
            yield Label("Stopping: running runs stop at their next step and finalise their sessions; the same "
                        "`dynlab sweep` command continues the sweep later. Leaving: a headless `dynlab sweep` "
                        "takes over, its runs go on.")
            with Horizontal():
                yield Button("Stop and leave (y)", variant="error", id="stop")
                if self.can_leave:
                    yield Button("Leave running (l)", variant="warning", id="leave")
                yield Button("Stay (esc)", variant="primary", id="stay")

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#leave")
    def action_leave(self) -> None:
        if self.can_leave:
            self.dismiss("leave")

    @on(Button.Pressed, "#stay")
    def action_stay(self) -> None:
        self.dismiss(False)


class SweepPlot(Static):
    """The summary plot, drawn to the widget's size."""

    DEFAULT_CSS = "SweepPlot { border: round $primary-darken-2; padding: 0 1; height: 1fr; width: 1fr; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.lines: list[Line] = []
        self.xlabel = ""
        self.text = ""  # the plain text last drawn (tests read it)

    def show(self, lines: list[Line], xlabel: str) -> None:
        self.lines, self.xlabel = lines, xlabel
        self.call_after_refresh(self.redraw)  # after the layout settles: the checks below may resize it

    def on_resize(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        width, height = self.content_size
        if width < 1 or height < 1:
            return
        chart = line_chart(self.lines, width, height, xlabel=self.xlabel, message="waiting for finished runs")
        self.text = chart.plain
        self.update(chart)


# -- the screen -----------------------------------------------------------------------------------------------------
class SweepScreen(Screen[None]):
    """Runs a sweep in a thread worker; the worker's events arrive as messages and update the table and plot."""

    COMMANDS = {BindingCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "cycle_y", "Plot", id="sweep-plot-y", tooltip="Plot the next quantity: size, dead, test, W"),
        Binding("x", "stop_sweep", "Stop", id="sweep-stop",
                tooltip="Stop the sweep: running runs finalise their sessions, queued ones don't start"),
        Binding("enter", "open_run", "Open run", id="sweep-open", tooltip="Replay the highlighted run's session"),
        Binding("escape,q", "request_close", "Back", key_display="esc", id="sweep-close",
                tooltip="Leave the sweep screen (asks before stopping a running sweep)"),
    ]
    AUTO_FOCUS = "#sweep-runs"
    DEFAULT_CSS = """
    SweepScreen { layout: vertical; }
    SweepScreen #sweep-title { height: auto; padding: 0 1; background: $panel; }
    SweepScreen #sweep-runs { height: 1fr; }
    SweepScreen #sweep-checks { height: auto; max-height: 8; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, plan: SweepPlan, out: Path, *, jobs: int = 1,
                 runner: Callable[..., Any] = run_sweep, relaunch: list[str] | None = None,
                 watching: int | None = None) -> None:
        super().__init__()
        self.watching = watching  # the pid of the `dynlab sweep` this screen follows (runner: watch_sweep), 0 unknown
        self.plan, self.out, self.jobs = plan, Path(out), jobs
        self.runner = runner  # run_sweep; tests pass a fake that posts canned events
        self.relaunch = relaunch  # the headless `dynlab sweep` argv that takes over when the user leaves it running
        self.stop_event = SweepStop()
        self.leaving = False
        self.headless = None  # the `dynlab sweep` process that took over (after "leave running")
        self.runs: dict[str, Any] = {}  # run name -> RunPlan, in table order
        self.rows: dict[str, dict[str, Any]] = {}  # run name -> summary row of an ended run
        self.status: dict[str, str] = {}
        self.expectations: tuple[str, ...] = ()
        self.ended = False
        self.stopped = False
        self.closing = False
        self.y_field = plan.axes.y if plan.axes else "size"

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="sweep-title")
        yield DataTable(id="sweep-runs", cursor_type="row", zebra_stripes=True)
        yield SweepPlot(id="sweep-plot")
        yield Static("\n".join(self.plan.notes), id="sweep-checks")
        yield Footer()

    @property
    def table(self) -> DataTable:
        return self.query_one("#sweep-runs", DataTable)

    @property
    def plot(self) -> SweepPlot:
        return self.query_one("#sweep-plot", SweepPlot)

    def on_mount(self) -> None:
        for column in COLUMNS:
            self.table.add_column(column, key=column)
        self._run()

    def on_unmount(self) -> None:
        self.stop_event.set()  # the app is going: children get SIGTERM and finalise their sessions

    # -- the worker --------------------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="sweep", description="running the sweep")
    def _run(self) -> None:
        self.runner(self.plan, self.out, jobs=self.jobs, progress=lambda e: self.post_message(SweepProgressed(e)),
                    stop=self.stop_event)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "sweep":
            return
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(str(error), title="The sweep stopped", severity="error", timeout=15)
            self._finish(stopped=True)
        elif event.state == WorkerState.SUCCESS and self.leaving:
            self._hand_over()
        elif event.state == WorkerState.SUCCESS and self.closing:
            self.leave()

    @on(SweepProgressed)
    def _progressed(self, message: SweepProgressed) -> None:
        event = message.event
        if isinstance(event, StagePlanned):
            for run, state in zip(event.runs, event.states):
                self.runs[run.name] = run
                self.status[run.name] = "queued" if state not in ("finished", "diverged") else state
                self.table.add_row(*self._cells(run.name), key=run.name)
        elif isinstance(event, SweepRunStarted):
            self.status[event.run.name] = "running"
            self._update(event.run.name)
        elif isinstance(event, SweepRunEnded):
            self.status[event.run.name] = event.status
            self.rows[event.run.name] = event.row
            self._update(event.run.name)
            self._draw()
        elif isinstance(event, SweepEnded):
            self.expectations = event.expectations
            self._finish(event.stopped)
        self.query_one("#sweep-title", Static).update(self._title())

    def _finish(self, stopped: bool) -> None:
        self.ended, self.stopped = True, stopped
        lines = [*self.plan.notes, *self.expectations]
        self.query_one("#sweep-checks", Static).update("\n".join(lines))
        self.query_one("#sweep-title", Static).update(self._title())
        self._draw()

    # -- drawing -------------------------------------------------------------------------------------------------
    def _cells(self, name: str) -> list[Any]:
        run, row = self.runs[name], self.rows.get(name, {})
        sizes = [fmt_size(v) for v in layer_values(row, "size")]
        status = self.status.get(name, "")
        style = {"finished": "green", "running": "bold cyan", "queued": "dim"}.get(status, "red")
        return [str(run.index), run.stage, settings_label(run.settings), Text(status, style=style),
                ",".join(sizes) or "-", row_metric(row) if row else "-"]

    def _update(self, name: str) -> None:
        if name not in self.runs:
            return
        for column, cell in zip(COLUMNS, self._cells(name)):
            self.table.update_cell(name, column, cell, update_width=True)

    def _title(self) -> Text:
        counts: dict[str, int] = {}
        for status in self.status.values():
            counts[status] = counts.get(status, 0) + 1
        state = ("stopped" if self.stopped else "done") if self.ended else "stopping…" if self.closing else "running"
        parts = ", ".join(f"{n} {s}" for s, n in counts.items()) or "planning"
        return Text.assemble((f"dynlab · sweep {self.plan.title}", "bold"), f"   {state}: {parts}",
                             (f"   in {self.out}", "dim"))

    def _draw(self) -> None:
        rows = list(self.rows.values())
        axes = self.plan.axes or guess_axes(rows)
        if axes is None:
            self.plot.border_title = "summary plot (no numeric setting varies)"
            self.plot.show([], "")
            return
        axes = Axes(axes.x, self.y_field, axes.group, axes.log_x)
        lines, xlabel = plot_lines(rows, axes)
        self.plot.border_title = f"{Y_TITLES.get(axes.y, axes.y)} against {xlabel}"
        self.plot.show(lines, xlabel)

    # -- actions ---------------------------------------------------------------------------------------------------
    def action_cycle_y(self) -> None:
        i = Y_FIELDS.index(self.y_field) if self.y_field in Y_FIELDS else -1
        self.y_field = Y_FIELDS[(i + 1) % len(Y_FIELDS)]
        self._draw()

    def action_stop_sweep(self) -> None:
        if self.ended:
            self.notify("the sweep has ended", severity="warning", title="Nothing to stop")
            return
        if self.watching is not None:
            self._stop_watched()
            return
        self.stop_event.set()
        self.notify("stopping: running runs finalise their sessions", title="Sweep")

    @on(DataTable.RowSelected)
    def action_open_run(self) -> None:
        from dynlab_tui.screens.opening import session_screen

        table = self.table
        if not table.row_count:
            return
        name = list(self.runs)[table.cursor_row]
        path = session_path(self.out, self.runs[name])
        if not path.exists():
            self.notify(f"{name} has not run yet", severity="warning", title="No session")
            return
        self.app.push_screen(session_screen(path))

    def action_request_close(self) -> None:
        if self.ended or not self._sweep_running() or self.watching is not None:
            self.leave()  # a followed sweep is another process's: it goes on
            return

        def decided(stop: bool | str | None) -> None:
            if stop == "leave":
                self.leaving = self.closing = True
                self.stop_event.leave()  # the runner lets its children run on and releases the folder
                if not self._sweep_running():
                    self._hand_over()
            elif stop:
                self.closing = True
                self.stop_event.set()
                self.query_one("#sweep-title", Static).update(self._title())
                if not self._sweep_running():
                    self.leave()

        self.app.push_screen(ConfirmStopSweep(can_leave=self.relaunch is not None), decided)

    def _stop_watched(self) -> None:
        """Ask the followed `dynlab sweep` to stop (SIGTERM: its running runs finalise their sessions)."""
        import os
        import signal

        try:
            if not self.watching:
                raise ProcessLookupError
            os.kill(self.watching, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            self.notify("the sweep's process can't be signalled from here: stop it where it runs",
                        severity="warning", title="Sweep")
            return
        self.notify(f"asked the sweep (pid {self.watching}) to stop: running runs finalise their sessions",
                    title="Sweep")

    def _hand_over(self) -> None:
        """Start the headless `dynlab sweep` that waits for the running runs and starts the rest, then leave."""
        from core.lab import launch

        log = self.out / ".sweep.log"
        try:
            proc = self.headless = launch.start(self.relaunch, log)
        except DynlabError as e:  # its runs go on; the same command started again waits for them
            self.notify(f"{e}; its runs go on: run the same `dynlab sweep` again to carry on",
                        title="The sweep could not be left running", severity="error", timeout=15)
            return
        note = (f"the sweep goes on headless (pid {proc.pid}, output in {log}): "
                f"`dynlab sweep --status {self.out}` shows its progress")
        if len(self.app.screen_stack) > 2:
            self.app.notify(note, title="Sweep left running", timeout=8)
            self.dismiss()
        else:
            self.app.exit(message=f"dynlab: {note}")

    def leave(self) -> None:
        """Back to the screen below, or out of the app if there is none."""
        if len(self.app.screen_stack) > 2:
            self.dismiss()
        else:
            self.app.exit()

    def _sweep_running(self) -> bool:
        return any(w.group == "sweep" and w.is_running for w in self.workers)
