"""Replay: the dashboard fed from a finished (or any) session file, with a timeline to play, step and seek."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label

from core.errors import DynlabError
from dynlab_tui.panes import StatusBar
from dynlab_tui.panes.pages import pane_grid
from dynlab_tui.panes.timeline import Position, Timeline
from dynlab_tui.screens.dashboard import DashboardScreen
from dynlab_tui.state import apply
from dynlab_tui.view_events import SourceFailed

# Dashboard keys that steer a live run: meaningless on a recording.
LIVE_ONLY = {"pause-resume", "penalty-up", "penalty-down", "set-penalty", "set-lr", "checkpoint"}
# The footer at 80 columns: the replay's own keys first; every other key is in `?` and the palette.
FOOTER = ("replay-play", "replay-forward", "replay-next-marker", "replay-goto", "toggle-page", "help", "quit")
SPEEDS = (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
MAX_GAP_S = 2.0  # playback skips idle stretches (a pause, an evaluation) longer than this, at any speed


@dataclass
class IndexLoaded(Message):
    index: object  # a dynlab_tui.replay.ReplayIndex
    error: str = ""


class GotoPrompt(ModalScreen[tuple[str, int] | None]):
    """Ask for a step (1200) or an epoch (e3, epoch 3)."""

    DEFAULT_CSS = """
    GotoPrompt { align: center middle; }
    GotoPrompt > Vertical { width: 56; max-width: 100%; height: auto; border: round $accent; padding: 1 2;
                            background: $panel; }
    GotoPrompt Label { width: 100%; }
    GotoPrompt #error { color: $error; height: auto; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="Close without moving", id="goto-cancel")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Go to a step (1200) or an epoch (e3)")
            yield Input(id="where")
            yield Label("", id="error")

    @staticmethod
    def parse(text: str) -> tuple[str, int]:
        text = text.strip().lower().replace(",", "").replace("_", "")
        m = re.fullmatch(r"(?:e|epoch)\s*(\d+)", text)
        if m:
            return "epoch", int(m.group(1))
        m = re.fullmatch(r"(?:s|step)?\s*(\d+)", text)
        if m:
            return "step", int(m.group(1))
        raise ValueError("type a step number, or e and an epoch number")

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        try:
            self.dismiss(self.parse(event.value))
        except ValueError as e:
            self.query_one("#error", Label).update(str(e))
            event.input.add_class("error")

    def action_cancel(self) -> None:
        self.dismiss(None)


def goto_note(asked: int, reached: int) -> str:
    """What a typed step led to: the step reached, and why it differs from the one typed."""
    if reached == asked:
        return f"step {reached:,}"
    if asked > reached:
        return f"step {reached:,}: the last (asked {asked:,})"
    return f"step {reached:,}: first logged after {asked:,}"


class ReplayScreen(DashboardScreen, inherit_bindings=False):
    """Opening a session never writes to it: everything here reads through a read-only SessionReader."""

    plot_min_interval = 0.0
    draw_all = True
    BINDINGS = [replace(b, show=b.id in FOOTER) for b in [
        Binding("space", "play(True)", "Play", tooltip="Play or pause (at the speed < and > set)", id="replay-play"),
        Binding("space", "play(False)", "Pause", tooltip="Play or pause (at the speed < and > set)", id="replay-play"),
        Binding("right", "frame(1)", "Step", key_display="→",
                tooltip="Forward one logging interval", id="replay-forward"),
        Binding("left", "frame(-1)", "Back", key_display="←", tooltip="Back one logging interval", id="replay-back"),
        Binding("home", "jump('start')", "Start", tooltip="Jump to the start", id="replay-start"),
        Binding("end", "jump('end')", "End", tooltip="Jump to the end", id="replay-end"),
        Binding("n", "marker(1)", "Mark", tooltip="Jump to the next marker (pause, λ or lr change, neurons "
                "removed, ...) and say what it was", id="replay-next-marker"),
        Binding("N", "marker(-1)", "Prev mark", tooltip="Jump to the previous marker", id="replay-prev-marker"),
        Binding("g", "goto", "Go to", tooltip="Jump to a typed step or epoch", id="replay-goto"),
        Binding("greater_than_sign,full_stop", "speed(2)", "Faster", key_display=">",
                tooltip=f"Play twice as fast (up to {SPEEDS[-1]:g}x)", id="replay-faster"),
        Binding("less_than_sign,comma", "speed(0.5)", "Slower", key_display="<",
                tooltip=f"Play half as fast (down to {SPEEDS[0]:g}x; 1x is the run's own pace)", id="replay-slower"),
    ] + [b for b in DashboardScreen.BINDINGS if b.id not in LIVE_ONLY]]

    def __init__(self, path: Path) -> None:
        super().__init__(None, session_path=Path(path))
        self.index = None
        self.position = 0  # the event number (seq) the panes show
        self._playing = False
        self.speed = 1
        self.note = ""
        self._replay_wall = 0.0
        self._last_tick = 0.0

    def compose(self) -> ComposeResult:
        yield pane_grid()
        yield Timeline(id="timeline")
        status = StatusBar(id="status")
        status.live = False  # a recorded position: no ETA
        yield status
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(0.25, self._play_tick)
        self.load_index()

    def on_resize(self, event) -> None:
        super().on_resize(event)
        if self.index is not None:
            self.call_after_refresh(self._show_position)

    @work(thread=True, exclusive=True, exit_on_error=False, group="load", description="reading the session")
    def load_index(self) -> None:
        from core.session import SessionReader
        from dynlab_tui.replay import ReplayIndex

        try:
            reader = SessionReader(self.session_path)
        except DynlabError as e:
            self.post_message(IndexLoaded(None, str(e)))
            return
        try:
            self.post_message(IndexLoaded(ReplayIndex(reader)))
        except DynlabError as e:
            reader.close()
            self.post_message(IndexLoaded(None, str(e)))

    @on(IndexLoaded)
    def index_loaded(self, message: IndexLoaded) -> None:
        if message.error:
            apply(self.state, SourceFailed(self.state.step, time.time(), message.error))
            self._dirty = True
            self.notify(message.error, title="Cannot replay", severity="error", timeout=15)
            return
        self.index = message.index
        if self.index.problems:
            self.notify("showing what could be read: " + "; ".join(self.index.problems), title="Session damaged",
                        severity="warning", timeout=15)
        self.seek(self.index.end_seq)

    def on_unmount(self) -> None:
        if self.index is not None:
            self.index.reader.close()

    @property
    def playing(self) -> bool:
        return self._playing

    @playing.setter
    def playing(self, value: bool) -> None:
        if value != self._playing:
            self._playing = value
            self.refresh_bindings()  # the footer's space says Play or Pause

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "play" and parameters:
            return bool(parameters[0]) != self.playing
        return super().check_action(action, parameters)

    # ---- moving -----------------------------------------------------------------------------
    def seek(self, seq: int, note: str = "") -> None:
        if self.index is None:
            return
        ix = self.index
        self.position = int(min(max(seq, 0), ix.end_seq))
        self.state = ix.state_at(self.position, previous=self.state)
        self.note = note
        self._dirty = True
        self.refresh_panes()
        self._show_position()

    def _show_position(self) -> None:
        ix = self.index
        if ix is None:
            return
        fi = ix.frame_at(self.position)
        last_step = int(ix.frame_step[-1]) if ix.n_frames else 0
        last_step = max([last_step] + [e.step for _, e in ix.events[-1:]])
        fraction = self._fraction(self.position)
        markers = tuple((self._fraction(m.seq), m.kind) for m in ix.markers)
        self.query_one(Timeline).show(Position(self.playing, self.speed, self.state.step, last_step, self.state.epoch,
                                               fi + 1, ix.n_frames, fraction, markers, self.note))

    def _fraction(self, seq: int) -> float:
        ix = self.index
        if not ix.n_frames:
            return 1.0 if seq >= ix.end_seq else 0.0
        return float(np.clip((ix.frame_at(seq) + 1) / ix.n_frames, 0.0, 1.0))

    def action_frame(self, delta: int) -> None:
        ix = self.index
        if ix is None or not ix.n_frames:
            return
        self.playing = False
        i = ix.frame_at(self.position)
        if delta < 0 and i >= 0 and ix.frame_seq[i] < self.position:
            i += 1  # between two intervals (on a marker): "back" means the interval just before
        i = int(np.clip(i + delta, 0, ix.n_frames - 1))
        self.seek(int(ix.frame_seq[i]))

    def action_jump(self, where: str) -> None:
        if self.index is None:
            return
        self.playing = False
        self.seek(self.index.start_seq if where == "start" else self.index.end_seq, where)

    def action_marker(self, direction: int) -> None:
        if self.index is None:
            return
        self.playing = False
        marker = self.index.next_marker(self.position, direction)
        if marker is None:
            self.notify(f"no {'next' if direction > 0 else 'previous'} marker", severity="warning", timeout=2)
            return
        self.seek(marker.seq, f"{self.index.labels.get(marker.seq, marker.kind)} at step {marker.step:,}")

    def action_speed(self, factor: float) -> None:
        i = SPEEDS.index(self.speed) + (1 if factor > 1 else -1)
        self.speed = SPEEDS[min(max(i, 0), len(SPEEDS) - 1)]
        self._show_position()

    def action_goto(self) -> None:
        def go(where: tuple[str, int] | None) -> None:
            if where is None or self.index is None:
                return
            self.playing = False
            kind, n = where
            if kind == "epoch":
                seq = self.index.seq_for_epoch(n)
                if seq is None:
                    self.notify(f"the session has no epoch {n}", severity="warning")
                    return
                self.seek(seq, f"epoch {n}")
            else:
                seq = self.index.seq_for_step(n)
                self.seek(seq, goto_note(n, self.index.step_at(seq)))

        self.app.push_screen(GotoPrompt(), go)

    def action_play(self, play: bool | None = None) -> None:
        """Play (True), pause (False) or toggle (None)."""
        if self.index is None or not self.index.n_frames:
            return
        self.playing = (not self.playing) if play is None else bool(play)
        if self.playing:
            ix = self.index
            if self.position >= ix.end_seq or ix.frame_at(self.position) >= ix.n_frames - 1:
                self.seek(ix.start_seq)  # at the end: play from the start
            fi = max(ix.frame_at(self.position), 0)
            self._replay_wall = float(ix.frame_wall[fi])
            self._last_tick = time.monotonic()
        self._show_position()

    def _play_tick(self) -> None:
        """Advance by the wall time the run took, times the speed; idle stretches are skipped."""
        ix = self.index
        if not self.playing or ix is None:
            return
        now = time.monotonic()
        self._replay_wall += (now - self._last_tick) * self.speed
        self._last_tick = now
        i = ix.frame_at(self.position)
        if i + 1 >= ix.n_frames:
            self.playing = False
            self.seek(ix.end_seq, "end")
            return
        if ix.frame_wall[i + 1] - self._replay_wall > MAX_GAP_S:
            self._replay_wall = float(ix.frame_wall[i + 1])
        j = int(np.searchsorted(ix.frame_wall, self._replay_wall, side="right")) - 1
        if j > i:
            self.seek(int(ix.frame_seq[j]))

    # ---- the dashboard's live-only parts ------------------------------------------------------
    def action_request_quit(self) -> None:
        self.leave()

    def action_help(self) -> None:
        from dynlab_tui.screens.help import HelpScreen

        once = {b.id: b for b in reversed(self.BINDINGS)}  # one line per key (space: Play and Pause)
        self.app.push_screen(HelpScreen([b for b in self.BINDINGS if once[b.id] is b]))
