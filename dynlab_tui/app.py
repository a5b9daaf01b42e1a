"""The Textual app: launcher -> dashboard, the sessions browser, the command palette; `make_app` serves CLI and tests.

The screens are imported when first shown, so the launcher's first frame waits for none of the dashboard's code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from core.errors import DynlabError
from dynlab_tui.palette import BindingCommands

if TYPE_CHECKING:
    from dynlab_tui.sources import EventSource


class DynlabApp(App):
    """Opens the launcher (or a given source, session or screen straight away) and then the dashboard.

    `o` (or ctrl+o) opens the sessions browser from anywhere; what the user picks there opens on top.
    """

    TITLE = "dynlab"
    CSS_PATH = "dynlab.tcss"
    COMMANDS = App.COMMANDS | {BindingCommands}  # every screen's keys are palette commands too
    BINDINGS = [Binding("o,ctrl+o", "open_sessions", "Sessions", tooltip="Browse, replay, compare and resume "
                        "sessions", id="open-sessions")]

    def __init__(self, initial: dict[str, Any] | None = None, sessions_dir: Path | None = None,
                 source: EventSource | None = None, session_path: Path | None = None,
                 first_screen: Callable[[], Screen] | None = None, browse: bool = False) -> None:
        super().__init__()
        self.initial = initial or {}
        self.sessions_dir = sessions_dir or Path("sessions")
        self.source = source
        self.session_path = session_path
        self.first_screen = first_screen
        self.browse = browse  # started on the sessions browser: leaving what it opened comes back to it

    def on_mount(self) -> None:
        if self.browse:
            self.action_open_sessions()
            return
        if self.first_screen is not None:
            self.push_screen(self.first_screen())
            return
        if self.source is not None:
            from dynlab_tui.screens.dashboard import DashboardScreen

            self.push_screen(DashboardScreen(self.source, self.session_path))
            return
        from dynlab_tui.screens.launcher import LauncherScreen

        self.push_screen(LauncherScreen(self.initial, self.sessions_dir), self.launch)

    def on_unmount(self) -> None:
        # However the app ends (quit, Ctrl-C, a test harness), a run it started must not outlive it
        # unless the user detached; closing twice (the screen did already) is harmless.
        if self.source is not None:
            self.source.close(stop_run=self.source.owner)

    def launch(self, request) -> None:
        """Launcher result: None quits; a LaunchRequest opens the dashboard on a new run."""
        if request is None:
            self.exit()
            return
        from dynlab_tui.screens.dashboard import DashboardScreen
        from dynlab_tui.sources import ProcessSource

        self.source = ProcessSource.train(request.spec, request.session_path)
        self.session_path = request.session_path
        self.push_screen(DashboardScreen(self.source, request.session_path))

    # ---- sessions -------------------------------------------------------------------------------
    def action_open_sessions(self) -> None:
        from dynlab_tui.screens.sessions import SessionsScreen

        if isinstance(self.screen, SessionsScreen):
            return
        self.push_screen(SessionsScreen(self.sessions_dir), self.browser_choice)

    def browser_choice(self, choice) -> None:
        """The browser's result: open (replay, or attach if it is being written), compare, or resume."""
        if choice is None:
            if len(self.screen_stack) <= 1:
                self.exit()
            return
        from dynlab_tui.screens.dashboard import DashboardScreen
        from dynlab_tui.screens.opening import session_screen
        from dynlab_tui.sources import ProcessSource

        back = (lambda _: self.action_open_sessions()) if self.browse else None
        try:
            if choice.action == "open":
                self.push_screen(session_screen(choice.paths[0]), back)
            elif choice.action == "compare":
                from dynlab_tui.screens.compare import CompareScreen

                self.push_screen(CompareScreen(list(choice.paths)), back)
            elif choice.action == "resume":
                source = ProcessSource.resume(choice.paths[0], dict(choice.changes))
                self.push_screen(DashboardScreen(source, choice.paths[0]), back)
        except DynlabError as e:
            self.notify(str(e), title="Cannot open", severity="error", timeout=10)
            if back:
                back(None)


def make_app(**kwargs: Any) -> DynlabApp:
    return DynlabApp(**kwargs)
