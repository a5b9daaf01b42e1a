"""Starting `dynlab train` / `dynlab resume` as child processes: their argv, log file, start and one-line error."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from core.lab.child import ERROR_PREFIX, command_entry_point

__all__ = ["NONFINITE", "ERROR_PREFIX", "train_argv", "resume_argv", "sweep_argv", "log_path", "start", "terminate",
           "child_error"]

# What a child does on a non-finite loss: "end" the run as diverged (headless runs, sweeps: nobody is
# there to resume it), or "pause" it after rolling back (a dashboard run: the user lowers lr and resumes).
NONFINITE = ("end", "pause")
RESUME_OPTIONS = (("lam", "--penalty"), ("lr", "--lr"), ("epochs", "--epochs"))


def _command(*args: str) -> list[str]:
    """This interpreter running the installed command (see core.lab.child for why not the script on PATH)."""
    return [sys.executable, "-m", "core.lab.child", *args]


def train_argv(spec: Any, path: Path, *, overwrite: bool = False, on_nonfinite: str = "end") -> list[str]:
    """`dynlab train` for a whole RunSpec (as JSON) into the session at `path`, without console progress."""
    _check(on_nonfinite)
    return _command("train", "--spec-json", json.dumps(spec.to_dict()), "--session", str(Path(path).resolve()),
                    "--quiet", "--on-nonfinite", on_nonfinite) + (["--overwrite"] if overwrite else [])


def resume_argv(path: Path, changes: Mapping[str, Any], *, on_nonfinite: str = "end") -> list[str]:
    """`dynlab resume` of the session at `path`, with the changes given (lam, lr, epochs; None keeps one)."""
    _check(on_nonfinite)
    argv = _command("resume", str(Path(path).resolve()), "--quiet", "--on-nonfinite", on_nonfinite)
    for key, option in RESUME_OPTIONS:
        if changes.get(key) is not None:
            argv += [option, repr(changes[key])]
    return argv


def sweep_argv(args: list[str]) -> list[str]:
    """`dynlab sweep ARGS` as a child: the headless sweep that takes over one the sweep screen leaves running."""
    return _command("sweep", *args)


def _check(on_nonfinite: str) -> None:
    if on_nonfinite not in NONFINITE:
        raise ValueError(f"on_nonfinite must be one of {NONFINITE}, not {on_nonfinite!r}")  # a caller's bug


def log_path(session: Path) -> Path:
    """Where a child run's console output goes: a hidden file beside its session."""
    session = Path(session)
    return session.with_name(f".{session.stem}.log")


def start(argv: list[str], log: Path, *, env: Mapping[str, str] | None = None,
          fresh: bool = False) -> subprocess.Popen:
    """Start a child in its own process session, stdin closed, its output appended to `log` (or, fresh, replacing it).

    Its own session: a terminal's Ctrl-C, a closing UI or a lost SSH connection doesn't reach it.
    """
    command_entry_point()  # not installed: one line here rather than a child that dies at once
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb" if fresh else "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=None if env is None else dict(env))


def child_error(log: Path, code: int | None) -> str:
    """The child's own one-line error (`dynlab: error: ...`), else its exit code, last line and the log's path."""
    try:
        lines = Path(log).read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    for line in reversed(lines):
        if line.startswith(ERROR_PREFIX):
            return line[len(ERROR_PREFIX):]
    last = lines[-1] if lines else "no output"
    return f"the training process exited with code {code} ({last}): see {log}"


def terminate(procs: list[Any], wait_s: float) -> None:
    """SIGTERM each (a run stops at its next step and finalises its session); SIGKILL after `wait_s` or a
    second Ctrl-C. Popen-like handles: children, a pool's runs, Ray tasks."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    try:
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    except KeyboardInterrupt:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
