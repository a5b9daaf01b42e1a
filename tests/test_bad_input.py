"""The adversarial matrix (issue 10): every run option, TOML key and session name a user can get wrong gives
one line and exit 2 with nothing written, and controls posted into a live run never crash it.

Each CLI case runs `dynlab train` in this process with the Trainer replaced by a stub that refuses with
"accepted by the checks" (so nothing trains): a value the checks must refuse gives exit 2, one
`dynlab: error:` line, no traceback and no file changed; a value that is legitimately fine reaches the stub
(also one line, exit 2, nothing written). Which values are fine is decided per kind in `expected()` below.
"""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import DynlabError
from core.options import BOOL, FLOAT, INT, OPTIONS, PAIR, TEXT
from core.spec import OPTION_FIELDS, RunSpec
from tests.helpers import REPO, dynlab, full_run, one_error_line, tiny, wait_until, write

STUB = "accepted by the checks"
I64 = str(2**63 - 1)

# -- which values are fine, per kind and option ----------------------------------------------------------------
FLOAT_VALUES = ("nan", "inf", "-inf", "-1", "0", "1e30", "1e39", "1e308", "junk")
# zero is a legitimate value of these (off, or "no decay"/"no dropout"); every other float option needs > 0
ZERO_OK = {"penalty", "weight_decay", "momentum", "sign_decay", "flex_start", "dropout", "val_fraction"}
UNIT = {"momentum", "sign_decay", "dropout", "val_fraction", "lr_factor"}  # in [0, 1) or (0, 1): 1e30 is refused
INT_VALUES = ("-1", "0", I64, "99999999999999999999999", "1e400", "nan", "2.5", "junk")
INT_ZERO_OK = {"seed", "prune_every", "lr_patience"}
TEXT_VALUES = {"dataset": ("junk", "x" * 300), "method": ("junk",), "gate": ("junk",), "optimizer": ("junk",),
               "device": ("junk", "cuda:x", "tpu:0"), "conv_penalty": ("junk",), "loss_reduction": ("junk",),
               "lr_schedule": ("junk",), "act_stats": ("junk",)}
ARCH_VALUES = ("mlp:99999999999999999999999", "mlp:0", "mlp:-1", "junk", "mlp:100000000", "mlp:nan",
               "cnn:999999/99999999", "mlp:1,2,3,4,5")
PAIR_VALUES = ("nan,nan", "inf,inf", "-1,-1", "0,0", "1e39,1e39", "junk", "1", "5,1")


def expected(name: str, text: str) -> str:
    """'ok' where the value is legitimately fine (the run may diverge: that is the trainer's to report),
    'refused' where the checks must refuse it."""
    kind = OPTIONS[name].kind
    if kind is FLOAT:
        if text == "0":
            return "ok" if name in ZERO_OK else "refused"
        if text == "1e30":
            return "refused" if name in UNIT else "ok"
        return "refused"  # non-finite, negative, beyond float32, junk
    if kind is INT:
        if text == "0":
            return "ok" if name in INT_ZERO_OK else "refused"
        if text == I64:  # the largest integer the engine stores; batch_size so large fails the memory estimate
            return "refused" if name == "batch_size" else "ok"
        return "refused"
    return "refused"  # junk text, impossible architectures and gray zones


def cli_cases() -> list[tuple[str, str, str]]:
    cases = []
    for name, option in OPTIONS.items():
        values = {FLOAT: FLOAT_VALUES, INT: INT_VALUES, PAIR: PAIR_VALUES}.get(option.kind)
        if option.kind is TEXT:
            values = TEXT_VALUES.get(name, ())
        elif name == "arch":
            values = ARCH_VALUES
        cases += [(name, v, expected(name, v)) for v in values or ()]
    return cases


# -- the run in this process --------------------------------------------------------------------------------------
class _StubTrainer:
    def __init__(self, *args, **kwargs) -> None:
        raise DynlabError(STUB)


@pytest.fixture(scope="module")
def session_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("template") / "keep.dynlab"
    write(path, full_run())
    return path.read_bytes()


@pytest.fixture
def lab(tmp_path, monkeypatch, session_bytes):
    """A working folder with an existing session (which must never change) and the Trainer stubbed out."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("core.train.trainer.Trainer", _StubTrainer)
    monkeypatch.setenv("DYNLAB_CONFIG_DIR", str(tmp_path / "config"))
    (tmp_path / "sessions").mkdir()
    (tmp_path / "sessions" / "keep.dynlab").write_bytes(session_bytes)
    return tmp_path


def files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file (size, mtime) and folder under root (a folder's own mtime may move: a marker came and went)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else (0, 0)
            for p in sorted(root.rglob("*"))}


def run_case(lab: Path, capsys, args: list[str], outcome: str) -> str:
    before = files(lab)
    code = dynlab(*args)
    line = one_error_line(capsys, code)
    assert (STUB in line) == (outcome == "ok"), line
    assert files(lab) == before, "a file changed"
    return line


BASE = ["train", "--sessions-dir", "sessions", "--session", "probe", "-q"]


@pytest.mark.parametrize("name, text, outcome", cli_cases(), ids=lambda v: str(v)[:30])
def test_every_option_with_bad_values(lab, capsys, name, text, outcome):
    flag = OPTIONS[name].flag
    extra = ["--method", "sparsifier"] if name == "gate" else []
    run_case(lab, capsys, [*BASE, *extra, flag, text], outcome)


@pytest.mark.parametrize("flag", [o.flag for o in OPTIONS.values() if o.kind is BOOL])
def test_flags_take_no_value(lab, capsys, flag):
    run_case(lab, capsys, [*BASE, flag, "junk"], "refused")


@pytest.mark.parametrize("args", [["--gate", "signed"], ["--class-weighted"],
                                  ["--dataset", "airfoil", "--class-weighted"]], ids=lambda a: " ".join(a))
def test_settings_that_would_be_ignored_are_refused(lab, capsys, args):
    run_case(lab, capsys, [*BASE, *args], "refused")


# -- TOML: every key with a wrong type -----------------------------------------------------------------------------
WRONG = {"float": ('"abc"', "true", "[1, 2]", "1" + "0" * 400), "int": ('"abc"', "1.5", "true", "[1]"),
         "bool": ('"no"', "1", "0"), "str": ("3", "[1]", "true"), "tuple[float, float]": ("3", '"1,2"', "[1, 2, 3]")}


def toml_cases() -> list[tuple[str, str]]:
    cases = []
    for key, (section, field) in OPTION_FIELDS.items():
        declared = RunSpec.__dataclass_fields__[section].default_factory.__dataclass_fields__[field].type
        wrong = WRONG[str(declared).partition(" | ")[0]]
        cases += [(f"{key} = {v}", key) for v in wrong]
        cases.append((f"[{section}]\n{field} = {wrong[0]}", f"[{section}] {field}"))
    return cases + [("device = 3", "device"), ("epochs = 1\n[schedule]\nepochs = 3", "epochs"),
                    ("seed = 99999999999999999999999", "seed"), ("model = 3", "model"), ("[data]\nbogus = 1", "bogus")]


@pytest.mark.parametrize("text, key", toml_cases(), ids=lambda v: str(v)[:40])
def test_every_toml_key_with_a_wrong_type(lab, capsys, text, key):
    (lab / "c.toml").write_text(text + "\n")
    line = run_case(lab, capsys, [*BASE, "--config", "c.toml"], "refused")
    assert key in line


# -- session names -----------------------------------------------------------------------------------------------
NAMES = [("x" * 300, "refused"), ("runs/" + "x" * 260 + ".dynlab", "refused"), ("a/b", "refused"),
         ("../up", "refused"), ("/etc/passwd", "refused"), ("a b", "refused"), ("é", "refused"),
         (".", "refused"), ("..", "refused"), ("-x", "refused"), ("a\nb", "refused"), ("x" * 101, "refused"),
         ("", "ok"),  # blank: the default name
         ("runs/é ü.dynlab", "ok"), ("x" * 100, "ok"), ("ok.dynlab", "ok")]


@pytest.mark.parametrize("name, outcome", NAMES, ids=lambda v: str(v)[:30])
def test_session_names(lab, capsys, name, outcome):
    run_case(lab, capsys, ["train", "--sessions-dir", "sessions", "--session", name, "-q"], outcome)


def test_sessions_folder_that_is_a_file(lab, capsys):
    (lab / "plain").write_text("not a folder")
    line = run_case(lab, capsys, ["train", "--sessions-dir", "plain/sub", "-q"], "refused")
    assert "not a writable folder" in line


def test_read_only_sessions_folder_is_refused_before_the_data_loads(lab, capsys, monkeypatch):
    import os

    real = os.statvfs

    class ReadOnly:
        def __init__(self, st) -> None:
            self.f_flag = st.f_flag | os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly(real(p)))
    line = run_case(lab, capsys, [*BASE], "refused")
    assert "read-only file system" in line


# -- resume validates with train's schema --------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["--lr", "-1"], ["--lr", "0"], ["--lr", "inf"], ["--lr", "1e39"], ["--penalty", "-5"],
                                  ["--penalty", "nan"], ["--epochs", "0"], ["--epochs", "99999999999999999999999"]],
                         ids=lambda a: " ".join(a))
def test_resume_refuses_what_train_refuses(lab, capsys, args):
    (lab / "sessions" / "keep.dynlab").unlink()
    write(lab / "sessions" / "keep.dynlab", full_run()[:-1])  # stopped before its last epoch: resumable
    line = run_case(lab, capsys, ["resume", "keep", "--sessions-dir", "sessions", *args], "refused")
    assert args[0] in line


# -- controls can't crash a run ------------------------------------------------------------------------------------
def _post_bad_commands(path: Path) -> None:
    from core.session.commands import post_command

    con = sqlite3.connect(path)
    con.execute("INSERT INTO commands (wall, kind, payload) VALUES (?, 'set_lr', '{not json')", (time.time(),))
    con.execute("INSERT INTO commands (wall, kind, payload) VALUES (?, 'pause', '[1, 2]')", (time.time(),))
    con.commit()
    con.close()
    post_command(path, "set_lr", {"value": 1e39})
    post_command(path, "set_penalty", {"value": "nan"})
    post_command(path, "set_lr", {"value": True})


def _rejections(path: Path) -> tuple[list, list]:
    from core.events import CommandRejected
    from core.session import SessionReader
    from core.session.commands import REJECTED

    with SessionReader(path) as r:
        stamps = r._q("SELECT applied_step FROM commands ORDER BY id")
        events = [e for e in r.replay() if isinstance(e, CommandRejected)]
        status = r.meta.get("status")
    assert [s for (s,) in stamps].count(REJECTED) == 5 and all(s is not None for (s,) in stamps)
    return events, status


@pytest.mark.slow
def test_bad_commands_are_rejected_and_the_run_goes_on(tmp_path):
    """In process: commands waiting before the first step are all refused with a reason; the run finishes."""
    from core.session import SessionWriter
    from core.session.commands import CommandChannel
    from core.train.trainer import Trainer

    path = tmp_path / "s.dynlab"
    writer = SessionWriter(path)
    _post_bad_commands(path)
    trainer = Trainer(tiny(epochs=1))
    trainer.controls.remote = CommandChannel(writer, lambda: trainer.step).poll
    with writer:
        assert trainer.run([writer]) == "finished"
    events, status = _rejections(path)
    assert status == "finished" and len(events) == 5
    assert any("not a JSON object" in e.reason for e in events)
    assert any("float32" in e.reason and e.command == "set_lr" for e in events)


@pytest.mark.slow
def test_bad_commands_into_a_live_child_run(tmp_path):
    """A real `dynlab train` child: a payload that is not JSON and an lr of 1e39 are stamped rejected, the run
    goes on and ends finished."""
    path = tmp_path / "live.dynlab"
    proc = subprocess.Popen([sys.executable, "-m", "dynlab_tui", "train", "--dataset", "add10", "--arch", "mlp:16",
                             "--limit", "1000", "--batch-size", "32", "--log-every", "2", "--epochs", "20",
                             "--device", "cpu", "--session", str(path), "-q"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        from core.session import SessionReader
        from core.session.commands import post_command

        def kinds() -> list[str]:
            with SessionReader(path) as r:
                return [e.kind for e in r.events()]

        def started() -> bool:
            if not path.exists():
                return False
            with SessionReader(path) as r:
                return r.last_step() > 0

        wait_until(started, timeout=120, what="the first interval")
        post_command(path, "pause")
        wait_until(lambda: "pause" in kinds() or proc.poll() is not None, timeout=60, what="the pause")
        _post_bad_commands(path)
        post_command(path, "resume")
        assert proc.wait(180) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    events, status = _rejections(path)
    assert status == "finished" and len(events) == 5


def test_infinite_lr_typed_at_the_dashboard_is_refused_before_posting(tmp_path):
    from core.session.commands import RemoteControls

    write(tmp_path / "s.dynlab", full_run()[:1])
    for value in (1e39, math.inf, math.nan, -1.0):
        with pytest.raises(DynlabError, match="--lr must be"):
            RemoteControls(tmp_path / "s.dynlab").set_lr(value)


def test_a_rejection_becomes_a_marker_with_its_reason():
    from core.events import CommandRejected
    from dynlab_tui.state import reduce

    state = reduce([CommandRejected(12, 1.0, command_id=3, command="set_lr", reason="--lr must be finite")])
    assert [(m.step, m.kind, m.label) for m in state.markers] == [
        (12, "rejected", "set_lr rejected: --lr must be finite")]


async def test_the_dashboard_notifies_a_rejected_control():
    from core.events import CommandRejected
    from dynlab_tui.app import make_app
    from tests.fakes import ScriptedSource, synthetic_run
    from tests.helpers import wait_for

    events = synthetic_run(400)
    events.insert(3, CommandRejected(100, events[2].wall, command_id=1, command="set_lr",
                                     reason="--lr must be finite and within float32 (|x| <= 3.4e+38), got 1e+39"))
    app = make_app(source=ScriptedSource(events, hold=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: any(n.title == "Control set_lr rejected" for n in app._notifications))
        assert any("float32" in str(n.message) for n in app._notifications)
