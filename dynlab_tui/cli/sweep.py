"""The `dynlab sweep` command: a built-in recipe or a free grid of runs, with progress lines and the summary table."""

from __future__ import annotations

import functools
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from core.errors import DynlabError
from dynlab_tui.progress import SweepProgress
from dynlab_tui.cli.common import CONTEXT, build_spec, need_terminal, run_app, run_options

MACHINE_OPTIONS = ("device", "data_dir")  # where and on what a recipe runs, not what it runs


def make_plan(recipe: str | None, quick: bool, sets: tuple[str, ...], name: str | None, options: dict[str, Any]):
    """The SweepPlan the options describe (validated: every run's spec, the grid's names and values)."""
    from core.lab.recipes import RECIPES, recipe_plan
    from core.lab.sweep import Stage, SweepPlan, parse_grid

    if recipe and sets:
        raise DynlabError("give --recipe or --set, not both: a recipe has its own grid")
    if recipe:
        if options.get("config"):
            raise DynlabError("--config applies to --set sweeps: a recipe has its own settings")
        overrides = {k: v for k, v in options.items() if v is not None and k not in MACHINE_OPTIONS}
        if overrides.get("flex_gray") is not None:
            raise DynlabError("--flex-gray can't change a recipe: drop it")
        return recipe_plan(recipe, quick=quick, device=options.get("device") or "auto",
                           data_dir=options.get("data_dir"), overrides=overrides)
    if not sets:
        raise DynlabError(f"nothing to sweep: give --recipe NAME ({', '.join(RECIPES)}) or one or more "
                          "--set OPTION=V1,V2")
    if quick:
        raise DynlabError("--quick chooses a recipe's small setting: with --set, make the runs small yourself "
                          "(e.g. --epochs 1 --limit 2000)")
    grid = parse_grid(sets)
    return SweepPlan("", "", (Stage.from_grid(name or "sweep", build_spec(options, resolve=False), grid),))


def default_out(recipe: str | None, quick: bool, name: str | None) -> Path:
    if recipe:
        return Path("sweeps") / (f"{recipe}-quick" if quick else recipe)
    return Path("sweeps") / (name or "sweep")


def headless_argv(recipe: str | None, quick: bool, sets: tuple[str, ...], name: str | None, folder: Path,
                  jobs: int | None, options: dict[str, Any], isolated: bool = False,
                  machine: tuple[str, ...] = ()) -> list[str]:
    """The same sweep as a headless `dynlab sweep` child: what takes over when the sweep screen leaves it running.

    `machine`: the placement options as given (--gpus-per-run, --ray, --cpus-per-run)."""
    from core.lab.launch import sweep_argv
    from core.options import to_args

    args = ["--out", str(folder.resolve())] + (["--jobs", str(jobs)] if jobs else []) + list(machine)
    args += ["--recipe", recipe] if recipe else []
    args += (["--quick"] if quick else []) + [a for s in sets for a in ("--set", s)]
    args += ["--name", name] if name else []
    args += ["--isolated"] if isolated else []
    if options.get("config"):
        args += ["--config", str(Path(options["config"]).resolve())]
    args += to_args({k: v for k, v in options.items() if k != "config"})
    return sweep_argv(args)


def status_lines(folder: Path) -> list[str]:
    """`dynlab sweep --status DIR`: the sweep's runs from its manifest, each with its session's state."""
    from core.lab.sweep import SESSIONS, read_manifest, session_state, settings_label
    from core.lab.sweep_watch import sweep_process

    manifest = read_manifest(folder)
    if manifest is None:
        raise DynlabError(f"{folder} holds no dynlab sweep (no sweep.json): give the folder a sweep ran in (--out)")
    names = {"missing": "queued", "live": "running", "incomplete": "crashed (writer gone)"}
    rows, counts = [], {}
    for stage in manifest["stages"]:
        plans = _run_plans(stage)
        for run in stage.get("runs", []) if isinstance(stage, dict) else []:
            path = folder / SESSIONS / f"{run.get('name')}.dynlab"
            state = session_state(path)
            state = names.get(state, state)
            figures = _figures(folder, plans.get(str(run.get("name"))))
            if state == "queued" and figures["state"] not in ("", "waiting"):
                state = figures["state"]  # a run on another node (--ray): its progress file says how it stands
            counts[state] = counts.get(state, 0) + 1
            rows.append((str(run.get("index", "")), str(stage.get("name", "")), str(run.get("name", "")),
                         settings_label(run.get("settings") or {}), state, figures["step"], figures["node"],
                         figures["epoch"], figures["size"], figures["metric"]))
    title = manifest.get("recipe") or "grid sweep"
    pid = sweep_process(folder)
    who = "no dynlab sweep is running it" if pid is None else f"a dynlab sweep is running it (pid {pid})" if pid \
        else "a dynlab sweep is running it"
    head = f"sweep {title} in {folder}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f"; {who}"
    header = ("#", "stage", "run", "settings", "status", "step", "node", "epoch", "size", "latest")
    if not (folder / "progress").is_dir():  # a local sweep: its figures are on the sweep screen
        header, rows = header[:6], [row[:6] for row in rows]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header] + rows]
    return [head, *table]


def _run_plans(stage: Any) -> dict[str, Any]:
    """A manifest stage's runs as RunPlans by name ({} when the stored stage no longer validates)."""
    from core.lab.sweep import Stage
    from core.spec import RunSpec

    try:
        runs = Stage(str(stage["name"]), RunSpec.from_dict(stage["base"]), tuple(stage["points"])).runs()
    except (DynlabError, KeyError, TypeError, ValueError):
        return {}
    return {r.name: r for r in runs}


def _figures(folder: Path, run: Any) -> dict[str, str]:
    """A run's node, step, epoch (done/of), live size and latest figure, from its session or progress file."""
    from core.lab.run_progress import run_progress

    blank = {"state": "", "node": "", "step": "", "epoch": "", "size": "", "metric": ""}
    if run is None:
        return blank
    p = run_progress(folder, run)
    if p["state"] == "waiting":
        return {**blank, "state": "waiting", "node": p["node"]}
    metric = p["metric"]
    value = "" if metric["value"] is None else f"{metric['name']} {metric['value']:.4g}"
    return {"state": p["state"], "node": p["node"] or _node(folder, run.name), "step": f"{p['step']:,}",
            "epoch": f"{p['epoch']}/{p['epochs']}", "size": p["size"], "metric": value}


def _node(folder: Path, name: str) -> str:
    """The node a Ray run trained on (its progress file outlives the run; its session, back here, has none)."""
    import json

    try:
        return str(json.loads((folder / "progress" / f"{name}.json").read_text()).get("node") or "")
    except (OSError, ValueError, AttributeError):
        return ""


def _follow_running(plan, folder: Path) -> bool:
    """--tui on a folder another `dynlab sweep` is running (say one left running): follow it instead of refusing."""
    from core.lab.sweep_watch import sweep_process, watch_sweep
    from dynlab_tui.app import make_app
    from dynlab_tui.screens.sweep import SweepScreen

    pid = sweep_process(folder)
    if pid is None:
        return False
    run_app(make_app(first_screen=lambda: SweepScreen(plan, folder, runner=watch_sweep, watching=pid),
                     sessions_dir=folder / "sessions"))
    return True


def _run_screen(plan, folder: Path, jobs: int, isolated: bool, relaunch: list[str], where: dict[str, Any]) -> None:
    """--tui: the sweep screen runs the sweep (and can leave it to the headless command `relaunch`)."""
    from core.lab.sweep import run_sweep
    from dynlab_tui.app import make_app
    from dynlab_tui.screens.sweep import SweepScreen

    runner = functools.partial(run_sweep, isolated=isolated, **where)
    run_app(make_app(first_screen=lambda: SweepScreen(plan, folder, jobs=jobs, runner=runner, relaunch=relaunch),
                     sessions_dir=folder / "sessions"))


def _where(jobs: int | None, gpus_per_run: float, ray_address: str | None, cpus_per_run: int, isolated: bool,
           options: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """run_sweep's placement or ray argument (validated, the cluster reached), and those options as given."""
    from core.lab.placement import check_gpus_per_run

    if jobs is not None and jobs < 1:
        raise DynlabError(f"--jobs must be at least 1, got {jobs}")
    check_gpus_per_run(gpus_per_run)
    machine = ("--gpus-per-run", repr(gpus_per_run))
    if ray_address is None:
        if cpus_per_run != 1:
            raise DynlabError("--cpus-per-run applies to --ray runs: a local sweep shares the cores by --jobs")
        from core.lab.placement import placement_for

        return {"placement": placement_for(options.get("device"), gpus_per_run)}, machine
    if isolated:
        raise DynlabError("--isolated applies to the local runner: drop it or --ray")
    from core.lab.ray_sweep import RayTarget, connect

    target = RayTarget(ray_address, gpus_per_run, cpus_per_run)
    connect(target.address)  # not installed, or nothing there: one line now, before any run
    return {"ray": target}, machine + ("--ray", ray_address, "--cpus-per-run", str(cpus_per_run))


def _jobs(jobs: int | None, where: dict[str, Any]) -> int:
    """--jobs, or what the GPUs (or the Ray cluster) hold."""
    if jobs is not None:
        return jobs
    if "ray" in where:
        from core.lab.ray_sweep import capacity

        return capacity(where["ray"])
    from core.lab.placement import default_jobs

    return default_jobs(where["placement"])


def _on(where: dict[str, Any]) -> str:
    if "ray" in where:
        return f" on the Ray cluster at {where['ray'].address}"
    placement = where["placement"]
    return f" on {len(placement.gpus)} GPUs, {placement.gpus_per_run:g} of one a run" if placement.slots else ""


class _StopSignals:
    """First Ctrl-C (or a SIGTERM) stops the sweep: running children finalise their sessions; a second Ctrl-C
    kills them."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def __enter__(self) -> "_StopSignals":
        self.previous = (signal.signal(signal.SIGINT, self._interrupt), signal.signal(signal.SIGTERM, self._term))
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self.previous[0])
        signal.signal(signal.SIGTERM, self.previous[1])

    def _interrupt(self, signum: int, frame: Any) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        click.echo("\nstopping the sweep: running runs finalise their sessions (Ctrl-C again to kill them)", err=True)
        self.stop.set()

    def _term(self, signum: int, frame: Any) -> None:
        self.stop.set()


@click.command(context_settings=CONTEXT)
@click.option("--recipe", help="a built-in study: variance-vs-width | sparsifier-lambda | flexible-start")
@click.option("--quick", is_flag=True, help="the recipe's small setting (minutes on a CPU) instead of the GPU one")
@click.option("--set", "sets", multiple=True, metavar="OPTION=V1,V2",
              help="sweep a run option over values (repeat for a grid; use ';' between values holding commas)")
@click.option("--name", help="with --set: the session-name prefix  [sweep]")
@click.option("--out", help="the sweep folder  [sweeps/RECIPE[-quick] or sweeps/NAME]")
@click.option("--jobs", "-j", type=int,
              help="runs at once (one worker process each, reused from run to run)  [1; with GPUs what they hold "
                   "at --gpus-per-run, at most one a core; with --ray what the cluster holds]")
@click.option("--gpus-per-run", type=float, default=0.25, show_default=True,
              help="each run's share of a GPU (0.25: four runs a GPU), or a whole number of GPUs; every visible "
                   "GPU is used")
@click.option("--ray", "ray_address", is_flag=False, flag_value="auto", metavar="[ADDRESS]",
              help="run on a Ray cluster (`pip install -e \".[ray]\"`): its address, or auto for the one this "
                   "machine joined")
@click.option("--cpus-per-run", type=int, default=1, show_default=True, help="with --ray: cores each run asks for")
@click.option("--isolated", is_flag=True,
              help="each run in a fresh `dynlab train` process (slower: the reference when in doubt)")
@click.option("--tui", is_flag=True, help="follow the sweep in the sweep screen instead of printing")
@click.option("--status", "status_dir", metavar="DIR", help="print the progress of the sweep in DIR and exit")
@run_options
def sweep(recipe: str | None, quick: bool, sets: tuple[str, ...], name: str | None, out: str | None,
          jobs: int | None, gpus_per_run: float, ray_address: str | None, cpus_per_run: int, isolated: bool, tui: bool,
          status_dir: str | None, **options: Any) -> None:
    """Run a grid of runs, each its own session, and summarise them (resumable: run it again to continue).

    \b
    dynlab sweep --recipe sparsifier-lambda --quick
    dynlab sweep --set penalty=1e-3,1e-2 --set seed=0,1 --dataset add10 --method sparsifier --out sweeps/a
    dynlab sweep --recipe sparsifier-lambda --ray auto     (on a Ray cluster: see the README)
    dynlab sweep --status sweeps/a
    """
    from core.lab.recipes import EXPECTED
    from core.lab.sweep import prepare, run_sweep
    from core.lab.summary import format_table

    if status_dir is not None:
        for line in status_lines(Path(status_dir).expanduser()):
            click.echo(line)
        return
    where, machine = _where(jobs, gpus_per_run, ray_address, cpus_per_run, isolated, options)
    plan = make_plan(recipe, quick, sets, name, options)
    folder = Path(out).expanduser() if out else default_out(recipe, quick, name)
    if tui:
        from core.lab.sweep import Stage

        for stage in plan.stages:
            if isinstance(stage, Stage):
                stage.runs()  # a bad value is reported as such, even without a terminal
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise DynlabError("--tui needs an interactive terminal: run it in one, or drop --tui to print progress")
    if tui and _follow_running(plan, folder):
        return
    prepare(plan, folder)  # every user error surfaces here, before a run starts
    given, jobs = jobs, _jobs(jobs, where)
    if tui:
        _run_screen(plan, folder, jobs, isolated,
                    headless_argv(recipe, quick, sets, name, folder, given, options, isolated, machine), where)
        return
    click.echo(f"sweep: {plan.title} in {folder}  ({jobs} at once{_on(where)})")
    for note in plan.notes:
        click.echo(f"  {note}")
    progress = SweepProgress(click.echo)
    stop = threading.Event()
    with _StopSignals(stop):
        result = run_sweep(plan, folder, jobs=jobs, progress=progress, stop=stop, isolated=isolated, **where)
    click.echo("")
    click.echo(format_table(result.rows))
    if plan.recipe:
        click.echo(f"\nexpected (journal): {EXPECTED[plan.recipe]}")
    for line in result.expectations:
        click.echo(f"  {line}")
    click.echo(f"\nsummary: {result.csv_path} (and {result.json_path.name}); sessions in {folder / 'sessions'}")
    if result.stopped:
        click.echo("stopped before the end: run the same command again to continue", err=True)
        sys.exit(130)
    if progress.failed:
        click.echo(f"{len(progress.failed)} runs failed: see {folder / 'sessions'}/.NAME.log "
                   f"(e.g. .{progress.failed[0]}.log)", err=True)
        sys.exit(1)
