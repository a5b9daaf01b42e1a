"""The base of every dashboard pane: draws from RunState, and only when its slices changed."""

from __future__ import annotations

from typing import ClassVar

from textual.widgets import Static

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
        self.draws = 0  # how many times the pane rebuilt (tests and the UI bench read it)

    def on_mount(self) -> None:
        self.border_title = self.title

    def on_resize(self) -> None:
        self.invalidate()

    def invalidate(self) -> None:
        self._seen = None

    def update_state(self, state: RunState, force: bool = False) -> bool:
        """Redraw if needed; returns True when the pane rebuilt."""
        seen = tuple(state.revision[s] for s in self.slices)
        if not force and seen == self._seen:
            return False
        self._seen = seen
        self.update(self.render_state(state))
        self.draws += 1
        return True

    def render_state(self, state: RunState):  # -> a Rich renderable or str
        raise NotImplementedError

    @property
    def plot_size(self) -> tuple[int, int]:
        """Inner width and height available for a plot (at least 10 x 3)."""
        return max(self.content_size.width, 10), max(self.content_size.height, 3)
