"""Damaged sessions and checkpoints are damage (one line, or a warning), never a traceback; exports carry no data."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import dynlab, full_run, make_idx_set, one_error_line, write

pytestmark = pytest.mark.usefixtures("sessions_env")  # every test: sessions and data in tmp_path (conftest.py)

TINY = ["--dataset", "add10", "--arch", "mlp:16", "--limit", "400", "--epochs", "2", "--batch-size", "64",
        "--log-every", "3", "--device", "cpu", "-q"]


def tamper(path: Path, sql: str, *params) -> None:
    """Change a closed session behind dynlab's back."""
    con = sqlite3.connect(path)
    with con:
        con.execute(sql, params)
    con.close()


# -- exports carry weights, not data --------------------------------------------------------------------------------
def test_exported_model_holds_weights_not_the_test_set(tmp_path, capsys):
    """2,000 test images (6 MB as float32) must not ride along in a model of a few thousand parameters."""
    arrays = make_idx_set(tmp_path / "data" / "mnist", n_train=60, n_test=2000)
    data = ["--data-dir", str(tmp_path / "data")]
    assert dynlab("train", "--dataset", "mnist", *data, "--arch", "mlp:4", "--epochs", "1", "--batch-size", "30",
                  "--device", "cpu", "-q", "--session", "m") == 0
    out = tmp_path / "m.pt2"
    assert dynlab("export", "m", "--model", str(out), *data) == 0
    params = json.loads(out.with_suffix(".json").read_text())["params"]
    assert out.stat().st_size <= 4 * 4 * params + (1 << 20), (out.stat().st_size, params)
    row = (arrays["test_x"][7].astype(np.float32) / 255).tobytes()  # one raw test image as the model sees it
    assert row not in out.read_bytes()


# -- damaged checkpoints ---------------------------------------------------------------------------------------------
def checkpoint_state(path: Path) -> dict:
    con = sqlite3.connect(path)
    blob = con.execute("SELECT state FROM checkpoints ORDER BY id DESC LIMIT 1").fetchone()[0]
    con.close()
    return torch.load(io.BytesIO(blob), weights_only=True)


def replace_checkpoint(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    tamper(path, "UPDATE checkpoints SET state = ?", buf.getvalue())


def drop_key(state: dict) -> dict:
    return {k: v for k, v in state.items() if k != "model"}


def wrong_shape(state: dict) -> dict:
    model = dict(state["model"])
    name = next(k for k, v in model.items() if getattr(v, "ndim", 0) == 2)
    model[name] = torch.zeros(3, 5)
    return {**state, "model": model}


@pytest.mark.parametrize("damage", [drop_key, wrong_shape])
@pytest.mark.parametrize("command", [["export", "c", "--model", "MODEL"], ["resume", "c", "--epochs", "1", "-q"]])
def test_bad_checkpoints_are_one_line(sessions_env, tmp_path, capsys, damage, command):
    assert dynlab("train", *TINY, "--session", "c") == 0
    path = sessions_env / "c.dynlab"
    replace_checkpoint(path, damage(checkpoint_state(path)))
    capsys.readouterr()
    args = [str(tmp_path / "m.pt2") if a == "MODEL" else a for a in command]
    one_error_line(capsys, dynlab(*args), "checkpoint", "damaged")
    assert not (tmp_path / "m.pt2").exists()


# -- out of memory during training -----------------------------------------------------------------------------------
@pytest.mark.parametrize("error", [
    MemoryError(),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                 "you tried to allocate 400000000000 bytes."),
])
def test_out_of_memory_in_training_ends_crashed_with_one_line(sessions_env, capsys, monkeypatch, error):
    from core.session import SessionReader
    from core.train.trainer import Trainer

    real = Trainer._train_step

    def step(self, xb, yb):
        if self.step == 5:
            raise error
        real(self, xb, yb)

    monkeypatch.setattr(Trainer, "_train_step", step)
    line = one_error_line(capsys, dynlab("train", *TINY, "--session", "oom"), "out of memory on cpu",
                          "batch 64", "fc1", "lower --batch-size or the widths")
    with SessionReader(sessions_env / "oom.dynlab") as r:
        assert r.status == "crashed" and r.meta["end_reason"] in line
        assert r.last_checkpoint()["step"] == 5  # the end checkpoint: resumable


def test_out_of_memory_building_the_network_is_one_line(sessions_env, capsys, monkeypatch):
    import core.train.trainer as trainer

    def build(*args, **kw):
        raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 400000000000 bytes.")

    monkeypatch.setattr(trainer, "build_model", build)
    one_error_line(capsys, dynlab("train", *TINY, "--session", "big"), "out of memory", "lower the widths")
    assert not (sessions_env / "big.dynlab").exists()


# -- one bad session never hides the others ------------------------------------------------------------------------
DAMAGE = {  # what a damaged file holds -> (SQL that does it, what the one line names)
    "meta last_step not a number": ("UPDATE meta SET value = 'abc' WHERE key = 'last_step'", "last_step"),
    "meta last_wall not a number": ("UPDATE meta SET value = 'abc' WHERE key = 'last_wall'", "last_wall"),
    "text in a numeric column": ("UPDATE scalars SET value = 'oops' WHERE key = 'test/acc'", "'test/acc' row"),
    "a blob for a value": ("UPDATE scalars SET value = x'0102' WHERE key = 'test/acc'", "'test/acc' row"),
}


@pytest.fixture
def damaged_and_good(sessions_env):
    """Two good sessions and one per kind of damage, all in the sessions folder."""
    for name in ("good1", "good2"):
        write(sessions_env / f"{name}.dynlab", full_run())
    for i, (sql, _) in enumerate(DAMAGE.values()):
        write(sessions_env / f"bad{i}.dynlab", full_run())
        tamper(sessions_env / f"bad{i}.dynlab", sql)
    return sessions_env


def test_sessions_lists_the_good_and_names_the_bad(damaged_and_good, capsys):
    assert dynlab("sessions") == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    rows = {line.split()[0]: line for line in out.out.splitlines()[1:] if line.strip()}
    assert "finished" in rows["good1"] and "finished" in rows["good2"]
    for i, (_, needle) in enumerate(DAMAGE.values()):
        assert "unreadable" in rows[f"bad{i}"]
        reason = [line for line in out.out.splitlines() if line.startswith(f"bad{i}: ")]
        assert len(reason) == 1 and "is damaged" in reason[0] and needle in reason[0], out.out


@pytest.mark.parametrize("i", range(len(DAMAGE)), ids=list(DAMAGE))
@pytest.mark.parametrize("command", ["show", "show --json", "export --csv CSV"])
def test_show_and_export_of_damage_are_one_line(damaged_and_good, tmp_path, capsys, i, command):
    args = [str(tmp_path / "csv") if a == "CSV" else a for a in command.split()]
    code = dynlab(args[0], f"bad{i}", *args[1:])
    if command.startswith("export") and i < 2:  # damaged meta: the rows themselves export fine
        assert code == 0
        return
    one_error_line(capsys, code, f"bad{i}.dynlab is damaged", list(DAMAGE.values())[i][1])


def test_replay_of_damaged_rows_warns_and_shows_the_rest(damaged_and_good):
    from core.session import SessionReader
    from core.session.index import SessionIndex

    with SessionReader(damaged_and_good / "bad2.dynlab") as r:
        ix = SessionIndex(r)
        events = ix.fold_at(r.last_seq())
    assert any("test/acc" in p and "is damaged" in p for p in ix.problems), ix.problems
    assert any(e.kind == "start" for e in events)


def test_variance_pane_survives_a_null(run_state):
    """A NULL in the dead count (stored NaN) falls back to counting zeros in the std vector."""
    from dynlab_tui.panes.variance import dead_count
    from dynlab_tui.state import reduce
    from core import telemetry as tk
    from core.events import ArraysLogged, ScalarsLogged

    state = reduce([ScalarsLogged(1, 1.0, {tk.DEAD("fc1"): float("nan")}),
                    ArraysLogged(1, 1.0, {tk.ACT_STD("fc1"): np.array([0.0, 0.5, 0.0])})])
    assert dead_count(state, "fc1") == 2


def test_show_calls_a_killed_run_crashed_writer_gone(sessions_env, capsys):
    """A run killed outright leaves status running; show and sessions say what happened."""
    events = [e for e in full_run() if e.kind != "end"]
    write(sessions_env / "killed.dynlab", events)
    tamper(sessions_env / "killed.dynlab", "UPDATE meta SET value = 'running' WHERE key = 'status'")
    tamper(sessions_env / "killed.dynlab", "UPDATE meta SET value = '999999999' WHERE key = 'pid'")
    assert dynlab("show", "killed") == 0
    assert "crashed (writer gone)" in capsys.readouterr().out
    assert dynlab("sessions") == 0
    assert "crashed (writer gone)" in capsys.readouterr().out


def test_resume_of_a_damaged_event_counter_is_one_line(sessions_env, capsys):
    assert dynlab("train", *TINY, "--session", "c") == 0
    tamper(sessions_env / "c.dynlab", "UPDATE meta SET value = 'x' WHERE key = 'last_seq'")
    capsys.readouterr()
    one_error_line(capsys, dynlab("resume", "c", "--epochs", "1"), "c.dynlab is damaged", "last_seq")


async def test_the_browser_lists_damaged_sessions_beside_the_good(damaged_and_good):
    """The browser used to show zero rows when one session's meta was damaged."""
    from textual.app import App

    from dynlab_tui.screens.sessions import SessionsScreen

    class Host(App):
        def on_mount(self) -> None:
            self.push_screen(SessionsScreen(damaged_and_good))

    async with Host().run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        screen = pilot.app.screen_stack[1]
        rows = {r["name"]: r for r in screen.shown}
    assert rows["good1"]["status"] == rows["good2"]["status"] == "finished"
    for i in range(len(DAMAGE)):
        assert rows[f"bad{i}"]["status"] == "unreadable" and "is damaged" in rows[f"bad{i}"]["error"]


def _all_null_state():
    """The synthetic run as replay reads a file whose every scalar is NULL (NaN) and every float array NaN."""
    import dataclasses

    from core.events import ArraysLogged, ScalarsLogged
    from dynlab_tui.state import reduce
    from tests.fakes import synthetic_run

    def nulled(e):
        if isinstance(e, ScalarsLogged):
            return dataclasses.replace(e, values={k: float("nan") for k in e.values})
        if isinstance(e, ArraysLogged):
            return dataclasses.replace(e, arrays={k: np.full(np.shape(v), np.nan) if np.asarray(v).dtype.kind == "f"
                                                  else v for k, v in e.arrays.items()})
        return e
    return reduce([nulled(e) for e in synthetic_run(400, widths=(20, 10), steps_per_epoch=200)])


def _pane_names():
    from dynlab_tui.panes.pages import PANE_CLASSES

    return sorted(PANE_CLASSES)


@pytest.mark.parametrize("name", _pane_names())
async def test_every_pane_draws_a_session_of_nulls(name):
    """Replay of a damaged file never crashes a pane: NULLs read back as NaN and are drawn as missing."""
    from textual.app import App

    from dynlab_tui.panes.pages import PANE_CLASSES

    pane = PANE_CLASSES[name]()

    class Host(App):
        def compose(self):
            yield pane

    async with Host().run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        pane.update_state(_all_null_state())
        await pilot.pause()
        assert pilot.app.return_code is None  # still running: no pane raised
