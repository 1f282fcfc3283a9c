"""Shared helpers of the unit tests: seeds, small schedules, and the CI rule for optional packages.

In CI (the environment variable CI is set) a missing package or dataset that the dev environment promises
is a failure, never a silent skip; on a student's machine it is a skip with a reason.
"""
from __future__ import annotations

import importlib
import os

import pytest
import torch

from course_utils.schedules import NoiseSchedule


def in_ci() -> bool:
    """True when running under CI (the CI environment variable is set and not '0'/'false')."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_module(name: str, why: str):
    """Import ``name``; when it is missing, fail under CI and skip (with the reason) elsewhere."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        message = f"{name} is not installed ({why}): {err}"
        if in_ci():
            pytest.fail(message + "; CI installs the dev extra, so it must be present")
        pytest.skip(message)


def pyproject(path=None) -> dict:
    """The project's pyproject.toml (or ``path``), parsed: tomllib from Python 3.11, its PyPI twin tomli before
    (a dev dependency there; README promises 3.10)."""
    try:
        import tomllib  # novm (3.11; tomli below)
    except ModuleNotFoundError:
        import tomli as tomllib
    from pathlib import Path
    return tomllib.loads((path or Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))


def skip_or_fail(message: str):
    """A missing resource: fail under CI, skip elsewhere."""
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def pytest_configure(config):
    """Under pytest-xdist (`make test` runs two workers), share the cores between the workers.

    Each worker and every kernel or subprocess it starts gets cores // workers threads, unless OMP_NUM_THREADS
    is set already: two workers of two threads each on a 2-core machine would fight over the cores.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(1, cores // workers)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.hookimpl(tryfirst=True, optionalhook=True)   # optional: `pytest -p no:xdist` still runs
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, except that each notebook of the browser test is a work unit of its own.

    One file per worker keeps a notebook's nbval cells in order on one worker and runs a module's fixtures once;
    the browser test, a third of the suite's time in one file, would keep one worker busy while the other ran
    out of work. Any other --dist, or an xdist without the scope hook, keeps xdist's own scheduler.
    """
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    if not hasattr(LoadFileScheduling, "_split_scope"):
        return None

    class BrowserNotebooksApart(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith("tests/test_browser.py::test_notebook_in_jupyterlab["):
                return nodeid
            return super()._split_scope(nodeid)

    return BrowserNotebooksApart(config, log)


@pytest.fixture(scope="session")
def require():
    """The function ``require_module(name, why)`` as a fixture (test files need not import conftest)."""
    return require_module


@pytest.fixture(scope="session")
def missing():
    """The function ``skip_or_fail(message)`` as a fixture."""
    return skip_or_fail


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same global RNG state (tests must not depend on their order)."""
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def linear_schedule() -> NoiseSchedule:
    """Ho et al.'s schedule, T = 1000."""
    return NoiseSchedule.linear()


@pytest.fixture(scope="session")
def cosine_schedule() -> NoiseSchedule:
    """Nichol and Dhariwal's schedule, T = 1000."""
    return NoiseSchedule.cosine()


@pytest.fixture(scope="session")
def small_class(tmp_path_factory):
    """A class of eight real submissions with known mistakes, graded once per session by the CLI
    (tests/grading_small_class.py): the shards, the report and its browser test share it."""
    import grading_small_class
    return grading_small_class.graded_class(tmp_path_factory.mktemp("small-class"))
