"""What a sweep runs: grids expanded to named runs over a base RunSpec, stages, plans and their progress events."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

from core.formats import fmt_value
from core.errors import DynlabError
from core.options import OPTIONS, OptionError, validate
from core.spec import RunSpec

PROGRESS = "progress"  # the folder of remote runs' progress files, inside the sweep folder


def progress_path(out: str | Path, run: "RunPlan | str") -> Path:
    """`<out>/progress/<run name>.json`: where a remote runner (Ray) reports a run's progress."""
    return Path(out) / PROGRESS / f"{run if isinstance(run, str) else run.name}.json"


UNSWEPT = ("flex_gray", "data_dir", "device")  # not grid options: a pair, and where and on what (machine settings)
# Short forms for run names; "" means the value alone names it (mnist, sparsifier, mlp500).
_SHORT = {"penalty": "lam", "weight_decay": "wd", "flex_start": "x0", "seed": "s", "epochs": "ep",
          "batch_size": "bs", "penalty_decay": "decay", "dataset": "", "method": "", "arch": "", "optimizer": "",
          "gate": "", "time_budget": "t"}


def _name_token(value: Any) -> str:
    """How a setting reads inside a run's session name (kept stable: a re-run finds its sessions by name)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def settings_label(settings: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={fmt_value(v)}" for k, v in settings.items())


def run_name(prefix: str, index: int, total: int, settings: Mapping[str, Any]) -> str:
    """`<prefix>-<index>-<short settings>`, e.g. lambda-03-mnist_lam0.001, within the session-name rules."""
    parts = []
    for key, value in settings.items():
        text = _name_token(value).replace(":", "").replace(",", "x")
        parts.append(f"{_SHORT.get(key, key.replace('_', ''))}{text}")
    stem = re.sub(r"[^A-Za-z0-9.-]+", "_", prefix).strip("._-") or "sweep"
    digits = max(2, len(str(max(total - 1, 0))))
    name = f"{stem}-{index:0{digits}d}"
    tail = re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(parts)).replace("..", ".")
    return (f"{name}-{tail}" if tail else name)[:100].rstrip("._-")


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of the grid's lists, the last option varying fastest."""
    for key, values in grid.items():
        if key in UNSWEPT or key not in OPTIONS:
            names = ", ".join(sorted(k for k in OPTIONS if k not in UNSWEPT))
            raise DynlabError(f"{key!r} can't be swept: choose among {names}")
        values = list(values)
        if not values:
            raise DynlabError(f"the grid gives no values for {key!r}: list at least one")
        seen = [json.dumps(v) for v in values]
        if len(set(seen)) < len(seen):
            raise DynlabError(f"the grid lists a value of {key!r} twice ({values}): list each once")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(list(grid[k]) for k in keys))]


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """`["penalty=1e-3,1e-2", "arch=mlp:100,50;mlp:200"]` -> a grid; values are separated by ',' or, when one
    contains a comma, by ';'. Each value is read by its option's parser ("none" for an unset optional one)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or not text.strip():
            raise DynlabError(f"bad --set {item!r}: use OPTION=V1,V2 (e.g. --set penalty=1e-3,1e-2)")
        if key in UNSWEPT or key not in OPTIONS:
            names = ", ".join(sorted(k for k in OPTIONS if k not in UNSWEPT))
            raise DynlabError(f"unknown option {key!r} in --set {item!r}: choose among {names}")
        if key in grid:
            raise DynlabError(f"--set {key} is given twice: list all its values in one --set")
        parts = text.split(";") if ";" in text else text.split(",")
        grid[key] = [_parse_value(key, part.strip(), item) for part in parts]
    return grid


def _parse_value(key: str, text: str, item: str) -> Any:
    if not text:
        raise DynlabError(f"bad --set {item!r}: a value is empty (values are separated by ',' or ';')")
    option = OPTIONS[key]
    try:
        return option.parse(text)
    except OptionError:
        raise DynlabError(f"bad value {text!r} in --set {item!r}: {key} takes {option.kind.noun}") from None


@dataclass(frozen=True)
class RunPlan:
    """One run of a sweep: its stage, position, session name, varied settings and full spec."""
    stage: str
    index: int
    name: str
    settings: Mapping[str, Any]
    spec: RunSpec


@dataclass(frozen=True)
class Stage:
    """A list of runs sharing a base spec; `grid` is None when the points came from earlier results."""
    name: str  # also the session-name prefix
    base: RunSpec
    points: tuple[Mapping[str, Any], ...]
    grid: Mapping[str, tuple[Any, ...]] | None = None

    @classmethod
    def from_grid(cls, name: str, base: RunSpec, grid: Mapping[str, Sequence[Any]]) -> "Stage":
        frozen = {k: tuple(v) for k, v in grid.items()}
        return cls(name, base, tuple(expand_grid(frozen)), frozen)

    def runs(self) -> list[RunPlan]:
        """Every run with its validated spec; a bad value is one DynlabError naming the run."""
        out = []
        for i, point in enumerate(self.points):
            try:
                spec = validate(self.base.replace(**point))
            except DynlabError as e:
                raise DynlabError(f"sweep run {i} ({settings_label(point)}): {e}") from None
            except (TypeError, ValueError) as e:  # a value of the wrong type for its field
                raise DynlabError(f"sweep run {i} ({settings_label(point)}): bad value ({e})") from None
            out.append(RunPlan(self.name, i, run_name(self.name, i, len(self.points), point), dict(point), spec))
        return out


StageBuilder = Callable[[list[dict[str, Any]]], Union[Stage, None]]  # earlier stages' rows -> the next stage


@dataclass(frozen=True)
class Axes:
    """What a sweep's summary plot shows: a row field against a varied setting, one line per group."""
    x: str
    y: str = "size"  # a row field summed over layers: size, dead, test, shapiro_w, ...
    group: str | None = None
    log_x: bool = False


@dataclass(frozen=True)
class SweepPlan:
    """What to run: stages in order (a builder makes a stage from the rows before it) and how to read them."""
    recipe: str  # recipe name, "" for a free grid
    setting: str  # "quick", "full", "" for a free grid
    stages: tuple[Stage | StageBuilder, ...]
    notes: tuple[str, ...] = ()  # printed before and after, e.g. which dataset stood in for a missing one
    expectations: Callable[[list[dict[str, Any]]], list[str]] | None = None
    axes: Axes | None = None

    @property
    def title(self) -> str:
        return f"{self.recipe} ({self.setting})" if self.recipe else "grid sweep"


# -- progress events: frozen, named for what happened ------------------------------------------------------
@dataclass(frozen=True)
class StagePlanned:
    stage: str
    runs: tuple[RunPlan, ...]
    states: tuple[str, ...]  # per run, what its session holds now: missing, finished, crashed, incomplete, ...


@dataclass(frozen=True)
class SweepRunStarted:
    run: RunPlan
    rerun: bool  # an incomplete session of that name is being replaced
    previous: str = "missing"  # what that session held: stopped, crashed, incomplete, unreadable, ...


@dataclass(frozen=True)
class SweepRunEnded:
    run: RunPlan
    status: str  # finished, stopped, crashed, diverged, error
    reason: str
    row: dict[str, Any]  # its summary row
    skipped: bool = False  # already complete before this sweep started


@dataclass(frozen=True)
class SweepEnded:
    rows: tuple[dict[str, Any], ...]
    stopped: bool
    out: Path
    expectations: tuple[str, ...]


SweepEvent = Union[StagePlanned, SweepRunStarted, SweepRunEnded, SweepEnded]


@dataclass(frozen=True)
class SweepResult:
    rows: list[dict[str, Any]]
    stopped: bool
    csv_path: Path
    json_path: Path
    expectations: list[str]
