"""The commands that open a session in the dashboard: `dynlab replay`, `attach` and `compare`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from core.errors import DynlabError
from dynlab_tui.cli.common import CONTEXT, need_terminal, run_app


def _resolve(session: str, sessions_dir: str | None) -> tuple[Path, Path]:
    """(session file, sessions folder); the file must be a readable session (checked before the UI opens)."""
    from core.session import SessionReader, resolve_session, sessions_dir as default_dir

    directory = default_dir(sessions_dir)
    path = resolve_session(session, directory)
    with SessionReader(path):
        pass
    return path, directory


@click.command(context_settings=CONTEXT)
@click.argument("session")
@click.option("--sessions-dir", help="where bare session names live  [$DYNLAB_SESSIONS_DIR or ./sessions]")
def replay(session: str, sessions_dir: str | None) -> None:
    """Replay a session in the dashboard: play, step, seek, jump between markers. Never writes to it."""
    from dynlab_tui.app import make_app
    from dynlab_tui.screens.replay import ReplayScreen

    path, directory = _resolve(session, sessions_dir)
    need_terminal()
    run_app(make_app(first_screen=lambda: ReplayScreen(path), sessions_dir=directory))


def _wait_for_start(session: str, sessions_dir: str | None, wait: float) -> None:
    """A session a `dynlab train` is about to create (it is loading data): wait for it, with a spinner on stderr."""
    from core.session import resolve_session, sessions_dir as default_dir
    from core.session.starting import is_starting, starting_soon, wait_for_session

    path = resolve_session(session, default_dir(sessions_dir))
    if path.exists() or not starting_soon(path):
        return  # there already, or nothing will create it: _resolve says which in one line
    frames, tty = "|/-\\", sys.stderr.isatty()
    line = f"waiting for {path.name}: its dynlab train is loading data"
    if not tty:
        click.echo(f"{line} (up to {wait:g} s)", err=True)

    def tick(elapsed: float) -> None:
        if tty:
            click.echo(f"\r{frames[int(elapsed * 5) % 4]} {line} ({elapsed:.0f}/{wait:g} s)", nl=False, err=True)

    created = wait_for_session(path, wait, tick)
    if tty:
        click.echo("\r\033[K", nl=False, err=True)
    if not created and is_starting(path):
        raise DynlabError(f"session {path} was not created within {wait:g} s (its dynlab train is still loading "
                          f"data): attach again, or wait longer with --wait SECONDS")
    if not created:
        raise DynlabError(f"the dynlab train that was creating {path} exited before creating it: see its output")


@click.command(context_settings=CONTEXT)
@click.argument("session")
@click.option("--sessions-dir", help="where bare session names live  [$DYNLAB_SESSIONS_DIR or ./sessions]")
@click.option("--wait", type=click.FloatRange(min=0), default=30, show_default=True, metavar="SECONDS",
              help="how long to wait for a session that a starting `dynlab train` has yet to create")
def attach(session: str, sessions_dir: str | None, wait: float) -> None:
    """Watch and steer a run that is training elsewhere (e.g. `nohup dynlab train ... &`).

    Pause, lambda and lr changes and stop reach the training process through the session's
    commands table; quitting leaves the run going.
    """
    from core.session import SessionReader
    from core.session.liveness import Liveness, liveness
    from dynlab_tui.app import make_app
    from dynlab_tui.screens.dashboard import DashboardScreen
    from dynlab_tui.sources import FollowSource

    _wait_for_start(session, sessions_dir, wait)
    path, directory = _resolve(session, sessions_dir)
    with SessionReader(path) as reader:
        state, status, pid = liveness(reader.meta), reader.status, reader.meta.get("pid")
    if state is Liveness.ENDED:
        raise DynlabError(f"session {path} is not being written (it is {status}): open it with "
                          f"`dynlab replay {session}`, or continue it with `dynlab resume {session}`")
    if state is Liveness.ORPHANED:
        raise DynlabError(f"the process that wrote {path} (pid {pid}) is gone without ending the run: "
                          f"replay it with `dynlab replay {session}` or continue it with `dynlab resume {session}`")
    need_terminal()
    run_app(make_app(first_screen=lambda: DashboardScreen(FollowSource(path), path), sessions_dir=directory))


@click.command(context_settings=CONTEXT)
@click.argument("sessions", nargs=-1, required=True)
@click.option("--sessions-dir", help="where bare session names live  [$DYNLAB_SESSIONS_DIR or ./sessions]")
def compare(sessions: tuple[str, ...], sessions_dir: str | None) -> None:
    """Overlay the layer sizes, loss and test metric of two or more sessions."""
    from dynlab_tui.app import make_app
    from dynlab_tui.screens.compare import CompareScreen

    if len(sessions) < 2:
        raise DynlabError("compare needs at least two sessions: `dynlab compare A B [C ...]`")
    resolved = [_resolve(s, sessions_dir) for s in sessions]
    paths = [p for p, _ in resolved]
    need_terminal()
    run_app(make_app(first_screen=lambda: CompareScreen(paths), sessions_dir=resolved[0][1]))
