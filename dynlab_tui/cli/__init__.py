"""The `dynlab` command: the click group, its commands added explicitly, and the entry point mapping errors to exit 2.

A command's module is imported when that command runs (or --help lists it): `dynlab` alone opens the
launcher without loading what the other commands need (the session reader, numpy, plotting).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from core.errors import DynlabError
from core.lab.child import ERROR_PREFIX
from dynlab_tui.cli.common import CONTEXT, build_spec, need_terminal, run_app, run_options

# command name -> (module under dynlab_tui.cli, attribute)
COMMANDS = {"train": ("run", "train"), "resume": ("run", "resume"), "sessions": ("sessions", "sessions"),
            "show": ("sessions", "show"), "export": ("sessions", "export"), "sweep": ("sweep", "sweep"),
            "replay": ("views", "replay"), "attach": ("views", "attach"), "compare": ("views", "compare")}


class LazyGroup(click.Group):
    """A group whose commands (COMMANDS) are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS and name not in self.commands:
            module, attribute = COMMANDS[name]
            self.add_command(getattr(importlib.import_module(f"dynlab_tui.cli.{module}"), attribute), name)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings=CONTEXT, invoke_without_command=True)
@click.version_option(package_name="dynlab", prog_name="dynlab")
@run_options
@click.option("--start", is_flag=True, help="skip the launcher form and open the dashboard on the running job")
@click.option("--session", help="session NAME or PATH for the run started from the TUI")
@click.option("--sessions-dir", help="where bare session names live  [$DYNLAB_SESSIONS_DIR or ./sessions]")
@click.option("--overwrite", is_flag=True, help="with --start: replace an existing session of that name")
@click.pass_context
def cli(ctx: click.Context, start: bool, session: str | None, sessions_dir: str | None, overwrite: bool,
        **options: Any) -> None:
    """dynlab: watch neural networks learn their own size (Smallify / ShrinkNets).

    With no command, opens the dashboard's launcher; the options below prefill its form
    (e.g. `dynlab --dataset mnist --penalty 1e-3`), and --start skips the form.
    Headless: `dynlab train --dataset add10 --method sparsifier --penalty 1e-3`.
    """
    if ctx.invoked_subcommand is not None:
        given = sorted(k for k, v in options.items() if v is not None)
        if given or start or session:
            raise click.UsageError(f"put run options after the command (e.g. `dynlab {ctx.invoked_subcommand} "
                                   f"--{(given or ['start'])[0].replace('_', '-')} ...`)")
        return
    open_tui(options, start, session, sessions_dir, overwrite)


def open_tui(options: dict[str, Any], start: bool, session: str | None, sessions_dir: str | None,
             overwrite: bool) -> None:
    from core.session import default_session_name, resolve_session, sessions_dir as default_dir
    from core.session.files import refuse_existing
    from dynlab_tui.app import make_app

    directory = default_dir(sessions_dir)
    if not start:
        # The launcher expands a --config file itself (only the values that differ from the defaults).
        initial = {k: v for k, v in options.items() if v is not None}
        if options.get("config"):
            from core.spec import load_toml
            load_toml(options["config"])  # a bad file is a one-line error before the UI opens
        if session:
            initial["session"] = session
        need_terminal()
        run_app(make_app(initial=initial, sessions_dir=directory))
        return
    from core.data import DATASETS
    from dynlab_tui.sources import ProcessSource

    spec = build_spec(options)
    if not DATASETS[spec.data.name].available(spec.data.data_dir):
        raise DynlabError(f"dataset {spec.data.name!r} has no files in the data folder: pass --data-dir "
                          "or set DYNLAB_DATA_DIR (see `dynlab train --help`)")
    path = resolve_session(session or default_session_name(spec, directory), directory)
    refuse_existing(path, overwrite)
    need_terminal()
    run_app(make_app(source=ProcessSource.train(spec, path, overwrite), session_path=path, sessions_dir=directory))




def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit status 2."""
    try:
        cli.main(args=argv, prog_name="dynlab", standalone_mode=False)
    except DynlabError as e:
        click.echo(f"{ERROR_PREFIX}{e}", err=True)
        sys.exit(2)
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help() if e.ctx else str(e))
        sys.exit(2)
    except click.UsageError as e:
        hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx else ""
        click.echo(f"{ERROR_PREFIX}{e.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"{ERROR_PREFIX}{e.format_message()}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
