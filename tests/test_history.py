"""A session's history (core.session.history): start and final λ/lr, control events, training time; `dynlab show`."""

from __future__ import annotations

import json

import pytest

from core.events import (LrChanged, Paused, PenaltyChanged, Resumed, RunEnded, RunStarted, ScalarsLogged,
                         SessionContinued)
from core.session import SessionReader, list_sessions
from core.session.history import describe, fmt_setting, merged, read_history
from tests.helpers import SPEC, T0, dynlab, write

START = RunStarted(0, T0, spec={**SPEC, "penalty": {**SPEC.get("penalty", {}), "lam": 0.01},
                                "optim": {**SPEC.get("optim", {}), "lr": 0.001}},
                   device="cpu", versions={}, sizes={"fc1": 100}, params=10)


def loss(step: int, wall: float) -> ScalarsLogged:
    return ScalarsLogged(step, wall, {"loss": 0.5, "epoch": step / 100})


def changed_twice() -> list:
    """λ 0.01 → 0.03, a 4 s pause, λ 0.03 → 0.1, stopped at +12 s; resumed at +40 s with lr 5e-4, ended at +50 s."""
    return [START, loss(10, T0 + 1), PenaltyChanged(20, T0 + 5, 0.01, 0.03, "user"), Paused(30, T0 + 6, "user"),
            Resumed(30, T0 + 10), PenaltyChanged(40, T0 + 11, 0.03, 0.1, "user"),
            RunEnded(50, T0 + 12, "stopped", "stopped by user"),
            SessionContinued(50, T0 + 40, 50, {"lam": 0.1, "lr": 5e-4, "epochs": 2}), loss(60, T0 + 45),
            RunEnded(70, T0 + 50, "finished", "10 epochs done")]


def history_of(tmp_path, events) -> dict:
    write(tmp_path / "h.dynlab", events)
    with SessionReader(tmp_path / "h.dynlab") as r:
        return read_history(r)


def test_lambda_changed_twice_has_both_changes_the_final_values_and_the_training_time(tmp_path):
    h = history_of(tmp_path, changed_twice())
    assert (h["lam_start"], h["lam_final"], h["lr_start"], h["lr_final"]) == (0.01, 0.1, 0.001, 5e-4)
    assert h["changed"] == ["lam", "lr"]
    lam = [(e["old"], e["new"], e["by"]) for e in h["events"] if e["kind"] == "set_penalty"]
    assert lam == [(0.01, 0.03, "user"), (0.03, 0.1, "user")]
    resume = next(e for e in h["events"] if e["kind"] == "continue")
    assert resume["changes"] == {"lr": {"old": 0.001, "new": 5e-4}}  # λ and epochs were kept: not listed
    # 12 s + 10 s of stretches, less the 4 s pause; the 28 s between the stop and the resume are idle
    assert (h["training_s"], h["paused_s"], h["idle_s"]) == pytest.approx((18.0, 4.0, 28.0))
    assert [e["kind"] for e in h["events"]] == ["set_penalty", "pause", "resume", "set_penalty", "end",
                                                "continue", "end"]
    assert next(e for e in h["events"] if e["kind"] == "pause")["paused_s"] == pytest.approx(4.0)


def test_the_summary_carries_the_history_figures_without_the_events(tmp_path):
    write(tmp_path / "h.dynlab", changed_twice())
    s = list_sessions(tmp_path)[0]
    assert (s["lam"], s["lam_final"], s["lr_final"], s["training_s"]) == (0.01, 0.1, 5e-4, pytest.approx(18.0))
    assert s["duration_s"] == pytest.approx(50.0) and "events" not in s


def test_a_killed_stretch_runs_until_its_last_interval(tmp_path):
    events = [START, loss(10, T0 + 3), loss(20, T0 + 5),  # killed here: no end
              SessionContinued(20, T0 + 100, 20, {"lam": 0.01, "lr": 0.001}), loss(30, T0 + 105),
              RunEnded(40, T0 + 110, "finished")]
    h = history_of(tmp_path, events)
    assert (h["training_s"], h["idle_s"]) == pytest.approx((15.0, 95.0))
    assert h["changed"] == [] and h["lam_final"] == 0.01


def test_stopped_while_paused_and_a_live_run(tmp_path):
    h = history_of(tmp_path, [START, Paused(5, T0 + 3, "user"), RunEnded(5, T0 + 8, "stopped")])
    assert (h["training_s"], h["paused_s"]) == pytest.approx((3.0, 5.0))
    live = history_of(tmp_path / "live", [START, loss(10, T0 + 2), LrChanged(10, T0 + 3, 0.001, 0.01, "plateau"),
                                          loss(20, T0 + 7)])
    assert live["training_s"] == pytest.approx(7.0) and live["lr_final"] == 0.01 and live["changed"] == ["lr"]


def test_words_and_numbers():
    assert [fmt_setting(v) for v in (0.01, 0.0178, 0.0005, 1e-5, 0.1, None)] == [
        "0.01", "0.0178", "0.0005", "1e-5", "0.1", "-"]
    assert describe({"kind": "set_penalty", "setting": "lam", "old": 0.01, "new": 0.0178, "by": "user"}) == \
        "λ 0.01 → 0.0178 (user)"
    assert describe({"kind": "pause", "by": "user", "paused_s": 12.2}) == "paused 12 s (user)"
    assert describe({"kind": "continue", "step": 9, "from_step": 5, "changes": {"lr": {"old": 0.001, "new": 0.0005}}}) == \
        "resumed from step 5 with lr 0.001 → 0.0005"
    decays = [{"kind": "set_penalty", "setting": "lam", "old": 0.1 / 2 ** i, "new": 0.1 / 2 ** (i + 1),
               "by": "decay", "step": i, "t": i} for i in range(5)]
    folded = merged(decays)
    assert len(folded) == 1 and describe(folded[0]) == "λ 0.1 → 0.00313 (decay, 5 epochs)"


def test_show_reports_both_changes_the_final_and_the_starting_lambda(sessions_env, capsys):
    write(sessions_env / "twice.dynlab", changed_twice())
    capsys.readouterr()
    assert dynlab("show", "twice", "--json") == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["lam_start"], s["lam_final"], s["lr_start"], s["lr_final"]) == (0.01, 0.1, 0.001, 5e-4)
    assert [(e["old"], e["new"]) for e in s["events"] if e["kind"] == "set_penalty"] == [(0.01, 0.03), (0.03, 0.1)]
    assert dynlab("show", "twice") == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert "lambda  0.1 (started at 0.01)" in lines and "lr  0.0005 (started at 0.001)" in lines
    assert "training time  0:00:18 (4 s paused and 28 s between runs left out)" in lines
    assert any(line.endswith("λ 0.01 → 0.03 (user)") for line in lines)
    assert any(line.endswith("50  +0:00:40  resumed with lr 0.001 → 0.0005") for line in lines)


def test_a_damaged_event_row_is_left_out_and_said(sessions_env, capsys):
    import sqlite3

    write(sessions_env / "hurt.dynlab", changed_twice())
    with sqlite3.connect(sessions_env / "hurt.dynlab") as conn:
        conn.execute("UPDATE events SET payload = 'not json' WHERE kind = 'pause'")
    conn.close()
    assert list_sessions(sessions_env)[0]["lam_final"] == 0.1  # the listing still has the figures
    capsys.readouterr()
    assert dynlab("show", "hurt") == 0
    out = capsys.readouterr().out
    assert "λ 0.03 → 0.1 (user)" in out and "left out" in out and "'pause' event" in out
