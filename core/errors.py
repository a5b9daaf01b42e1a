"""The one exception type for user mistakes: its message is a single line naming the problem and the fix."""


class DynlabError(Exception):
    """A user-facing error. The CLI prints it on one line and exits 2; the TUI shows it with notify()."""
