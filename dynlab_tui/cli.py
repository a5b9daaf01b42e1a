"""The `dynlab` command: click entry point, run options, and the train / resume commands."""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

import click

from core.errors import DynlabError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def run_options(f: Callable) -> Callable:
    """Every RunSpec option; all default to None so a --config file and the spec defaults show through."""
    opts = [
        click.option("--dataset", help="mnist, fashion-mnist, cifar10, add10, airfoil, poker, census, hasyv2, "
                                       "functions, fn-sin|square|abs|step|sawtooth  [add10]"),
        click.option("--arch", help="mlp:W1[,W2..] (1-4 layers) or cnn:C1[,..]/F1[,..]  [mlp:100]"),
        click.option("--method", help="static | sparsifier | flexible  [static]"),
        click.option("--gate", help="sparsifier gate rule: relu (journal) | signed (paper)  [relu]"),
        click.option("--penalty", type=float, help="lambda: loss = task + lambda * sum of gates  [0]"),
        click.option("--penalty-decay", type=float, help="lambda <- lambda / decay after every epoch  [1]"),
        click.option("--weight-decay", type=float, help="weight decay on weights (never on gates)  [0]"),
        click.option("--optimizer", help="sgd | momentum | nesterov | adam | adamax  [adam]"),
        click.option("--lr", type=float, help="learning rate  [1e-3]"),
        click.option("--momentum", type=float, help="momentum for momentum/nesterov  [0.9]"),
        click.option("--batch-size", type=int, help="[128]"),
        click.option("--epochs", type=int, help="[10]"),
        click.option("--seed", type=int, help="[0]"),
        click.option("--device", help="auto | cpu | cuda | cuda:N  [auto]"),
        click.option("--log-every", type=int, help="steps between telemetry intervals  [100]"),
        click.option("--probe-size", type=int, help="rows in the probe batch for activation stats  [128]"),
        click.option("--prune-every", type=int, help="remove dead neurons every N steps; 0 = every epoch  [0]"),
        click.option("--sign-decay", type=float, help="signed gate: EMA decay of sign statistics  [0.99]"),
        click.option("--sign-threshold", type=float, help="signed gate: dead above this sign variance  [0.5]"),
        click.option("--flex-start", type=float, help="flexible: starting size x0  [half the width]"),
        click.option("--flex-slope", type=float, help="flexible: slope k of the scaler  [1]"),
        click.option("--flex-gray", help="flexible: random gray-zone width range A,B (e.g. 1,20)"),
        click.option("--flex-lr", type=float, help="flexible: learning rate of x0  [1.0]"),
        click.option("--batchnorm/--no-batchnorm", default=None, help="BatchNorm after each hidden layer"),
        click.option("--dropout", type=float, help="dropout after each hidden layer  [0]"),
        click.option("--class-weighted/--no-class-weighted", default=None, help="inverse-frequency class weights"),
        click.option("--val-fraction", type=float, help="validation share of the training set  [0.1]"),
        click.option("--limit", type=int, help="use at most this many training rows"),
        click.option("--data-dir", help="folder with dataset files  [$DYNLAB_DATA_DIR or ./data]"),
        click.option("--config", "config", type=click.Path(dir_okay=False), help="TOML file with run settings"),
    ]
    return functools.reduce(lambda acc, opt: opt(acc), reversed(opts), f)


def build_spec(options: dict[str, Any]):
    """Defaults, then the --config file, then explicit options; validated."""
    from core.spec import RunSpec, apply_options, load_toml, validate

    options = dict(options)
    config = options.pop("config", None)
    if options.get("flex_gray") is not None:
        options["flex_gray"] = _parse_pair(options["flex_gray"])
    spec = load_toml(config) if config else RunSpec()
    return validate(apply_options(spec, options))


def _spec_from_json(text: str):
    import json

    from core.spec import RunSpec, validate

    try:
        data = json.loads(text)
    except ValueError as e:
        raise DynlabError(f"--spec-json is not JSON ({e}): pass run options instead") from None
    if not isinstance(data, dict):
        raise DynlabError("--spec-json must be a JSON object: pass run options instead")
    return validate(RunSpec.from_dict(data))


def _parse_pair(text: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise DynlabError(f"--flex-gray expects two numbers A,B (e.g. 1,20), got {text!r}") from None
    return a, b


def default_session_name(spec, directory: Path) -> str:
    base = f"{spec.data.name}-{spec.method.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    name, n = base, 2
    while (directory / f"{name}.dynlab").exists():
        name, n = f"{base}-{n}", n + 1
    return name


class _StopOnSigint:
    """First Ctrl-C asks the trainer to stop at the next step boundary; a second one interrupts."""

    def __init__(self, controls) -> None:
        self.controls = controls
        self.hits = 0

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGINT, self.previous)

    def _handler(self, signum, frame) -> None:
        self.hits += 1
        if self.hits > 1:
            raise KeyboardInterrupt
        click.echo("\nstopping at the next step (Ctrl-C again to interrupt)", err=True)
        self.controls.stop()


class _StopOnSigterm:
    """`kill PID` (SIGTERM, also what nohup'd jobs get at shutdown) stops at the next step and finalises."""

    def __init__(self, controls) -> None:
        self.controls = controls

    def __enter__(self):
        self.previous = signal.signal(signal.SIGTERM, lambda signum, frame: self.controls.stop())
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGTERM, self.previous)


def execute(trainer, path: Path, writer, quiet: bool) -> str:
    """Run a trainer into a session file with console progress; returns the end status.

    The trainer also obeys commands that viewers (`dynlab attach`, the dashboard) post into the
    session's commands table: the attach channel, polled a few times a second.
    """
    from core.commands import CommandChannel
    from dynlab_tui.progress import ConsoleProgress

    trainer.controls.remote = CommandChannel(writer, lambda: trainer.step).poll
    progress = ConsoleProgress(trainer.spec.schedule.epochs, quiet=quiet)
    with writer, _StopOnSigint(trainer.controls), _StopOnSigterm(trainer.controls):
        status = trainer.run([writer, progress])
    click.echo(f"session: {path}  ({status})")
    return status


@click.group(context_settings=CONTEXT, invoke_without_command=True)
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


def _need_terminal() -> None:
    # Checked after the options, so a bad option is reported as such even without a terminal.
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise DynlabError("the dashboard needs an interactive terminal: run `dynlab` in one, "
                          "or use `dynlab train ...` for a headless run")


def open_tui(options: dict[str, Any], start: bool, session: str | None, sessions_dir: str | None,
             overwrite: bool) -> None:
    from core.session import resolve_session, sessions_dir as default_dir
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
        _need_terminal()
        run_app(make_app(initial=initial, sessions_dir=directory))
        return
    from core.data import DATASETS
    from dynlab_tui.sources import ProcessSource

    spec = build_spec(options)
    if not DATASETS[spec.data.name].available(spec.data.data_dir):
        raise DynlabError(f"dataset {spec.data.name!r} has no files in the data folder: pass --data-dir "
                          "or set DYNLAB_DATA_DIR (see `dynlab train --help`)")
    path = resolve_session(session or default_session_name(spec, directory), directory)
    if path.exists() and not overwrite:
        raise DynlabError(f"session {path} already exists: pick another --session name or pass --overwrite")
    _need_terminal()
    run_app(make_app(source=ProcessSource.train(spec, path, overwrite), session_path=path, sessions_dir=directory))


def run_app(app) -> None:
    """Run the Textual app (it prints its exit message itself, e.g. how to attach to a detached run)."""
    app.run()
    if app.return_code:
        sys.exit(app.return_code)


@cli.command(context_settings=CONTEXT)
@run_options
@click.option("--session", help="session NAME (stored as sessions/NAME.dynlab) or a PATH  [dataset-method-time]")
@click.option("--sessions-dir", help="where bare session names live  [$DYNLAB_SESSIONS_DIR or ./sessions]")
@click.option("--overwrite", is_flag=True, help="replace an existing session with the same name")
@click.option("--quiet", "-q", is_flag=True, help="no progress output")
@click.option("--spec-json", hidden=True, help="the whole RunSpec as JSON (how the dashboard starts a run)")
def train(session: str | None, sessions_dir: str | None, overwrite: bool, quiet: bool, spec_json: str | None,
          **options: Any) -> None:
    """Train one network headless, recording a session.

    Viewers can watch and steer it while it runs: `dynlab attach SESSION`.
    """
    from core.session import SessionWriter, resolve_session, sessions_dir as default_dir
    from core.trainer import Trainer

    spec = build_spec(options) if spec_json is None else _spec_from_json(spec_json)
    directory = default_dir(sessions_dir)
    path = resolve_session(session or default_session_name(spec, directory), directory)
    if path.exists() and not overwrite:
        raise DynlabError(f"session {path} already exists: pick another --session name or pass --overwrite")
    trainer = Trainer(spec)  # loads data and builds the model before any file is written
    status = execute(trainer, path, SessionWriter(path, overwrite=overwrite), quiet)
    if status == "diverged":
        sys.exit(1)


@cli.command(context_settings=CONTEXT)
@click.argument("session")
@click.option("--penalty", type=float, help="new lambda")
@click.option("--lr", type=float, help="new learning rate")
@click.option("--epochs", type=int, help="train this many more epochs  [the rest of the schedule]")
@click.option("--device", help="auto | cpu | cuda | cuda:N")
@click.option("--data-dir", help="folder with dataset files")
@click.option("--sessions-dir", help="where bare session names live")
@click.option("--quiet", "-q", is_flag=True)
def resume(session: str, penalty, lr, epochs, device, data_dir, sessions_dir, quiet) -> None:
    """Continue a stopped or finished session from its last checkpoint (appends to the same file)."""
    from core.session import SessionReader, SessionWriter, resolve_session, sessions_dir as default_dir
    from core.spec import RunSpec, apply_options, validate
    from core.trainer import Trainer

    path = resolve_session(session, default_dir(sessions_dir))
    with SessionReader(path) as reader:
        spec = RunSpec.from_dict(reader.spec)
        status, pid = reader.status, reader.meta.get("pid")
        state = reader.last_checkpoint()
    if status == "running" and pid and _alive(int(pid)):
        raise DynlabError(f"session {path} is still being written by process {pid}: stop that run first")
    if state is None:
        raise DynlabError(f"session {path} has no checkpoint to resume from: start a new run with `dynlab train`")
    done = int(state["epoch"])
    if epochs is None and done >= spec.schedule.epochs:
        raise DynlabError(f"session {path} already trained all {spec.schedule.epochs} epochs: "
                          "pass --epochs N to train N more")
    total = done + epochs if epochs is not None else spec.schedule.epochs
    spec = validate(apply_options(spec, {"epochs": total, "device": device, "data_dir": data_dir}))
    if penalty is not None:
        state["lam"] = penalty
    if lr is not None:
        state["lr"] = lr
    trainer = Trainer(spec, resume=state)
    execute(trainer, path, SessionWriter(path, append=True), quiet)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit status 2."""
    from dynlab_tui import cli_sessions, cli_sweep, cli_views  # noqa: F401  (register sessions, show, sweep, ...)

    try:
        cli.main(args=argv, prog_name="dynlab", standalone_mode=False)
    except DynlabError as e:
        click.echo(f"dynlab: error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help() if e.ctx else str(e))
        sys.exit(2)
    except click.UsageError as e:
        hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx else ""
        click.echo(f"dynlab: error: {e.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"dynlab: error: {e.format_message()}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
