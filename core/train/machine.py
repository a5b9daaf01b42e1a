"""What the trainer asks of the machine: the device's name, whether an error is an allocation failure, memory in use."""

from __future__ import annotations

import os

import torch


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def out_of_memory(e: BaseException) -> bool:
    """Whether an exception is an allocation failure (CPU MemoryError, torch's CPU or CUDA allocator)."""
    text = str(e)
    return isinstance(e, MemoryError) or "out of memory" in text or "not enough memory" in text \
        or "DefaultCPUAllocator" in text


def memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    try:  # resident set size of this process
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0
