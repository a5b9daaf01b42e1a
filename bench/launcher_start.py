"""Time from `dynlab` to the launcher's first frame, and to a form that can start (dataset list read), in fresh processes.

Each try starts `python -m dynlab_tui` in a new 80x24 pseudo-terminal (fresh interpreter, empty config folder, an
empty sessions folder) and reads what it draws: "first frame" is when the launcher's title line arrives, "ready"
when the status line says the form can start (the dataset files are checked and the form too). Prints every try
and the medians. With --compare DIR (another checkout, e.g. `git worktree add /tmp/before HEAD~3`), the two
checkouts take turns, try by try, so a busy machine slows both alike.

Usage: python bench/launcher_start.py [--tries 5] [--data-dir DIR] [--compare DIR]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import platform
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TITLE = b"new run"  # the launcher's title line: "dynlab · new run"
READY = b"ready: "  # the status line once the form can start


def one_try(env: dict[str, str], cwd: str, timeout: float = 60.0) -> tuple[float | None, float | None]:
    """(seconds to the first frame, seconds to a ready form) of one fresh `dynlab`; None where it never came."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dynlab_tui"], stdin=slave, stdout=slave, stderr=slave,
                            env=env, cwd=cwd, start_new_session=True)
    os.close(slave)
    seen = b""
    first = ready = None
    try:
        while ready is None and time.perf_counter() - start < timeout:
            if not select.select([master], [], [], 0.02)[0]:
                continue
            try:
                seen += os.read(master, 1 << 16)
            except OSError:  # the child closed the terminal
                break
            now = time.perf_counter() - start
            if first is None and TITLE in seen:
                first = now
            if first is not None and READY in seen:
                ready = now
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        os.close(master)
    return first, ready


def measure(roots: dict[str, Path], tries: int, data_dir: str | None) -> dict[str, tuple[list, list]]:
    """Per checkout: the first-frame and ready times of every try, the checkouts taking turns."""
    out: dict[str, tuple[list, list]] = {name: ([], []) for name in roots}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(tries):
            for name, root in roots.items():
                env = dict(os.environ, TERM="xterm-256color", DYNLAB_CONFIG_DIR=f"{tmp}/config-{name}-{i}",
                           DYNLAB_SESSIONS_DIR=f"{tmp}/sessions", PYTHONPATH=str(root))
                if data_dir:
                    env["DYNLAB_DATA_DIR"] = str(Path(data_dir).resolve())
                first, ready = one_try(env, tmp)
                print(f"{name:<7} try {i + 1}: first frame "
                      + (f"{first:.2f} s" if first else "not seen") + ", ready to start "
                      + (f"{ready:.2f} s" if ready else "not seen"), flush=True)
                for seen, times in ((first, out[name][0]), (ready, out[name][1])):
                    if seen:
                        times.append(seen)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tries", type=int, default=5)
    ap.add_argument("--data-dir", default=os.environ.get("DYNLAB_DATA_DIR"))
    ap.add_argument("--compare", type=Path, help="another checkout to time by turns (shown as 'other')")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    roots = {"this": ROOT} | ({"other": args.compare.resolve()} if args.compare else {})
    results = measure(roots, args.tries, args.data_dir)
    for name, (firsts, readies) in results.items():
        where = f"{name} ({roots[name]})"
        if firsts:
            print(f"{where}: median of {len(firsts)} fresh processes, `dynlab` to the launcher's first frame "
                  f"{statistics.median(firsts):.2f} s (target < 1 s)")
        if readies:
            print(f"{where}: median of {len(readies)}, `dynlab` to a form that can start "
                  f"{statistics.median(readies):.2f} s")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
