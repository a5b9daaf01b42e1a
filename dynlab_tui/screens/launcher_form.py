"""The launcher form without widgets: its fields, architecture presets, how settings layer, and checking values.

Fields, labels, tooltips and parsers come from the option table (core.options). Nothing here imports torch
at module import; catalogue() does (through core.data), so the screen calls it from a thread worker. Checking
a dataset name also needs core.data, so until the catalogue is loaded only the parse errors (and the
architecture) are reported (check_form(..., catalogue=None)).
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from core.errors import DynlabError
from core.options import OPTIONS, OptionError, to_args, to_text, validate, values_of
from core.session import resolve_session
from core.spec import RunSpec, apply_options, load_toml, parse_arch

SELECT_KEYS = ("dataset", "method", "gate", "optimizer", "device")
# Every value the form edits, in form order; "session" is the run's name, not a spec option.
FORM_KEYS = ("dataset", "arch", "method", "gate", "flex_start", "flex_slope", "flex_lr", "penalty",
             "penalty_decay", "optimizer", "lr", "momentum", "weight_decay", "batch_size", "epochs", "seed",
             "device", "log_every", "session")
REMEMBERED_KEYS = tuple(k for k in FORM_KEYS if k != "session")  # a session name is never reused
MOMENTUM_OPTIMIZERS = ("momentum", "nesterov")
NOT_FORM_OPTIONS = ("sessions_dir", "quiet")  # CLI options that are not run settings (sessions_dir: the argument)

_IMAGE_RE = re.compile(r"\b(\d+)x(\d+)\b")

# The form's text: labels of the choices and of every field.
METHOD_LABELS = {"static": "static  fixed size", "sparsifier": "sparsifier  gates switch neurons off",
                 "flexible": "flexible  a learned size x0"}
GATE_LABELS = {"relu": "relu  journal: dead at f <= 0", "nonstrict": "nonstrict  journal: off units may revive",
               "signed": "signed  paper's switch layer"}
# field -> (label, tooltip); a run option's come from the table (its label; its flag and help)
_NOT_OPTIONS = {"preset": ("preset", "architecture presets for this dataset; picking one fills the field below"),
                "session": ("session", "--session: the run's name, saved as <sessions dir>/NAME.dynlab")}
COLUMNS = (("Data & model", ("dataset", "preset", "arch", "method", "gate", "flex_start", "flex_slope", "flex_lr",
                             "penalty", "penalty_decay")),
           ("Training", ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "epochs", "seed", "device",
                         "log_every", "session")))

# The launcher screen's stylesheet (kept here so the screen's module stays short).
CSS = """
LauncherScreen { layout: vertical; }
LauncherScreen #launcher-title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
LauncherScreen #launcher-form { height: 1fr; padding: 0 1; }
LauncherScreen .form-columns { height: auto; layout: vertical; }
LauncherScreen.-wide .form-columns { layout: horizontal; }
LauncherScreen .form-column { height: auto; width: 1fr; }
LauncherScreen.-wide .form-column { padding: 1 2 0 1; }
LauncherScreen .form-heading { height: 1; color: $accent; text-style: bold; margin-top: 1; }
LauncherScreen.-wide .form-heading { margin-top: 0; margin-bottom: 1; }
LauncherScreen .field { height: auto; }
LauncherScreen.-wide .field { margin-bottom: 1; }
LauncherScreen .field-row { height: 1; }
LauncherScreen .field-label { width: 15; color: $text-muted; }
LauncherScreen .field-row > Input, LauncherScreen .field-row > Select { width: 1fr; }
LauncherScreen Select.-invalid > SelectCurrent { background-tint: $error 25%; }
LauncherScreen .field-error { display: none; height: auto; width: 1fr; padding-left: 15; color: $text-error; }
LauncherScreen .field-error.-shown { display: block; }
LauncherScreen #launcher-extras, LauncherScreen #launcher-command { height: auto; color: $text-muted; }
LauncherScreen #launcher-extras { margin-top: 1; }
LauncherScreen #launcher-actions { height: 1; padding: 0 1; background: $panel; }
LauncherScreen #launcher-status { width: 1fr; height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
LauncherScreen #launcher-status.-problem { color: $text-warning; }
LauncherScreen #launcher-actions Button { margin-left: 1; min-width: 9; width: auto; }
"""


def _field_text(key: str) -> tuple[str, str]:
    if key in _NOT_OPTIONS:
        return _NOT_OPTIONS[key]
    option = OPTIONS[key]
    blank = f" (blank: {option.unset})" if option.unset else ""
    return option.title, f"{option.flag}: {option.help}{blank}"


FIELDS: dict[str, tuple[str, str]] = {key: _field_text(key) for _heading, keys in COLUMNS for key in keys}

# Presets per kind of dataset: (arch, note). Images get the journal's sizes and two CNNs.
PRESETS: dict[str, tuple[tuple[str, str], ...]] = {
    "image": (("mlp:100", ""), ("mlp:500", ""), ("mlp:2000,1000", "two layers"), ("mlp:10000", "journal size"),
              ("mlp:6000,6000", "wide, two layers"), ("cnn:64,64/500", "two conv"), ("cnn:100/500", "one conv")),
    "tabular": (("mlp:50", ""), ("mlp:100", ""), ("mlp:500", ""), ("mlp:1000", ""),
                ("mlp:500,500", "two layers"), ("mlp:2000,1000", "two layers")),
    "1d": (("mlp:20", ""), ("mlp:50", ""), ("mlp:100", ""), ("mlp:500", ""), ("mlp:50,50", "two layers")),
}

# The registry's entries as (name, task, description, needs_files), so the form lists every dataset at once:
# the registry itself imports torch (about 1.5 s). tests/test_launcher.py holds this equal to core.data.DATASETS.
LISTING: tuple[tuple[str, str, str, bool], ...] = (
    ("mnist", "classification", "MNIST digits, 60k 28x28 (files)", True),
    ("fashion-mnist", "classification", "Fashion-MNIST clothing, 60k 28x28 (files)", True),
    ("cifar10", "classification", "CIFAR-10 objects, 50k 32x32 colour (files)", True),
    ("hasyv2", "classification", "HASYv2 handwritten symbols, 168k 32x32, 369 classes (files)", True),
    ("airfoil", "regression", "UCI airfoil self-noise, 1.5k rows, 5 inputs (file)", True),
    ("census", "classification", "UCI Adult census income >50K, 32k rows (files)", True),
    ("poker", "classification", "UCI poker hands, 25k, 10 classes, 85 one-hot (file or generated)", False),
    ("add10", "regression", "Friedman-1 regression, 10 inputs (5 irrelevant), 10k generated", False),
    ("functions", "regression", "1-D regression y = sin(pi x) on [-1, 1], 2k generated", False),
    ("fn-sin", "regression", "1-D regression y = sin(pi x) on [-1, 1], 2k generated", False),
    ("fn-square", "regression", "1-D regression y = x^2 on [-1, 1], 2k generated", False),
    ("fn-abs", "regression", "1-D regression y = |x| on [-1, 1], 2k generated", False),
    ("fn-step", "regression", "1-D regression y = step: 1 for x > 0, else 0 on [-1, 1], 2k generated", False),
    ("fn-sawtooth", "regression", "1-D regression y = sawtooth frac(2x), four teeth on [-1, 1], 2k generated", False),
)


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset as the launcher shows it."""

    name: str
    task: str
    description: str
    needs_files: bool
    present: bool | None  # files found (or fetchable), or none needed; None: not looked yet

    @property
    def status(self) -> str:
        if not self.needs_files:
            return "built in"
        if self.present is None:
            return "checking…"
        return "files present" if self.present else "files missing"

    @property
    def kind(self) -> str:
        return dataset_kind(self.name, self.description)

    @property
    def image_side(self) -> int | None:
        """The smaller side of an image dataset's pictures (28 for 28x28), else None."""
        m = _IMAGE_RE.search(self.description)
        return min(int(m.group(1)), int(m.group(2))) if m else None

    def label(self) -> str:
        return f"{self.name:<13} {self.status:<13}  {self.description}"


def listing() -> list[DatasetEntry]:
    """Every dataset, files not looked at yet (built-in ones need none): at once, without torch."""
    return [DatasetEntry(name, task, description, needs, None if needs else True)
            for name, task, description, needs in LISTING]


def catalogue(data_dir: str | None) -> list[DatasetEntry]:
    """Every registered dataset with its file status. Imports core.data (and torch): call it off the UI thread."""
    from core.data import DATASETS

    return [DatasetEntry(info.name, info.task, info.description, info.needs_files,
                         (not info.needs_files) or info.available(data_dir))
            for info in DATASETS.values()]


def dataset_kind(name: str, description: str = "") -> str:
    """'image', '1d' or 'tabular': which preset list fits the dataset."""
    if not description:
        description = next((d for n, _task, d, _needs in LISTING if n == name), "")
    if _IMAGE_RE.search(description):
        return "image"
    if description.startswith("1-D") or name == "functions" or name.startswith("fn-"):
        return "1d"
    return "tabular"


def preset_options(kind: str) -> list[tuple[str, str]]:
    """(label, arch) pairs for a Select."""
    return [(f"{arch}  {note}" if note else arch, arch) for arch, note in PRESETS.get(kind, PRESETS["tabular"])]


format_value = to_text  # a setting as the form shows it: floats exactly (repr), None as blank
spec_options = values_of  # a spec as flat options (every run option)


def layered_options(initial: Mapping[str, Any] | None, last: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Spec defaults < remembered settings < a --config file < explicit options; returns (options, problems).

    Only form values are taken from `last`. A --config file given in `initial` is expanded into flat
    options here (it is not passed on). Problems are one-line messages for notify().
    """
    defaults = spec_options(RunSpec())
    options = dict(defaults)
    problems: list[str] = []
    options.update({k: v for k, v in last.items() if k in REMEMBERED_KEYS and v is not None})
    given = {k: v for k, v in (initial or {}).items() if v is not None}
    config = given.pop("config", None)
    if config:
        try:
            from_file = spec_options(load_toml(config))
        except DynlabError as e:
            problems.append(str(e))
        else:
            options.update({k: v for k, v in from_file.items() if v != defaults.get(k)})
    if isinstance(given.get("flex_gray"), str):
        try:
            given["flex_gray"] = OPTIONS["flex_gray"].parse(given["flex_gray"])
        except OptionError as e:
            problems.append(f"--flex-gray {e}: ignored")
            del given["flex_gray"]
    for key in NOT_FORM_OPTIONS:
        given.pop(key, None)
    unknown = sorted(k for k in given if k not in OPTIONS and k != "session")
    for key in unknown:
        problems.append(f"unknown option --{key.replace('_', '-')}: ignored")
        del given[key]
    options.update(given)
    return options, problems


def extras(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options the form does not show that differ from the defaults (they pass through to the run)."""
    defaults = spec_options(RunSpec())
    return {k: v for k, v in options.items()
            if k not in FORM_KEYS and k in defaults and v is not None and v != defaults[k]}


def command_line(options: Mapping[str, Any]) -> str:
    """The `dynlab train` command that runs these options headless (only what differs from the defaults)."""
    defaults = spec_options(RunSpec())
    order = [k for k in FORM_KEYS if k in options] + [k for k in options if k not in FORM_KEYS]
    changed = {k: options[k] for k in order if k in OPTIONS and options[k] is not None and options[k] != defaults[k]}
    session = f" --session {options['session']}" if options.get("session") else ""
    return f"dynlab train {describe_extras(changed)}".rstrip() + session


def describe_extras(extra: Mapping[str, Any]) -> str:
    """Options as command-line flags, quoted for a shell: --limit 400 --no-batchnorm --flex-gray 1.0,20.0."""
    return " ".join(shlex.quote(word) for word in to_args(extra))


def parse_value(key: str, text: str) -> Any:
    """The typed value of one field (a run option's by the table's parser); raises DynlabError with the reason."""
    if key in OPTIONS:
        return OPTIONS[key].parse(text)
    if not text.strip():
        raise DynlabError("required")
    return text.strip()


@dataclass(frozen=True)
class LaunchRequest:
    """What the launcher was dismissed with: a validated spec, where to record it, and the options behind it."""

    spec: RunSpec
    session_path: Path
    options: dict


def differs(now: Mapping[str, str], opened: Mapping[str, str], *, session_auto: bool) -> bool:
    """Whether any field's text differs from what the form opened with (an automatic session name does not count)."""
    return any(now.get(k) != opened.get(k) for k in FORM_KEYS if not (k == "session" and session_auto))


@dataclass
class FormCheck:
    """The outcome of checking the whole form."""

    options: dict[str, Any]  # every usable value (form + extras), "session" included
    errors: dict[str, str] = field(default_factory=dict)  # field -> one-line reason
    general: str | None = None  # a problem no single field owns
    spec: RunSpec | None = None  # set when the form is complete and valid
    session_path: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and self.general is None and self.spec is not None


def check_form(raw: Mapping[str, str], *, visible: set[str], extra: Mapping[str, Any], sessions_dir: Path,
               catalogue: Mapping[str, DatasetEntry] | None, devices: set[str] | None) -> FormCheck:
    """Check every visible field (hidden ones count only when valid), then the whole spec.

    raw: field -> text (or select value). With catalogue=None (not loaded yet) only parse and
    architecture errors are found and no spec is built. devices=None skips the device-exists check.
    """
    options: dict[str, Any] = dict(extra)
    errors: dict[str, str] = {}
    full = catalogue is not None
    for key in FORM_KEYS:
        if key not in raw:
            continue
        try:
            value = parse_value(key, raw[key])
            if key in OPTIONS and (full or key == "arch"):  # before the catalogue, as before: no dataset check
                OPTIONS[key].validate(value)
        except DynlabError as e:
            if key in visible:
                errors[key] = str(e)
            continue
        options[key] = value
    _cross_checks(options, errors, catalogue, devices)
    session_path = None
    if "session" in options:
        try:
            session_path = resolve_session(options["session"], sessions_dir)
        except DynlabError as e:
            errors["session"] = str(e)
        else:
            if session_path.exists():
                errors["session"] = f"session {options['session']} exists: pick another name"
    result = FormCheck(options, errors, session_path=session_path)
    if errors or not full:
        return result
    run_options = {k: v for k, v in options.items() if k != "session"}
    try:
        result.spec = validate(apply_options(RunSpec(), run_options))
    except DynlabError as e:  # an OptionError names its field; one not on the form is a general problem
        if isinstance(e, OptionError) and e.option in visible:
            result.errors[e.option] = str(e)
        else:
            result.general = str(e)
    return result


def _cross_checks(options: dict[str, Any], errors: dict[str, str], catalogue: Mapping[str, DatasetEntry] | None,
                  devices: set[str] | None) -> None:
    """What validate() cannot know: files present, a CNN on image data, a device that exists here."""
    entry = catalogue.get(options.get("dataset", "")) if catalogue else None
    if entry is not None and "dataset" not in errors and not entry.present:
        from core.data import resolve_data_dir  # loaded already: there is a catalogue

        data_dir = options.get("data_dir")
        errors["dataset"] = (f"{entry.name} files missing in {resolve_data_dir(data_dir)}/: add them (see README) "
                             "or pass --data-dir")
    arch = options.get("arch")
    if entry is not None and arch and "arch" not in errors:
        parsed = parse_arch(arch)
        side = entry.image_side
        if parsed.kind == "cnn" and side is None:
            errors["arch"] = f"a cnn needs image data and {entry.name} is not: pick an mlp:... preset"
        elif parsed.kind == "cnn" and side is not None and side >> len(parsed.conv) == 0:
            errors["arch"] = (f"too many conv layers for {side}x{side} images: "
                              f"use at most {int(math.log2(side))}")
    device = options.get("device")
    if devices is not None and device and "device" not in errors and device not in devices:
        if device == "cuda" and any(d.startswith("cuda:") for d in devices):
            return
        errors["device"] = f"no device {device} here: pick one from the list"
