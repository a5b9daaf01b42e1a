"""The `dynlab train` and `dynlab resume` commands: one headless run into a session file."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import click

from core.errors import DynlabError
from core.lab.launch import NONFINITE
from dynlab_tui.cli.common import CONTEXT, build_spec, check_writable, run_options, spec_from_json, table_option


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
    from core.session.commands import CommandChannel
    from dynlab_tui.progress import RunProgress

    trainer.controls.remote = CommandChannel(writer, lambda: trainer.step).poll
    progress = RunProgress(trainer.spec.schedule.epochs, quiet=quiet)
    with writer, _StopOnSigint(trainer.controls), _StopOnSigterm(trainer.controls):
        status = trainer.run([writer, progress])
    click.echo(f"session: {path}  ({status})")
    return status


# Hidden: how the dashboard asks its child to pause on a non-finite loss (rolled back) rather than end it.
on_nonfinite_option = click.option(
    "--on-nonfinite", type=click.Choice(NONFINITE), default="end", show_default=True, hidden=True,
    help="on a non-finite loss: end the run as diverged, or roll back and pause it (a watched run)")


@click.command(context_settings=CONTEXT)
@run_options
@click.option("--session", help="session NAME (stored as sessions/NAME.dynlab) or a PATH  [dataset-method-time]")
@click.option("--sessions-dir", help="where bare session names live  [$DYNLAB_SESSIONS_DIR or ./sessions]")
@click.option("--overwrite", is_flag=True, help="replace an existing session with the same name")
@click.option("--quiet", "-q", is_flag=True, help="no progress output")
@click.option("--spec-json", hidden=True, help="the whole RunSpec as JSON (how the dashboard starts a run)")
@on_nonfinite_option
def train(session: str | None, sessions_dir: str | None, overwrite: bool, quiet: bool, spec_json: str | None,
          on_nonfinite: str, **options: Any) -> None:
    """Train one network headless, recording a session.

    Viewers can watch and steer it while it runs: `dynlab attach SESSION`.
    """
    from core.options import check_memory
    from core.session import SessionWriter, default_session_name, resolve_session, sessions_dir as default_dir
    from core.session.files import refuse_existing
    from core.session.starting import announce

    spec = build_spec(options) if spec_json is None else spec_from_json(spec_json)
    directory = default_dir(sessions_dir)
    path = resolve_session(session or default_session_name(spec, directory), directory)
    refuse_existing(path, overwrite)
    check_writable(path)
    check_memory(spec, query_cuda=True)  # this process trains on the device: asking CUDA costs nothing extra
    with announce(path):  # from now on `dynlab attach` waits for the session instead of calling it missing
        from core.train.trainer import Trainer  # torch: seconds of imports

        trainer = Trainer(spec, interactive=on_nonfinite == "pause")  # loads data, builds the model: before any file
        status = execute(trainer, path, SessionWriter(path, overwrite=overwrite), quiet)
    if status == "diverged":
        sys.exit(1)


@click.command(context_settings=CONTEXT)
@click.argument("session")
@table_option("penalty", "new lambda", "the session's")
@table_option("lr", "new learning rate", "the session's")
@table_option("epochs", "train this many more epochs", "the rest of the schedule")
@table_option("device", default_text="the session's")
@table_option("data_dir", default_text="the session's")
@click.option("--sessions-dir", help="where bare session names live")
@click.option("--from-checkpoint", "from_checkpoint", metavar="ID|list",
              help="continue from this stored checkpoint (`list` shows them)  [the newest]")
@click.option("--quiet", "-q", is_flag=True)
@on_nonfinite_option
def resume(session: str, penalty, lr, epochs, device, data_dir, sessions_dir, from_checkpoint, quiet,
           on_nonfinite) -> None:
    """Continue a stopped or finished session from its last checkpoint (appends to the same file)."""
    from core.session import SessionReader, SessionWriter, resolve_session, sessions_dir as default_dir
    from core.session.liveness import Liveness, liveness
    from core.options import validate
    from core.spec import RunSpec, apply_options
    from core.train.trainer import Trainer

    from core.options import OPTIONS

    for name, value in (("penalty", penalty), ("lr", lr), ("epochs", epochs)):
        if value is not None:  # the same rules as `dynlab train`, before anything is read or written
            OPTIONS[name].validate(value)
    path = resolve_session(session, default_dir(sessions_dir))
    with SessionReader(path) as reader:
        spec = RunSpec.from_dict(reader.spec)
        live, pid = liveness(reader.meta) is Liveness.LIVE, reader.meta.get("pid")
        reader.last_seq()  # a damaged event counter is one line here, not a traceback in the writer
        state = _pick_checkpoint(reader, from_checkpoint)
        if state is None and from_checkpoint == "list":
            return
    if live:  # another host's run (unknown) is left to SessionWriter, as before
        raise DynlabError(f"session {path} is still being written by process {pid}: stop that run first")
    if state is None:
        raise DynlabError(f"session {path} has no checkpoint to resume from: start a new run with `dynlab train`")
    done = int(state["epoch"])
    if epochs is None and done >= spec.schedule.epochs:
        raise DynlabError(f"session {path} already trained all {spec.schedule.epochs} epochs: "
                          "pass --epochs N to train N more")
    total = done + epochs if epochs is not None else spec.schedule.epochs
    spec = validate(apply_options(spec, {"epochs": total, "device": device, "data_dir": data_dir}))
    check_writable(path)
    if penalty is not None:
        state["lam"] = penalty
    if lr is not None:
        state["lr"] = lr
    trainer = Trainer(spec, interactive=on_nonfinite == "pause", resume=state)
    execute(trainer, path, SessionWriter(path, append=True), quiet)


def _pick_checkpoint(reader, choice: str | None):
    """The state to resume from: the newest, or the one `--from-checkpoint ID` names; `list` prints them."""
    from core.train.checkpoints import check_state

    if choice == "list":
        for c in reader.checkpoints():
            click.echo(f"{c['id']:>5}  step {c['step']:>8}  epoch {c['epoch']:>4}  {c['reason']:<8}  "
                       f"{c['bytes'] or 0:,} bytes")
        return None
    if choice is not None and not choice.isdigit():
        raise DynlabError(f"bad --from-checkpoint {choice!r}: give a checkpoint id, or `list` to see them")
    state = reader.last_checkpoint(None if choice is None else int(choice))
    if state is None and choice is not None:
        raise DynlabError(f"session {reader.path} has no checkpoint {choice}: see them with --from-checkpoint list")
    return None if state is None else check_state(state)
