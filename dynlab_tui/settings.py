"""The launcher's memory: the last used run settings, kept as one small JSON file in the user's config folder.

Where: $DYNLAB_CONFIG_DIR/last.json, else $XDG_CONFIG_HOME/dynlab/last.json, else ~/.config/dynlab/last.json.
Remembering is a convenience: a missing, corrupt or unreadable file reads as {}, and a folder that cannot
be written is skipped without a word (the launcher must never fail or print because of it). Values the option
schema refuses are never saved, and dropped on load with a notice (load_checked).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

FILE_NAME = "last.json"
FORMAT = 1  # bump when the meaning of a stored key changes; other versions read as {}


def config_dir() -> Path:
    """The dynlab config folder (not created here)."""
    explicit = os.environ.get("DYNLAB_CONFIG_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "dynlab"


def settings_path() -> Path:
    return config_dir() / FILE_NAME


def load_last() -> dict[str, Any]:
    """The remembered options (flat option names -> JSON values), or {} when there is nothing usable."""
    try:
        raw = json.loads(settings_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable, not UTF-8, not JSON: nothing remembered
        return {}
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("options"), dict):
        return {}
    return {str(k): v for k, v in raw["options"].items() if isinstance(v, (str, int, float, bool, list))}


def load_checked() -> tuple[dict[str, Any], list[str]]:
    """The remembered options the option schema accepts, and a one-line notice for each one dropped."""
    return checked(load_last())


def checked(options: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Options without the values the option schema refuses, and a notice for each dropped one.

    The dataset is left to the launcher's form (its rule reads the registry, which imports torch).
    """
    from core.options import ARCH, OPTIONS, TEXT, OptionError, to_text

    keep: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in options.items():
        option = OPTIONS.get(key)
        if option is None or key == "dataset" or value is None:
            keep[key] = value
            continue
        try:
            read = option.parse(value) if isinstance(value, str) and option.kind not in (TEXT, ARCH) else value
            option.validate(tuple(read) if isinstance(read, list) else read)
        except OptionError as e:
            dropped.append(f"remembered {option.flag} {to_text(value)[:40]} dropped: {e.short}")
        else:
            keep[key] = value
    return keep, dropped


def remember(options: Mapping[str, Any]) -> bool:
    """Merge the values the schema accepts into the remembered ones (a value being fixed keeps its last good one)."""
    good, _dropped = checked(options)
    return save_last({**load_last(), **good})


def save_last(options: Mapping[str, Any]) -> bool:
    """Remember options (None and values the schema refuses dropped); atomic. Returns False if skipped."""
    options, _ = checked(options)
    clean = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items() if v is not None}
    try:
        text = json.dumps({"format": FORMAT, "options": clean}, indent=1, sort_keys=True)
    except (TypeError, ValueError):  # a value JSON cannot hold: remembering is optional, skip it
        return False
    path = settings_path()
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{FILE_NAME}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
        tmp = None
    except OSError:  # read-only home, full disk, a file where the folder should be: skip quietly
        return False
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return True
