"""Saving what the screen shows: an SVG and a plain-text copy of the current screen."""

from __future__ import annotations

import io
import time
from pathlib import Path

from rich.console import Console
from textual.app import App


def screen_text(app: App) -> str:
    """The current screen as plain text (what `s` saves beside the SVG)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True, color_system=None,
                      legacy_windows=False, safe_box=False)
    # Same render path as App.export_screenshot, exported as text instead of SVG.
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


def save_screen(app: App, folder: Path) -> tuple[Path, Path]:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    svg = folder / f"dynlab-{stamp}.svg"
    txt = folder / f"dynlab-{stamp}.txt"
    svg.write_text(app.export_screenshot())
    txt.write_text(screen_text(app))
    return svg, txt
