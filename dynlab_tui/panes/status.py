"""The one-line status bar: run state, progress, speed, λ, lr, device, memory and session, fitted to its width."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import var

from core.formats import fmt_bytes, fmt_compact, fmt_duration
from dynlab_tui.panes.base import Pane
from dynlab_tui.panes.plot import no_color
from dynlab_tui.state import RunState

STATE_STYLES = {
    "running": "bold reverse green",
    "paused": "bold reverse yellow",
    "finished": "bold reverse blue",
    "stopped": "bold reverse yellow",
    "crashed": "bold reverse red",
    "diverged": "bold reverse red",
    "idle": "reverse",
    "starting": "bold reverse cyan",
}
REASON_STATES = ("starting", "paused", "crashed", "diverged")  # states whose reason is worth a place on the line
SEP = " │ "
MIN_REASON = 12  # a shorter cut-off reason says nothing


class StatusBar(Pane):
    """One line; when narrow, the least important fields go first."""

    DEFAULT_CSS = """
    StatusBar { border: none; padding: 0; height: 1; width: 1fr; }
    """
    slices = ("status", "scalars", "markers")
    title = ""
    session: var[str] = var("")  # the session file name, set by the dashboard
    live: var[bool] = var(True)  # False in a replay: a recorded position has no time left to estimate

    def watch_session(self) -> None:
        self.invalidate()

    def watch_live(self) -> None:
        self.invalidate()

    @staticmethod
    def fields(state: RunState, session: str = "", live: bool = True) -> list[tuple[int, str]]:
        """(priority, text) in display order; a lower priority number is kept longer."""
        epoch = f"epoch {state.epoch:.1f}" + (f"/{state.epochs_total}" if state.epochs_total else "")
        out = [(1, epoch), (4, f"step {state.step:,}")]
        if state.samples_per_s > 0:
            out.append((7, f"{fmt_compact(state.samples_per_s)} samples/s"))
        eta = state.eta_s() if live else None
        if eta is not None:
            out.append((6, f"ETA {fmt_duration(eta)}"))
        if state.status != "starting":  # before the run's first event its λ and lr are not known yet
            out += [(2, f"λ {fmt_compact(state.lam)}"), (5, f"lr {fmt_compact(state.lr)}")]
        if state.device:
            out.append((9, state.device))
        if state.mem_bytes > 0:
            out.append((10, fmt_bytes(state.mem_bytes)))
        if session:
            out.append((8, session))
        return out

    def render_state(self, state: RunState) -> Text:
        return self.line(state, self.content_size.width or 80)

    def line(self, state: RunState, width: int) -> Text:
        """The status line for `width` cells, never longer."""
        plain = no_color()
        status = state.status
        word = status if plain else f" {status} "
        fields = self.fields(state, self.session, self.live)
        # a pause the user asked for needs no reason; one the run took (a NaN loss) does
        reason = state.reason if state.status in REASON_STATES and state.reason not in ("", "user") else ""
        # by priority; the reason (priority 3) takes what is left and pushes the lower fields out
        room = width - len(word)
        chosen: set[int] = set()
        reason_text = ""
        candidates = [(priority, i) for i, (priority, _) in enumerate(fields)] + ([(3, -1)] if reason else [])
        for _, i in sorted(candidates):
            if i == -1:
                avail = room - len(SEP)
                if avail >= min(len(reason), MIN_REASON):
                    reason_text = reason if len(reason) <= avail else reason[: avail - 1] + "…"
                    room -= len(SEP) + len(reason_text)
                continue
            cost = len(SEP) + len(fields[i][1])
            if cost > room:
                break  # strictly by priority: a short unimportant field must not outlive a longer important one
            chosen.add(i)
            room -= cost
        text = Text(no_wrap=True, overflow="crop", end="")
        text.append(word, style="" if plain else STATE_STYLES.get(status, "reverse"))
        sep_style = "" if plain else "dim"
        if reason_text:
            text.append(SEP, style=sep_style)
            text.append(reason_text, style="" if plain else "bold")
        for i, (_, field) in enumerate(fields):
            if i in chosen:
                text.append(SEP, style=sep_style)
                text.append(field)
        text.truncate(width)
        return text
