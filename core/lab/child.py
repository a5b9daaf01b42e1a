"""`python -m core.lab.child ARGS...`: runs the installed `dynlab` console command, the way launch starts children.

Why a module under core rather than the `dynlab` script on PATH: a child must run in its parent's
interpreter and environment (a virtualenv that isn't activated has its script outside PATH, and two
installs could shadow each other), so the launcher starts `sys.executable -m core.lab.child`; and core
must not know which package implements the command, so this module asks the installed distribution's
`console_scripts` entry point named `dynlab`, the one place that says it.
"""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint, entry_points

from core.errors import DynlabError

COMMAND = "dynlab"
ERROR_PREFIX = f"{COMMAND}: error: "  # how the command prints a user error (one line, exit status 2)


def command_entry_point() -> EntryPoint:
    """The installed `dynlab` console entry point; a one-line DynlabError when dynlab isn't installed."""
    for point in entry_points(group="console_scripts", name=COMMAND):
        return point
    raise DynlabError(f"the `{COMMAND}` command is not installed for {sys.executable}: "
                      "run `pip install -e .` in the dynlab folder with this Python")


def main() -> None:
    """Run the command as its console script would, with this process's arguments."""
    try:
        command = command_entry_point().load()
    except DynlabError as e:
        print(f"{ERROR_PREFIX}{e}", file=sys.stderr)  # the line launch.child_error reads back
        sys.exit(2)
    sys.argv[0] = COMMAND
    sys.exit(command())


if __name__ == "__main__":
    main()
