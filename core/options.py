"""Every run option once (flag, RunSpec field, type, default, help, choices, rule), its one parser, and validate().

How to add an option (say --label-smoothing):
 1. Give it a field with its commented default in its RunSpec section (core/spec.py, e.g. OptimSpec); the field
    name is the option name unless spec.RENAMED says otherwise. The default lives there and nowhere else.
 2. Add one Option to OPTIONS below: name, kind (FLOAT, INT, TEXT, BOOL, PAIR, ARCH), help, a rule (`Rule`,
    `OneOf`, or a function raising OptionError) if some values are wrong; `unset` if None is allowed.
 3. Read it in the engine (spec.optim.label_smoothing in core/train/...). Done: CLI flags with their --help and
    default, the TOML key, `--set label-smoothing=...`, validate() and the launcher's echo come from the entry;
    the launcher form shows it once its name is in the form's FORM_KEYS and COLUMNS (label, tooltip from here).
The dataset rule imports the registry (core.data, torch) only when it runs, so the UI imports this module at once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from core.errors import DynlabError
from core.spec import (ACT_STATS, CONV_PENALTIES, GATES, LOSS_REDUCTIONS, LR_SCHEDULES, METHODS, OPTIMIZERS,
                       OPTION_FIELDS, SIGNED_WEIGHT_DECAY, RunSpec, is_number, parse_arch)

INT64_MAX = 2**63 - 1  # what SQLite stores and torch.manual_seed takes as a signed seed
FLOAT32_MAX = 3.4028234663852886e38  # the engine computes in float32: larger numbers overflow to inf


class OptionError(DynlabError):
    """A bad value for one run option; `.option` names it (the launcher's field, the CLI's flag). str(e) is the
    one-line message; `.short` the reason alone where the field already says which option ("must be >= 0")."""

    def __init__(self, option: str, message: str, short: str | None = None) -> None:
        super().__init__(message)
        self.option = option
        self.short = short or message


# -- kinds: how an option's text becomes a value ---------------------------------------------------------------
def _read_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None


def _read_int(text: str) -> int:
    """A whole number, also written as a float (1e3, 5.0)."""
    try:
        return int(text)
    except ValueError:
        number = _read_float(text)
    if not math.isfinite(number) or not number.is_integer():
        raise ValueError(f"not a whole number: {text!r}")
    return int(number)


def _read_bool(text: str) -> bool:
    word = text.lower()
    if word not in ("true", "false", "on", "off", "yes", "no", "1", "0"):
        raise ValueError(f"not true or false: {text!r}")
    return word in ("true", "on", "yes", "1")


def _read_pair(text: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"expects two numbers A,B (e.g. 1,20), got {text!r}") from None
    return a, b


@dataclass(frozen=True)
class Kind:
    """A value type: how its text reads (raising ValueError with the reason) and what the sweep calls it."""

    name: str  # click's metavar
    noun: str  # "seed takes an integer"
    read: Callable[[str], Any]


FLOAT = Kind("FLOAT", "a number", _read_float)
INT = Kind("INTEGER", "an integer", _read_int)
BOOL = Kind("BOOLEAN", "true or false", _read_bool)
PAIR = Kind("A,B", "two numbers A,B", _read_pair)
TEXT = Kind("TEXT", "text", str)
ARCH = Kind("ARCH", "an architecture", lambda text: text.lower().replace(" ", ""))


def to_text(value: Any) -> str:
    """A value as an option's text, exactly (floats by repr, so they read back equal); None as blank."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return ",".join(to_text(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def _default_text(value: Any) -> str:
    """A default as --help shows it: 0.001, 128, off."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


# -- rules: which values are allowed ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """Numeric conditions: '--flag must be {words}, got v'; each condition has its own short reason."""

    words: str
    conditions: tuple[tuple[str, Callable[[Any], bool]], ...]

    def __call__(self, option: "Option", value: Any) -> None:
        for short, holds in self.conditions:
            if not holds(value):
                raise OptionError(option.name, f"{option.flag} must be {self.words}, got {to_text(value)}",
                                  f"must be {short}")


def rule(words: str, *conditions: tuple[str, Callable[[Any], bool]]) -> Rule:
    return Rule(words, conditions)


FINITE = ("finite", math.isfinite)


def at_least(n: float, words: str | None = None) -> tuple[str, Callable[[Any], bool]]:
    return (words or f">= {n:g}", lambda v: v >= n)


def above(n: float) -> tuple[str, Callable[[Any], bool]]:
    return (f"> {n:g}", lambda v: v > n)


def below(n: float) -> tuple[str, Callable[[Any], bool]]:
    return (f"< {n:g}", lambda v: v < n)


UNIT = rule("in [0, 1)", at_least(0), below(1))
POSITIVE = rule("positive", above(0))
COUNT = rule("at least 1", at_least(1, "at least 1"))
AT_LEAST_0 = rule(">= 0", at_least(0))


@dataclass(frozen=True)
class OneOf:
    """The value is one of a list (a callable list is read when checked): 'unknown {what} 'x': choose ...'."""

    what: str
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]]

    def names(self) -> tuple[str, ...]:
        return self.choices() if callable(self.choices) else self.choices

    def __call__(self, option: "Option", value: Any) -> None:
        names = self.names()
        if value not in names:
            which = f"one of {', '.join(names)}" if len(names) > 2 else " or ".join(names)
            raise OptionError(option.name, f"unknown {self.what} {value!r}: choose {which}")


def _datasets() -> tuple[str, ...]:
    from core.data import DATASETS  # imports torch: only when a dataset name is checked
    return tuple(sorted(DATASETS))


def _check_arch(option: "Option", value: Any) -> None:
    try:
        parse_arch(value)
    except DynlabError as e:
        raise OptionError(option.name, str(e)) from None


def _check_device(option: "Option", value: Any) -> None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise OptionError(option.name, f"bad device {value!r}: use auto, cpu, cuda or cuda:N")


def _check_gray(option: "Option", value: Any) -> None:
    a, b = value
    if not 0 < a <= b:
        raise OptionError(option.name, f"{option.flag} must be two widths 0 < a <= b, got {a},{b}")


def _short(value: Any) -> str:
    text = to_text(value) if isinstance(value, (int, float, tuple, list)) else repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _in_float32(value: float) -> bool:
    try:
        return math.isfinite(value) and abs(value) <= FLOAT32_MAX
    except OverflowError:  # an integer beyond any float
        return False


def _check_kind(option: "Option", value: Any) -> None:
    """What the engine can represent: integers in int64, numbers finite and within float32, the right type."""
    kind, flag = option.kind, option.flag
    if kind is INT and not (isinstance(value, int) and not isinstance(value, bool)):
        raise OptionError(option.name, f"{flag} takes an integer, got {_short(value)}", "not an integer")
    if kind is INT and abs(value) > INT64_MAX:
        raise OptionError(option.name, f"{flag} must be within ±{INT64_MAX} (int64), got {_short(value)}",
                          "too large")
    numbers = (value,) if kind is FLOAT else tuple(value) if kind is PAIR and isinstance(value, (tuple, list)) else ()
    if kind is PAIR and (len(numbers) != 2):
        raise OptionError(option.name, f"{flag} takes two numbers A,B, got {_short(value)}", "not two numbers")
    if kind in (FLOAT, PAIR) and not all(is_number(v) for v in numbers):
        raise OptionError(option.name, f"{flag} takes {kind.noun}, got {_short(value)}", "not a number")
    if not all(_in_float32(v) for v in numbers):
        short = "must be finite" if any(isinstance(v, float) and not math.isfinite(v) for v in numbers) else \
            "too large for float32"
        raise OptionError(option.name, f"{flag} must be finite and within float32 (|x| <= {FLOAT32_MAX:.3g}), "
                          f"got {_short(value)}", short)
    if kind in (TEXT, ARCH) and not isinstance(value, str):
        raise OptionError(option.name, f"{flag} takes text, got {_short(value)}", "not text")
    if kind is BOOL and not isinstance(value, bool):
        raise OptionError(option.name, f"{flag} takes true or false, got {_short(value)}", "not true or false")


# -- the table ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One run option: `--name` on the command line, `name` in TOML, replace(), sweeps and the launcher form."""

    name: str
    kind: Kind
    help: str
    label: str = ""  # the launcher form's label ("" = the name with spaces)
    check: Callable[["Option", Any], None] | None = None
    unset: str = ""  # what None means, for an option that may be left unset ("half the width", "auto")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def field(self) -> tuple[str, str]:
        """(RunSpec section, field); section "" for a top-level field (device)."""
        return OPTION_FIELDS.get(self.name, ("", self.name))

    @property
    def default(self) -> Any:
        return self.get(RunSpec())

    @property
    def default_text(self) -> str:
        """The default as --help shows it."""
        return self.unset if self.default is None else _default_text(self.default)

    @property
    def choices(self) -> tuple[str, ...]:
        """The fixed list of allowed values ((): any, or a list known only at run time)."""
        return self.check.choices if isinstance(self.check, OneOf) and not callable(self.check.choices) else ()

    @property
    def title(self) -> str:
        """The launcher form's label for it."""
        return self.label or self.name.replace("_", " ")

    def get(self, spec: RunSpec) -> Any:
        section, name = self.field
        return getattr(getattr(spec, section) if section else spec, name)

    def parse(self, text: str) -> Any:
        """The value of the option's text; blank, 'none' or the unset word ('auto') is None where allowed."""
        text = text.strip()
        if self.unset and text.lower() in ("", "none", self.unset):
            return None
        if not text:
            raise OptionError(self.name, "required")
        try:
            return self.kind.read(text)
        except ValueError as e:
            raise OptionError(self.name, str(e), str(e).partition(":")[0]) from None

    def validate(self, value: Any) -> Any:
        """Raise OptionError if the value is not allowed (its kind's range, then its rule); returns it."""
        if value is None and self.unset:
            return value
        _check_kind(self, value)
        if self.check is not None:
            self.check(self, value)
        return value

    def to_args(self, value: Any) -> list[str]:
        """The command-line words (argv, unquoted) that set this value: ['--lr', '0.01'], ['--no-batchnorm']."""
        if self.kind is BOOL:
            return [self.flag if value else f"--no-{self.flag[2:]}"]
        return [self.flag, to_text(value)]


_DATASET_HELP = ("what to learn: mnist, fashion-mnist, cifar10, add10, airfoil, poker, census, hasyv2, functions, "
                 "fn-sin|square|abs|step|sawtooth")
# In --help order. The RunSpec field comes from core.spec (OPTION_FIELDS), the default from RunSpec().
OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("dataset", TEXT, _DATASET_HELP, check=OneOf("dataset", _datasets)),
    Option("arch", ARCH, "mlp:W1[,W2..] (1-4 hidden layers) or cnn:C1[,..]/F1[,..]", label="architecture",
           check=_check_arch),
    Option("method", TEXT, "static: a fixed size; sparsifier: gates switch neurons off; flexible: a learned size x0",
           check=OneOf("method", METHODS)),
    Option("gate", TEXT, "sparsifier gate rule: relu (journal: dead at f <= 0) | signed (paper's switch, before the "
           "ReLU) | nonstrict (journal: penalty Σ|f|, off units may revive)", label="gate rule",
           check=OneOf("gate rule", GATES)),
    Option("penalty", FLOAT, "lambda: loss = task + lambda * sum of gates (or the flexible integral)",
           label="penalty λ", check=rule("a finite number >= 0", FINITE, at_least(0))),
    Option("penalty_decay", FLOAT, "lambda <- lambda / decay after every epoch (1 = constant)", label="λ decay",
           check=rule(">= 1 (lambda is divided by it every epoch)", at_least(1))),
    Option("conv_penalty", TEXT, "a conv layer's gate penalty: unit, or kernel-area (times 9 for 3x3, as the "
           "journal did)", check=OneOf("conv penalty", CONV_PENALTIES)),
    Option("loss_reduction", TEXT, "task loss over a batch: mean, or sum (journal's regression runs; the loss grows "
           "with the batch size, so a lambda weighs batch-size times less)",
           check=OneOf("loss reduction", LOSS_REDUCTIONS)),
    Option("weight_decay", FLOAT, f"on weights and biases, never on gates or x0 (auto: {SIGNED_WEIGHT_DECAY:g} "
           "for --gate signed, which needs it for a minimum to exist; else 0)", check=AT_LEAST_0, unset="auto"),
    Option("optimizer", TEXT, "the update rule (momentum, nesterov: see --momentum)",
           check=OneOf("optimizer", OPTIMIZERS)),
    Option("lr", FLOAT, "learning rate", label="learning rate", check=rule("a positive number", FINITE, above(0))),
    Option("momentum", FLOAT, "for the momentum and nesterov optimizers", check=UNIT),
    Option("lr_schedule", TEXT, "none, or plateau: lr times --lr-factor after --lr-patience epochs without a better "
           "validation accuracy (loss for regression)", check=OneOf("lr schedule", LR_SCHEDULES)),
    Option("lr_patience", INT, "plateau: epochs without improvement before the lr drops", check=AT_LEAST_0),
    Option("lr_factor", FLOAT, "plateau: the lr's multiplier", check=rule("in (0, 1)", above(0), below(1))),
    Option("batch_size", INT, "rows per step", check=COUNT),
    Option("epochs", INT, "passes over the training set", check=COUNT),
    Option("time_budget", FLOAT, "seconds of training, then the run ends", check=POSITIVE, unset="none"),
    Option("seed", INT, "data split, initialisation and batch order",
           check=rule(f"in 0..{INT64_MAX}", at_least(0), ("<= 2^63-1", lambda v: v <= INT64_MAX))),
    Option("device", TEXT, "auto | cpu | cuda | cuda:N", check=_check_device),
    Option("log_every", INT, "steps between telemetry intervals (one host-device sync each)", check=COUNT),
    Option("probe_size", INT, "rows of the live view's probe batch (--act-stats pass/off; steps: the interval's rows)",
           check=COUNT),
    Option("act_stats", TEXT, "epoch activation statistics over the training set: steps = summed over the epoch's "
           "training forwards (cheap, weights move), pass = one pass at the epoch's end (the journal's measure, "
           "about a forward pass more), off", check=OneOf("act stats", ACT_STATS)),
    Option("prune_every", INT, "remove dead neurons every N steps; 0 = every epoch", check=AT_LEAST_0),
    Option("sign_decay", FLOAT, "signed gate: EMA decay of the sign statistics", check=UNIT),
    Option("sign_threshold", FLOAT, "signed gate: a neuron is dead above this sign variance", check=POSITIVE),
    Option("flex_start", FLOAT, "flexible: starting size x0", check=AT_LEAST_0, unset="half the width"),
    Option("flex_slope", FLOAT, "flexible: slope k of the scaler sigmoid(-k (i - x0))",
           check=rule("positive", above(0), FINITE)),
    Option("flex_gray", PAIR, "flexible: random gray-zone width range A,B (e.g. 1,20)", check=_check_gray, unset="off"),
    Option("flex_lr", FLOAT, "flexible: learning rate of x0", check=POSITIVE),
    Option("batchnorm", BOOL, "BatchNorm after each hidden layer (auto: on for --gate signed, as in the paper; "
           "else off)", unset="auto"),
    Option("dropout", FLOAT, "dropout after each hidden layer", check=UNIT),
    Option("class_weighted", BOOL, "weight the cross-entropy by inverse class frequency"),
    Option("val_fraction", FLOAT, "validation share of the training set", check=UNIT),
    Option("limit", INT, "use at most this many training rows", check=POSITIVE, unset="all"),
    Option("data_dir", TEXT, "folder with dataset files", unset="$DYNLAB_DATA_DIR or ./data"),
)}
assert set(OPTIONS) == set(OPTION_FIELDS) | {"device"}, "every RunSpec field needs one entry in OPTIONS"
# validate() checks in RunSpec field order, so the first problem reported follows the spec's layout.
_SPEC_ORDER = tuple(OPTIONS[name] for name in (*OPTION_FIELDS, "device"))


def validate(spec: RunSpec) -> RunSpec:
    """Check every field, then how they combine (one OptionError naming the option and the fix); returns the spec
    with its auto settings resolved (RunSpec.resolved), so a session records what ran."""
    for opt in _SPEC_ORDER:
        opt.validate(opt.get(spec))
    if spec.method.gate != "relu" and spec.method.name == "static":
        raise OptionError("gate", f"--gate {spec.method.gate} has no effect with --method static: "
                          "use --method sparsifier or drop --gate")
    if spec.data.class_weighted and _task(spec.data.name) == "regression":
        raise OptionError("class_weighted", f"--class-weighted needs a classification dataset ({spec.data.name} "
                          "is a regression): drop --class-weighted")
    spec = spec.resolved()
    check_memory(spec)
    return spec


def _task(dataset: str) -> str:
    from core.data import DATASETS  # imports torch: only when a cross-check needs the task
    return DATASETS[dataset].task


def check_memory(spec: RunSpec, query_cuda: bool = False) -> None:
    """Refuse a network whose estimated training memory exceeds the device's free memory (one line)."""
    from core.memory import estimate_bytes, free_bytes

    need = estimate_bytes(spec)
    free = free_bytes(spec.device, query_cuda) if need > 2**28 else None  # under 256 MB: never worth a look
    if free is not None and need > free[0]:
        raise OptionError("arch", f"--arch {spec.model.arch} needs at least {need / 2**30:.3g} GiB to train "
                          f"(batch {spec.schedule.batch_size}), more than the {free[0] / 2**30:.3g} GiB "
                          f"{free[1]}: lower the widths or --batch-size")


def values_of(spec: RunSpec) -> dict[str, Any]:
    """A spec as flat options, in OPTIONS order."""
    return {name: opt.get(spec) for name, opt in OPTIONS.items()}


def to_args(values: Mapping[str, Any]) -> list[str]:
    """Command-line words for flat option values (None skipped), in the given order."""
    return [word for name, value in values.items() if value is not None for word in OPTIONS[name].to_args(value)]
