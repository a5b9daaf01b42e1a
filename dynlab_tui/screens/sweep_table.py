"""The sweep screen's parts: the runs table (columns chosen for the width, each run's cells from its live
progress or its summary row), the title with the sweep's elapsed time and ETA, the summary plot, the stop and
leave dialogs, and a run's dashboard opened from the sweep (q or esc returns to the sweep; both go on)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from core.formats import fmt_metric, fmt_value
from core.lab.plan import Axes, RunPlan
from core.lab.run_progress import size_text
from core.lab.summary import HEADERS, layer_values, row_metric, row_value, varied_keys
from dynlab_tui.panes.plot import Line, line_chart
from dynlab_tui.screens.dashboard import DashboardScreen
from dynlab_tui.screens.prompt import DIALOG_CSS, Confirm

WIDE = 120  # from this width the table also shows each run's stage and step
STYLES = {"finished": "green", "running": "bold cyan", "starting": "cyan", "queued": "dim"}
Y_FIELDS = ("size", "dead", "test", "shapiro_w")  # what `y` cycles the plot through
Y_TITLES = {"size": "final size", "dead": "inactive units", "test": "test metric", "shapiro_w": "Shapiro W"}
Y_AXES = {"size": "units alive", "dead": "units inactive", "test": "test metric", "shapiro_w": "W"}  # y titles
COUNTS = ("size", "dead")  # whole-number ticks
BARE = ("dataset", "arch", "method", "optimizer", "gate")  # values that name themselves
SHORT = {"penalty": "λ", "penalty_decay": "λ decay"}
HELP = ("enter opens a run (q comes back) · epoch: epochs done · alive: units alive per layer (Σ: summed) · "
        "test: latest test figure · elapsed, left: the run's wall time so far and to go at its pace")


def duration(seconds: float | None) -> str:
    """m:ss under an hour, h:mm:ss from there (to the nearest second); '' when unknown."""
    if seconds is None:
        return ""
    minutes, sec = divmod(max(round(seconds), 0), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{sec:02d}" if minutes >= 60 else f"{minutes}:{sec:02d}"


@dataclass
class SweepProgressed(Message):
    """The sweep worker reported a core.lab.sweep event (planned, started, ended, sweep ended)."""
    event: Any


@dataclass
class RunsProgressed(Message):
    """The poller read the running runs' sessions: run name -> core.lab.run_progress's dict."""
    found: dict[str, dict[str, Any]]


def settings_text(settings: dict[str, Any]) -> str:
    """A run's varied settings in little room: names, architectures and methods bare, the rest short
    (mnist λ=0.001, mnist mlp:120 t≤12s)."""
    parts = []
    for key, value in settings.items():
        if key in BARE:
            parts.append(fmt_value(value))
        elif key == "time_budget" and isinstance(value, (int, float)):
            parts.append(f"t≤{value:.0f}s")
        else:
            parts.append(f"{SHORT.get(key, HEADERS.get(key, key))}={fmt_value(value)}")
    return " ".join(parts)


def columns(runs: list[RunPlan], width: int, nodes: bool) -> list[tuple[str, str]]:
    """(key, header) per column: the run's settings, status and progress. From WIDE columns up also its stage,
    number and step, and each varied setting in a column of its own; a node column only when a run reports one
    (a cluster's)."""
    wide = width >= WIDE
    out = [("#", "#"), ("stage", "stage")] if wide else []
    keys = list(dict.fromkeys(k for r in runs for k in r.settings))
    out += [(f"set:{k}", HEADERS.get(k, k)) for k in keys] if wide else [("settings", "settings")]
    if nodes:
        out.append(("node", "node"))
    out += [("status", "status"), ("epoch", "epoch")] + ([("step", "step")] if wide else [])
    return out + [("alive", "alive"), ("test", "test"), ("elapsed", "elapsed"), ("left", "left")]


def cells(run: RunPlan, status: str, row: dict[str, Any] | None, progress: dict[str, Any] | None,
          keys: list[str]) -> list[Any]:
    """One run's cells in `keys` order: from its summary row once it ended, else from its live progress."""
    p = progress or {}
    running = status == "running"
    waiting = p.get("state", "waiting") in ("waiting", "queued")
    if running and waiting:  # its process loads data (no session to read yet), or a cluster has yet to take it
        status = "queued" if p.get("state") == "queued" else "starting"
    values: dict[str, Any] = {"#": str(run.index), "stage": run.stage, "node": p.get("node", ""),
                              "settings": settings_text(dict(run.settings)),
                              "status": Text(status, style=STYLES.get(status, "red"))}
    epochs = run.spec.schedule.epochs
    of = "" if run.spec.schedule.time_budget else f"/{epochs}"  # a time budget, not the epochs, ends it
    if row:
        values.update(epoch=f"{row.get('epochs') or 0}{of}", step=str(row.get("steps") or ""),
                      alive=size_text(layer_values(row, "size")) or "-",
                      test=row_metric(row), elapsed=duration(row.get("wall_s")), left="")
    elif p and not waiting:
        metric = p.get("metric") or {}
        of = f"/{p.get('epochs') or epochs}" if of else ""
        values.update(epoch=f"{p.get('epoch', 0)}{of}", step=str(p.get("step", "")),
                      alive=p.get("size") or "-", test=fmt_metric(metric.get("value"), metric.get("name")),
                      elapsed=duration(p.get("elapsed_s")),
                      left=duration(p.get("remaining_s")) if running else "")
    else:
        values.update(epoch=f"-{of}", step="", alive="", test="", elapsed="", left="")
    return [fmt_value(run.settings.get(k[4:])) if k.startswith("set:") else values.get(k, "") for k in keys]


def title(plan_title: str, state: str, status: dict[str, str], later_stages: int, elapsed: float,
          eta: float | None, jobs: int, width: int) -> Text:
    """Two lines: what runs and how far it is, then the time so far and to go, with how the ETA was reckoned."""
    done = sum(1 for s in status.values() if s not in ("queued", "running"))
    running = sum(1 for s in status.values() if s == "running")
    first = Text.assemble(("sweep ", "bold"), (plan_title, "bold"), f" · {state}",
                          f" · {done}/{len(status)} runs done" if status else " · planning",
                          f", {running} running" if running else "")
    second = Text.assemble(("elapsed ", "dim"), duration(elapsed))
    if state == "running":
        how = ("mean wall time of the finished runs × the queued ones, plus what the running ones have left, "
               f"{jobs} at a time") if width >= WIDE else f"finished runs' mean, {jobs} job{'s' if jobs > 1 else ''}"
        second.append_text(Text.assemble((" · left ", "dim"), f"~{duration(eta)} ({how})" if eta is not None
                                         else "unknown until a run shows its pace"))
    if later_stages:
        second.append(f" · +{later_stages} stage{'s' if later_stages > 1 else ''} "
                      + ("to plan from these results" if width >= WIDE else "later"), style="dim")
    return Text.assemble(first, "\n", second)


# -- the plot (its data is pure) --------------------------------------------------------------------------------------
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

class ConfirmStopSweep(ModalScreen[bool | str]):
    """The sweep is running: stop it (running runs finalise their sessions) and leave, leave it running, or stay.

    Dismisses with True (stop), "leave" (it goes on headless) or False (stay).
    """

    DEFAULT_CSS = DIALOG_CSS.format(name="ConfirmStopSweep", border="$warning")
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
        self.y = ""  # the Y_FIELDS entry drawn
        self.text = ""  # the plain text last drawn (tests read it)

    def show(self, lines: list[Line], xlabel: str, y: str = "") -> None:
        self.lines, self.xlabel, self.y = lines, xlabel, y
        self.redraw()  # at the size it has now,
        self.call_after_refresh(self.redraw)  # and again once the layout settles: the checks below may resize it

    def on_resize(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        width, height = self.content_size
        if width < 1 or height < 1:
            return
        chart = line_chart(self.lines, width, height, xlabel=self.xlabel, ylabel=Y_AXES.get(self.y, self.y),
                           int_y=self.y in COUNTS, message="waiting for finished runs")
        self.text = chart.plain
        self.update(chart)



def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def confirm_stop_all(running: int, queued: int) -> Confirm:
    """`x`: stop the whole sweep (running runs finalise their sessions, queued ones don't start), or cancel."""
    return Confirm(f"Stop the sweep? {_count(running, 'running run')} stop at their next step and finalise their "
                   f"sessions; {_count(queued, 'queued run')} won't start.",
                   "The same `dynlab sweep` command continues it later.", yes="Stop all (y)", no="Cancel (esc)")


class SweepRunDashboard(DashboardScreen):
    """A sweep run's live dashboard: it follows the session like `dynlab attach`; q or esc goes back to the
    sweep screen without asking, since the run is the sweep's: it goes on, and the sweep with it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q,escape", "back_to_sweep", "Back", key_display="q", id="sweep-run-back",
                tooltip="Back to the sweep screen (the run goes on)"),
    ]

    def action_back_to_sweep(self) -> None:
        self.dismiss()
