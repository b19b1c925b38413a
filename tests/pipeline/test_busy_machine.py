"""A busy machine costs time, never points: the example class graded while other processes keep
every core busy (four per core) gets exactly the scores of a quiet run (each example's `expected`,
which `test_pipeline.py` checks on a quiet machine), with the warm service and without it (each
unit a new interpreter, where `import matplotlib` alone once took over the 10 s cell limit).

These tests load the whole machine, so `make test` runs them alone, after the others."""

import os
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest

from autograder.pipeline import examples, gradebooks, notebooks, submission

from helpers import make_course_root

pytestmark = [pytest.mark.slow, pytest.mark.overload]
BUSY_PER_CORE = 4


@contextmanager
def every_core_busy(per_core: int = BUSY_PER_CORE):
    """`per_core` endless loops per core, at the grader's own priority, for as long as the block runs."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(per_core * (os.cpu_count() or 1))]
    try:
        time.sleep(2)
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def python_autograder(root, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "--root", str(root), *args], capture_output=True,
                          text=True, timeout=1800, check=True)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """Every lab released (before the load), with every example handed in."""
    root = make_course_root(tmp_path_factory.mktemp("busy"))
    python_autograder(root, "release")
    python_autograder(root, "examples")
    return root


def expected_scores(labs: list[str], students: set[str] | None = None) -> dict:
    return {(lab, student): example["expected"] for lab in labs for student, example in examples.load(lab).items()
            if students is None or student in students}


def graded_scores(root, wanted: dict) -> dict:
    tables = {lab: gradebooks.cell_scores(root, lab) for lab in {lab for lab, _ in wanted}}
    return {(lab, student): {name: tables[lab].get(student, {}).get(name) for name in expected}
            for (lab, student), expected in wanted.items()}


def test_the_example_class_graded_on_a_busy_machine_gets_the_quiet_runs_scores(course):
    labs = notebooks.labs(course)
    start = time.monotonic()
    with every_core_busy():
        out = python_autograder(course, "grade").stdout
    seconds = time.monotonic() - start
    print(f"graded the example class with {BUSY_PER_CORE} busy loops per core in {seconds:.0f} s")
    wanted = expected_scores(labs)
    assert graded_scores(course, wanted) == wanted
    assert "NOT GRADED" not in out and submission.OUT_OF_TIME not in out, out[-3000:]


# The door as it was found: Lab 4, two units at a time, each a new interpreter, on a machine so busy
# that the imports of the first cell take longer than a student's cell may run. Where it was found,
# they took over the 10 s limit; here four busy loops per core stretch them from about 1 s to 3 to
# 4 s, so this course gives a student's cell 2 s (every solution cell takes under 0.5 s).
COLD = {"ada", "grace", "sigmoid_slip"}
CELL_SECONDS = 2


def test_lab4_graded_without_the_warm_service_on_a_busy_machine_gets_the_quiet_runs_scores(course):
    with open(course / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.Execute.timeout = {CELL_SECONDS}\n")
    with every_core_busy():
        out = python_autograder(course, "grade", "--lab", "lab4", "--stock", "--jobs", "2",
                                *[arg for student in sorted(COLD) for arg in ("--student", student)]).stdout
    wanted = expected_scores(["lab4"], COLD)
    assert graded_scores(course, wanted) == wanted
    assert f"graded {len(COLD)} of {len(COLD)} submission(s)" in out, out[-3000:]

