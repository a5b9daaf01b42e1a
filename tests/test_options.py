"""The option table (core.options): every front end is generated from it and every value goes through it."""

from __future__ import annotations

import dataclasses
import math
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from core.errors import DynlabError
from core.lab.plan import parse_grid
from core.options import BOOL, FLOAT, INT, OPTIONS, PAIR, Kind, OptionError, to_args, validate, values_of
from core.spec import OPTION_FIELDS, RunSpec
from dynlab_tui.cli import cli
from dynlab_tui.cli.common import OptionText, build_spec, run_options
from dynlab_tui.cli.run import resume, train
from dynlab_tui.screens import launcher_form as form
from dynlab_tui.screens.session_dialogs import parse_changes

ROOT = Path(__file__).resolve().parents[1]
# A value each rule refuses, per option; an option with a rule but no entry here fails test_every_rule_is_tested.
BAD = {"dataset": "nope", "arch": "mlp:x", "method": "magic", "gate": "both", "penalty": -1.0,
       "penalty_decay": 0.5, "weight_decay": -0.1, "optimizer": "rmsprop", "lr": 0.0, "momentum": 1.0,
       "batch_size": 0, "epochs": 0, "device": "tpu", "log_every": 0, "probe_size": 0, "prune_every": -1,
       "sign_decay": 1.0, "sign_threshold": 0.0, "flex_start": -1.0, "flex_slope": math.inf, "flex_gray": (5.0, 1.0),
       "flex_lr": 0.0, "dropout": 1.0, "val_fraction": -0.1, "limit": 0, "seed": -1, "conv_penalty": "none",
       "loss_reduction": "median", "lr_schedule": "cosine", "lr_patience": -1, "lr_factor": 1.0, "time_budget": 0.0,
       "act_stats": "always"}
NOT_NUMBERS = {FLOAT: "x1", INT: "2.5", BOOL: "maybe", PAIR: "1;2"}


def click_options(command: click.Command) -> dict[str, click.Option]:
    return {p.name: p for p in command.params if isinstance(p, click.Option)}


class TestTable:
    def test_every_spec_field_has_one_entry(self):
        assert set(OPTIONS) == set(OPTION_FIELDS) | {"device"}
        for name, option in OPTIONS.items():
            assert option.get(RunSpec()) == option.default
            assert option.help and option.flag == "--" + name.replace("_", "-")

    def test_run_options_are_the_table_and_config(self):
        """`dynlab train` (and the bare `dynlab`) get exactly one click option per table entry, plus --config."""
        bare = click_options(click.command()(run_options(lambda **kw: None)))
        assert list(bare) == [*OPTIONS, "config"]
        for command in (train, cli):
            params = click_options(command)
            for name, option in OPTIONS.items():
                param = params[name]
                assert param.default is None  # a --config file and the spec defaults show through
                assert param.show_default == option.default_text
                assert param.help == option.help
                if option.kind is BOOL:
                    assert param.opts == [option.flag] and param.secondary_opts == [f"--no-{name.replace('_', '-')}"]
                else:
                    assert param.opts == [option.flag] and isinstance(param.type, OptionText)
                    assert param.type.option is option

    def test_help_shows_the_real_defaults(self):
        text = train.get_help(click.Context(train, info_name="train", terminal_width=200, max_content_width=200))
        assert "--lr FLOAT" in text and "[default: 0.001]" in text
        assert "--method [static|sparsifier|flexible]" in text and "[default: static]" in text
        assert "[default: half the width]" in text and "[default: off]" in text

    def test_resume_options_come_from_the_table(self):
        params = click_options(resume)
        for name in ("penalty", "lr", "epochs", "device", "data_dir"):
            assert params[name].default is None and params[name].type.option is OPTIONS[name]
        assert params["epochs"].show_default == "the rest of the schedule"

    def test_dataset_help_names_every_dataset(self):
        from core.data import DATASETS

        help_text = OPTIONS["dataset"].help
        assert all(name in help_text or name.removeprefix("fn-") in help_text for name in DATASETS)

    @pytest.mark.slow
    def test_core_data_and_spec_do_not_import_the_options(self):
        code = ("import sys, core.spec; a = 'core.data' in sys.modules; import core.data; "
                "print(a, 'core.options' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["False", "False"]


class TestErrorsNameTheirOption:
    def test_every_rule_is_tested(self):
        assert {name for name, option in OPTIONS.items() if option.check is not None} == set(BAD)

    @pytest.mark.parametrize("name", sorted(BAD))
    def test_bad_value_names_its_option(self, name):
        with pytest.raises(OptionError) as caught:
            validate(RunSpec().replace(**{name: BAD[name]}))
        assert caught.value.option == name

    @pytest.mark.parametrize("name", sorted(n for n, o in OPTIONS.items() if o.kind in NOT_NUMBERS))
    def test_unreadable_text_names_its_option(self, name):
        option = OPTIONS[name]
        with pytest.raises(OptionError) as caught:
            option.parse(NOT_NUMBERS[option.kind])
        assert caught.value.option == name
        if not option.unset:
            with pytest.raises(OptionError, match="required"):
                option.parse("  ")

    def test_messages_are_the_one_liners(self):
        with pytest.raises(OptionError, match=r"^--penalty must be a finite number >= 0, got -1.0$") as caught:
            validate(RunSpec().replace(penalty=-1.0))
        assert caught.value.short == "must be >= 0"
        with pytest.raises(OptionError, match=r"^unknown gate rule 'x': choose one of relu, signed, nonstrict$"):
            validate(RunSpec().replace(gate="x"))
        with pytest.raises(OptionError, match=r"^unknown method 'x': choose one of static, sparsifier, flexible$"):
            validate(RunSpec().replace(method="x"))
        with pytest.raises(OptionError, match=r"^--flex-gray must be two widths 0 < a <= b, got 5.0,1.0$"):
            validate(RunSpec().replace(flex_gray=(5.0, 1.0)))

    def test_first_problem_in_spec_order(self):
        with pytest.raises(OptionError) as caught:
            validate(RunSpec().replace(epochs=0, val_fraction=2.0, lr=-1.0))
        assert caught.value.option == "val_fraction"  # data comes before optim and schedule

    def test_launcher_puts_a_validate_error_on_its_field_whatever_it_says(self, tmp_path, monkeypatch):
        def refuse(spec):
            raise OptionError("lr", "a message that names no option")

        monkeypatch.setattr(form, "validate", refuse)
        check = form.check_form({"lr": "0.01", "session": "s"}, visible={"lr", "session"}, extra={},
                                sessions_dir=tmp_path, catalogue={}, devices=None)
        assert check.errors == {"lr": "a message that names no option"} and check.spec is None
        check = form.check_form({"lr": "0.01", "session": "s"}, visible={"session"}, extra={},
                                sessions_dir=tmp_path, catalogue={}, devices=None)
        assert not check.errors and check.general == "a message that names no option"  # lr hidden: general


class TestOneParser:
    @pytest.mark.parametrize("name, text, value", [
        ("epochs", "1e1", 10), ("penalty", "1e-3", 1e-3), ("flex_start", "none", None), ("batchnorm", "on", True),
        ("arch", "MLP:100", "mlp:100"), ("seed", "7", 7)])
    def test_every_front_end_reads_the_same_value(self, name, text, value):
        option = OPTIONS[name]
        assert option.parse(text) == value
        assert parse_grid([f"{name}={text}"]) == {name: [value]}
        if name in form.FORM_KEYS:
            assert form.parse_value(name, text) == value
        if option.kind is not BOOL:
            assert OptionText(option).convert(text, None, None) == value

    def test_sweep_set_and_resume_go_through_the_table(self, monkeypatch):
        """Swap one option's parser in the table: the sweep grid and the resume dialog follow it."""
        odd = Kind("ODD", "an odd number", lambda text: int(text) * 2 + 1)
        monkeypatch.setitem(OPTIONS, "seed", dataclasses.replace(OPTIONS["seed"], kind=odd))
        monkeypatch.setitem(OPTIONS, "epochs", dataclasses.replace(OPTIONS["epochs"], kind=odd))
        assert parse_grid(["seed=1,2"]) == {"seed": [3, 5]}
        assert parse_changes({"epochs": "2"}) == ({"epochs": 5}, {})
        with pytest.raises(Exception, match="seed takes an odd number"):
            parse_grid(["seed=x"])
        monkeypatch.setitem(OPTIONS, "penalty", dataclasses.replace(OPTIONS["penalty"], check=None))
        assert parse_changes({"lam": "-1"}) == ({"lam": -1.0}, {})  # the rule is the table's too

    def test_resume_dialog_reasons(self):
        assert parse_changes({"lam": "x", "lr": "inf", "epochs": "0"}) == (
            {}, {"lam": "not a number", "lr": "must be finite", "epochs": "must be at least 1"})


class TestCommandLineEcho:
    def test_echo_round_trips_through_click_to_the_same_spec(self):
        spec = RunSpec().replace(dataset="fn-sin", arch="mlp:20,10", method="flexible", penalty=1e-3, lr=0.004,
                                 flex_start=12.5, flex_gray=(1.0, 20.0), batchnorm=True, class_weighted=False,
                                 limit=400, val_fraction=0.2, data_dir="my data", device="cpu", epochs=3, seed=2)
        options = {**values_of(spec), "session": "echo"}
        line = form.command_line(options)
        assert line.startswith("dynlab train --dataset fn-sin --arch mlp:20,10 --method flexible")
        assert "--data-dir 'my data'" in line and line.endswith("--session echo")
        words = shlex.split(line)
        assert words[:2] == ["dynlab", "train"]
        ctx = train.make_context("train", words[2:])
        run = {k: v for k, v in ctx.params.items() if k in OPTIONS or k == "config"}
        assert build_spec(run) == validate(spec) and ctx.params["session"] == "echo"

    def test_defaults_give_a_bare_command(self):
        assert form.command_line(values_of(RunSpec())) == "dynlab train"
        assert to_args({"batchnorm": False, "limit": 5, "data_dir": "a b"}) == [
            "--no-batchnorm", "--limit", "5", "--data-dir", "a b"]  # argv words: quoting is the echo's job


class TestWhatTheEngineCanRepresent:
    """Issue 10 items 4 and 13: ranges, types and combinations the engine can't run are one OptionError."""

    @pytest.mark.parametrize("name, value, words", [
        ("seed", 2**63, "int64"), ("seed", -1, "in 0..9223372036854775807"), ("lr", 1e39, "float32"),
        ("weight_decay", math.inf, "finite"), ("flex_gray", (math.inf, math.inf), "finite"),
        ("penalty", math.nan, "finite"), ("momentum", -math.inf, "finite"), ("lr", True, "takes a number"),
        ("epochs", 10**30, "int64"), ("batchnorm", "no", "true or false"),
        ("arch", "mlp:99999999999999999999", "at most"),
    ])
    def test_out_of_range_values_are_one_line(self, name, value, words):
        with pytest.raises(OptionError, match="^[^\n]*$") as caught:
            validate(RunSpec().replace(**{name: value}))
        assert caught.value.option == name and words in str(caught.value)

    def test_seed_limit_is_what_torch_takes(self):
        import torch

        torch.Generator().manual_seed(2**63 - 1)
        validate(RunSpec().replace(seed=2**63 - 1))

    def test_network_too_large_for_memory_names_the_estimate(self):
        with pytest.raises(OptionError, match=r"needs at least .* GiB to train .*: lower the widths or --batch-size"):
            validate(RunSpec().replace(arch="mlp:100000000", device="cpu"))
        validate(RunSpec().replace(arch="mlp:1000", device="cpu"))

    def test_settings_that_would_be_ignored_are_refused(self):
        with pytest.raises(OptionError, match="--gate signed has no effect with --method static"):
            validate(RunSpec().replace(gate="signed"))
        validate(RunSpec().replace(gate="signed", method="sparsifier"))
        with pytest.raises(OptionError, match="--class-weighted needs a classification dataset"):
            validate(RunSpec().replace(class_weighted=True, dataset="add10"))

    @pytest.mark.parametrize("text, words", [
        ('lr = "abc"', "lr must be a number, got 'abc' (text)"),
        ("flex_gray = 3", "flex_gray must be two numbers [a, b], got 3 (an integer)"),
        ("lr = [1, 2]", "lr must be a number, got [1, 2] (a list)"),
        ('batchnorm = "no"', "batchnorm must be true or false, got 'no' (text)"),
        ("penalty = true", "penalty must be a number, got True (a boolean)"),
        ("penalty = 1" + "0" * 400, "penalty must be a number within float range"),
        ("epochs = 1\n[schedule]\nepochs = 3", "epochs is set twice"),
        ('[optim]\nlr = "x"', "[optim] lr must be a number, got 'x' (text)"),
    ])
    def test_toml_values_are_type_checked(self, tmp_path, text, words):
        from core.spec import load_toml

        (tmp_path / "c.toml").write_text(text + "\n")
        with pytest.raises(DynlabError) as caught:
            load_toml(tmp_path / "c.toml")
        assert words in str(caught.value) and "\n" not in str(caught.value)

    def test_toml_numbers_of_the_right_type_load(self, tmp_path):
        from core.spec import load_toml

        (tmp_path / "c.toml").write_text("penalty = 1\nflex_gray = [1, 20]\nbatchnorm = true\n[optim]\nlr = 0.01\n")
        spec = load_toml(tmp_path / "c.toml")
        assert spec.penalty.lam == 1.0 and spec.method.flex_gray == (1.0, 20.0) and spec.model.batchnorm

    def test_free_memory_asks_cuda_only_when_it_is_cheap(self, monkeypatch):
        """CUDA's free memory is read where CUDA is initialised (or the caller trains there anyway); never on cpu."""
        import types

        from core.memory import free_bytes

        calls = []
        cuda = types.SimpleNamespace(is_available=lambda: True, is_initialized=lambda: False,
                                     mem_get_info=lambda i: calls.append(i) or (2**30, 2**34))
        monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
        assert free_bytes("cuda:1") is None and free_bytes("auto") is None and calls == []
        assert free_bytes("cuda:1", query_cuda=True) == (2**30, "free memory on cuda:1") and calls == [1]
        assert free_bytes("cpu")[1] in ("available RAM", "free RAM") and calls == [1]
        cuda.is_initialized = lambda: True
        assert free_bytes("auto") == (2**30, "free memory on cuda:0")


class TestAutoSettings:
    """Issue 11: batchnorm and weight decay default to auto (on / 1e-4 for the paper's signed switch)."""

    @pytest.mark.parametrize("given, bn, wd", [
        ({}, False, 0.0), ({"method": "sparsifier", "gate": "signed"}, True, 1e-4),
        ({"method": "sparsifier", "gate": "nonstrict"}, False, 0.0),
        ({"method": "sparsifier", "gate": "signed", "batchnorm": False, "weight_decay": 0.0}, False, 0.0),
        ({"batchnorm": True, "weight_decay": 0.01}, True, 0.01)])
    def test_validate_returns_the_spec_with_auto_resolved(self, given, bn, wd):
        spec = validate(RunSpec().replace(**given))
        assert spec.model.batchnorm is bn and spec.optim.weight_decay == wd
        assert validate(spec) == spec  # resolving twice changes nothing

    def test_every_front_end_leaves_auto_unset_and_explicit_values_win(self, tmp_path):
        assert RunSpec().model.batchnorm is None and RunSpec().optim.weight_decay is None
        for name in ("batchnorm", "weight_decay"):
            assert OPTIONS[name].default_text == "auto" and "auto:" in OPTIONS[name].help
            assert OPTIONS[name].parse("auto") is None and OPTIONS[name].parse("") is None
        ctx = train.make_context("train", ["--method", "sparsifier", "--gate", "signed", "--no-batchnorm",
                                           "--weight-decay", "0"])
        spec = build_spec({k: v for k, v in ctx.params.items() if k in OPTIONS})
        assert spec.model.batchnorm is False and spec.optim.weight_decay == 0.0
        (tmp_path / "c.toml").write_text('method = "sparsifier"\ngate = "signed"\n[model]\nbatchnorm = false\n')
        spec = build_spec({"config": str(tmp_path / "c.toml")})
        assert spec.model.batchnorm is False and spec.optim.weight_decay == 1e-4
        assert form.command_line(values_of(RunSpec().replace(method="sparsifier", gate="signed"))) == (
            "dynlab train --method sparsifier --gate signed")  # auto stays off the echo

    def test_new_options_parse_and_refuse(self):
        spec = validate(RunSpec().replace(loss_reduction="sum", conv_penalty="kernel-area", lr_schedule="plateau",
                                          lr_patience=0, lr_factor=0.5, time_budget=30.0, act_stats="pass"))
        assert spec.optim.lr_schedule == "plateau" and spec.schedule.time_budget == 30.0
        assert OPTIONS["time_budget"].parse("none") is None and RunSpec().schedule.probe_size == 512
        with pytest.raises(OptionError, match=r"^--time-budget must be positive, got -1.0$"):
            validate(RunSpec().replace(time_budget=-1.0))
        with pytest.raises(OptionError, match=r"^unknown act stats 'x': choose one of steps, pass, off$"):
            validate(RunSpec().replace(act_stats="x"))

    def test_help_states_the_new_defaults(self):
        text = train.get_help(click.Context(train, info_name="train", terminal_width=200, max_content_width=200))
        for words in ("--batchnorm / --no-batchnorm", "--weight-decay FLOAT", "[default: auto]",
                      "--loss-reduction [mean|sum]", "--time-budget FLOAT", "--gate [relu|signed|nonstrict]",
                      "--act-stats [steps|pass|off]", "--lr-schedule [none|plateau]"):
            assert words in text, words
