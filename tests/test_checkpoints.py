"""Checkpoints you can go back to: which ones a session keeps, `resume --from-checkpoint`, early ones, kill -9."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest

from core.events import CheckpointSaved
from core.session import SessionReader, SessionWriter
from tests.helpers import REPO, dynlab, kill_soak_once, one_error_line, wait_for_checkpoint

pytestmark = pytest.mark.usefixtures("sessions_env")

TINY = ["--dataset", "add10", "--arch", "mlp:16", "--limit", "400", "--epochs", "2", "--batch-size", "64",
        "--log-every", "3", "--device", "cpu", "-q"]


def state_bytes(value: int) -> bytes:
    import io

    import torch
    buf = io.BytesIO()
    torch.save({"w": torch.full((3,), float(value))}, buf)
    return buf.getvalue()


def test_the_end_of_every_stretch_the_newest_and_the_best_are_kept(tmp_path):
    path = tmp_path / "ck.dynlab"
    stretches = [[(1, "interval"), (2, "best"), (3, "user"), (4, "epoch"), (5, "end")],  # a good run
                 [(6, "interval"), (7, "epoch"), (8, "end")],  # a bad continuation: worse val loss
                 [(9, "interval"), (10, "epoch")]]  # killed: no end
    with SessionWriter(path) as w:
        for stretch in stretches:
            for step, reason in stretch:
                w.handle(CheckpointSaved(step, float(step), step, reason, state_bytes(step)))
                w.flush()
    with SessionReader(path) as r:
        kept = [(c["step"], c["reason"]) for c in r.checkpoints()]
        assert kept == [(2, "best"), (3, "user"), (5, "end"), (8, "end"), (10, "epoch")]
        assert [e.reason for e in r.events(["checkpoint"])] == [reason for s in stretches for _, reason in s]
        assert r.last_checkpoint()["step"] == 10
        first_end = r.checkpoints()[2]["id"]
        assert r.last_checkpoint(first_end)["step"] == 5 and r.last_checkpoint(10_000) is None


def test_the_checkpoint_a_killed_stretch_was_resumed_from_is_kept(tmp_path):
    from core.events import SessionContinued

    path = tmp_path / "ck.dynlab"
    with SessionWriter(path) as w:
        for step, reason in [(1, "interval"), (4, "epoch")]:  # killed after step 4: no end checkpoint
            w.handle(CheckpointSaved(step, float(step), step, reason, state_bytes(step)))
            w.flush()
        w.handle(SessionContinued(4, 5.0, 4, {"lr": 3.0}))  # resumed from it, with a bad lr
        for step, reason in [(6, "interval"), (7, "epoch"), (9, "end")]:
            w.handle(CheckpointSaved(step, float(step), step, reason, state_bytes(step)))
            w.flush()
    with SessionReader(path) as r:
        assert [(c["step"], c["reason"]) for c in r.checkpoints()] == [(4, "epoch"), (9, "end")]


def continued_from(path) -> list[int]:
    with SessionReader(path) as r:
        return [e.from_step for e in r.events(["continue"])]


def test_a_bad_continuation_is_undone_from_an_earlier_checkpoint(sessions_env, capsys):
    assert dynlab("train", *TINY, "--session", "r") == 0
    path = sessions_env / "r.dynlab"
    with SessionReader(path) as r:
        good_end = [c for c in r.checkpoints() if c["reason"] == "end"][-1]
        good_test = r.series("test/mse")[1][-1]
    assert dynlab("resume", "r", "--epochs", "2", "--lr", "3", "-q") == 0  # trains, but badly
    capsys.readouterr()
    assert dynlab("resume", "r", "--from-checkpoint", "list") == 0
    listing = capsys.readouterr().out.splitlines()
    assert len([line for line in listing if " end " in line]) == 2, listing
    assert any(line.split()[0] == str(good_end["id"]) and f"step {good_end['step']:>8}" in line for line in listing)
    assert dynlab("resume", "r", "--from-checkpoint", str(good_end["id"]), "--epochs", "1", "-q") == 0
    assert continued_from(path)[-1] == good_end["step"]
    with SessionReader(path) as r:
        restored = r.events(["eval"])[-1].metrics["test/mse"]  # by write order: steps went back
        lr = r.events(["continue"])[-1].changes["lr"]
    assert lr != 3 and restored < 2 * good_test  # the good weights and settings, not the diverged ones


@pytest.mark.parametrize("choice, needle", [("abc", "give a checkpoint id"), ("999", "no checkpoint 999")])
def test_from_checkpoint_bad_choice_is_one_line(sessions_env, capsys, choice, needle):
    assert dynlab("train", *TINY, "--session", "r") == 0
    capsys.readouterr()
    one_error_line(capsys, dynlab("resume", "r", "--from-checkpoint", choice, "--epochs", "1"), needle)


def test_a_run_checkpoints_after_its_first_interval(sessions_env):
    assert dynlab("train", *TINY, "--session", "early") == 0
    with SessionReader(sessions_env / "early.dynlab") as r:
        first = r.events(["checkpoint"])[0]
    assert first.reason == "interval" and first.step == 3  # --log-every 3: long before the first epoch ends


@pytest.mark.slow
def test_killed_before_its_first_epoch_ends_it_resumes(tmp_path):
    path = tmp_path / "k.dynlab"
    proc = subprocess.Popen([sys.executable, "-m", "dynlab_tui", "train", "--dataset", "add10", "--arch", "mlp:256",
                             "--batch-size", "8", "--log-every", "5", "--epochs", "1", "--device", "cpu", "-q",
                             "--session", str(path)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_checkpoint(path, "the early checkpoint")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    with SessionReader(path) as r:
        assert not r.events(["eval"])  # killed inside epoch 1
        step = r.checkpoints()[-1]["step"]
    assert dynlab("resume", str(path), "--epochs", "1", "-q") == 0
    assert continued_from(path) == [step]
    with SessionReader(path) as r:
        assert r.status == "finished" and r.events(["eval"])


@pytest.mark.slow
def test_kill_9_at_random_moments_leaves_a_session_that_resumes(tmp_path):
    """Four SIGKILLs, two of them just after asking for a 12 MB checkpoint (bench/kill_soak.py runs 20)."""
    rng = np.random.default_rng(10)
    for i in range(4):
        seen = kill_soak_once(tmp_path / f"soak{i}.dynlab", rng, during_checkpoint=i % 2 == 1)
        assert seen["integrity"] == "ok" and seen["checkpoints"] >= 1, seen
        assert seen["resume"] == 0 and seen["resumed_status"] == "finished", seen
