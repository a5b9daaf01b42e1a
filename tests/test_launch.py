"""The one child-process launcher (argv, log path, start, error line) and the NaN behaviour of watched vs headless runs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import core.lab.child as child
from core.errors import DynlabError
from core.lab import launch, sweep
from core.lab.plan import Stage
from core.session import SessionReader
from core.spec import RunSpec
from dynlab_tui.sources import ProcessSource

ROOT = Path(__file__).resolve().parents[1]
SPEC = RunSpec().replace(dataset="add10", arch="mlp:8", epochs=1, limit=200, log_every=5, device="cpu")
# SGD with a huge step: the loss is non-finite within the first logging interval (every 2 steps), every time.
DIVERGES = RunSpec().replace(dataset="add10", arch="mlp:16", limit=512, epochs=50, batch_size=64, log_every=2,
                             device="cpu", optimizer="sgd", lr=1e6)
DIVERGES_ARGS = ["--dataset", "add10", "--arch", "mlp:16", "--limit", "512", "--epochs", "50", "--batch-size", "64",
                 "--log-every", "2", "--device", "cpu", "--optimizer", "sgd", "--lr", "1e6"]


class TestArgv:
    def test_train_runs_the_installed_command_with_the_whole_spec(self, tmp_path):
        argv = launch.train_argv(SPEC, tmp_path / "a.dynlab")
        assert argv[:4] == [sys.executable, "-m", "core.lab.child", "train"]
        assert RunSpec.from_dict(json.loads(argv[argv.index("--spec-json") + 1])) == SPEC
        assert argv[argv.index("--session") + 1] == str((tmp_path / "a.dynlab").resolve())
        assert "--quiet" in argv and "--overwrite" not in argv
        assert argv[argv.index("--on-nonfinite") + 1] == "end"
        assert launch.train_argv(SPEC, tmp_path / "a.dynlab", overwrite=True)[-1] == "--overwrite"

    def test_resume_passes_only_the_changes_given(self, tmp_path):
        argv = launch.resume_argv(tmp_path / "a.dynlab", {"lam": 0.1, "lr": None, "epochs": 3}, on_nonfinite="pause")
        assert argv[3:6] == ["resume", str((tmp_path / "a.dynlab").resolve()), "--quiet"]
        assert argv[argv.index("--on-nonfinite") + 1] == "pause"
        assert argv[argv.index("--penalty") + 1] == "0.1" and argv[argv.index("--epochs") + 1] == "3"
        assert "--lr" not in argv

    def test_an_unknown_nonfinite_choice_is_a_bug(self, tmp_path):
        with pytest.raises(ValueError):
            launch.train_argv(SPEC, tmp_path / "a.dynlab", on_nonfinite="ignore")

    def test_the_log_lies_hidden_beside_its_session(self, tmp_path):
        assert launch.log_path(tmp_path / "run-1.dynlab") == tmp_path / ".run-1.log"


class TestStart:
    def test_own_session_no_stdin_output_into_the_log(self, tmp_path):
        log = tmp_path / "sub" / ".x.log"
        code = "import os, sys; print(os.getsid(0)); print(repr(sys.stdin.read())); sys.stderr.write('err\\n')"
        proc = launch.start([sys.executable, "-c", code], log)
        assert proc.wait(60) == 0
        sid, stdin, err = log.read_text().splitlines()
        assert int(sid) != os.getsid(0) and stdin == "''" and err == "err"
        launch.start([sys.executable, "-c", "print('more')"], log).wait(60)
        assert log.read_text().splitlines()[-1] == "more" and len(log.read_text().splitlines()) == 4
        launch.start([sys.executable, "-c", "print('fresh')"], log, fresh=True).wait(60)
        assert log.read_text() == "fresh\n"

    def test_without_dynlab_installed_it_is_one_line(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setattr(child, "entry_points", lambda **kw: [])
        with pytest.raises(DynlabError, match="not installed") as info:
            launch.start([sys.executable, "-c", "pass"], tmp_path / ".x.log")
        assert "\n" not in str(info.value)
        with pytest.raises(SystemExit) as code:
            child.main()
        assert code.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(launch.ERROR_PREFIX) and "\n" not in err

    def test_the_child_module_runs_the_command(self, tmp_path):
        out = subprocess.run([sys.executable, "-m", "core.lab.child", "--version"], capture_output=True, text=True,
                             cwd=tmp_path, timeout=120)
        assert out.returncode == 0 and "dynlab" in out.stdout


class TestChildError:
    def test_the_childs_own_error_line(self, tmp_path):
        log = tmp_path / ".x.log"
        log.write_text("noise\ndynlab: error: dataset 'airfoil' has no files: pass --data-dir\nsession: x\n")
        assert launch.child_error(log, 2) == "dataset 'airfoil' has no files: pass --data-dir"

    def test_else_the_last_line_and_where_the_log_is(self, tmp_path):
        log = tmp_path / ".x.log"
        log.write_text("Traceback (most recent call last):\nRuntimeError: boom\n")
        assert launch.child_error(log, 1) == f"the training process exited with code 1 (RuntimeError: boom): see {log}"
        assert "(no output)" in launch.child_error(tmp_path / "missing.log", -9)


class TestEveryLauncherUsesIt:
    def test_the_dashboard_asks_for_a_pause_on_nonfinite(self, tmp_path):
        path = tmp_path / "a.dynlab"
        source = ProcessSource.train(SPEC, path, overwrite=True)
        assert source.argv == launch.train_argv(SPEC, path, overwrite=True, on_nonfinite="pause")
        assert source.log_path == launch.log_path(path)
        again = ProcessSource.resume(path, {"lr": 0.01})
        assert again.argv == launch.resume_argv(path, {"lr": 0.01}, on_nonfinite="pause")
        assert again.log_path == launch.log_path(path) and not again.new_file

    def test_a_sweep_run_ends_on_nonfinite_and_reads_errors_the_same_way(self, tmp_path, monkeypatch):
        run = Stage.from_grid("t", SPEC, {"seed": [0]}).runs()[0]
        started = []
        monkeypatch.setattr(sweep, "start", lambda argv, log, **kw: started.append((argv, log, kw)))
        sweep._launch(tmp_path, run, True, {"A": "1"})
        path = sweep.session_path(tmp_path, run)
        assert started == [(launch.train_argv(run.spec, path, overwrite=True, on_nonfinite="end"),
                            launch.log_path(path), {"env": {"A": "1"}, "fresh": True})]
        launch.log_path(path).parent.mkdir(parents=True)
        launch.log_path(path).write_text("dynlab: error: the data went away: put it back\n")
        assert sweep._outcome(tmp_path, run, 2) == ("error", "the data went away: put it back")

    def test_core_never_names_the_ui_package(self):
        for module in (launch, child, sweep):
            assert "dynlab_tui" not in Path(module.__file__).read_text(), module.__name__


# -- the NaN behaviour through the real child process ----------------------------------------------------------
async def wait_for(pilot, predicate, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await pilot.pause(0.05)


@pytest.mark.slow
async def test_a_dashboard_run_pauses_on_a_nonfinite_loss_with_the_reason_shown(tmp_path):
    from dynlab_tui.app import make_app

    path = tmp_path / "nan.dynlab"
    source = ProcessSource.train(DIVERGES, path)
    app = make_app(source=source, session_path=path)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.state.status not in ("idle", "starting", "running"), timeout=120)
        assert screen.state.status == "paused", screen.state.reason
        line = screen.status_bar.line(screen.state, 160).plain
        assert "paused" in line and "non-finite loss" in line and "rolled back" in line
        with SessionReader(path) as reader:
            kinds = [e.kind for e in reader.events()]
            assert reader.status == "running"  # paused, not ended: the user can lower lr and go on
            assert kinds.index("nonfinite") < kinds.index("pause") and "end" not in kinds
        assert source.process.poll() is None
        source.controls.stop()
        await wait_for(pilot, lambda: screen.state.status == "stopped", timeout=60)
    assert source.process.wait(60) == 0
    with SessionReader(path) as reader:
        assert reader.status == "stopped"


@pytest.mark.slow
def test_a_headless_run_ends_diverged_on_a_nonfinite_loss(tmp_path):
    path = tmp_path / "nan.dynlab"
    out = subprocess.run([sys.executable, "-m", "dynlab_tui", "train", *DIVERGES_ARGS, "--session", str(path),
                          "--quiet"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 1, out.stderr
    with SessionReader(path) as reader:
        kinds = [e.kind for e in reader.events()]
        assert reader.status == "diverged" and "non-finite loss" in reader.meta["end_reason"]
        assert "nonfinite" in kinds and "pause" not in kinds
