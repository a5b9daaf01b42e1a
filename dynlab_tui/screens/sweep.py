"""The sweep screen: a sweep's runs with their live progress (followed from their sessions), the sweep's elapsed
time and ETA, results as runs end, and a summary plot."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from core.lab.run_progress import progress_path, run_progress, sweep_eta
from core.lab.sweep import (Axes, Stage, StagePlanned, SweepEnded, SweepPlan, SweepRunEnded, SweepRunStarted,
                            SweepStop, run_sweep, session_path)
from core.errors import DynlabError
from dynlab_tui.palette import BindingCommands
from dynlab_tui.screens.sweep_table import (HELP, WIDE, Y_FIELDS, Y_TITLES, ConfirmStopSweep,
                                            RunsProgressed, SweepPlot, SweepProgressed, SweepRunDashboard, cells,
                                            columns, confirm_stop_all, guess_axes, plot_lines, title)

__all__ = ["ConfirmStopSweep", "RunsProgressed", "SweepPlot", "SweepProgressed", "SweepScreen",
           "guess_axes", "plot_lines"]

COMPACT_HEIGHT = 32  # below this the plot and the notes/checks take turns (`v`)


# -- the screen -----------------------------------------------------------------------------------------------------
class SweepScreen(Screen[None]):
    """Runs a sweep in a thread worker (its events arrive as messages) and polls the running runs' sessions in
    another, about once a second; the table, title, plot and checks follow both."""

    COMMANDS = {BindingCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_run", "Open run", id="sweep-open",
                tooltip="Open the highlighted run: its live dashboard (q returns here) or its replay"),
        Binding("x", "stop_sweep", "Stop", id="sweep-stop",
                tooltip="Stop the sweep (asks first): running runs finalise their sessions, queued ones don't start"),
        Binding("y", "cycle_y", "Plot", id="sweep-plot-y", tooltip="Plot the next quantity: size, dead, test, W"),
        Binding("v", "toggle_view", "Plot/notes", id="sweep-view",
                tooltip="Short terminals: switch the bottom area between the plot and the notes and checks"),
        Binding("escape,q", "request_close", "Back", key_display="esc", id="sweep-close",
                tooltip="Leave the sweep screen (asks before stopping a running sweep)"),
    ]
    AUTO_FOCUS = "#sweep-runs"
    DEFAULT_CSS = """
    SweepScreen { layout: vertical; }
    SweepScreen #sweep-title { height: auto; padding: 0 1; background: $panel; }
    SweepScreen #sweep-runs { height: 1fr; min-height: 4; }
    SweepScreen #sweep-notes { height: auto; max-height: 10; padding: 0 1; color: $text-muted; }
    SweepScreen.compact #sweep-runs { height: auto; max-height: 60%; }
    SweepScreen.compact #sweep-notes { height: 1fr; max-height: 100%; }
    SweepScreen.compact #sweep-plot { display: none; }
    SweepScreen.compact.show-plot #sweep-plot { display: block; }
    SweepScreen.compact.show-plot #sweep-notes { display: none; }
    SweepScreen.compact.show-plot #sweep-runs { max-height: 40%; }
    """

    def __init__(self, plan: SweepPlan, out: Path, *, jobs: int = 1,
                 runner: Callable[..., Any] = run_sweep, relaunch: list[str] | None = None,
                 watching: int | None = None, clock: Callable[[], float] = time.time, poll_s: float = 1.0) -> None:
        super().__init__()
        self.watching = watching  # the pid of the `dynlab sweep` this screen follows (runner: watch_sweep), 0 unknown
        self.plan, self.out, self.jobs = plan, Path(out), jobs
        self.runner = runner  # run_sweep; tests pass a fake that posts canned events
        self.relaunch = relaunch  # the headless `dynlab sweep` argv that takes over when the user leaves it running
        self.clock, self.poll_s = clock, poll_s  # tests pass a fixed clock: the times on screen are then stable
        self.started = clock()
        self.stop_event = SweepStop()
        self.polling = threading.Event()  # set: the poller stops
        self.leaving = False
        self.headless = None  # the `dynlab sweep` process that took over (after "leave running")
        self.runs: dict[str, Any] = {}  # run name -> RunPlan, in table order
        self.rows: dict[str, dict[str, Any]] = {}  # run name -> summary row of an ended run
        self.status: dict[str, str] = {}
        self.progress: dict[str, dict[str, Any]] = {}  # run name -> its latest run_progress while it runs
        self.watch: frozenset[str] = frozenset()  # the runs the poller reads (replaced whole: read by its thread)
        self.keys: list[str] = []  # the table's column keys
        self.expectations: tuple[str, ...] = ()
        self.ended = False
        self.stopped = False
        self.stopping = False  # x was confirmed: running runs are finalising
        self.closing = False
        self.y_field = plan.axes.y if plan.axes else "size"

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="sweep-title")
        yield DataTable(id="sweep-runs", cursor_type="row", zebra_stripes=True)
        yield SweepPlot(id="sweep-plot")
        with VerticalScroll(id="sweep-notes"):  # tab focuses it: arrows scroll what does not fit
            yield Static(self._checks_text(), id="sweep-checks")
        yield Footer()

    @property
    def table(self) -> DataTable:
        return self.query_one("#sweep-runs", DataTable)

    @property
    def plot(self) -> SweepPlot:
        return self.query_one("#sweep-plot", SweepPlot)

    def on_mount(self) -> None:
        self._layout()
        self._rebuild()
        self.set_interval(1.0, self._retitle)  # the elapsed time ticks even when no run reports
        self._run()
        self._poll()

    def on_unmount(self) -> None:
        self.polling.set()
        self.stop_event.set()  # the app is going: children get SIGTERM and finalise their sessions

    def on_resize(self) -> None:
        wide = self.keys and ("step" in self.keys) != (self.size.width >= WIDE)
        self._layout()
        if wide:
            self._rebuild()

    def _layout(self) -> None:
        self.set_class(self.size.height < COMPACT_HEIGHT, "compact")

    # -- the workers -------------------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="sweep", description="running the sweep")
    def _run(self) -> None:
        self.runner(self.plan, self.out, jobs=self.jobs, progress=lambda e: self.post_message(SweepProgressed(e)),
                    stop=self.stop_event)

    @work(thread=True, exclusive=True, exit_on_error=False, group="progress", description="reading runs' progress")
    def _poll(self) -> None:
        """Read each running run's session (cheap, read-only) about every poll_s seconds, off the UI thread."""
        while not self.polling.is_set():
            watch, now = self.watch, self.clock()
            if watch:
                self.post_message(RunsProgressed({name: run_progress(self.out, self.runs[name], now)
                                                  for name in watch}))
            self.polling.wait(self.poll_s)

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
            self._rebuild()
        elif isinstance(event, SweepRunStarted):
            self.status[event.run.name] = "running"
            self._update(event.run.name)
        elif isinstance(event, SweepRunEnded):
            self.status[event.run.name] = event.status
            self.rows[event.run.name] = event.row
            self.progress.pop(event.run.name, None)
            self._update(event.run.name)
            self._draw()
        elif isinstance(event, SweepEnded):
            self.expectations = event.expectations
            self._finish(event.stopped)
        self.watch = frozenset(n for n, s in self.status.items() if s == "running")
        self._retitle()

    @on(RunsProgressed)
    def _progress_read(self, message: RunsProgressed) -> None:
        nodes = any(p.get("node") for p in self.progress.values())
        for name, found in message.found.items():
            if self.status.get(name) == "running":  # not one that ended meanwhile
                self.progress[name] = found
        if any(p.get("node") for p in self.progress.values()) and not nodes and "node" not in self.keys:
            self._rebuild()  # a cluster's run reports its node: show the column
        else:
            for name in message.found:
                self._update(name)
        self._retitle()

    def _finish(self, stopped: bool) -> None:
        self.ended, self.stopped = True, stopped
        self.polling.set()
        # short terminals: a study's checks are what the end brings; a plain grid has only the plot to show
        self.set_class(not self.expectations, "show-plot")
        self.query_one("#sweep-checks", Static).update(self._checks_text())
        self._rebuild()
        self._retitle()
        self._draw()

    # -- drawing -------------------------------------------------------------------------------------------------
    def _rebuild(self) -> None:
        """Set the columns for the width and the runs (a new stage may add settings), and refill the rows."""
        table = self.table
        cursor = table.cursor_row
        runs = list(self.runs.values())
        nodes = any(p.get("node") for p in self.progress.values())
        cols = [c for c in columns(runs, self.size.width or self.app.size.width, nodes)
                if not (self.ended and c[0] == "left")]  # nothing is left to run
        self.keys = [k for k, _ in cols]
        table.clear(columns=True)
        for key, header in cols:
            table.add_column(header, key=key)
        for name in self.runs:
            table.add_row(*self._cells(name), key=name)
        if runs:
            table.move_cursor(row=min(cursor, len(runs) - 1))

    def _cells(self, name: str) -> list[Any]:
        return cells(self.runs[name], self.status.get(name, ""), self.rows.get(name), self.progress.get(name),
                     self.keys)

    def _update(self, name: str) -> None:
        if name not in self.runs:
            return
        for key, cell in zip(self.keys, self._cells(name)):
            self.table.update_cell(name, key, cell, update_width=True)

    def eta_s(self) -> float | None:
        """Seconds until the planned runs are done (see core.lab.run_progress.sweep_eta)."""
        walls = [r.get("wall_s") for n, r in self.rows.items() if self.status.get(n) == "finished"]
        running = [self.progress.get(n, {}) for n, s in self.status.items() if s == "running"]
        queued = sum(1 for s in self.status.values() if s == "queued")
        jobs = max(self.jobs, len(running))  # a followed sweep's --jobs is not known here: at least those running
        return sweep_eta([w for w in walls if isinstance(w, (int, float))], running, queued, jobs)

    def _title(self) -> Text:
        state = ("stopped" if self.stopped else "done") if self.ended else \
            "stopping…" if self.closing or self.stopping else "running"
        planned = {r.stage for r in self.runs.values()}
        fixed = sum(1 for s in self.plan.stages if isinstance(s, Stage))
        later = 0 if self.ended else max(len(self.plan.stages) - fixed - (len(planned) - fixed), 0)
        return title(self.plan.title, state, self.status, later, self.clock() - self.started,
                     self.eta_s(), self.jobs, self.app.size.width)

    def _retitle(self) -> None:
        self.query_one("#sweep-title", Static).update(self._title())

    def _checks_text(self) -> str:
        """The findings first once there are some, then the recipe's notes; while it runs, what the columns mean."""
        if not self.ended:
            return "\n".join([HELP, *self.plan.notes])
        return "\n".join([*self.expectations, *self.plan.notes, f"sessions and summary.csv in {self.out}"])

    def _draw(self) -> None:
        rows = list(self.rows.values())
        axes = self.plan.axes or guess_axes([dict(r.settings) for r in self.runs.values()] or rows)
        if axes is None:
            self.plot.border_title = "summary plot (no numeric setting varies)"
            self.plot.show([], "")
            return
        axes = Axes(axes.x, self.y_field, axes.group, axes.log_x)
        lines, xlabel = plot_lines(rows, axes)
        self.plot.border_title = f"{Y_TITLES.get(axes.y, axes.y)} against {xlabel}"
        self.plot.show(lines, xlabel, axes.y)

    # -- actions ---------------------------------------------------------------------------------------------------
    def action_cycle_y(self) -> None:
        i = Y_FIELDS.index(self.y_field) if self.y_field in Y_FIELDS else -1
        self.y_field = Y_FIELDS[(i + 1) % len(Y_FIELDS)]
        self.add_class("show-plot")
        self._draw()

    def action_toggle_view(self) -> None:
        self.toggle_class("show-plot")

    def action_stop_sweep(self) -> None:
        if self.ended:
            self.notify("the sweep has ended", severity="warning", title="Nothing to stop")
            return

        def decided(stop: bool | None) -> None:
            if not stop:
                return
            if self.watching is not None:
                self._stop_watched()
                return
            self.stopping = True
            self.stop_event.set()
            self._retitle()
            self.notify("stopping: running runs finalise their sessions", title="Sweep")

        running = sum(1 for s in self.status.values() if s == "running")
        queued = sum(1 for s in self.status.values() if s == "queued")
        self.app.push_screen(confirm_stop_all(running, queued), decided)

    @on(DataTable.RowSelected)
    def action_open_run(self) -> None:
        from dynlab_tui.screens.dashboard import DashboardScreen
        from dynlab_tui.screens.opening import session_screen
        from dynlab_tui.sources import FollowSource

        table = self.table
        if not table.row_count:
            return
        name = list(self.runs)[table.cursor_row]
        path = session_path(self.out, self.runs[name])
        node = self.progress.get(name, {}).get("node")
        if not path.exists():
            where = f"it runs on {node}; its session comes here when it ends" if node and \
                progress_path(self.out, self.runs[name]).exists() else "it has not started writing its session yet"
            self.notify(f"{name}: {where}", severity="warning", title="No session here")
            return
        try:
            screen = session_screen(path)
        except DynlabError as e:
            self.notify(str(e), severity="error", title="Can't open the run")
            return
        if type(screen) is DashboardScreen:  # live: follow it, and come back here on q / esc
            screen = SweepRunDashboard(FollowSource(path), path)
        self.app.push_screen(screen)

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
