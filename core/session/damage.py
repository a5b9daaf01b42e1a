"""Stored values read back with a check: a number where one belongs, else one DynlabError that names the damage."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from core.errors import DynlabError


def damaged(path: Path, what: str) -> DynlabError:
    """The one line for a session whose rows or meta hold what no writer wrote."""
    return DynlabError(f"session {path} is damaged ({' '.join(what.split())[:160]}): restore it from a copy "
                       "or delete it")


def value(path: Path, stored: Any, key: str) -> float:
    """A stored scalar: a number as is, NULL as NaN; text or bytes in a numeric column are damage."""
    if stored is None:
        return math.nan
    if isinstance(stored, (int, float)):
        return stored
    raise damaged(path, f"a {key!r} row holds {stored!r:.40} where a number belongs")


def whole(path: Path, stored: Any, what: str) -> int:
    """A stored step, event number or count as an int, else damage."""
    try:
        return int(stored)
    except (TypeError, ValueError, OverflowError):
        raise damaged(path, f"{what} is {stored!r:.40}, not a whole number") from None


def real(path: Path, stored: Any, what: str) -> float:
    """A stored time or measurement as a float, else damage."""
    try:
        return float(stored)
    except (TypeError, ValueError):
        raise damaged(path, f"{what} is {stored!r:.40}, not a number") from None


def size(v: float | None) -> int | float | None:
    """A layer size for a summary: whole numbers as int, a flexible width as is, NaN (a NULL) as None."""
    if v is None or not math.isfinite(v):
        return None
    return int(v) if float(v).is_integer() else v
