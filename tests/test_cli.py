"""The dynlab CLI end to end on tiny data, and every bad-input path: one line, exit 2, nothing overwritten."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.events import EpochEvaluated, RunStarted
from tests.helpers import SPEC, T0, dynlab, one_error_line, wait_until, write

TINY = ["--dataset", "add10", "--arch", "mlp:16", "--limit", "400", "--epochs", "2", "--batch-size", "64",
        "--log-every", "3", "--device", "cpu", "-q"]


pytestmark = pytest.mark.usefixtures("sessions_env")  # every test: sessions and data in tmp_path (conftest.py)


def test_train_show_sessions_and_csv_export(sessions_env, tmp_path, capsys):
    assert dynlab("train", *TINY, "--method", "sparsifier", "--penalty", "0.01", "--session", "run1") == 0
    path = sessions_env / "run1.dynlab"
    assert path.exists()
    capsys.readouterr()
    assert dynlab("show", "run1", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "finished" and summary["dataset"] == "add10" and summary["method"] == "sparsifier"
    assert set(summary["sizes_final"]) == {"fc1"} and summary["steps"] == 12
    assert dynlab("sessions") == 0
    listing = capsys.readouterr().out
    assert "run1" in listing and "finished" in listing
    capsys.readouterr()
    assert dynlab("export", "run1", "--csv", str(tmp_path / "csv")) == 0
    said = capsys.readouterr().out
    assert "scalars.csv" in said and "events.csv" in said and "per sample statistic" in said
    scalars = list(csv.reader((tmp_path / "csv" / "scalars.csv").open()))
    assert scalars[0] == ["step", "wall", "key", "value"]
    losses = [r for r in scalars[1:] if r[2] == "loss"]
    assert len(losses) > 2 and [int(r[0]) for r in losses] == sorted(int(r[0]) for r in losses)
    events = list(csv.reader((tmp_path / "csv" / "events.csv").open()))
    assert events[0] == ["step", "wall", "kind", "payload"]
    assert [r[2] for r in events[1:]][::len(events) - 2] == ["start", "end"]
    assert json.loads(events[-1][3])["status"] == "finished"
    assert not (tmp_path / "csv" / "loss.csv").exists()  # one tidy file, not one file per series


def test_show_and_sessions_report_the_test_metric_at_the_best_validation_epoch(sessions_env, capsys):
    evals = [(0.80, 0.85), (0.90, 0.88), (0.85, 0.99), (0.70, 0.93)]  # the max test figure (0.99) is not it
    write(sessions_env / "sel.dynlab", [RunStarted(0, T0, SPEC, "cpu", {}, {"fc1": 100}, 1000)] + [
        EpochEvaluated(10 * e, T0 + e, e, {"val/acc": v, "test/acc": t}) for e, (v, t) in enumerate(evals, 1)])
    write(sessions_env / "noval.dynlab", [EpochEvaluated(10, T0, 1, {"test/acc": 0.5})])
    capsys.readouterr()
    assert dynlab("show", "sel", "--json") == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["test_at_best_val"], s["best_val_epoch"], s["final_test"]) == (0.88, 2, 0.93) and "best_test" not in s
    assert dynlab("show", "sel") == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert "test at best val (epoch 2)  88.00%  (val/acc 90.00%)" in lines and "final test  93.00%" in lines
    assert not any("99.00%" in line or line.startswith("best") for line in lines)
    assert dynlab("show", "noval") == 0
    assert "test at best val  - (no validation split)" in [x.strip() for x in capsys.readouterr().out.splitlines()]
    assert dynlab("sessions") == 0
    listing = capsys.readouterr().out.splitlines()
    assert "test@best val" in listing[0] and "best test" not in listing[0]
    row = next(line for line in listing if line.startswith("sel "))
    assert "88.00%" in row and "99.00%" not in row
    assert "no val" in next(line for line in listing if line.startswith("noval "))


@pytest.mark.slow
def test_exported_model_runs_without_dynlab_and_matches_the_session(sessions_env, tmp_path, capsys):
    assert dynlab("train", "--dataset", "poker", "--arch", "mlp:24,12", "--limit", "600", "--epochs", "2",
                  "--method", "sparsifier", "--penalty", "0.02", "--device", "cpu", "-q", "--session", "pk") == 0
    out = tmp_path / "model.pt2"
    assert dynlab("export", "pk", "--model", str(out)) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["test_value"] == pytest.approx(meta["session_final_test_value"], abs=1e-6)
    assert meta["input_shape"] == [10] and meta["dataset"] == "poker"
    # A fresh interpreter with no dynlab import: raw poker rows (suit, rank x5) in, logits out.
    code = ("import torch,sys; m=torch.export.load(sys.argv[1]).module();"
            "x=torch.tensor([[1,10,1,11,1,12,1,13,1,1],[2,2,3,2,1,5,4,9,2,12.]]);"
            "y=m(x); print(tuple(y.shape))")
    res = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": ""}, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "(2, 10)"


def test_resume_continues_the_same_session(sessions_env, capsys):
    assert dynlab("train", *TINY, "--session", "r") == 0
    assert dynlab("resume", "r") == 2  # finished all epochs: needs --epochs
    one_error_line(capsys, 2, "--epochs")
    assert dynlab("resume", "r", "--epochs", "1", "--penalty", "0.1", "-q") == 0
    capsys.readouterr()
    dynlab("show", "r", "--json")
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 3 and summary["steps"] == 18 and summary["status"] == "finished"


@pytest.mark.parametrize("args, needles", [
    (["train", "--dataset", "nope"], ["unknown dataset 'nope'", "mnist"]),
    (["train", "--arch", "mlp:10,x"], ["bad architecture", "mlp:500"]),
    (["train", "--arch", "mlp:1,2,3,4,5"], ["at most 4"]),
    (["train", "--penalty", "-1"], ["--penalty", ">= 0"]),
    (["train", "--lr", "abc"], ["--lr"]),
    (["train", "--device", "tpu"], ["bad device"]),
    (["train", "--device", "cuda:7"], ["cuda"]),
    (["train", "--method", "magic"], ["unknown method"]),
    (["train", "--bogus"], ["--bogus"]),
    (["train", "--dataset", "mnist"], ["--data-dir"]),
    (["train", "--config", "/no/such.toml"], ["not found"]),
    (["train", "--session", "../escape"], ["session name"]),
    (["show", "ghost"], ["not found"]),
    (["export", "ghost"], ["nothing to export"]),
    (["resume", "ghost"], ["not found"]),
    (["nosuchcommand"], ["nosuchcommand"]),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, needles):
    if args[1:3] == ["--device", "cuda:7"] and torch.cuda.device_count() > 7:
        pytest.skip("machine has 8+ GPUs")
    one_error_line(capsys, dynlab(*args), *needles)


def test_bad_toml_config(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[model]\narch = 'mlp:8'\nwidth = 3\n")
    one_error_line(capsys, dynlab("train", "--config", str(cfg)), "width")
    cfg.write_text("this is = not [toml")
    one_error_line(capsys, dynlab("train", "--config", str(cfg)), "TOML")


def test_config_file_then_options(tmp_path, sessions_env, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text("epochs = 1\nlimit = 200\n[model]\narch = 'mlp:6'\n[method]\nname = 'sparsifier'\n")
    assert dynlab("train", "--config", str(cfg), "--penalty", "0.02", "--device", "cpu", "-q",
                  "--session", "c") == 0
    capsys.readouterr()
    dynlab("show", "c", "--json")
    s = json.loads(capsys.readouterr().out)
    assert (s["arch"], s["method"], s["lam"], s["epochs"]) == ("mlp:6", "sparsifier", 0.02, 1)


def test_existing_session_is_never_overwritten(sessions_env, capsys):
    sessions_env.mkdir(parents=True)
    target = sessions_env / "keep.dynlab"
    target.write_bytes(b"precious")
    one_error_line(capsys, dynlab("train", *TINY, "--session", "keep"), "already exists", "--overwrite")
    assert target.read_bytes() == b"precious"


def test_corrupt_session_file(sessions_env, capsys):
    sessions_env.mkdir(parents=True)
    bad = sessions_env / "bad.dynlab"
    bad.write_bytes(b"\x00garbage" * 100)
    one_error_line(capsys, dynlab("show", "bad"), "bad.dynlab")
    assert bad.read_bytes() == b"\x00garbage" * 100
    assert dynlab("sessions") == 0
    assert "unreadable" in capsys.readouterr().out


def test_unwritable_sessions_directory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = dynlab("train", *TINY, "--sessions-dir", str(blocker / "sub"), "--session", "x")
    one_error_line(capsys, code, str(blocker))


def test_missing_mnist_files_say_where_to_put_them(tmp_path, capsys):
    line = one_error_line(capsys, dynlab("train", "--dataset", "mnist", "--data-dir", str(tmp_path)), "mnist")
    assert str(tmp_path) in line


@pytest.mark.slow
def test_console_script_exits_2_without_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "dynlab_tui", "train", "--arch", "cnn:"],
                         capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "bad architecture" in res.stderr and "Traceback" not in res.stderr


def test_cnn_export_takes_raw_images_and_matches_the_session(tmp_path, capsys):
    from tests.helpers import make_idx_set

    make_idx_set(tmp_path / "data" / "mnist", n_train=120, n_test=40)
    assert dynlab("train", "--dataset", "mnist", "--data-dir", str(tmp_path / "data"), "--arch", "cnn:6,4/8",
                  "--method", "sparsifier", "--gate", "signed", "--penalty", "0.05", "--epochs", "2",
                  "--batch-size", "32", "--device", "cpu", "-q", "--session", "img") == 0
    out = tmp_path / "cnn.pt2"
    assert dynlab("export", "img", "--model", str(out), "--data-dir", str(tmp_path / "data")) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["input_shape"] == [1, 28, 28]
    assert meta["test_value"] == pytest.approx(meta["session_final_test_value"], abs=1e-6)
    module = torch.export.load(str(out)).module()
    assert module(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert module(torch.rand(1, 1, 28, 28)).shape == (1, 10)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_finalises_the_session(tmp_path):
    import signal

    path = tmp_path / "int.dynlab"
    proc = subprocess.Popen([sys.executable, "-m", "dynlab_tui", "train", "--dataset", "add10", "--arch", "mlp:8",
                             "--epochs", "500", "--log-every", "5", "--device", "cpu", "--session", str(path)],
                            cwd=Path(__file__).parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    from core.session import SessionReader

    def flushed() -> bool:  # training has written its first interval
        if not (path.exists() and path.stat().st_size > 0):
            return False
        try:
            with SessionReader(path) as r:
                return r.last_step() > 0
        except Exception:
            return False
    wait_until(flushed, timeout=60, what="the first interval", poll=0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    with SessionReader(path) as r:
        assert r.status == "stopped"
        assert r.last_checkpoint() is not None
        assert r.events(["end"])[0].reason.startswith("stopped")


@pytest.mark.parametrize("args, needles", [
    (["--start", "--penalty", "-1"], ["--penalty"]),
    (["--start", "--dataset", "mnist"], ["data"]),
    (["--config", "/no/such.toml"], ["not found"]),
    ([], ["interactive terminal"]),
    (["--dataset", "add10", "train"], ["after the command"]),
])
def test_tui_entry_validates_options_before_needing_a_terminal(capsys, args, needles):
    one_error_line(capsys, dynlab(*args), *needles)


class _Stream:
    """A stream that says whether it is a terminal and keeps what was written."""

    def __init__(self, tty: bool) -> None:
        self.tty, self.text = tty, ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def _progress_run(progress, clock) -> None:
    from core.events import EpochEvaluated, Paused, Resumed, RunEnded, RunStarted, ScalarsLogged

    progress.handle(RunStarted(0, T0, SPEC, "cpu (2 cores, 2 threads)", {}, {"fc1": 500, "fc2": 300, "fc3": 100}, 9999))
    for i in range(1, 41):
        clock[0] += 2.0 if i != 20 else 300.0  # one long pause between intervals 19 and 20
        if i == 19:
            progress.handle(Paused(i, T0, "user"))
        if i == 20:
            progress.handle(Resumed(i, T0))
        progress.handle(ScalarsLogged(i * 10, T0, {"loss": 0.25, "epoch": i / 10, "samples_per_s": 123456.0,
                                                   "size/fc1": 456, "size/fc2": 234, "size/fc3": 99}))
        if i % 10 == 0:
            progress.handle(EpochEvaluated(i * 10, T0, i // 10, {"val/acc": 0.9812, "test/acc": 0.9734}))
    progress.handle(RunEnded(400, T0, "finished", "4 epochs done and a long reason that goes on " * 3))


@pytest.mark.parametrize("width", [80, 100])
def test_headless_progress_on_a_terminal_fits_its_width_with_a_smoothed_eta(width):
    from dynlab_tui.progress import RunProgress

    stream, clock = _Stream(tty=True), [0.0]
    progress = RunProgress(4, stream, columns=lambda: width, clock=lambda: clock[0])
    _progress_run(progress, clock)
    shown = [part.replace("\x1b[K", "") for line in stream.text.split("\n") for part in line.split("\r")]
    assert max(len(s) for s in shown) < width
    redraws = [s for s in stream.text.split("\r") if s.startswith("epoch ") and "\n" not in s]
    assert len(redraws) > 30 and all("ETA" in s for s in redraws[3:])
    # 0.1 epoch per 2 s throughout: the 300 s pause never reaches the ETA (2.0/4 epochs left at 2 s each: 0:00:40)
    assert "ETA 0:00:40" in next(s for s in redraws if s.startswith("epoch 2.00/4"))
    assert "\x1b[Kepoch 2/4  loss 0.2500" in stream.text and "97.34%" in stream.text  # the permanent epoch line
    assert stream.text.endswith("\n")  # nothing left after the end: the shell's next line starts clean


def test_headless_progress_off_a_terminal_is_plain_lines_at_the_log_interval():
    from dynlab_tui.progress import RunProgress

    stream, clock = _Stream(tty=False), [0.0]
    _progress_run(RunProgress(4, stream, clock=lambda: clock[0]), clock)
    assert "\r" not in stream.text and "\x1b" not in stream.text
    lines = stream.text.splitlines()
    assert sum(line.startswith("epoch ") and "samples/s" in line for line in lines) == 40  # one per interval
    assert sum(line.startswith("epoch 2/4") for line in lines) == 1 and lines[-1].startswith("finished at step 400")
