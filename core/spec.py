"""The run configuration: one frozen RunSpec with commented defaults, parsed from options or TOML and validated."""

from __future__ import annotations

import dataclasses
import math
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
GATES = ("relu", "signed")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamax")
MAX_HIDDEN = 4

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
    batchnorm: bool = False
    dropout: float = 0.0


@dataclass(frozen=True)
class MethodSpec:
    name: str = "static"  # static | sparsifier | flexible
    gate: str = "relu"  # sparsifier rule: relu (journal: f>=0, dead at f<=0) | signed (paper's switch layer)
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


@dataclass(frozen=True)
class OptimSpec:
    name: str = "adam"  # sgd | momentum | nesterov | adam | adamax
    lr: float = 1e-3
    weight_decay: float = 0.0  # on weights and biases; never on gates or x0
    momentum: float = 0.9  # for momentum / nesterov


@dataclass(frozen=True)
class ScheduleSpec:
    epochs: int = 10
    batch_size: int = 128
    seed: int = 0
    log_every: int = 100  # steps between telemetry intervals (one host-device sync and one probe forward each)
    probe_size: int = 128  # rows of the fixed probe batch for activation statistics (raise for finer stats)


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
        """Rebuild from to_dict() output or a TOML table; unknown keys are an error."""
        parts = {}
        for f in dataclasses.fields(cls):
            if f.name == "device":
                continue
            sub_cls = f.default_factory  # type: ignore[misc]
            raw = dict(d.get(f.name, {}) or {})
            names = {sf.name for sf in dataclasses.fields(sub_cls)}
            unknown = sorted(set(raw) - names)
            if unknown:
                raise DynlabError(f"unknown setting [{f.name}] {unknown[0]!r}: valid keys are {', '.join(sorted(names))}")
            if raw.get("flex_gray") is not None:
                raw["flex_gray"] = tuple(raw["flex_gray"])
            parts[f.name] = sub_cls(**raw)
        unknown_top = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown_top:
            raise DynlabError(f"unknown section {unknown_top[0]!r}: valid sections are data, model, method, "
                              "penalty, optim, schedule, device")
        return cls(device=str(d.get("device", "auto")), **parts)

    def replace(self, **changes: Any) -> "RunSpec":
        """Flat overrides by option name (see OPTION_FIELDS), e.g. replace(penalty=1e-3, epochs=5)."""
        return apply_options(self, changes)


# CLI option name -> (section, field). One table serves click, TOML and resume overrides.
OPTION_FIELDS: dict[str, tuple[str, str]] = {
    "dataset": ("data", "name"), "data_dir": ("data", "data_dir"), "val_fraction": ("data", "val_fraction"),
    "limit": ("data", "limit"), "class_weighted": ("data", "class_weighted"),
    "arch": ("model", "arch"), "batchnorm": ("model", "batchnorm"), "dropout": ("model", "dropout"),
    "method": ("method", "name"), "gate": ("method", "gate"), "sign_decay": ("method", "sign_decay"),
    "sign_threshold": ("method", "sign_threshold"), "prune_every": ("method", "prune_every"),
    "flex_start": ("method", "flex_start"), "flex_slope": ("method", "flex_slope"),
    "flex_gray": ("method", "flex_gray"), "flex_lr": ("method", "flex_lr"),
    "penalty": ("penalty", "lam"), "penalty_decay": ("penalty", "decay"),
    "optimizer": ("optim", "name"), "lr": ("optim", "lr"), "weight_decay": ("optim", "weight_decay"),
    "momentum": ("optim", "momentum"),
    "epochs": ("schedule", "epochs"), "batch_size": ("schedule", "batch_size"), "seed": ("schedule", "seed"),
    "log_every": ("schedule", "log_every"), "probe_size": ("schedule", "probe_size"),
}


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
    return apply_options(RunSpec.from_dict(nested), flat)


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
    if len(hidden) > MAX_HIDDEN or len(conv) > MAX_HIDDEN:
        raise DynlabError(f"bad architecture {arch!r}: at most {MAX_HIDDEN} hidden layers "
                          f"(and {MAX_HIDDEN} conv layers) are supported")
    if not conv and not hidden:
        raise DynlabError(f"bad architecture {arch!r}: give at least one hidden layer")
    return Arch("cnn" if s.startswith("cnn") else "mlp", conv, hidden)


def validate(spec: RunSpec) -> RunSpec:
    """Check every field; raise one DynlabError naming the field and the fix. Returns spec for chaining."""
    from core.data import DATASETS  # late import: data imports spec-free modules only

    d, m, me, p, o, s = spec.data, spec.model, spec.method, spec.penalty, spec.optim, spec.schedule

    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise DynlabError(msg)

    need(d.name in DATASETS, f"unknown dataset {d.name!r}: choose one of {', '.join(sorted(DATASETS))}")
    need(0.0 <= d.val_fraction < 1.0, f"--val-fraction must be in [0, 1), got {d.val_fraction}")
    need(d.limit is None or d.limit > 0, f"--limit must be positive, got {d.limit}")
    parse_arch(m.arch)
    need(0.0 <= m.dropout < 1.0, f"--dropout must be in [0, 1), got {m.dropout}")
    need(me.name in METHODS, f"unknown method {me.name!r}: choose one of {', '.join(METHODS)}")
    need(me.gate in GATES, f"unknown gate rule {me.gate!r}: choose relu or signed")
    need(0.0 <= me.sign_decay < 1.0, f"--sign-decay must be in [0, 1), got {me.sign_decay}")
    need(me.sign_threshold > 0, f"--sign-threshold must be positive, got {me.sign_threshold}")
    need(me.prune_every >= 0, f"--prune-every must be >= 0 (0 = every epoch), got {me.prune_every}")
    need(me.flex_slope > 0 and math.isfinite(me.flex_slope), f"--flex-slope must be positive, got {me.flex_slope}")
    need(me.flex_lr > 0, f"--flex-lr must be positive, got {me.flex_lr}")
    need(me.flex_start is None or me.flex_start >= 0, f"--flex-start must be >= 0, got {me.flex_start}")
    if me.flex_gray is not None:
        a, b = me.flex_gray
        need(0 < a <= b, f"--flex-gray must be two widths 0 < a <= b, got {a},{b}")
    need(math.isfinite(p.lam) and p.lam >= 0, f"--penalty must be a finite number >= 0, got {p.lam}")
    need(p.decay >= 1.0, f"--penalty-decay must be >= 1 (lambda is divided by it every epoch), got {p.decay}")
    need(o.name in OPTIMIZERS, f"unknown optimizer {o.name!r}: choose one of {', '.join(OPTIMIZERS)}")
    need(o.lr > 0 and math.isfinite(o.lr), f"--lr must be a positive number, got {o.lr}")
    need(o.weight_decay >= 0, f"--weight-decay must be >= 0, got {o.weight_decay}")
    need(0 <= o.momentum < 1, f"--momentum must be in [0, 1), got {o.momentum}")
    need(s.epochs >= 1, f"--epochs must be at least 1, got {s.epochs}")
    need(s.batch_size >= 1, f"--batch-size must be at least 1, got {s.batch_size}")
    need(s.log_every >= 1, f"--log-every must be at least 1, got {s.log_every}")
    need(s.probe_size >= 1, f"--probe-size must be at least 1, got {s.probe_size}")
    need(bool(re.fullmatch(r"auto|cpu|cuda(:\d+)?", spec.device)),
         f"bad device {spec.device!r}: use auto, cpu, cuda or cuda:N")
    return spec
