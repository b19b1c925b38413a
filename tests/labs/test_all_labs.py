"""Promises every lab keeps: fixed per-student numbers, solutions that pass the kit and the
grader, student code whose warnings and stderr never cost points, the device asked for."""

import functools
import hashlib
import importlib
import json
import sys
import warnings

import jupytext
import matplotlib
import pytest
import torch

from autograder.labs import load
from autograder.pipeline import notebooks
from course.device import DEVICE_ENV, grading_device

from helpers import REPO, run_cell, run_test_cell

matplotlib.use("Agg")
LABS = notebooks.labs()

# Written down once, by hand from a run, so that a change to any draw (grids, digest, acceptance)
# shows up here: students' numbers must never move under them.
GOLDEN = {
    ("lab1", "ada"): {"A": 0.8, "B": -1.3, "target": 9.0, "lr": 0.01, "rates": [0.26, 0.44, 0.25, 0.14]},
    ("lab1", "zoë"): {"A": 0.6, "B": 1.3, "target": 8.0, "lr": 0.02, "rates": [0.22, 0.25, 0.75, 0.27]},
    ("lab2", "ada"): {"x": -3.0, "w": -8.0, "b": -4.0, "x4": 5.4, "y4": -1.7, "w4": 0.12},
    ("lab2", "s-17"): {"x": 5.0, "w": -6.0, "b": -8.0, "x4": 3.9, "y4": 1.3, "w4": 0.71},
    ("lab3", "ada"): {"a": [12.0, -12.0, 8.0, -9.0], "k": 13.0, "expressions": [
        "(x + 2).sum()", "(x - y).sum()", "(x * y).sum()", "x.sigmoid().sum()", "x.relu().sum()"]},
    ("lab3", "s-17"): {"a": [-6.0, 10.0, 5.0, 3.0], "k": 19.0, "expressions": [
        "(x + 2).sum()", "(x - y).sum()", "(x * x).sum()", "(x * y).sum()", "x.sigmoid().sum()"]},
    ("lab4", "ada"): {"x1": 1.51, "w1": 0.793, "w2": -0.495, "y": 0.0, "gx": 0.66, "gy": 2.1, "gz": 1.45},
    ("lab4", "zoë"): {"x1": 6.11, "w1": 0.465, "w2": 0.572, "y": 1.0, "gx": 0.97, "gy": 1.15, "gz": 0.75},
    ("lab5", "ada"): {"w": -0.5, "b": 0.0, "x1": 3.0, "y1": 4.0, "x2": 2.0, "y2": 0.0, "lr": 0.1,
                      "logits": [1.5, 0.7, 1.3], "target": 1},
    ("lab5", "s-17"): {"w": 0.5, "b": 1.0, "x1": -1.0, "y1": -1.0, "x2": 2.0, "y2": 0.0, "lr": 0.1,
                       "logits": [0.6, 0.7, 2.0], "target": 1},
    ("lab6", "ada"): {"a": 4.01, "b": -3.12, "c": 3.17},
    ("lab6", "s-17"): {"a": -2.18, "b": 4.28, "c": 4.85},
}


# A digest of the numbers of student0 … student199: any change to a grid, a draw or an acceptance
# rule moves some student's numbers and changes it.
CLASS_DIGESTS = {"lab1": "0f577b7a462c8855", "lab2": "175056adcc5c6420", "lab3": "5034eb7bacd998e8",
                 "lab4": "bf51a8bb5a02405d", "lab5": "865208e40e3ec576", "lab6": "2a15ef6cb61b0a2d"}


@pytest.mark.parametrize("lab, student", sorted(GOLDEN))
def test_golden_student_numbers(lab, student):
    assert importlib.import_module(f"course.{lab}").student_numbers(student) == GOLDEN[lab, student]


@pytest.mark.parametrize("lab", LABS)
def test_no_students_numbers_move(lab):
    kit = importlib.import_module(f"course.{lab}")
    if not hasattr(kit, "student_numbers"):  # a lab whose every answer is a function: nobody has numbers
        assert "my_numbers" not in solution_cells(lab) and lab not in CLASS_DIGESTS
        return
    assert lab in CLASS_DIGESTS, "a new lab: record its class digest here once its numbers are final"
    numbers = [kit.student_numbers(f"student{i}") for i in range(200)]
    assert hashlib.sha256(json.dumps(numbers).encode()).hexdigest()[:16] == CLASS_DIGESTS[lab]


@functools.cache
def solution_cells(lab: str) -> dict[str, str]:
    """{grade id: code} of the setup and your-numbers cells, then every code solution cell, of the source notebook."""
    nb = jupytext.read(REPO / "source" / lab / f"{lab}.py")
    meta = lambda cell: cell.metadata.get("nbgrader", {})  # noqa: E731
    return {meta(c)["grade_id"]: c.source for c in nb.cells if c.cell_type == "code"
            and (meta(c).get("grade_id") in ("setup", "my_numbers") or meta(c).get("solution"))}


def solved(lab: str) -> dict:
    """The namespace of a notebook whose solution cells ran as notebook cells (plots are not shown)."""
    namespace = {"__name__": "__main__"}
    for grade_id, source in solution_cells(lab).items():
        run_cell(source, namespace, f"{lab} {grade_id}")
    return namespace


def noisy(fn):
    """The same function, but it warns and writes to stderr first, as careless student code does
    (for a `torch.autograd.Function`, a subclass whose forward does)."""
    if isinstance(fn, type):
        return type(fn.__name__, (fn,), {"forward": staticmethod(noisy(fn.forward))})
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        warnings.warn("a harmless warning from student code", UserWarning, stacklevel=2)
        print("a debug line on stderr", file=sys.stderr)
        return fn(*args, **kwargs)
    return wrapper


@pytest.mark.parametrize("lab", LABS)
def test_every_solution_passes_the_kit_and_the_grader(lab, student):
    namespace = solved(lab)
    for grade_id in load(lab).checks:
        assert run_test_cell(lab, grade_id, namespace, answers=solution_cells(lab)) == (None, []), grade_id


@pytest.mark.parametrize("lab", LABS)
def test_warnings_and_stderr_from_student_functions_cost_nothing(lab, student, capfd):
    """nbgrader scores any stderr in a test cell 0: every call of student code is shielded."""
    namespace = solved(lab)
    grader = load(lab)
    checked = [g for g, c in grader.checks.items() if c.kind == "function"]
    assert checked or not grader.kit.functions, lab
    for grade_id in checked:
        takes = grader.kit.functions[grader.checks[grade_id].name].takes
        capfd.readouterr()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning escaping the shield would fail the cell
            result = run_test_cell(lab, grade_id, {**namespace, **{n: noisy(namespace[n]) for n in takes}},
                                   answers=solution_cells(lab))
        out, err = capfd.readouterr()
        assert result == (None, []), grade_id
        assert err == "", (grade_id, err)
        assert "does not cost points" in out and "a debug line on stderr" in out, grade_id


def test_the_device_asked_for_is_the_device_used(monkeypatch):
    from course import lab4b as lab4

    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert grading_device() == torch.device("cpu")
    assert {t.device.type for t in lab4.backward_inputs(3, 4, 1).values()} == {"cpu"}
    monkeypatch.setenv(DEVICE_ENV, "cuda")
    if torch.cuda.is_available():
        assert {t.device.type for t in lab4.backward_inputs(3, 4, 1).values()} == {"cuda"}
    else:
        with pytest.raises(RuntimeError, match="AUTOGRAD_LABS_DEVICE='cuda' but torch sees no CUDA device"):
            grading_device()
    monkeypatch.delenv(DEVICE_ENV)
    assert grading_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


# The graphs students work forward by hand, in course order: (lab, the check of its forward values).
HAND_GRAPHS = [("lab2", "t4_forward"), ("lab4", "t1_forward"), ("lab4", "t2_forward")]


def test_graphs_by_hand_grow_in_course_order_and_fan_out_comes_after_a_chain():
    """The first graph worked by hand is the smallest (three nodes, one path: Lab 2's squared
    error); the graph with named intermediates and the input that reaches the output by two paths
    come after it (Lab 4), then the network. Each is the first of its kind where it stands."""
    assert [lab for lab, _ in HAND_GRAPHS] == sorted(lab for lab, _ in HAND_GRAPHS)  # labs in course order
    sizes = [len(load(lab).checks[grade_id].name.split()) for lab, grade_id in HAND_GRAPHS]
    assert sizes == sorted(sizes) and sizes[0] == 3, sizes
    fan_out = [lab for lab in LABS if "dg_dx" in " ".join(check.name for check in load(lab).checks.values())]
    assert fan_out == ["lab4"]
    assert "fan" not in " ".join(cell.source for cell in notebooks.instructor_notebook("lab2").cells).lower()
