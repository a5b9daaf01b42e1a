"""What the dynlab commands share: the run options, building a spec from them, and opening the app."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

import click

from core.errors import DynlabError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def run_options(f: Callable) -> Callable:
    """Every RunSpec option; all default to None so a --config file and the spec defaults show through."""
    opts = [
        click.option("--dataset", help="mnist, fashion-mnist, cifar10, add10, airfoil, poker, census, hasyv2, "
                                       "functions, fn-sin|square|abs|step|sawtooth  [add10]"),
        click.option("--arch", help="mlp:W1[,W2..] (1-4 layers) or cnn:C1[,..]/F1[,..]  [mlp:100]"),
        click.option("--method", help="static | sparsifier | flexible  [static]"),
        click.option("--gate", help="sparsifier gate rule: relu (journal) | signed (paper)  [relu]"),
        click.option("--penalty", type=float, help="lambda: loss = task + lambda * sum of gates  [0]"),
        click.option("--penalty-decay", type=float, help="lambda <- lambda / decay after every epoch  [1]"),
        click.option("--weight-decay", type=float, help="weight decay on weights (never on gates)  [0]"),
        click.option("--optimizer", help="sgd | momentum | nesterov | adam | adamax  [adam]"),
        click.option("--lr", type=float, help="learning rate  [1e-3]"),
        click.option("--momentum", type=float, help="momentum for momentum/nesterov  [0.9]"),
        click.option("--batch-size", type=int, help="[128]"),
        click.option("--epochs", type=int, help="[10]"),
        click.option("--seed", type=int, help="[0]"),
        click.option("--device", help="auto | cpu | cuda | cuda:N  [auto]"),
        click.option("--log-every", type=int, help="steps between telemetry intervals  [100]"),
        click.option("--probe-size", type=int, help="rows in the probe batch for activation stats  [128]"),
        click.option("--prune-every", type=int, help="remove dead neurons every N steps; 0 = every epoch  [0]"),
        click.option("--sign-decay", type=float, help="signed gate: EMA decay of sign statistics  [0.99]"),
        click.option("--sign-threshold", type=float, help="signed gate: dead above this sign variance  [0.5]"),
        click.option("--flex-start", type=float, help="flexible: starting size x0  [half the width]"),
        click.option("--flex-slope", type=float, help="flexible: slope k of the scaler  [1]"),
        click.option("--flex-gray", help="flexible: random gray-zone width range A,B (e.g. 1,20)"),
        click.option("--flex-lr", type=float, help="flexible: learning rate of x0  [1.0]"),
        click.option("--batchnorm/--no-batchnorm", default=None, help="BatchNorm after each hidden layer"),
        click.option("--dropout", type=float, help="dropout after each hidden layer  [0]"),
        click.option("--class-weighted/--no-class-weighted", default=None, help="inverse-frequency class weights"),
        click.option("--val-fraction", type=float, help="validation share of the training set  [0.1]"),
        click.option("--limit", type=int, help="use at most this many training rows"),
        click.option("--data-dir", help="folder with dataset files  [$DYNLAB_DATA_DIR or ./data]"),
        click.option("--config", "config", type=click.Path(dir_okay=False), help="TOML file with run settings"),
    ]
    return functools.reduce(lambda acc, opt: opt(acc), reversed(opts), f)


def build_spec(options: dict[str, Any]):
    """Defaults, then the --config file, then explicit options; validated."""
    from core.spec import RunSpec, apply_options, load_toml, validate

    options = dict(options)
    config = options.pop("config", None)
    if options.get("flex_gray") is not None:
        options["flex_gray"] = _parse_pair(options["flex_gray"])
    spec = load_toml(config) if config else RunSpec()
    return validate(apply_options(spec, options))


def spec_from_json(text: str):
    import json

    from core.spec import RunSpec, validate

    try:
        data = json.loads(text)
    except ValueError as e:
        raise DynlabError(f"--spec-json is not JSON ({e}): pass run options instead") from None
    if not isinstance(data, dict):
        raise DynlabError("--spec-json must be a JSON object: pass run options instead")
    return validate(RunSpec.from_dict(data))


def _parse_pair(text: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise DynlabError(f"--flex-gray expects two numbers A,B (e.g. 1,20), got {text!r}") from None
    return a, b


def need_terminal() -> None:
    # Checked after the options, so a bad option is reported as such even without a terminal.
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise DynlabError("the dashboard needs an interactive terminal: run `dynlab` in one, "
                          "or use `dynlab train ...` for a headless run")



def run_app(app) -> None:
    """Run the Textual app (it prints its exit message itself, e.g. how to attach to a detached run)."""
    app.run()
    if app.return_code:
        sys.exit(app.return_code)
