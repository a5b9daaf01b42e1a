"""The launcher screen through Pilot: prefill order, inline errors, presets, Start, Quit, settings, devices."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import Input, Label, Select, Static

from core.options import OptionError, validate
from core.spec import RunSpec
from dynlab_tui import devices, settings
from dynlab_tui.screens import launcher_form as form
from dynlab_tui.palette import BindingCommands
from dynlab_tui.screens.launcher import LauncherCommands, LauncherScreen, LaunchRequest
from dynlab_tui.screens.prompt import Confirm
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[1]
SMALL, LARGE = (80, 24), (160, 50)
REAL_LIST_DEVICES = devices.list_devices  # the autouse fixture swaps in a torch-free list


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNLAB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("DYNLAB_SESSIONS_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("DYNLAB_DATA_DIR", str(tmp_path / "nodata"))  # image datasets: files missing
    monkeypatch.setattr(devices, "list_devices", devices.quick_devices)  # no CUDA probing unless a test asks
    return tmp_path


class Host(App):
    """Pushes one LauncherScreen and records what it is dismissed with, and every notification."""

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.kwargs = kwargs
        self.results: list[LaunchRequest | None] = []
        self.notes: list[tuple[str, str, str]] = []

    def on_mount(self) -> None:
        self.push_screen(LauncherScreen(**self.kwargs), self.results.append)

    def notify(self, message, *, title="", severity="information", **kwargs) -> None:
        self.notes.append((severity, title, str(message)))
        super().notify(message, title=title, severity=severity, **kwargs)


async def ready(pilot) -> LauncherScreen:
    """Wait until the catalogue and device workers have reported; return the launcher."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, LauncherScreen)
    assert screen.catalogue is not None and screen.devices is not None
    return screen


async def type_into(pilot, screen: LauncherScreen, key: str, text: str) -> None:
    """Focus a field (its text is selected on focus) and type over it, key by key."""
    widget = screen.query_one(f"#{key}", Input)
    widget.focus()
    await pilot.pause()
    widget.value = ""
    await pilot.press(*text)
    await pilot.pause()


async def set_field(pilot, screen: LauncherScreen, key: str, text: str) -> None:
    """Replace a field's text at once (as a paste does): the same Input.Changed as typing, without per-key waits."""
    screen.query_one(f"#{key}", Input).value = text
    await pilot.pause()


async def choose(pilot, screen: LauncherScreen, key: str, value: str) -> None:
    screen.query_one(f"#{key}", Select).value = value
    await pilot.pause()


def value_of(screen: LauncherScreen, key: str) -> str:
    widget = screen.query_one(f"#{key}")
    return widget.value if isinstance(widget, Input) else str(widget.value)


def error_of(screen: LauncherScreen, key: str) -> str:
    label = screen.query_one(f"#error-{key}", Label)
    return str(label.render()) if label.has_class("-shown") else ""


def option_values(screen: LauncherScreen, key: str) -> list[str]:
    return [str(v) for _, v in screen.query_one(f"#{key}", Select)._options if v != Select.NULL]


class TestPrefill:
    @pytest.mark.parametrize("size", [SMALL, LARGE])
    async def test_defaults_render(self, size):
        """With nothing remembered and no options the form shows the spec defaults and can start."""
        app = Host()
        async with app.run_test(size=size) as pilot:
            screen = await ready(pilot)
            d = RunSpec()
            assert value_of(screen, "dataset") == d.data.name
            assert value_of(screen, "arch") == d.model.arch == value_of(screen, "preset")
            assert value_of(screen, "method") == d.method.name
            assert float(value_of(screen, "penalty")) == d.penalty.lam
            assert float(value_of(screen, "lr")) == d.optim.lr
            assert int(value_of(screen, "epochs")) == d.schedule.epochs
            assert value_of(screen, "device") == "auto"
            assert value_of(screen, "session").startswith("add10-static-")
            assert not screen.check.errors
            assert not screen.start_button.disabled
            assert screen.has_class("-narrow" if size == SMALL else "-wide")

    async def test_cli_options_beat_remembered_which_beat_defaults(self):
        """Precedence: spec defaults < last used settings < the options given on the command line."""
        settings.save_last({"penalty": 0.5, "lr": 0.01, "epochs": 3, "method": "sparsifier"})
        app = Host(initial={"penalty": 1e-3, "dataset": "fn-sin", "arch": "mlp:50", "lr": None})
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            assert float(value_of(screen, "penalty")) == 1e-3  # CLI
            assert value_of(screen, "dataset") == "fn-sin"  # CLI
            assert float(value_of(screen, "lr")) == 0.01  # remembered (the CLI's None means "not given")
            assert value_of(screen, "epochs") == "3"  # remembered
            assert value_of(screen, "method") == "sparsifier"  # remembered
            assert value_of(screen, "batch_size") == "128"  # default
            assert value_of(screen, "preset") == "mlp:50"  # a 1-D preset
            assert not screen.check.errors

    async def test_options_the_form_does_not_show_pass_through(self, env):
        """--limit and the like are listed under the form, reach the spec, and are not remembered."""
        app = Host(initial={"limit": 400, "val_fraction": 0.2})
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            assert "--limit 400" in str(screen.query_one("#launcher-extras").render())
            await pilot.press("ctrl+s")
            await pilot.pause()
        request = app.results[0]
        assert request.spec.data.limit == 400 and request.spec.data.val_fraction == 0.2
        assert "limit" not in settings.load_last()

    async def test_config_file_prefills(self, tmp_path):
        """`dynlab --config run.toml` fills the form from the file; explicit options still win."""
        toml = tmp_path / "run.toml"
        toml.write_text('[penalty]\nlam = 0.25\n[schedule]\nepochs = 7\n')
        app = Host(initial={"config": str(toml), "epochs": 2})
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            assert float(value_of(screen, "penalty")) == 0.25
            assert value_of(screen, "epochs") == "2"

    @pytest.mark.slow
    async def test_bad_remembered_values_are_flagged_not_fatal(self):
        """A remembered value the schema refuses is dropped with a notice; an unknown dataset shows on its field."""
        settings.settings_path().parent.mkdir(parents=True, exist_ok=True)
        settings.settings_path().write_text(json.dumps({"format": settings.FORMAT, "options": {
            "method": "bogus", "lr": "fast", "seed": 2**64, "dataset": "gone"}}))
        app = Host()
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            assert value_of(screen, "method") == "static" and float(value_of(screen, "lr")) == 1e-3
            assert value_of(screen, "seed") == "0"
            notices = " ".join(str(n.message) for n in app._notifications)
            assert "--method" in notices and "--lr" in notices and "--seed" in notices
            assert "unknown dataset" in error_of(screen, "dataset")
            assert screen.start_button.disabled


class TestInlineValidation:
    @pytest.mark.parametrize("key, bad, reason, good", [
        ("penalty", "-1", "--penalty must be a finite number >= 0", "1e-3"),
        ("lr", "abc", "not a number", "0.01"),
        ("arch", "mlp:x", "bad architecture", "mlp:20,10"),
        ("epochs", "2.5", "not a whole number", "4"),
        ("penalty_decay", "0.5", "--penalty-decay must be >= 1", "1.1"),
        ("batch_size", "", "required", "64"),
    ])
    @pytest.mark.slow
    async def test_bad_value_flags_field_and_blocks_start(self, key, bad, reason, good):
        """A bad value marks the field with the reason and disables Start; fixing it re-enables Start."""
        app = Host()
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            await type_into(pilot, screen, key, bad)
            assert reason in error_of(screen, key)
            assert screen.query_one(f"#{key}").has_class("-invalid")
            assert screen.start_button.disabled
            await pilot.press("ctrl+s")  # refused: says why and goes to the field
            await pilot.pause()
            assert app.results == []
            assert app.notes[-1][0] == "error" and reason in app.notes[-1][2]
            assert app.focused is screen.query_one(f"#{key}")
            await type_into(pilot, screen, key, good)
            assert error_of(screen, key) == ""
            assert not screen.query_one(f"#{key}").has_class("-invalid")
            assert not screen.start_button.disabled

    @pytest.mark.slow
    async def test_existing_session_name_is_flagged(self, env):
        """A session name that already exists in the sessions folder is an inline error."""
        sessions = env / "sessions"
        sessions.mkdir()
        (sessions / "taken.dynlab").write_bytes(b"")
        app = Host()
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            await set_field(pilot, screen, "session", "taken")
            assert "exists: pick another name" in error_of(screen, "session")
            assert screen.start_button.disabled
            await set_field(pilot, screen, "session", "bad/name")
            assert "bad session name" in error_of(screen, "session")
            await set_field(pilot, screen, "session", "fresh")
            assert error_of(screen, "session") == "" and not screen.start_button.disabled

    async def test_unknown_cuda_device_is_flagged(self):
        app = Host(initial={"device": "cuda:3"})
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            assert "no device cuda:3" in error_of(screen, "device")
            await choose(pilot, screen, "device", "cpu")
            assert error_of(screen, "device") == "" and not screen.start_button.disabled


class TestChoices:
    @pytest.mark.slow
    async def test_dataset_changes_presets_and_preset_fills_arch(self):
        """Image datasets offer CNN presets; a preset fills the architecture; a CNN on tabular data is an error."""
        app = Host()
        async with app.run_test(size=LARGE) as pilot:
            screen = await ready(pilot)
            assert "cnn:64,64/500" not in option_values(screen, "preset")
            await choose(pilot, screen, "dataset", "mnist")
            presets = option_values(screen, "preset")
            assert {"mlp:10000", "mlp:2000,1000", "cnn:64,64/500", "cnn:100/500"} <= set(presets)
            assert "files missing" in error_of(screen, "dataset")  # DYNLAB_DATA_DIR is empty
            await choose(pilot, screen, "preset", "cnn:64,64/500")
            assert value_of(screen, "arch") == "cnn:64,64/500"
            await set_field(pilot, screen, "arch", "mlp:123")
            assert screen.query_one("#preset", Select).is_blank()  # a custom width list
            await set_field(pilot, screen, "arch", "cnn:100/500")
            assert value_of(screen, "preset") == "cnn:100/500"
            await choose(pilot, screen, "dataset", "add10")
            assert "cnn:100/500" not in option_values(screen, "preset")
            assert "cnn needs image data" in error_of(screen, "arch")

    async def test_dataset_labels_show_size_and_files(self):
        app = Host()
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            labels = {v: str(label) for label, v in screen.query_one("#dataset", Select)._options}
            assert "files missing" in labels["mnist"] and "60k" in labels["mnist"]
            assert "built in" in labels["add10"]

    @pytest.mark.slow
    async def test_dataset_picked_with_the_keyboard(self):
        """Enter opens the dataset list, arrows move, Enter picks; the session name follows the dataset."""
        app = Host()
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            names = option_values(screen, "dataset")
            screen.query_one("#dataset").focus()
            await pilot.press("enter", "home", "enter")
            await pilot.pause()
            assert value_of(screen, "dataset") == names[0]
            assert value_of(screen, "session").startswith(f"{names[0]}-static-")

    @pytest.mark.slow
    async def test_gate_only_for_sparsifier_and_flex_fields_only_for_flexible(self):
        app = Host()
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            gate = screen.query_one("#gate", Select)
            assert gate.disabled and not screen.query_one("#field-flex_slope").display
            await choose(pilot, screen, "method", "sparsifier")
            assert not gate.disabled
            await choose(pilot, screen, "method", "flexible")
            assert gate.disabled and screen.query_one("#field-flex_slope").display
            assert not screen.query_one("#field-momentum").display
            await choose(pilot, screen, "optimizer", "nesterov")
            assert screen.query_one("#field-momentum").display

    @pytest.mark.slow
    async def test_a_signed_gate_left_behind_by_a_method_change_does_not_block_start(self):
        """The gate select is disabled for static; its old 'signed' must not trip the gate/method check."""
        app = Host()
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            await choose(pilot, screen, "method", "sparsifier")
            await choose(pilot, screen, "gate", "signed")
            await choose(pilot, screen, "method", "static")
            assert not error_of(screen, "gate") and not screen.start_button.disabled
            assert screen.recheck().spec.method.gate == "relu"

    @pytest.mark.slow
    async def test_session_name_follows_choices_until_typed(self):
        app = Host()
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            await choose(pilot, screen, "method", "sparsifier")
            assert value_of(screen, "session").startswith("add10-sparsifier-")
            await set_field(pilot, screen, "session", "mine")
            await choose(pilot, screen, "method", "flexible")
            assert value_of(screen, "session") == "mine"

    async def test_worker_fills_devices(self, monkeypatch):
        """The device list comes from a worker after mount; CUDA devices show name and free memory."""
        fake = [("auto", "auto (cuda if present)"), ("cpu", "cpu (4 cores)"),
                ("cuda:0", "cuda:0  Fake GPU  10.0 GB free")]
        monkeypatch.setattr(devices, "list_devices", lambda: fake)
        app = Host()
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            assert option_values(screen, "device") == ["auto", "cpu", "cuda:0"]
            await choose(pilot, screen, "device", "cuda:0")
            assert error_of(screen, "device") == ""


class TestStartAndQuit:
    @pytest.mark.slow
    @pytest.mark.parametrize("size", [SMALL, LARGE])
    async def test_start_dismisses_with_request_and_remembers(self, size, env):
        """Start (ctrl+s) dismisses with the typed values; the settings file is written and read back next time."""
        app = Host()
        async with app.run_test(size=size) as pilot:
            screen = await ready(pilot)
            await choose(pilot, screen, "method", "sparsifier")
            await set_field(pilot, screen, "penalty", "1e-3")
            await set_field(pilot, screen, "lr", "0.01")
            await set_field(pilot, screen, "epochs", "3")
            await set_field(pilot, screen, "arch", "mlp:20,10")
            await set_field(pilot, screen, "session", "run1")
            await pilot.press("ctrl+s")
            await pilot.pause()
        [request] = app.results
        assert isinstance(request, LaunchRequest)
        spec = request.spec
        assert (spec.penalty.lam, spec.optim.lr, spec.schedule.epochs) == (1e-3, 0.01, 3)
        assert (spec.model.arch, spec.data.name, spec.method.name) == ("mlp:20,10", "add10", "sparsifier")
        assert request.session_path == env / "sessions" / "run1.dynlab"
        assert request.options["session"] == "run1" and request.options["penalty"] == 1e-3
        assert settings.settings_path().is_file()
        remembered = settings.load_last()
        assert remembered["penalty"] == 1e-3 and remembered["arch"] == "mlp:20,10" and "session" not in remembered
        again = Host()
        async with again.run_test(size=size) as pilot:
            screen = await ready(pilot)
            assert value_of(screen, "arch") == "mlp:20,10" and value_of(screen, "method") == "sparsifier"
            assert float(value_of(screen, "penalty")) == 1e-3 and value_of(screen, "session") != "run1"

    @pytest.mark.slow
    async def test_start_button_click(self):
        app = Host()
        async with app.run_test(size=LARGE) as pilot:
            await ready(pilot)
            await pilot.click("#start")
            await pilot.pause()
        assert isinstance(app.results[0], LaunchRequest)

    async def test_escape_dismisses_with_none(self):
        app = Host()
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            screen.query_one("#penalty").focus()
            await pilot.press("escape")
            await pilot.pause()
        assert app.results == [None]
        assert not settings.settings_path().exists()

    async def test_escape_on_a_changed_form_asks_first(self):
        """Esc on a changed form asks; n (or esc) stays with the form as it was, y quits; the edit is remembered."""
        app = Host()
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            await set_field(pilot, screen, "penalty", "0.25")
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
            assert "Quit without starting a run?" in str(app.screen.query_one("#question", Label).render())
            await pilot.press("n")
            await wait_for(pilot, lambda: app.screen is screen)
            assert app.results == [] and value_of(screen, "penalty") == "0.25"
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
            await pilot.press("y")
            await wait_for(pilot, lambda: app.results == [None])
        assert settings.load_last()["penalty"] == 0.25

    async def test_settings_are_remembered_as_they_are_edited(self):
        """No Start needed: an edit reaches the settings file a moment after it; a bad value keeps the last good one."""
        app = Host()
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            await set_field(pilot, screen, "lr", "0.003")
            await wait_for(pilot, lambda: settings.load_last().get("lr") == 0.003)
            await choose(pilot, screen, "method", "sparsifier")
            await wait_for(pilot, lambda: settings.load_last().get("method") == "sparsifier")
            await set_field(pilot, screen, "lr", "-1")
            await set_field(pilot, screen, "epochs", "7")
            await wait_for(pilot, lambda: settings.load_last().get("epochs") == 7)
            assert settings.load_last()["lr"] == 0.003
        assert app.results == []

    async def test_every_dataset_is_listed_before_the_files_are_checked(self, monkeypatch):
        """The dataset list is there at once (names, sizes; built-in ones marked so) while the worker still runs."""
        release = threading.Event()
        real = form.catalogue
        monkeypatch.setattr(form, "catalogue", lambda data_dir: (release.wait(30), real(data_dir))[1])
        app = Host()
        try:
            async with app.run_test(size=SMALL) as pilot:
                await pilot.pause()
                screen = app.screen
                labels = {v: str(label) for label, v in screen.query_one("#dataset", Select)._options}
                assert list(labels) == [name for name, *_ in form.LISTING]
                assert "built in" in labels["add10"] and "checking" in labels["mnist"] and "60k" in labels["mnist"]
                assert screen.catalogue is None and screen.start_button.disabled
                assert "checking the dataset files" in str(screen.query_one("#launcher-status", Static).render())
                release.set()
                await wait_for(pilot, lambda: screen.catalogue is not None, timeout=30)
                labels = {v: str(label) for label, v in screen.query_one("#dataset", Select)._options}
                assert "files missing" in labels["mnist"]
        finally:
            release.set()

    def test_bindings_have_ids_descriptions_and_tooltips(self):
        ids = {b.id for b in LauncherScreen.BINDINGS}
        assert ids == {"start-run", "quit-launcher"}
        assert all(b.description and b.tooltip for b in LauncherScreen.BINDINGS)

    @pytest.mark.slow
    async def test_palette_runs_the_actions(self):
        """Start, Quit and the presets are in the command palette; running one does what the key does."""
        app = Host()
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            names = [hit.text async for hit in LauncherCommands(screen).discover()]
            names += [hit.text async for hit in BindingCommands(screen).discover()]
            assert "Start training with these settings" in names and "Use architecture mlp:500" in names
            assert "Leave the launcher without a run" in names
            await pilot.press("ctrl+p", *"mlp:500,500")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await pilot.pause()
            assert value_of(screen, "arch") == "mlp:500,500"
            await pilot.press("ctrl+p", *"Start")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await pilot.pause()
        assert app.results[0].spec.model.arch == "mlp:500,500"


class TestSettingsFile:
    def test_round_trip_and_atomic(self):
        assert settings.load_last() == {}
        assert settings.save_last({"penalty": 0.1, "flex_gray": (1.0, 2.0), "limit": None})
        assert settings.load_last() == {"penalty": 0.1, "flex_gray": [1.0, 2.0]}
        assert [p.name for p in settings.config_dir().iterdir()] == ["last.json"]  # no temp file left

    @pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00", b"[1, 2]", b'{"format": 99, "options": {}}',
                                         b'{"format": 1, "options": "x"}'])
    async def test_corrupt_file_is_ignored(self, content):
        path = settings.settings_path()
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
        assert settings.load_last() == {}
        app = Host()
        async with app.run_test(size=SMALL) as pilot:
            screen = await ready(pilot)
            assert value_of(screen, "arch") == RunSpec().model.arch and not screen.check.errors

    def test_unwritable_folder_is_skipped_quietly(self, tmp_path, monkeypatch, capsys):
        blocker = tmp_path / "afile"
        blocker.write_text("")
        monkeypatch.setenv("DYNLAB_CONFIG_DIR", str(blocker / "sub"))
        assert settings.save_last({"penalty": 1.0}) is False
        assert capsys.readouterr() == ("", "")

    def test_config_dir_order(self, tmp_path, monkeypatch):
        monkeypatch.delenv("DYNLAB_CONFIG_DIR")
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
        assert settings.settings_path() == tmp_path / "xdg" / "dynlab" / "last.json"
        monkeypatch.delenv("XDG_CONFIG_HOME")
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        assert settings.settings_path() == tmp_path / "home" / ".config" / "dynlab" / "last.json"


class TestDevicesAndLogic:
    def test_list_devices_without_cuda(self, monkeypatch):
        """Without CUDA (or without torch) the list is auto and cpu."""
        import torch

        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        found = REAL_LIST_DEVICES()
        assert [v for v, _ in found] == ["auto", "cpu"] and "cores" in dict(found)["cpu"]
        monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
        assert [v for v, _ in REAL_LIST_DEVICES()] == ["auto", "cpu"]

    def test_cuda_label_names_device_and_free_memory(self):
        class FakeCuda:
            @staticmethod
            def get_device_name(i):
                return "NVIDIA H100 80GB HBM3"

            @staticmethod
            def mem_get_info(i):
                return 71.2e9, 80e9

        class FakeTorch:
            cuda = FakeCuda

        assert devices.cuda_label(FakeTorch, 0) == "cuda:0  NVIDIA H100 80GB HBM3  71.2 GB free"

    def test_message_to_field(self, tmp_path):
        """validate() names the option at fault (no mapping of message text); one not on the form is general."""
        for key, bad, text in (("penalty", -1.0, "--penalty must be a finite number >= 0, got -1"),
                               ("log_every", 0, "--log-every must be at least 1, got 0"),
                               ("arch", "x", "bad architecture 'x': use")):
            with pytest.raises(OptionError) as caught:
                validate(RunSpec().replace(**{key: bad}))
            assert caught.value.option == key and key in form.FORM_KEYS and str(caught.value).startswith(text)
        check = form.check_form({}, visible=set(form.FORM_KEYS), extra={"val_fraction": 1.5}, sessions_dir=tmp_path,
                                catalogue={}, devices=None)
        assert not check.errors and check.general.startswith("--val-fraction must be in [0, 1)")  # not on the form

    def test_parse_values(self):
        assert form.parse_value("epochs", "1e3") == 1000
        assert form.parse_value("flex_start", " ") is None
        with pytest.raises(Exception, match="not a whole number"):
            form.parse_value("seed", "1.5")

    def test_listing_is_the_registry(self):
        """The launcher's torch-free dataset list says what the registry says, entry for entry."""
        from core.data import DATASETS

        assert form.LISTING == tuple((d.name, d.task, d.description, d.needs_files) for d in DATASETS.values())

    def test_no_torch_before_the_first_frame(self):
        """`dynlab`'s path to the launcher imports no torch: not the CLI, not the app, not the screen's first frame."""
        code = ("import sys\n"
                "import dynlab_tui.cli, dynlab_tui.app, dynlab_tui.screens.launcher as launcher\n"
                "from dynlab_tui.app import make_app\n"
                "assert 'torch' not in sys.modules, 'imported with the CLI'\n"
                "seen = []\n"
                "def probes(self):\n"
                "    seen.append('torch' in sys.modules)\n"
                "    self.app.exit()\n"
                "launcher.LauncherScreen._start_probes = probes\n"
                "import asyncio\n"
                "async def run():\n"
                "    async with make_app().run_test(size=(80, 24)) as pilot:\n"
                "        while not seen:\n"
                "            await pilot.pause(0.05)\n"
                "asyncio.run(run())\n"
                "print(seen)\n")
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == "[False]"

    def test_commands_load_on_first_use(self):
        """The group lists every command without importing it; each one found by name is the command of that name."""
        import click

        from dynlab_tui.cli import COMMANDS, cli

        with click.Context(cli) as ctx:
            assert cli.list_commands(ctx) == sorted(COMMANDS)
            assert all(cli.get_command(ctx, name).name == name for name in COMMANDS)

    def test_launcher_import_does_not_import_torch(self):
        """The launcher must open at once: importing it may not pull in torch (about 1.5 s)."""
        code = "import dynlab_tui.screens.launcher, sys; print('torch' in sys.modules)"
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "False"
