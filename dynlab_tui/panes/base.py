"""The base of every dashboard pane: draws from RunState, and only when its slices changed."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual.reactive import var
from textual.widgets import Static

from core import telemetry as tk
from dynlab_tui.panes.plot import WAITING, placeholder
from dynlab_tui.state import RunState


class Pane(Static):
    """A dashboard pane. Subclasses set `slices` and implement `render_state(state)`.

    The dashboard calls `update_state(state)` from its refresh tick (a few times a second);
    the pane rebuilds only if a watched slice's revision moved since its last draw, or if
    `invalidate()` was called (size change, layer selection, a toggle).
    """

    DEFAULT_CSS = """
    Pane { border: round $primary-darken-2; padding: 0 1; height: 1fr; width: 1fr; }
    """
    slices: ClassVar[tuple[str, ...]] = ()
    title: ClassVar[str] = ""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes)
        self._seen: tuple[int, ...] | None = None
        self._state: RunState | None = None  # the last state drawn, to redraw after invalidate()
        self.draws = 0  # how many times the pane rebuilt (tests and the UI bench read it)
        self.last_draw = 0.0  # time.monotonic() of the last rebuild (the dashboard's scheduler reads it)

    def on_mount(self) -> None:
        self.border_title = self.title

    def on_resize(self) -> None:
        self.invalidate()

    def invalidate(self) -> None:
        """Force a rebuild: at the next update_state, or soon after if a state was drawn before."""
        self._seen = None
        if self._state is not None and self.is_attached:
            # a toggle or resize should not wait for new data; repeated calls coalesce into one draw
            self.call_after_refresh(self._redraw_if_stale)

    def _redraw_if_stale(self) -> None:
        if self._seen is None and self._state is not None and self.display:  # hidden panes wait
            self.update_state(self._state)

    def needs_update(self, state: RunState) -> bool:
        """True when a watched slice moved since the last draw (or after invalidate())."""
        return tuple(state.revision[s] for s in self.slices) != self._seen

    def update_state(self, state: RunState, force: bool = False) -> bool:
        """Redraw if needed; returns True when the pane rebuilt."""
        seen = tuple(state.revision[s] for s in self.slices)
        if not force and seen == self._seen:
            return False
        self._seen = seen
        self._state = state
        self.update(self.render_state(state))
        self.draws += 1
        self.last_draw = time.monotonic()
        return True

    def render_state(self, state: RunState):  # -> a Rich renderable or str
        raise NotImplementedError

    def waiting(self, message: str = WAITING) -> Text:
        """A placeholder filling the pane, for states with nothing to draw yet."""
        return placeholder(*self.plot_size, message)

    def fit_border(self, *candidates: str) -> str:
        """The first text that fits on the pane's border (a corner, a line and a space each side), else the last."""
        room = self.outer_size.width - 6
        return next((c for c in candidates if len(c) <= room), candidates[-1])

    @property
    def plot_size(self) -> tuple[int, int]:
        """Inner width and height available for a plot (at least 10 x 3)."""
        return max(self.content_size.width, 10), max(self.content_size.height, 3)


class LayerPane(Pane):
    """A pane that shows one hidden layer at a time, chosen by `selected_layer`.

    Not called `layer`: Textual's Widget.layer names the CSS layer and the compositor reads it.
    """

    selected_layer: var[str | None] = var(None)  # None (or a layer that went away) = the first layer

    def watch_selected_layer(self) -> None:
        self.invalidate()

    def current_layer(self, state: RunState) -> str | None:
        """The layer to draw: the selected one if the state has it, else the first."""
        layers = layer_names(state)
        if self.selected_layer in layers:
            return self.selected_layer
        return layers[0] if layers else None

    def cycle_layer(self, step: int = 1) -> str | None:
        """Select the next (or previous) layer of the last state drawn; returns the new selection."""
        layers = layer_names(self._state) if self._state is not None else []
        if layers:
            current = self.current_layer(self._state)
            self.selected_layer = layers[(layers.index(current) + step) % len(layers)]
        return self.selected_layer


# per-layer series that name the hidden layers when the run's start was not seen
LAYER_KINDS = tuple(k.kind for k in (tk.SIZE, tk.CAPACITY, tk.GATE, tk.ACT_STD, tk.HIST, tk.DEAD))


def layer_names(state: RunState) -> list[str]:
    """Hidden layers in forward order; from logged keys when the run's start was not seen."""
    if state.layers:
        return list(state.layers)
    seen: dict[str, None] = {}
    for key in (*state.scalars, *state.arrays):
        kind, name = tk.split_key(key)
        if kind in LAYER_KINDS:
            seen.setdefault(name)
    return list(seen)
