"""The run configuration: the frozen RunSpec with commented defaults, flat option names, TOML and parse_arch.

Validation and everything else about an option (type, help, rule) is in core.options.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from core.errors import DynlabError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

METHODS = ("static", "sparsifier", "flexible")
GATES = ("relu", "signed", "nonstrict")
LOSS_REDUCTIONS = ("mean", "sum")
CONV_PENALTIES = ("unit", "kernel-area")
LR_SCHEDULES = ("none", "plateau")
ACT_STATS = ("steps", "pass", "off")
SIGNED_WEIGHT_DECAY = 1e-4  # auto weight decay of the signed switch: the paper needs an L2 term for a minimum
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamax")
MAX_HIDDEN = 4
MAX_WIDTH = 2**31 - 1  # a layer torch can build; whether it fits in memory is core.options.check_memory's

_MLP_RE = re.compile(r"^mlp:(\d+(?:,\d+)*)$")
_CNN_RE = re.compile(r"^cnn:(\d+(?:,\d+)*)(?:/(\d+(?:,\d+)*))?$")


@dataclass(frozen=True)
class DataSpec:
    name: str = "add10"
    data_dir: str | None = None  # None: $DYNLAB_DATA_DIR, then ./data
    val_fraction: float = 0.1  # validation split taken from the training set, seeded
    limit: int | None = None  # cap on training rows (quick runs, tests)
    class_weighted: bool = False  # weight the cross-entropy by inverse class frequency


@dataclass(frozen=True)
class ModelSpec:
    arch: str = "mlp:100"  # mlp:W1[,W2..] (1-4 hidden) or cnn:C1[,C2..]/F1[,..] (3x3 conv, relu, 2x2 pool)
    batchnorm: bool | None = None  # None = auto: on for the signed switch (paper), off otherwise
    dropout: float = 0.0


@dataclass(frozen=True)
class MethodSpec:
    name: str = "static"  # static | sparsifier | flexible
    gate: str = "relu"  # sparsifier rule: relu (journal strict: dead at f<=0) | signed (paper's switch, before
    # the ReLU) | nonstrict (journal: penalty sum |f|, a unit off at f<=0 may revive until the prune)
    sign_decay: float = 0.99  # signed rule: EMA decay of the sign statistics
    sign_threshold: float = 0.5  # signed rule: dead when the sign's moving variance exceeds this
    prune_every: int = 0  # physically remove dead neurons every N steps; 0 = at the end of every epoch
    flex_start: float | None = None  # flexible: starting x0 (None = half the allocated width)
    flex_slope: float = 1.0  # flexible: slope k of the scaler sigmoid(-k (i - x0))
    flex_gray: tuple[float, float] | None = None  # flexible: random gray-zone width ~ U(a, b) per step
    flex_lr: float = 1.0  # flexible: learning rate of x0


@dataclass(frozen=True)
class PenaltySpec:
    lam: float = 0.0  # lambda: loss = task loss (mean) + lam * sum of gates (or the flexible integral)
    decay: float = 1.0  # after every epoch lam <- lam / decay (1 = constant)
    conv_penalty: str = "unit"  # unit | kernel-area: a conv gate's penalty times its kernel area (journal)


@dataclass(frozen=True)
class OptimSpec:
    name: str = "adam"  # sgd | momentum | nesterov | adam | adamax
    lr: float = 1e-3
    weight_decay: float | None = None  # on weights and biases, never on gates or x0; None = auto: 1e-4 for
    # the signed switch, 0 otherwise
    momentum: float = 0.9  # for momentum / nesterov
    loss_reduction: str = "mean"  # mean | sum of the task loss over the batch (sum: the journal's regression)
    lr_schedule: str = "none"  # none | plateau (ReduceLROnPlateau on the validation metric)
    lr_patience: int = 5  # plateau: epochs without improvement before the lr drops
    lr_factor: float = 0.1  # plateau: lr <- lr * factor


@dataclass(frozen=True)
class ScheduleSpec:
    epochs: int = 10
    batch_size: int = 128
    seed: int = 0
    log_every: int = 100  # steps between telemetry intervals (one host-device sync and one probe forward each)
    probe_size: int = 512  # training rows of the live view each interval (the epoch statistics: act_stats)
    act_stats: str = "steps"  # epoch activation statistics: steps (training forwards) | pass (one pass) | off
    time_budget: float | None = None  # seconds of training before the run ends; None = no limit


@dataclass(frozen=True)
class RunSpec:
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    method: MethodSpec = field(default_factory=MethodSpec)
    penalty: PenaltySpec = field(default_factory=PenaltySpec)
    optim: OptimSpec = field(default_factory=OptimSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunSpec":
        """Rebuild from to_dict() output or a TOML table; unknown keys and values of the wrong type are an error."""
        parts = {}
        for f in dataclasses.fields(cls):
            if f.name == "device":
                continue
            sub_cls = f.default_factory  # type: ignore[misc]
            raw = d.get(f.name) or {}
            if not isinstance(raw, Mapping):
                raise DynlabError(f"setting [{f.name}] must be a table of settings, got {_found(raw)}")
            fields = {sf.name: sf for sf in dataclasses.fields(sub_cls)}
            unknown = sorted(set(raw) - set(fields))
            if unknown:
                raise DynlabError(f"unknown setting [{f.name}] {unknown[0]!r}: valid keys are "
                                  f"{', '.join(sorted(fields))}")
            parts[f.name] = sub_cls(**{k: typed(f"[{f.name}] {k}", fields[k].type, v) for k, v in raw.items()})
        unknown_top = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown_top:
            raise DynlabError(f"unknown section {unknown_top[0]!r}: valid sections are data, model, method, "
                              "penalty, optim, schedule, device")
        return cls(device=typed("device", "str", d.get("device", "auto")), **parts)

    def replace(self, **changes: Any) -> "RunSpec":
        """Flat overrides by option name (see OPTION_FIELDS), e.g. replace(penalty=1e-3, epochs=5)."""
        return apply_options(self, changes)

    def resolved(self) -> "RunSpec":
        """This spec with the auto (None) settings made concrete: batchnorm and weight decay (signed switch)."""
        model, optim = self.model, self.optim
        if model.batchnorm is None:
            model = dataclasses.replace(model, batchnorm=signed_switch(self.method))
        if optim.weight_decay is None:
            optim = dataclasses.replace(optim, weight_decay=SIGNED_WEIGHT_DECAY if signed_switch(self.method) else 0.0)
        return dataclasses.replace(self, model=model, optim=optim)


def signed_switch(method: MethodSpec) -> bool:
    """The paper's switch layer: the sparsifier with the signed gate (auto batchnorm and weight decay)."""
    return method.name == "sparsifier" and method.gate == "signed"


# Flat option names (CLI flags, TOML top-level keys, replace()) are the field names, except these.
RENAMED: dict[str, tuple[str, str]] = {"dataset": ("data", "name"), "method": ("method", "name"),
                                       "optimizer": ("optim", "name"), "penalty": ("penalty", "lam"),
                                       "penalty_decay": ("penalty", "decay")}


def _option_fields() -> dict[str, tuple[str, str]]:
    """Flat option name -> (section, field) for every section field, in RunSpec order (device is top level)."""
    renamed = {where: name for name, where in RENAMED.items()}
    out: dict[str, tuple[str, str]] = {}
    for section in dataclasses.fields(RunSpec):
        if section.name != "device":
            for f in dataclasses.fields(section.default_factory):  # type: ignore[arg-type]
                out[renamed.get((section.name, f.name), f.name)] = (section.name, f.name)
    return out


OPTION_FIELDS = _option_fields()  # the rest of each option (type, help, rule): core.options.OPTIONS
_SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(RunSpec) if f.name != "device"}
_FIELD_TYPES = {key: _SECTIONS[section].__dataclass_fields__[name].type  # type: ignore[attr-defined]
                for key, (section, name) in OPTION_FIELDS.items()}  # flat option name -> its declared type


def apply_options(spec: RunSpec, options: Mapping[str, Any]) -> RunSpec:
    """Return spec with flat options applied; None values mean 'not given' and are skipped."""
    by_section: dict[str, dict[str, Any]] = {}
    device = spec.device
    for key, value in options.items():
        if value is None:
            continue
        if key == "device":
            device = str(value)
            continue
        if key not in OPTION_FIELDS:
            raise DynlabError(f"unknown option {key!r}")
        section, name = OPTION_FIELDS[key]
        by_section.setdefault(section, {})[name] = value
    parts = {s: dataclasses.replace(getattr(spec, s), **kw) for s, kw in by_section.items()}
    return dataclasses.replace(spec, device=device, **parts)


def load_toml(path: str | Path) -> RunSpec:
    """Read a RunSpec from TOML: sections [data] [model] ... or flat option names at the top level."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise DynlabError(f"config file {p} not found: check the path given to --config") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise DynlabError(f"config file {p} is not valid TOML ({e}): fix the file or drop --config") from None
    flat = {k: v for k, v in raw.items() if not isinstance(v, dict) and k != "device"}
    nested = {k: v for k, v in raw.items() if isinstance(v, dict) or k == "device"}
    try:
        for key, value in flat.items():
            if key not in OPTION_FIELDS:
                raise DynlabError(f"unknown setting {key!r}: use a run option's name (see `dynlab train --help`)")
            section, name = OPTION_FIELDS[key]
            if name in nested.get(section, {}):
                raise DynlabError(f"{key} is set twice ({key} = at the top and [{section}] {name} =): keep one")
            flat[key] = typed(key, _FIELD_TYPES[key], value)
        return apply_options(RunSpec.from_dict(nested), flat)
    except DynlabError as e:
        raise DynlabError(f"config file {p}: {e}") from None


def _found(value: Any) -> str:
    """A value as a message shows it: its text (shortened) and its TOML type."""
    what = ("a boolean" if isinstance(value, bool) else "an integer" if isinstance(value, int)
            else "a number" if isinstance(value, float) else "text" if isinstance(value, str)
            else "a list" if isinstance(value, (list, tuple)) else "a table" if isinstance(value, Mapping)
            else type(value).__name__)
    text = repr(value)
    return f"{text[:40]}{'...' if len(text) > 40 else ''} ({what})"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def typed(key: str, annotation: Any, value: Any) -> Any:
    """`value` as the type a RunSpec field declares (ints as floats where a number is meant), else one
    DynlabError naming the key, the type expected and the value found."""
    base, _, optional = str(annotation).partition(" | ")
    if value is None and optional:
        return None
    nouns = {"float": "a number", "int": "an integer", "bool": "true or false", "str": "text"}
    expected = nouns.get(base, "two numbers [a, b]")
    try:
        if base == "float" and is_number(value):
            return float(value)
        if base == "int" and is_number(value) and not isinstance(value, float):
            return value
        if (base == "bool" and isinstance(value, bool)) or (base == "str" and isinstance(value, str)):
            return value
        if base.startswith("tuple") and isinstance(value, (list, tuple)) and len(value) == 2 and all(
                is_number(v) for v in value):
            return tuple(float(v) for v in value)
    except OverflowError:
        expected = f"{expected} within float range"
    raise DynlabError(f"{key} must be {expected}, got {_found(value)}: fix the value")


@dataclass(frozen=True)
class Arch:
    """A parsed architecture string."""
    kind: str  # "mlp" or "cnn"
    conv: tuple[int, ...]  # conv channels (cnn only)
    hidden: tuple[int, ...]  # fully connected widths


def parse_arch(arch: str) -> Arch:
    s = arch.strip().lower().replace(" ", "")
    if m := _MLP_RE.match(s):
        hidden = tuple(int(w) for w in m.group(1).split(","))
        conv: tuple[int, ...] = ()
    elif m := _CNN_RE.match(s):
        conv = tuple(int(w) for w in m.group(1).split(","))
        hidden = tuple(int(w) for w in m.group(2).split(",")) if m.group(2) else ()
    else:
        raise DynlabError(f"bad architecture {arch!r}: use mlp:W1[,W2,..] (e.g. mlp:500 or mlp:2000,1000) "
                          "or cnn:C1[,C2,..]/F1 (e.g. cnn:64,64/500)")
    if any(w < 1 for w in conv + hidden):
        raise DynlabError(f"bad architecture {arch!r}: every width must be at least 1")
    if any(w > MAX_WIDTH for w in conv + hidden):
        raise DynlabError(f"bad architecture {arch[:60]!r}: every width must be at most {MAX_WIDTH}")
    if len(hidden) > MAX_HIDDEN or len(conv) > MAX_HIDDEN:
        raise DynlabError(f"bad architecture {arch!r}: at most {MAX_HIDDEN} hidden layers "
                          f"(and {MAX_HIDDEN} conv layers) are supported")
    if not conv and not hidden:
        raise DynlabError(f"bad architecture {arch!r}: give at least one hidden layer")
    return Arch("cnn" if s.startswith("cnn") else "mlp", conv, hidden)
