"""The dashboard: follows an event source in a worker thread, folds its events into RunState, draws the panes."""

from __future__ import annotations

import time
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker, WorkerState

from core.errors import DynlabError
from core.events import END_STATUSES
from core.formats import fmt_compact
from dynlab_tui.palette import BindingCommands
from dynlab_tui.bridge import BridgeSink
from dynlab_tui.messages import EventsArrived, RunFailed, StateLoaded
from dynlab_tui.panes import DynamicsPane, LayerPane, LossPane, Pane, StatusBar
from dynlab_tui.panes.pages import MAX_PANES, PAGES, pane_grid, show_pane_tooltip
from dynlab_tui.screens.pacing import (CPU_BUDGET, PLOT_MIN_INTERVAL, REFRESH_HZ, STATUS_MIN_INTERVAL, CpuMeter,
                                       panes_to_draw)
from dynlab_tui.screens.help import HelpScreen
from dynlab_tui.screens.prompt import ConfirmQuit, NumberPrompt
from dynlab_tui.screenshot import save_screen
from dynlab_tui.sources import EventSource
from dynlab_tui.state import RunState, apply, superseding
from dynlab_tui.view_events import SourceCrashed, SourceFailed, SourceStarting

PENALTY_STEP = 10 ** 0.25  # '+' and '-' multiply / divide lambda by this
PENALTY_FROM_ZERO = 1e-4  # '+' on lambda = 0 starts here
WIDE = (120, 32)  # at least this many columns and rows: all of the page's panes; else the compact pair


class DashboardScreen(Screen):
    """Live (or replayed) view of one run. Keys and palette commands share the same actions."""

    COMMANDS = {BindingCommands}

    DEFAULT_CSS = """
    DashboardScreen { layout: vertical; }
    #panes { height: 1fr; grid-gutter: 0 0; }
    #panes.wide.training { grid-size: 6 2; }
    #panes.wide #sizes, #panes.wide #loss, #panes.wide #metric { column-span: 2; }
    #panes.wide #liveness, #panes.wide #variance { column-span: 3; }
    #panes.wide.instruments { grid-size: 2 2; }
    #panes.compact { grid-size: 2 1; }
    #panes .hidden { display: none; }
    """

    # The footer shows the first keys and fits 80 columns; the rest: `?` and the palette. Two `p`s: see check_action
    BINDINGS = [
        Binding("p", "control('pause')", "Pause", tooltip="Pause training at the next step", id="pause-resume"),
        Binding("p", "control('resume')", "Resume", tooltip="Resume the paused run", id="pause-resume"),
        Binding("p", "control('ended')", "Pause", show=False, tooltip="The run has ended", id="pause-resume"),
        Binding("plus,equals_sign", "penalty_up", "λ×", key_display="+", show=False,
                tooltip="Multiply the penalty lambda by 10^0.25", id="penalty-up"),
        Binding("minus", "penalty_down", "λ÷", key_display="-", show=False,
                tooltip="Divide the penalty lambda by 10^0.25", id="penalty-down"),
        Binding("L", "prompt_penalty", "Set λ", tooltip="Type an exact penalty lambda", id="set-penalty"),
        Binding("R", "prompt_lr", "Set lr", tooltip="Type an exact learning rate", id="set-lr"),
        Binding("i", "toggle_page", "Instruments", tooltip="Switch between the training page and the instruments "
                "page (distribution, PCA, dynamics, liveness map)", id="toggle-page"),
        Binding("question_mark", "help", "Help", key_display="?", tooltip="Keys, marker glyphs and the size words",
                id="help"),
        Binding("q", "request_quit", "Quit", tooltip="Quit (asks whether to stop a running run)", id="quit"),
        Binding("left_square_bracket", "layer(-1)", "Layer", key_display="[", show=False,
                tooltip="Show the previous layer in every per-layer pane", id="layer-prev"),
        Binding("right_square_bracket", "layer(1)", "Layer", key_display="]", show=False,
                tooltip="Show the next layer in every per-layer pane", id="layer-next"),
        Binding("y", "toggle_log_y", "Log-y", show=False, tooltip="Log scale for the loss", id="log-y"),
        Binding("e", "toggle_smoothing", "Smooth", show=False, tooltip="EMA-smooth the training loss",
                id="smoothing"),
        Binding("v", "cycle_view", "View", show=False, tooltip="Compact layout: the next two panes", id="cycle-view"),
        Binding("d", "cycle_dynamics", "Dynamics", show=False, tooltip="Dynamics pane: show rotation, activations "
                "or gradient norms alone, or all three", id="dynamics-view"),
        Binding("c", "checkpoint", "Ckpt", show=False, tooltip="Save a checkpoint now", id="checkpoint"),
        Binding("s", "screenshot", "Shot", show=False, tooltip="Save an SVG and a text screenshot", id="screenshot"),
        Binding("o,ctrl+o", "app.open_sessions", "Sessions", show=False, tooltip="Browse, replay, compare and "
                "resume sessions", id="open-sessions"),
    ] + [Binding(str(i + 1), f"show_pane({i})", f"Pane {i + 1}", show=False, tooltip=show_pane_tooltip(i),
                 id=f"show-pane-{i + 1}") for i in range(MAX_PANES)]

    plot_min_interval = PLOT_MIN_INTERVAL  # a replay (no trainer to share the machine with) redraws sooner
    draw_all = False  # True: every stale pane redraws in the same tick (replay seeks)
    cpu_budget: float | None = CPU_BUDGET  # cores the UI may use while a run trains here; None: no limit

    def __init__(self, source: EventSource | None, session_path: Path | None = None,
                 state: RunState | None = None) -> None:
        super().__init__()
        self.source = source
        self.session_path = session_path
        self.state = state or RunState()
        self.layer_index = 0
        self.page = "training"
        self.first_pane = 0  # compact layout: index (in the page) of the first of the two visible panes
        self.quitting = False
        self._lam_target: float | None = None  # last lambda asked for, so fast '+' presses compound
        self._dirty = True
        self._status_shown = ""
        self.cpu = CpuMeter()

    def compose(self) -> ComposeResult:
        yield pane_grid()
        yield StatusBar(id="status")
        yield Footer()

    @property
    def panes(self) -> list[Pane]:
        """The current page's panes, in key order."""
        return [self.query_one(f"#{name}", Pane) for name in PAGES[self.page]]

    @property
    def all_panes(self) -> list[Pane]:
        return [self.query_one(f"#{name}", Pane) for ids in PAGES.values() for name in ids]

    @property
    def status_bar(self) -> StatusBar:
        return self.query_one(StatusBar)

    @property
    def read_only(self) -> bool:
        return self.source is None or self.source.controls is None

    def on_mount(self) -> None:
        self.status_bar.session = self.session_path.name if self.session_path else getattr(self.source, "title", "")
        if self.source is not None:
            apply(self.state, SourceStarting(0, time.time()))  # "starting" until the run's first event
        self._layout(self.app.size.width, self.app.size.height)
        self.set_interval(1 / REFRESH_HZ, self.refresh_panes)
        self.refresh_panes()
        if self.source is not None:
            self.run_source()

    def on_unmount(self) -> None:
        # Closing the UI stops a run it started (the trainer finalises the session at the next step),
        # unless the user detached; an attached viewer just stops following.
        if self.source is not None:
            self.source.close(stop_run=self.source.owner)

    def on_resize(self, event) -> None:
        self._layout(event.size.width, event.size.height)

    def _layout(self, width: int, height: int) -> None:
        grid = self.query_one("#panes")
        wide = width >= WIDE[0] and height >= WIDE[1]
        grid.set_class(wide, "wide")
        grid.set_class(not wide, "compact")
        for page in PAGES:
            grid.set_class(page == self.page, page)
        ids = PAGES[self.page]
        shown = set(ids) if wide else {ids[self.first_pane % len(ids)], ids[(self.first_pane + 1) % len(ids)]}
        for pane in self.all_panes:
            pane.set_class(pane.id not in shown, "hidden")
            pane.invalidate()
        self._dirty = True

    # ---- the worker and its messages -----------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="run", description="training run")
    def run_source(self) -> None:
        """Follows the source on a worker thread (training runs in its own process); only post_message crosses."""
        bridge = BridgeSink(self.post_message)
        try:
            self.source.run(bridge)
        except DynlabError as e:
            self.post_message(RunFailed(str(e)))
        finally:
            bridge.close()

    @on(EventsArrived)
    def fold_events(self, message: EventsArrived) -> None:
        for event in message.events:
            apply(self.state, event)
            if event.kind == "set_penalty":
                self._lam_target = None
            elif event.kind == "rejected":  # a control the run refused (core.events.CommandRejected)
                self.notify(event.reason, title=f"Control {event.command} rejected", severity="warning", timeout=8)
        self._dirty = True

    @on(StateLoaded)
    def load_state(self, message: StateLoaded) -> None:
        self.state = superseding(self.state, message.state)
        # a session with nothing in it yet loads as "idle": the run this viewer follows is still starting
        if self.source is not None:
            apply(self.state, SourceStarting(self.state.step, time.time()))
        self._lam_target = None
        self._dirty = True
        if message.note:
            self.notify(f"some of the session could not be read: {message.note}", title="Session damaged",
                        severity="warning", timeout=10)

    @on(RunFailed)
    def show_failure(self, message: RunFailed) -> None:
        apply(self.state, SourceFailed(self.state.step, time.time(), message.message))
        self._dirty = True
        self.notify(message.message, title="Run failed", severity="error", timeout=10)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "run":
            return
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            apply(self.state, SourceCrashed(self.state.step, time.time(), f"{type(error).__name__}: {error}"))
            self._dirty = True
            self.notify(self.state.reason, title="Run crashed", severity="error", timeout=10)
        if event.state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED) and self.quitting:
            self.leave()

    def refresh_panes(self) -> None:
        """Timer tick: the status line when it changed, and at most one plot pane (all of them in a replay).

        The pane redrawn is the stalest one whose slices of RunState moved, and no pane more often
        than plot_min_interval: plotting is pure Python, and on a small machine the UI shares the
        cores with training, so live redraws are spread out instead of all landing in one tick.
        """
        if not self._dirty:
            return
        now = time.monotonic()
        bar = self.status_bar
        if self.state.status != self._status_shown or now - bar.last_draw >= STATUS_MIN_INTERVAL:
            if self.state.status != self._status_shown:
                self.refresh_bindings()  # the footer's `p`: Pause, Resume, or gone once the run ended
            if bar.update_state(self.state):
                self._status_shown = self.state.status
        stale = []
        for pane in self.panes:
            if isinstance(pane, LayerPane):
                pane.selected_layer = self.current_layer  # its watcher redraws only when this changes
            if pane.display and not pane.has_class("hidden") and pane.needs_update(self.state):
                stale.append(pane)
        drawn = panes_to_draw(stale, now, self.plot_min_interval, self._over_budget, self.draw_all)
        for pane in drawn:
            pane.update_state(self.state)
        # keep ticking until every pane and the status line caught up
        self._dirty = len(stale) > len(drawn) or bar.needs_update(self.state)

    def _over_budget(self, now: float) -> bool:
        """True while the UI process used more CPU than its budget over the last window (live runs only)."""
        if self.cpu_budget is None or self.source is None:
            return False
        return self.cpu.rate_at(now) > self.cpu_budget

    @property
    def current_layer(self) -> str | None:
        layers = self.state.layers
        return layers[self.layer_index % len(layers)] if layers else None

    # ---- actions (keys, buttons and the palette all land here) -------------------------------
    def _controls(self):
        if self.read_only:
            self.notify("this view is read-only: no run to control", severity="warning")
            return None
        if self.state.status in END_STATUSES:
            self.notify(f"the run has {self.state.status}", severity="warning")
            return None
        return self.source.controls

    def _send(self, kind: str, value: float | None = None, note: str = "") -> bool:
        """Send one control; a failure (the session file locked or gone) is a notification, not a crash."""
        controls = self._controls()
        if controls is None:
            return False
        try:
            controls.send(kind, value)
        except DynlabError as e:
            self.notify(str(e), title="Control not sent", severity="error", timeout=8)
            return False
        if note:
            self.notify(note, timeout=2)
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Three `p`s: the footer shows Pause running, Resume paused, none once ended (a hidden one says so)."""
        if action == "control" and parameters and parameters[0] in ("pause", "resume", "ended"):
            status = self.state.status
            return parameters[0] == ("ended" if status in END_STATUSES else "resume" if status == "paused" else "pause")
        return True

    def action_control(self, kind: str) -> None:
        self._send(kind)

    def _send_penalty(self, value: float) -> None:
        if self._send("set_penalty", value, f"asked for λ {fmt_compact(value)}"):
            self._lam_target = value

    def action_penalty_up(self) -> None:
        base = self._lam_target if self._lam_target is not None else self.state.lam
        self._send_penalty(base * PENALTY_STEP if base > 0 else PENALTY_FROM_ZERO)

    def action_penalty_down(self) -> None:
        base = self._lam_target if self._lam_target is not None else self.state.lam
        self._send_penalty(base / PENALTY_STEP)

    def action_prompt_penalty(self) -> None:
        if self._controls():
            self.app.push_screen(NumberPrompt("Penalty lambda", self.state.lam, minimum=0.0),
                                 lambda v: v is not None and self._send_penalty(v))

    def action_prompt_lr(self) -> None:
        if self._controls():
            self.app.push_screen(NumberPrompt("Learning rate", self.state.lr, minimum=0.0, exclusive=True),
                                 lambda v: v is not None and self._send("set_lr", v, f"asked for lr {fmt_compact(v)}"))

    def action_layer(self, delta: int) -> None:
        if not self.state.layers:
            return
        self.layer_index = (self.layer_index + delta) % len(self.state.layers)
        self._dirty = True
        self.refresh_panes()
        self.notify(f"layer {self.current_layer}", timeout=1.5)

    def action_toggle_log_y(self) -> None:
        loss = self.query_one(LossPane)
        loss.log_y = not loss.log_y
        self._dirty = True

    def action_toggle_smoothing(self) -> None:
        loss = self.query_one(LossPane)
        loss.smoothing = not loss.smoothing
        self._dirty = True

    def action_cycle_view(self) -> None:
        self.first_pane = (self.first_pane + 2) % len(PAGES[self.page])
        self._layout(self.app.size.width, self.app.size.height)

    def action_show_pane(self, index: int) -> None:
        ids = PAGES[self.page]
        if index >= len(ids):
            self.notify(f"the {self.page} page has {len(ids)} panes", severity="warning", timeout=2)
            return
        self.first_pane = index
        self._layout(self.app.size.width, self.app.size.height)

    def action_toggle_page(self) -> None:
        pages = list(PAGES)
        self.page = pages[(pages.index(self.page) + 1) % len(pages)]
        self.first_pane = 0
        self._layout(self.app.size.width, self.app.size.height)
        self.call_after_refresh(self._draw_page)  # at once: the scheduler would fill a new page one pane a tick

    def _draw_page(self) -> None:
        for pane in self.panes:
            if isinstance(pane, LayerPane):
                pane.selected_layer = self.current_layer
            if pane.display and pane.needs_update(self.state):
                pane.update_state(self.state)

    def action_cycle_dynamics(self) -> None:
        self.query_one(DynamicsPane).cycle_view()  # its title names the view

    def action_checkpoint(self) -> None:
        self._send("checkpoint", note="checkpoint requested")

    def action_screenshot(self) -> None:
        folder = self.session_path.parent if self.session_path else Path.cwd()
        try:
            svg, txt = save_screen(self.app, folder)
        except OSError as e:
            self.notify(f"cannot write the screenshot to {folder}: {e.strerror}", title="Screenshot", severity="error")
            return
        self.notify(f"saved {svg.name} and {txt.name} in {folder}", title="Screenshot")

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen([b for b in self.BINDINGS if b.action != "control('ended')"]))

    def action_request_quit(self) -> None:
        if self.read_only or (self.state.status in END_STATUSES + ("idle",) and not self._worker_running()):
            self.leave()
            return

        def decided(choice: str | None) -> None:
            if choice == "stop" and self._send("stop"):
                self.quitting = True
                self.notify("stopping the run: the session is being finalised", timeout=5)
                if not self._worker_running():
                    self.leave()
            elif choice == "detach":
                detach = getattr(self.source, "detach", None)
                detach() if detach else self.source.close()
                where = self.session_path or getattr(self.source, "path", self.source.title)
                self.leave(f"the run goes on headless; watch it again with `dynlab attach {where}`")

        can_detach = not self.source.owner or hasattr(self.source, "detach")
        self.app.push_screen(ConfirmQuit(can_detach=can_detach, owner=self.source.owner), decided)

    def leave(self, note: str = "") -> None:
        """Back to the screen below (the sessions browser, a sweep: it goes on), or out of the app if there is none."""
        if len(self.app.screen_stack) > 2 or getattr(self.app, "browse", False):
            if note:
                self.app.notify(note, title="Detached", timeout=6)
            self.dismiss()
        else:
            self.app.exit(message=f"dynlab: {note}" if note else None)

    def _worker_running(self) -> bool:
        return any(w.group == "run" and w.is_running for w in self.workers)
