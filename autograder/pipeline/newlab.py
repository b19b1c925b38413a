"""`python -m autograder new-lab NAME`: the files of a new lab, as a small lab that works.

The stub is one linear unit, y = w·x + b with loss = (y − t)², and two graded cells that show
the two commonest kinds of check: a gradient worked out by hand on the student's own numbers
(`values`) and the same gradient by autograd (`function`, with hidden probes written once, in
the grader's declaration). `make release` then writes the generated files. Its test file has
one test that fails until the lab is written, and says what to write.
"""

import re
from pathlib import Path

from .notebooks import ROOT

NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def title(name: str) -> str:
    """How students see a lab's name: lab4 is "Lab 4", lab4b "Lab 4b"."""
    number = re.fullmatch(r"lab(\d+[a-z]?)", name)
    return f"Lab {number.group(1)}" if number else name


def files(name: str, root: Path) -> dict[Path, str]:
    """{path: text} of every hand-written file of the lab `name` (course files under `root`,
    code under the repository this package is in)."""
    fill = {"name": name, "title": title(name)}
    return {root / "source" / name / f"{name}.py": SOURCE.format(**fill),
            ROOT / "course" / f"{name}.py": KIT.format(**fill),
            ROOT / "autograder" / "labs" / f"{name}.py": GRADER.format(**fill),
            root / "examples" / f"{name}.toml": EXAMPLES.format(**fill),
            ROOT / "tests" / "labs" / f"test_{name}.py": TEST.format(**fill)}


def write(name: str, root: Path) -> list[Path]:
    """Write the lab's files; refuse a bad name or a lab that has any of them already."""
    if not NAME.match(name):
        raise ValueError(f"{name!r}: a lab's name is lower-case letters, digits and _, starting with a letter")
    planned = files(name, root)
    taken = [path for path in planned if path.exists()]
    if taken:
        raise FileExistsError(f"{name} exists already: {', '.join(str(p) for p in taken)}")
    for path, text in planned.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(planned)


SOURCE = '''# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # {title} — TODO: the lab's title
#
# TODO: what this lab teaches and why it matters. (Written by `python -m autograder new-lab`: a
# working stub with two graded cells on one linear unit; replace them with the lab's own tasks.)
#
# **How answers are graded.** Hand-computed values need at least 4 significant digits. Every
# grade is checked against what `torch.autograd` does when your notebook is graded.

# %% nbgrader={{"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}}
import torch

from course.{name} import check

# %% [markdown]
# ## Your numbers
# The numbers below are made from your student id; your grade is worked out on them.

# %% nbgrader={{"grade": false, "grade_id": "my_numbers", "locked": true, "schema_version": 3, "solution": false, "task": false}}
mine = check.my_numbers()

# %% [markdown]
# ## Task 1 — One gradient by hand
#
# A linear unit y = w·x + b is fitted to a target t with loss = (y − t)². The loss depends on w
# only through y, so by the chain rule dloss/dw = dloss/dy · dy/dw = 2(y − t) · x. With w = 0.5,
# x = 2, b = 0.1 and t = 1: y = 1.1, and dloss/dw = 2 · 0.1 · 2 = 0.4. Work out `dloss_dw` for
# your w, x, b and t.

# %% nbgrader={{"grade": false, "grade_id": "t1_by_hand_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}}
# dloss_dw for your numbers
### BEGIN SOLUTION
dloss_dw = 2 * (mine["w"] * mine["x"] + mine["b"] - mine["t"]) * mine["x"]
### END SOLUTION

# %% nbgrader={{"grade": true, "grade_id": "t1_by_hand", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}}
check.values(globals(), "dloss_dw")

# %% [markdown]
# ## Task 2 — The same gradient by autograd
#
# Write `gradient(w, x, b, t)`: make w a tensor that requires gradients, build the loss, call
# `backward()` and return `w.grad` as a number. Predict its value for your numbers first: it
# is your answer to Task 1.

# %% nbgrader={{"grade": false, "grade_id": "t2_by_autograd_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}}
def gradient(w, x, b, t):
    ### BEGIN SOLUTION
    w = torch.tensor(float(w), requires_grad=True)
    loss = (w * x + b - t) ** 2
    loss.backward()
    return w.grad.item()
    ### END SOLUTION


# %% nbgrader={{"grade": true, "grade_id": "t2_by_autograd", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}}
check.function(globals(), "gradient")
### BEGIN HIDDEN TESTS
check.function(globals(), "gradient", hidden=GRADER_PROBES)
### END HIDDEN TESTS
'''

KIT = '''"""{title} in the student kit: your numbers, the hand-computed answer, how your function is run.

TODO: what the lab's numbers are, and what is worked out here (with autograd) versus left to
the grader's data (course/expected/{name}.json).
"""

import torch

from .answers import Expected, as_float
from .checks import Function, LabKit
from .device import grading_device
from .identity import draw_numbers, pick_all

F64 = torch.float64
# Per-student numbers: 100⁴ = 1e8 combinations, so two students of a class of 1,000 share them
# with a chance under 1 % (tests/unit/test_promises.py).
VALUES = tuple(round(0.1 * k, 1) for k in range(-50, 51) if k)  # ±0.1 … ±5.0
GRIDS = {{"w": VALUES, "x": VALUES, "b": VALUES, "t": VALUES}}


def gradient_reference(w: float, x: float, b: float, t: float) -> float:
    """dloss/dw of loss = (w·x + b − t)², by autograd."""
    wt = torch.tensor(float(w), dtype=F64, device=grading_device(), requires_grad=True)
    ((wt * x + b - t) ** 2).backward()
    return wt.grad.item()


def answers(numbers: dict) -> dict[str, Expected]:
    """Every hand-computed answer of the lab, by name, with the slips feedback can name."""
    w, x, b, t = (numbers[k] for k in ("w", "x", "b", "t"))
    residual = w * x + b - t
    uses = f"w = {{w:g}}, x = {{x:g}}, b = {{b:g}}, t = {{t:g}}"
    return {{"dloss_dw": Expected("dloss_dw", gradient_reference(w, x, b, t), "dloss/dw = 2(y − t) · x.",
                                 {{"forgot the factor 2 from the square": residual * x,
                                  "left out dy/dw = x": 2 * residual}}, uses)}}


def draw(digest: bytes) -> dict:
    return pick_all(digest, GRIDS)


def acceptable(numbers: dict) -> bool:
    """Numbers whose slips can all be told apart from the right answer."""
    return all(e.separated() for e in answers(numbers).values())


def student_numbers(student: str) -> dict:
    return draw_numbers("{name}", student, draw, acceptable)


def show_numbers(n: dict) -> list[str]:
    return [f"Task 1: w = {{n['w']:g}}, x = {{n['x']:g}}, b = {{n['b']:g}}, t = {{n['t']:g}}"]


# The numbers of the lab's worked example (Task 1's text): answers worked on them instead of the
# student's own are named as such.
WORKED_EXAMPLE = {{"w": 0.5, "x": 2.0, "b": 0.1, "t": 1.0}}


def run_gradient(fns: dict, probe: list) -> float:
    return as_float("gradient(" + ", ".join(f"{{v:g}}" for v in probe) + ")", fns["gradient"](*probe))


check = LabKit(
    "{name}", numbers=student_numbers, show_numbers=show_numbers, answers=answers, example=WORKED_EXAMPLE,
    functions={{"gradient": Function(("gradient",), run_gradient, "matches autograd at every probe.")}})
'''

GRADER = '''"""{title}: the grader's references and checks.

TODO: what is checked here and how each reference is computed (with autograd, in float64, on
the grading device, when grading runs).
"""

from course import {name} as kit

from . import Lab, Mistake

LAB = Lab(kit.check)

# ---------------------------------------------------------------- the checks, one declaration each

LAB.values("t1_by_hand", "dloss_dw")
# (w, x, b, t): residuals of either sign, x never ±1 (where leaving out dy/dw = x would not show).
LAB.function(
    "t2_by_autograd", "gradient",
    visible=[[0.5, 2.0, 0.1, 1.0]], hidden=[[-1.5, 0.4, 2.0, -0.3], [2.0, -1.2, 0.0, 0.7]],
    reference=lambda p: kit.gradient_reference(*p),
    mistakes=[Mistake("forgot the factor 2 from the square", lambda p: kit.gradient_reference(*p) / 2),
              Mistake("returned the loss instead of its gradient", lambda p: (p[0] * p[1] + p[2] - p[3]) ** 2)],
    hint="Make w a tensor with requires_grad=True, build loss = (w·x + b − t)², call loss.backward() and "
         "return w.grad.")
'''

EXAMPLES = '''# Example submissions for {title} (format: see lab4.toml).
# TODO: the realistic wrong answers this lab's feedback must name, one example each.

[ada]
about = "Right throughout."
expected = {{ t1_by_hand = 1, t2_by_autograd = 2 }}

[ada.answers]
t1_by_hand_answer = """
dloss_dw = 2 * (mine["w"] * mine["x"] + mine["b"] - mine["t"]) * mine["x"]
"""
t2_by_autograd_answer = """
def gradient(w, x, b, t):
    w = torch.tensor(float(w), requires_grad=True)
    loss = (w * x + b - t) ** 2
    loss.backward()
    return w.grad.item()
"""

[halved]
about = "Forgot the factor 2 from the square, by hand and in code."
expected = {{ t1_by_hand = 0, t2_by_autograd = 0 }}
feedback = ["forgot the factor 2 from the square"]

[halved.answers]
t1_by_hand_answer = """
dloss_dw = (mine["w"] * mine["x"] + mine["b"] - mine["t"]) * mine["x"]
"""
t2_by_autograd_answer = """
def gradient(w, x, b, t):
    w = torch.tensor(float(w), requires_grad=True)
    loss = (w * x + b - t) ** 2
    loss.backward()
    return w.grad.item() / 2
"""

[blank]
about = "Nothing answered."
expected = {{ t1_by_hand = 0, t2_by_autograd = 0 }}
'''

TEST = '''"""{title}: the references against autograd, the named mistakes far from the truth, and
what is left to write."""

import pytest

from autograder.labs import {name} as grader
from course.answers import FUNCTION_ATOL, FUNCTION_RTOL

CHECK = grader.LAB.checks["t2_by_autograd"]


@pytest.mark.parametrize("probe", CHECK.visible + CHECK.hidden)
def test_the_reference_is_the_chain_rule_and_each_mistake_is_far_from_it(probe):
    w, x, b, t = probe
    right = CHECK.reference(probe)
    assert right == pytest.approx(2 * (w * x + b - t) * x, rel=1e-12)
    for mistake in CHECK.mistakes_known:
        assert abs(mistake.gives(probe) - right) > 10 * (FUNCTION_RTOL * abs(right) + FUNCTION_ATOL), mistake.why


def test_this_lab_is_written():
    pytest.fail(
        "{name} is the stub that `python -m autograder new-lab {name}` wrote. Write its tasks in "
        "source/{name}/{name}.py, the kit's side in course/{name}.py, one declaration per graded cell in "
        "autograder/labs/{name}.py, examples in examples/{name}.toml and their tests here; run `make release`; "
        "record its class digest in tests/labs/test_all_labs.py once its numbers are final; then delete this test.")
'''
