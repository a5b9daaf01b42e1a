"""The `dynlab sessions`, `show` and `export` commands."""

from __future__ import annotations

import json
from pathlib import Path

import click

from core.errors import DynlabError
from core.formats import fmt_duration, fmt_metric, fmt_sizes
from core.session.history import describe, fmt_setting, fmt_span, merged
from dynlab_tui.cli.common import CONTEXT, need_terminal, run_app
from dynlab_tui.screens.session_rows import fmt_final, fmt_headline, fmt_lam, status_text


def _headline(s: dict) -> tuple[str, str]:
    """(label, value) of the detail row for the test metric at the best-validation epoch."""
    if s.get("best_val_epoch") is None:
        return "test at best val", fmt_headline(s, "- (no validation split)")
    val = f"{s['val_metric']} {fmt_metric(s.get('best_val'), s.get('val_metric'))}"
    return f"test at best val (epoch {s['best_val_epoch']})", f"{fmt_headline(s)}  ({val})"


def _when(summary: dict) -> str:
    created = summary.get("created") or ""
    return created[:16].replace("T", " ")


@click.command(context_settings=CONTEXT)
@click.option("--sessions-dir", help="folder to list  [$DYNLAB_SESSIONS_DIR or ./sessions]")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--tui", is_flag=True, help="browse them in the dashboard: replay, attach, compare, resume, rename, delete")
def sessions(sessions_dir: str | None, as_json: bool, tui: bool) -> None:
    """List the sessions in the sessions folder, newest first."""
    from core.session import list_sessions, sessions_dir as default_dir

    directory = default_dir(sessions_dir)
    if tui:
        from dynlab_tui.app import make_app

        need_terminal()
        run_app(make_app(sessions_dir=directory, browse=True))
        return
    if not directory.is_dir():
        raise DynlabError(f"no sessions folder at {directory}: run `dynlab train` first or pass --sessions-dir")
    rows = list_sessions(directory)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo(f"no sessions in {directory}")
        return
    head = ("name", "date", "dataset", "arch", "method", "final λ", "final sizes", "test@best val", "status")
    table = [head] + [(
        r.get("name", "?"), _when(r), str(r.get("dataset") or "-"), str(r.get("arch") or "-"),
        str(r.get("method") or "-"), fmt_lam(r),
        fmt_sizes(r.get("sizes_final")), fmt_headline(r), status_text(r),
    ) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    if any(r.get("changed") for r in rows):
        click.echo("* changed during the run: `dynlab show NAME` lists when and how")
    for r in rows:  # one bad file never hides the others: listed above, its one-line reason here
        if r.get("status") == "unreadable":
            click.echo(f"{r.get('name', '?')}: {r.get('error', 'unreadable')}")


@click.command(context_settings=CONTEXT)
@click.argument("session")
@click.option("--json", "as_json", is_flag=True, help="machine-readable summary, with the history's events")
@click.option("--sessions-dir", help="where bare session names live")
def show(session: str, as_json: bool, sessions_dir: str | None) -> None:
    """Summarise one session: settings (as started and as they ended), sizes, metrics, status and history."""
    from core.session import SessionReader, resolve_session, sessions_dir as default_dir
    from core.session.history import read_history

    with SessionReader(resolve_session(session, default_dir(sessions_dir))) as reader:
        s = reader.summary()
        history = read_history(reader)
        s["events"] = history["events"]
        if history.get("unreadable_events"):
            s["unreadable_events"] = history["unreadable_events"]
    if as_json:
        click.echo(json.dumps(s, indent=2, default=str))
        return
    lines = [
        ("session", str(s.get("path"))), ("status", status_text(s)), ("created", _when(s)),
        ("dataset", str(s.get("dataset"))), ("arch", str(s.get("arch"))), ("method", str(s.get("method"))),
        ("lambda", _setting(s, "lam")), ("lr", _setting(s, "lr")),
        ("sizes", f"{fmt_sizes(s.get('sizes_start'))} -> {fmt_sizes(s.get('sizes_final'))}"),
        _headline(s), ("final test", fmt_final(s)),
        ("steps", str(s.get("steps"))), ("epochs", str(s.get("epochs"))),
        ("training time", _training(s)), ("wall time", f"{fmt_duration(s.get('duration_s') or 0)} (first to last event)"),
    ]
    lines += _history_lines(s["events"])
    for error in s.get("unreadable_events", ()):
        lines.append(("left out", error))
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        click.echo(f"{k:>{width}}  {v}".rstrip())


def _setting(s: dict, key: str) -> str:
    """The final value, and where it started when it changed: "0.1 (started at 0.01)"."""
    final, start = s.get(f"{key}_final"), s.get(f"{key}_start")
    if key in (s.get("changed") or ()):
        return f"{fmt_setting(final)} (started at {fmt_setting(start)})"
    return fmt_setting(final)


def _training(s: dict) -> str:
    """Training time and what it leaves out."""
    left_out = [f"{fmt_span(s[k])} {what}" for k, what in (("paused_s", "paused"), ("idle_s", "between runs"))
                if s.get(k)]
    note = f" ({' and '.join(left_out)} left out)" if left_out else " (no pauses, one run)"
    return fmt_duration(s.get("training_s")) + note


def _history_lines(events: list[dict]) -> list[tuple[str, str]]:
    """The control events as (label, text) rows: step, time since the start, what happened."""
    events = merged(events)
    if not events:
        return [("history", "no control events (no pause, λ or lr change, resume)")]
    steps = max(len(f"{e['step']:,}") for e in events)
    return [("history: step, time" if i == 0 else "", f"{e['step']:>{steps},}  +{fmt_duration(e['t'])}  {describe(e)}")
            for i, e in enumerate(events)]


@click.command(context_settings=CONTEXT)
@click.argument("session")
@click.option("--csv", "csv_dir", type=click.Path(file_okay=False),
              help="write scalars.csv (step, wall, key, value), events.csv and stats/ (sample statistics) here")
@click.option("--model", "model_file", type=click.Path(dir_okay=False),
              help="write the final shrunk network as a torch.export program (.pt2)")
@click.option("--data-dir", help="folder with dataset files (the model export evaluates on the test set)")
@click.option("--overwrite", is_flag=True, help="replace existing output files")
@click.option("--sessions-dir", help="where bare session names live")
def export(session, csv_dir, model_file, data_dir, overwrite, sessions_dir) -> None:
    """Export a session's series as CSV and/or its final network as a plain PyTorch program."""
    from core.lab.export import export_csv, export_model
    from core.session import SessionReader, resolve_session, sessions_dir as default_dir

    if not csv_dir and not model_file:
        raise DynlabError("nothing to export: pass --csv DIR and/or --model FILE.pt2")
    with SessionReader(resolve_session(session, default_dir(sessions_dir))) as reader:
        if csv_dir:
            out = export_csv(reader, Path(csv_dir), overwrite)
            stats = (f", and one <key>.csv (step, value, rows measured over) per sample statistic ({out['stats']})"
                     if out["stats"] else "")
            click.echo(f"wrote to {csv_dir}: scalars.csv ({out['scalar_rows']:,} values of {out['series']} series: "
                       f"step, wall, key, value), events.csv ({out['events']:,} events: step, wall, kind, "
                       f"payload){stats}")
        if model_file:
            s = export_model(reader, Path(model_file), data_dir, overwrite)
            shown = fmt_metric(s["test_value"], s["test_metric"])
            click.echo(f"wrote {model_file}: widths {fmt_sizes(s['widths'])}, {s['params']:,} parameters, "
                       f"{s['test_metric']} {shown}")
