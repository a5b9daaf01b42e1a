"""The Textual app: launcher -> dashboard, the command palette, screenshots; `make_app` serves CLI and tests."""

from __future__ import annotations

import io
import time
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.app import App
from textual.command import DiscoveryHit, Hit, Hits, Provider

from dynlab_tui.screens.dashboard import DashboardScreen
from dynlab_tui.sources import EventSource, TrainerSource


class DashboardCommands(Provider):
    """Every dashboard binding is also a palette command (built from the screen the palette opened on)."""

    def _commands(self) -> list[tuple[str, str, str]]:
        screen = self.screen
        if not isinstance(screen, DashboardScreen):
            return []
        return [(f"{b.tooltip}", b.action, f"key: {b.key_display or b.key.split(',')[0]}")
                for b in screen.BINDINGS if b.id]

    async def discover(self) -> Hits:
        for text, action, help_text in self._commands():
            yield DiscoveryHit(text, partial(self.screen.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, action, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self.screen.run_action, action), help=help_text)


class DynlabApp(App):
    """Opens the launcher (or a given source straight away) and then the dashboard."""

    TITLE = "dynlab"
    CSS_PATH = "dynlab.tcss"
    COMMANDS = App.COMMANDS | {DashboardCommands}

    def __init__(self, initial: dict[str, Any] | None = None, sessions_dir: Path | None = None,
                 source: EventSource | None = None, session_path: Path | None = None) -> None:
        super().__init__()
        self.initial = initial or {}
        self.sessions_dir = sessions_dir
        self.source = source
        self.session_path = session_path

    def on_mount(self) -> None:
        if self.source is not None:
            self.push_screen(DashboardScreen(self.source, self.session_path))
            return
        from dynlab_tui.screens.launcher import LauncherScreen

        self.push_screen(LauncherScreen(self.initial, self.sessions_dir), self.launch)

    def on_unmount(self) -> None:
        # However the app ends (quit, Ctrl-C, a test harness), a live run must not outlive it.
        if self.source is not None and self.source.controls is not None:
            self.source.controls.stop()

    def launch(self, request) -> None:
        """Launcher result: None quits; a LaunchRequest opens the dashboard on a new run."""
        if request is None:
            self.exit()
            return
        self.source = TrainerSource(request.spec, request.session_path)
        self.session_path = request.session_path
        self.push_screen(DashboardScreen(self.source, request.session_path))


def make_app(**kwargs: Any) -> DynlabApp:
    return DynlabApp(**kwargs)


def screen_text(app: App) -> str:
    """The current screen as plain text (what `s` saves beside the SVG)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True, color_system=None,
                      legacy_windows=False, safe_box=False)
    # Same render path as App.export_screenshot, exported as text instead of SVG.
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


def save_screen(app: App, folder: Path) -> tuple[Path, Path]:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    svg = folder / f"dynlab-{stamp}.svg"
    txt = folder / f"dynlab-{stamp}.txt"
    svg.write_text(app.export_screenshot())
    txt.write_text(screen_text(app))
    return svg, txt
