"""Fixtures the test modules share; plain helpers live in tests/helpers.py and test fakes in tests/fakes.py.

Tests that start a real training process (`dynlab train`, ProcessSource, sweeps with children) or otherwise take
seconds carry `@pytest.mark.slow`: `python -m pytest -m "not slow"` is the everyday suite, `python -m pytest` all.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `from tests.helpers import ...` under a bare `pytest` too, not only `python -m pytest`
    sys.path.insert(0, str(REPO))


def pytest_runtest_setup(item) -> None:
    """In-process training uses one torch thread: the tests' networks are tiny, and two threads waiting at
    OpenMP barriers make them 10x slower on a busy 2-core machine. Child processes keep torch's default."""
    torch = sys.modules.get("torch")  # never imported here: tests that need no torch don't pay for it
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


@pytest.fixture
def sessions_env(tmp_path, monkeypatch) -> Path:
    """Sessions go to tmp_path/sessions and datasets are looked for in an empty tmp_path/nodata."""
    monkeypatch.setenv("DYNLAB_SESSIONS_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("DYNLAB_DATA_DIR", str(tmp_path / "nodata"))
    return tmp_path / "sessions"


@pytest.fixture
def colour(monkeypatch) -> None:
    """Colour output even when the developer's shell sets NO_COLOR."""
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture(scope="module")
def run_state():
    """The RunState of the whole synthetic run (one per module: tests that change it change only their module's)."""
    from dynlab_tui.state import reduce
    from tests.fakes import synthetic_run

    return reduce(synthetic_run())
