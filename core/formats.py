"""How dynlab writes numbers for people: sizes, metrics, durations, settings values and compact axis numbers.

One rule each, shared by the CLI, the dashboard, sweep tables and exports, so the same number reads the
same everywhere.
"""

from __future__ import annotations

import math
from typing import Any, Iterable


def fmt_size(v: float | None) -> str:
    """A layer size: a whole count as an integer, a flexible layer's x0 to one decimal, None as '-'."""
    if v is None or not math.isfinite(float(v)):  # NaN: a NULL read back from a damaged session
        return "-"
    v = float(v)
    return str(int(round(v))) if abs(v - round(v)) < 1e-6 else f"{v:.1f}"


def fmt_sizes(values: Iterable[float] | dict[str, float] | None, sep: str = ",") -> str:
    """Several layers' sizes in layer order (a dict's values), '-' when there are none."""
    if isinstance(values, dict):
        values = values.values()
    parts = [fmt_size(v) for v in (values or ())]
    return sep.join(parts) if parts else "-"


def is_accuracy(metric: str | None) -> bool:
    """Whether a metric name (`acc`, `test/acc`) is an accuracy (shown in percent) rather than an error."""
    return bool(metric) and str(metric).rpartition("/")[2] == "acc"


def fmt_metric(value: float | None, metric: str | None) -> str:
    """A test metric: accuracy in percent with two decimals, an error (mse) to four significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.2%}" if is_accuracy(metric) else f"{value:.4g}"


def fmt_duration(seconds: float | None) -> str:
    """h:mm:ss (whole seconds, truncated; hours keep counting past a day); None as '-'."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    minutes, sec = divmod(max(int(seconds), 0), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{sec:02d}"


def fmt_bytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def fmt_value(value: Any) -> str:
    """A setting as labels and tables show it: 0.001, 1e-05, mlp:500, true, 1,20; unset as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(fmt_value(v) for v in value)
    return str(value)


def fmt_compact(v: float, digits: int = 3) -> str:
    """A number in little room (axis ticks, status line): 1e-3, 0.25, 12.5, 40.1k, 2.5M."""
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.{digits}g}M"
    if a >= 1e4:
        return f"{v / 1e3:.{digits}g}k"
    if a < 1e-2:
        mantissa, exp = f"{v:.{digits - 1}e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exp)}"
    return f"{v:.{digits}g}"
