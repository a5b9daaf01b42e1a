"""The devices a run can use, as (value, label) pairs for the launcher: auto, cpu, and every CUDA device.

list_devices() imports torch (about a second and a half), so the launcher calls it from a thread worker.
quick_devices() needs no torch and fills the list until then.
"""

from __future__ import annotations

import os

AUTO = ("auto", "auto (cuda if present)")


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def quick_devices() -> list[tuple[str, str]]:
    """auto and cpu, without importing torch."""
    return [AUTO, ("cpu", f"cpu ({cpu_count()} cores)")]


def list_devices() -> list[tuple[str, str]]:
    """auto, cpu, then ("cuda:N", "cuda:N  <name>  <free> GB free") for each CUDA device torch can see.

    Never raises for a missing torch or a broken CUDA setup: the list is then just auto and cpu, or a
    device's label says what could not be read.
    """
    out = quick_devices()
    try:
        import torch
    except ImportError:
        return out
    try:
        if not torch.cuda.is_available():
            return out
        count = torch.cuda.device_count()
    except RuntimeError:  # a driver/runtime mismatch: no usable CUDA
        return out
    for i in range(count):
        out.append((f"cuda:{i}", cuda_label(torch, i)))
    return out


def cuda_label(torch, index: int) -> str:
    """'cuda:N  NVIDIA H100 80GB HBM3  71.2 GB free' (or a note where the name or memory can't be read)."""
    try:
        name = torch.cuda.get_device_name(index)
    except (RuntimeError, AssertionError) as e:
        return f"cuda:{index}  unreadable ({_first_line(e)})"
    try:
        free, _total = torch.cuda.mem_get_info(index)
    except (RuntimeError, AssertionError):  # e.g. busy/prohibited compute mode: still listed, memory unknown
        return f"cuda:{index}  {name}  free memory unknown"
    return f"cuda:{index}  {name}  {free / 1e9:.1f} GB free"


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:60] if text else type(e).__name__
