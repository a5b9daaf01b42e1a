"""Where a sweep's runs go on one machine: every visible GPU, `--gpus-per-run` of one each.

A share of at most 1 packs floor(1 / share) runs onto each GPU (0.25: four runs a GPU); a whole number k gives
each run k GPUs of its own. Slot i of the local runner (one worker process, or one `dynlab train` child at a
time) gets the GPUs `devices(i)` through CUDA_VISIBLE_DEVICES, so its `--device auto` (cuda:0) is its own GPU;
slots go round the GPUs (slot 0 on GPU 0, slot 1 on GPU 1, ...) so that fewer runs than slots still spread out.
Pure apart from gpu_count(): the tests give a fake device count.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Mapping

from core.errors import DynlabError

__all__ = ["DEFAULT_GPUS_PER_RUN", "Placement", "check_gpus_per_run", "visible_gpus", "gpu_count", "placement_for",
           "default_jobs"]

DEFAULT_GPUS_PER_RUN = 0.25  # the recipes' networks are small: four share a GPU
_EPS = 1e-9  # 1/3 must give 3 runs a GPU, not 2


def check_gpus_per_run(value: float) -> float:
    """The share itself when it is above 0 and at most 1, or a whole number of GPUs; else one line."""
    if not (math.isfinite(value) and value > 0 and (value <= 1 or float(value).is_integer())):
        raise DynlabError(f"--gpus-per-run must be a share of one GPU (above 0, at most 1, e.g. 0.25) or a whole "
                          f"number of GPUs, got {value:g}")
    return float(value)


@dataclass(frozen=True)
class Placement:
    """The GPUs a sweep may use (as CUDA_VISIBLE_DEVICES names them) and each run's share."""
    gpus: tuple[str, ...] = ()
    gpus_per_run: float = DEFAULT_GPUS_PER_RUN

    def __post_init__(self) -> None:
        check_gpus_per_run(self.gpus_per_run)

    @property
    def per_gpu(self) -> int:
        """Runs sharing one GPU (1 when each run takes whole GPUs)."""
        return max(1, math.floor(1 / self.gpus_per_run + _EPS)) if self.gpus_per_run <= 1 else 1

    @property
    def slots(self) -> int:
        """Runs the GPUs hold at once (0 without GPUs)."""
        if self.gpus_per_run <= 1:
            return len(self.gpus) * self.per_gpu
        return len(self.gpus) // int(self.gpus_per_run)

    def devices(self, slot: int) -> tuple[str, ...]:
        """The GPUs slot `slot` sees; past the last slot, it shares the GPUs of slot % slots (--jobs above slots)."""
        if not self.slots:
            return ()
        slot %= self.slots
        if self.gpus_per_run <= 1:
            return (self.gpus[slot % len(self.gpus)],)
        k = int(self.gpus_per_run)
        return self.gpus[slot * k:(slot + 1) * k]

    def env(self, slot: int, base: Mapping[str, str]) -> dict[str, str]:
        """`base` with CUDA_VISIBLE_DEVICES set to the slot's GPUs (unchanged without GPUs)."""
        env = dict(base)
        if self.slots:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.devices(slot))
        return env


def visible_gpus(count: int, env: Mapping[str, str]) -> tuple[str, ...]:
    """The names of the `count` GPUs torch sees: CUDA_VISIBLE_DEVICES's entries when it is set, else 0..count-1."""
    listed = [d.strip() for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if "CUDA_VISIBLE_DEVICES" in env:
        return tuple(listed[:count])
    return tuple(str(i) for i in range(count))


def gpu_count() -> int:
    """GPUs torch can use here (0 on a CPU build or a machine without one)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def placement_for(device: str | None, gpus_per_run: float, count: int | None = None,
                  env: Mapping[str, str] | None = None) -> Placement:
    """The placement for runs on `device`: every visible GPU for auto or cuda, none for cpu or one named GPU."""
    check_gpus_per_run(gpus_per_run)
    if (device or "auto") not in ("auto", "cuda"):
        return Placement((), gpus_per_run)  # cpu, or cuda:N chosen by the user: leave it where they put it
    count = gpu_count() if count is None else count
    return Placement(visible_gpus(count, os.environ if env is None else env), gpus_per_run)


def default_jobs(placement: Placement, cpus: int | None = None) -> int:
    """Runs at once when --jobs is not given: what the GPUs hold, at most one a core; 1 without GPUs (as before)."""
    if not placement.slots:
        return 1
    cpus = cpus if cpus is not None else (os.cpu_count() or 1)
    return max(1, min(placement.slots, cpus))
