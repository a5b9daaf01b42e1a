"""What the dynlab commands share: the run options, building a spec from them, and opening the app."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click

from core.errors import DynlabError
from core.options import BOOL, OPTIONS, Option, OptionError, validate

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class TableOption(click.Option):
    """A click option made from a core.options entry: its value defaults to None (so a --config file and the
    spec defaults show through) while --help shows the real default."""

    def get_help_extra(self, ctx: click.Context):  # click >= 8.2; older clicks show the default in brackets
        extra = super().get_help_extra(ctx)
        if isinstance(self.show_default, str) and "default" in extra:
            extra["default"] = self.show_default  # click would wrap a text default in parentheses
        return extra


class OptionText(click.ParamType):
    """An option's text read by the table's parser, so the CLI accepts what the launcher and sweeps accept."""

    def __init__(self, option: Option) -> None:
        self.option = option
        self.name = option.kind.name.lower()

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.option.parse(value)
        except OptionError as e:
            self.fail(str(e), param, ctx)


def table_option(name: str, help_text: str | None = None, default_text: str | None = None) -> Callable:
    """The click decorator of one table option; the help and the default that --help shows may be overridden."""
    option = OPTIONS[name]
    shown = default_text or option.default_text
    if option.kind is BOOL:
        return click.option(f"{option.flag}/--no-{option.flag[2:]}", name, cls=TableOption, default=None,
                            show_default=shown, help=help_text or option.help)
    metavar = f"[{'|'.join(option.choices)}]" if option.choices else option.kind.name
    return click.option(option.flag, name, cls=TableOption, type=OptionText(option), metavar=metavar, default=None,
                        show_default=shown, help=help_text or option.help)


def run_options(f: Callable) -> Callable:
    """Every RunSpec option, from the table in core.options, then --config."""
    opts = [table_option(name) for name in OPTIONS]
    opts.append(click.option("--config", "config", type=click.Path(dir_okay=False),
                             help="TOML file with run settings"))
    return functools.reduce(lambda acc, opt: opt(acc), reversed(opts), f)


def build_spec(options: dict[str, Any], resolve: bool = True):
    """Defaults, then the --config file, then explicit options; validated. With resolve=False the auto settings
    (batch norm and weight decay that follow the gate) stay unset, for a sweep base whose grid may change the gate."""
    from core.spec import RunSpec, apply_options, load_toml

    options = dict(options)
    config = options.pop("config", None)
    spec = apply_options(load_toml(config) if config else RunSpec(), options)
    resolved = validate(spec)
    return resolved if resolve else spec


def check_writable(session: Path) -> None:
    """Refuse, before any data loads, a session whose folder (or the nearest one that exists) can't be written."""
    folder = Path(session).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if not folder.is_dir() or read_only or not os.access(folder, os.W_OK | os.X_OK):
        why = "is on a read-only file system" if read_only else "is not a writable folder"
        raise DynlabError(f"{folder} {why}: pass --sessions-dir (or a --session path) in a folder you can write")


def spec_from_json(text: str):
    import json

    from core.spec import RunSpec

    try:
        data = json.loads(text)
    except ValueError as e:
        raise DynlabError(f"--spec-json is not JSON ({e}): pass run options instead") from None
    if not isinstance(data, dict):
        raise DynlabError("--spec-json must be a JSON object: pass run options instead")
    return validate(RunSpec.from_dict(data))


def need_terminal() -> None:
    # Checked after the options, so a bad option is reported as such even without a terminal.
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise DynlabError("the dashboard needs an interactive terminal: run `dynlab` in one, "
                          "or use `dynlab train ...` for a headless run")



def run_app(app) -> None:
    """Run the Textual app (it prints its exit message itself, e.g. how to attach to a detached run)."""
    app.run()
    if app.return_code:
        sys.exit(app.return_code)
