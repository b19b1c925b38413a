"""The fixtures every test can ask for (the device to test on, a student at work) and the order in
which the long files run. Shared functions are in helpers.py."""

import os

import pytest

# One seed for the formula checks' hidden draws in a whole run, workers included (they inherit it).
os.environ.setdefault("AGL_SEED", os.urandom(8).hex())

from course.identity import STUDENT_ENV  # noqa: E402
from helpers import DEVICES  # noqa: E402


@pytest.fixture(params=DEVICES)
def device(request, monkeypatch):
    """Run the test once per device the grader could use (CUDA only where present)."""
    monkeypatch.setenv("AUTOGRAD_LABS_DEVICE", request.param)
    return request.param


@pytest.fixture
def student(monkeypatch):
    """A notebook of the student 'ada', while she works (not autograding)."""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv(STUDENT_ENV, "ada")
    return "ada"


# The files that take minutes go first, longest first (`make test PYTEST_ARGS=--durations=40`):
# pytest-xdist (`--dist loadfile`) hands each worker one file at a time in this order, so the
# two workers finish together, not one waiting on the other's last long file.
LONGEST_FIRST = [f"tests/pipeline/test_{name}.py" for name in
                 ("faults", "exchange", "equivalence", "sandbox", "pipeline", "postgres", "cluster", "bad_submissions",
                  "student_bundle")]


def pytest_report_header(config):
    return f"formula draws: AGL_SEED={os.environ['AGL_SEED']} (set it to replay this run's draws)"


def pytest_addoption(parser):
    parser.addoption("--reverse-in-files", action="store_true",
                     help="run each file's tests last to first: no test may need the one before it to have run")


def pytest_collection_modifyitems(config, items):
    rank = {path: place for place, path in enumerate(LONGEST_FIRST)}
    position = {id(item): index for index, item in enumerate(items)}
    backwards = -1 if config.getoption("--reverse-in-files") else 1
    items.sort(key=lambda item: (rank.get(item.nodeid.split("::")[0], len(rank)), item.nodeid.split("::")[0],
                                 backwards * position[id(item)]))
