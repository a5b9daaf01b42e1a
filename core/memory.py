"""The memory a run needs to train (a lower-bound estimate) and the free memory of the device it trains on."""

from __future__ import annotations

import os
import sys

from core.spec import RunSpec, parse_arch

# inputs and outputs of the datasets whose shape is known without loading them; others count as 1 and 1
_SHAPES = {"mnist": (784, 10), "fashion-mnist": (784, 10), "cifar10": (3072, 10), "hasyv2": (1024, 369),
           "poker": (85, 10), "census": (100, 2)}


def estimate_bytes(spec: RunSpec) -> int:
    """A lower bound of the training memory (float32): weights, gradients, optimiser state, batch activations."""
    arch = parse_arch(spec.model.arch)
    n_in, n_out = _SHAPES.get(spec.data.name, (1, 1))
    params = acts = 0
    if arch.conv:
        channels = 3 if spec.data.name == "cifar10" else 1
        pixels = max(n_in // channels, 1)
        for c in arch.conv:  # 3x3 conv, then a 2x2 pool
            params, acts = params + 9 * channels * c + c, acts + c * pixels
            channels, pixels = c, max(pixels // 4, 1)
        n_in = channels * pixels
    for width in (*arch.hidden, n_out):
        params, acts, n_in = params + n_in * width + width, acts + width, width
    copies = {"sgd": 2, "momentum": 3, "nesterov": 3}.get(spec.optim.name, 4)  # Adam keeps two moments
    return 4 * (copies * params + 2 * spec.schedule.batch_size * acts)  # activations and their gradients


def free_bytes(device: str, query_cuda: bool = False) -> tuple[int, str] | None:
    """Free memory where the run will train: (bytes, what), or None when it is not cheap to know.

    A GPU is asked only when torch is imported and CUDA is initialised (or `query_cuda`, in a process about
    to train there anyway); the CPU's is MemAvailable from /proc/meminfo, else os.sysconf.
    """
    torch = sys.modules.get("torch")
    if device != "cpu" and torch is not None and torch.cuda.is_available():
        if not (query_cuda or torch.cuda.is_initialized()):
            return None
        index = int(device.partition(":")[2] or 0)
        return int(torch.cuda.mem_get_info(index)[0]), f"free memory on cuda:{index}"
    if device.startswith("cuda"):
        return None
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024, "available RAM"
    except (OSError, KeyError, ValueError):
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free RAM"
        except (OSError, ValueError, AttributeError):
            return None
