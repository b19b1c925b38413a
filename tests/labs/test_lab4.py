"""Every reference the grader computes, checked against an independent computation.

As in micrograd's tests: the grader's numbers come from torch.autograd; here each one is
recomputed from its closed form, or from a loss written in the test whose autograd gradient
`torch.autograd.gradcheck` verifies by central differences in float64.
"""

import math
import os
import subprocess
import sys

import pytest
import torch

from autograder.labs import lab4 as grader
from course import lab4 as kit
from course.answers import FUNCTION_ATOL, FUNCTION_RTOL, HAND_ATOL, HAND_RTOL, as_float, close
from course.rules import CLOSED_FORM

from helpers import (REPO, SEEDS, assert_formula_slips_are_far_and_distinct, assert_named_slips, drawn_probes,
                     graded_formula, run_cell, run_test_cell)

# The visible probes and hidden ones as a few submissions draw them.
def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


@pytest.mark.parametrize("x, y, w", [(4.0, 1.0, 0.5), (2.0, 3.0, 0.25), (-1.5, 0.5, 2.0)])
def test_task1_reference_matches_closed_form(device, x, y, w):
    ref = kit.task1_values(x, y, w)
    s = x * w - y
    assert ref["yhat"] == pytest.approx(x * w) and ref["s"] == pytest.approx(s)
    assert ref["loss"] == pytest.approx(s * s)
    assert ref["dloss_ds"] == pytest.approx(2 * s) and ref["ds_dyhat"] == 1 and ref["dyhat_dw"] == pytest.approx(x)
    assert ref["dloss_dw"] == pytest.approx(2 * x * (x * w - y), rel=1e-12)


def test_task1_numbers_stated_by_the_lab():
    assert kit.task1_values(**kit.TASK1_NUMBERS) == {
        "yhat": 2.0, "s": 1.0, "loss": 1.0, "dloss_ds": 2.0, "ds_dyhat": 1.0, "dyhat_dw": 4.0, "dloss_dw": 8.0}


@pytest.mark.parametrize("student", ["ada", "grace", "sigmoid_slip", "zoë", "s-17"])
def test_task2_reference_matches_closed_forms_and_gradcheck(device, student):
    n = kit.student_numbers(student)
    ref = kit.task2_values(**n)
    m1 = n["x1"] * n["w1"]
    m2 = max(m1, 0) * n["w2"]
    yhat = sigmoid(m2)
    assert ref["m1"] == pytest.approx(m1) and ref["m2"] == pytest.approx(m2)
    assert ref["yhat"] == pytest.approx(yhat, rel=1e-12) and ref["loss"] == pytest.approx((yhat - n["y"]) ** 2)
    assert ref["dyhat_dm2"] == pytest.approx(yhat * (1 - yhat), rel=1e-12)
    weights = tuple(torch.tensor(n[k], dtype=torch.float64, requires_grad=True) for k in ("w1", "w2"))

    def loss(w1, w2):
        return (torch.sigmoid(torch.relu(n["x1"] * w1) * w2) - n["y"]) ** 2

    assert torch.autograd.gradcheck(loss, weights)  # central differences in float64 agree with autograd
    dw1, dw2 = torch.autograd.grad(loss(*weights), weights)
    assert ref["dloss_dw1"] == pytest.approx(dw1.item(), rel=1e-12)
    assert ref["dloss_dw2"] == pytest.approx(dw2.item(), rel=1e-12)
    assert ref["dloss_dw2"] == pytest.approx(2 * (yhat - n["y"]) * yhat * (1 - yhat) * max(m1, 0), rel=1e-12)
    assert ref["dr_dm1"] == 1.0 and ref["dm1_dw1"] == n["x1"] and ref["dm2_dr"] == n["w2"]


def test_worked_example_numbers_from_the_curriculum():
    ref = kit.task2_values(**kit.WORKED_NUMBERS)
    expected = {"yhat": 0.598688, "s": -0.401312, "loss": 0.161052, "dyhat_dm2": 0.240261,
                "dloss_dw2": -0.385678, "dloss_dw1": -0.154271}
    for name, value in expected.items():
        assert ref[name] == pytest.approx(value, abs=1e-6), name


def test_stated_sigmoid_slip_numbers():
    """The lab says: at m2 = 0.4 the slip gives 0.24 and the truth 0.2403."""
    z = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    torch.sigmoid(z).backward()
    assert kit.task2_values(**kit.WORKED_NUMBERS)["m2"] == pytest.approx(0.4)
    assert f"{z.grad.item():.4f}" == "0.2403" and 0.4 * (1 - 0.4) == pytest.approx(0.24)


def test_student_numbers_are_stable_across_processes():
    code = "from course import lab4 as kit; print(kit.student_numbers('ada'), kit.student_numbers('zoë'))"
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env=dict(os.environ, PYTHONHASHSEED=seed)).stdout for seed in ("1", "2")}
    assert len(outputs) == 1
    assert outputs.pop().strip() == f"{kit.student_numbers('ada')} {kit.student_numbers('zoë')}"


def test_student_numbers_differ_between_students_and_from_the_worked_example():
    numbers = [tuple(kit.student_numbers(f"student{i}").values()) for i in range(300)]
    assert len(set(numbers)) >= 295
    assert tuple(kit.WORKED_NUMBERS.values()) not in numbers


def test_every_slip_is_separable_for_every_student():
    for i in range(300):
        assert all(e.separated() for e in kit.task2_answers(**kit.student_numbers(f"student{i}")))


@pytest.mark.parametrize("value, expected", [
    (3, 3.0), (2.5, 2.5), (torch.tensor(1.5), 1.5), (torch.tensor([[2.0]], requires_grad=True), 2.0),
    (torch.tensor(7, dtype=torch.int64), 7.0)])
def test_as_float_coerces_numbers(value, expected):
    assert as_float("v", value) == expected


def test_as_float_coerces_numpy():
    np = pytest.importorskip("numpy")
    assert as_float("v", np.float32(0.25)) == 0.25 and as_float("v", np.array(3.0)) == 3.0


@pytest.mark.parametrize("value, message", [
    (None, "no value yet"), ("0.5", "should be a number"), (True, "should be a number"),
    (torch.ones(2), "single number"), (float("nan"), "finite"), ([1.0], "should be a number")])
def test_as_float_rejects_non_numbers_helpfully(value, message):
    with pytest.raises((AssertionError, NotImplementedError), match=message):
        as_float("v", value)


def test_hand_tolerance_accepts_four_significant_digits_and_rejects_the_seed_slip():
    right = kit.task2_values(**kit.WORKED_NUMBERS)["dyhat_dm2"]
    assert close(float(f"{right:.4g}"), right)
    assert HAND_RTOL * right + HAND_ATOL < 1e-3


def task2_slips_by_hand(x1, w1, w2, y):
    """Every Task 2 slip the feedback names, worked out here from the formulas."""
    m1 = x1 * w1
    r = max(m1, 0.0)
    m2 = r * w2
    yhat = sigmoid(m2)
    s = yhat - y
    right_sigma, wrong_sigma = yhat * (1 - yhat), m2 * (1 - m2)
    return {
        ("yhat_2", "forgot the sigmoid"): m2, ("s_2", "computed y − ŷ"): -s, ("loss_2", "forgot to square s"): s,
        ("dloss_ds_2", "forgot the factor 2"): s,
        ("dyhat_dm2", "plugged the sigmoid's input"): wrong_sigma, ("dyhat_dm2", "took σ(m2) itself"): yhat,
        ("dm2_dw2", "used w2 instead of r"): w2, ("dm2_dr", "used r instead of w2"): r,
        ("dr_dm1", "used the ReLU's output"): r, ("dm1_dw1", "used w1 instead of x1"): w1,
        ("dloss_dw2", "used m2·(1 − m2)"): 2 * s * wrong_sigma * r,
        ("dloss_dw2", "forgot the factor 2"): s * right_sigma * r,
        ("dloss_dw2", "used w2 instead of r"): 2 * s * right_sigma * w2,
        ("dloss_dw1", "used m2·(1 − m2)"): 2 * s * wrong_sigma * w2 * x1,
        ("dloss_dw1", "forgot the factor 2"): s * right_sigma * w2 * x1,
        ("dloss_dw1", "used r instead of w2"): 2 * s * right_sigma * r * x1,
        ("dloss_dw1", "stopped at w2"): 2 * s * right_sigma * r,
    }


@pytest.mark.parametrize("student", ["ada", "grace", "sigmoid_slip", "zoë", "s-17", "s-18", "s-19"])
def test_every_named_task2_slip_is_the_value_its_name_says(student):
    numbers = kit.student_numbers(student)
    answers = {e.name: e for e in kit.task2_answers(**numbers)}
    assert_named_slips(answers, task2_slips_by_hand(**numbers), ignore="worked example")
    worked = {e.name: e.value for e in kit.task2_answers(**kit.WORKED_NUMBERS)}
    for name, expected in answers.items():
        if worked[name] != expected.value:
            assert expected.slips["used the worked example's numbers instead of your own"] == worked[name]


# ---------------------------------------------------------------- the derivations graded as formulas

FORMULA_CHECKS = {grade_id: grader.LAB.checks[grade_id] for grade_id in ("t1_formula", "t2_formula")}
T2_FORWARD = """import math

def gradients(x1, w1, w2, y):
    m1 = x1 * w1
    r = max(m1, 0.0)
    m2 = r * w2
    yhat = 1 / (1 + math.exp(-m2))
    s = yhat - y
"""
# Formulas as students write them: right ones in other words, and each known slip.
T2_RIGHT = {
    "solution": T2_FORWARD + "    up = 2 * s * yhat * (1 - yhat)\n    return up * w2 * (1.0 if m1 > 0 else 0.0) * x1, up * r\n",
    "sigmoid derivative from e^-z": T2_FORWARD + (
        "    sp = math.exp(-m2) / (1 + math.exp(-m2)) ** 2\n"
        "    if m1 <= 0:\n        return 0.0, 0.0\n    return 2 * s * sp * w2 * x1, 2 * s * sp * r\n"),
    "slope from r, tuple as a list": T2_FORWARD + (
        "    d = 2 * s * yhat * (1 - yhat)\n    slope = int(r > 0)\n    return [d * w2 * slope * x1, d * r]\n"),
}
T2_SLIPS = {
    "used m2·(1 − m2)": "    up = 2 * s * m2 * (1 - m2)\n    return up * w2 * (m1 > 0) * x1, up * r\n",
    "took σ(m2) itself": "    up = 2 * s * yhat\n    return up * w2 * (m1 > 0) * x1, up * r\n",
    "forgot the factor 2": "    up = s * yhat * (1 - yhat)\n    return up * w2 * (m1 > 0) * x1, up * r\n",
    "flipped the sign": "    up = 2 * (y - yhat) * yhat * (1 - yhat)\n    return up * w2 * (m1 > 0) * x1, up * r\n",
    "let the gradient through the ReLU": "    up = 2 * s * yhat * (1 - yhat)\n    return up * w2 * x1, up * r\n",
    "slope 1 at m1 = 0": "    up = 2 * s * yhat * (1 - yhat)\n    return up * w2 * (m1 >= 0) * x1, up * r\n",
    "used the ReLU's output r": "    up = 2 * s * yhat * (1 - yhat)\n    return up * w2 * r * x1, up * r\n",
    "used r instead of w2": "    up = 2 * s * yhat * (1 - yhat)\n    return up * r * (m1 > 0) * x1, up * r\n",
    "used w2 instead of r": "    up = 2 * s * yhat * (1 - yhat)\n    return up * w2 * (m1 > 0) * x1, up * w2\n",
    "the order is": "    up = 2 * s * yhat * (1 - yhat)\n    return up * r, up * w2 * (m1 > 0) * x1\n",
}
T1_RIGHT = {"solution": "def loss_and_gradient(x, y, w):\n    s = x * w - y\n    return s ** 2, 2 * s * x\n",
            "expanded": "def loss_and_gradient(x, y, w):\n    return (x*w)**2 - 2*x*w*y + y*y, 2*x*x*w - 2*x*y\n"}
T1_SLIPS = {"forgot to square s": "    return s, 2 * s * x\n", "forgot the factor 2": "    return s * s, s * x\n",
            "used w instead of x": "    return s * s, 2 * s * w\n", "stopped at dloss/ds": "    return s * s, 2 * s\n",
            "flipped the sign": "    return s * s, 2 * (y - x * w) * x\n"}
T1_HEAD = "def loss_and_gradient(x, y, w):\n    s = x * w - y\n"


@pytest.mark.parametrize("grade_id, source", [("t1_formula", s) for s in T1_RIGHT.values()]
                         + [("t2_formula", s) for s in T2_RIGHT.values()], ids=[*T1_RIGHT, *T2_RIGHT])
def test_right_formulas_in_other_words_pass(student, grade_id, source):
    assert graded_formula("lab4", grade_id, source) == (None, [])


@pytest.mark.parametrize("grade_id, source, words", [("t1_formula", T1_HEAD + s, w) for w, s in T1_SLIPS.items()]
                         + [("t2_formula", T2_FORWARD + s, w) for w, s in T2_SLIPS.items()],
                         ids=[*T1_SLIPS, *T2_SLIPS])
def test_each_slip_in_a_formula_is_named_by_the_grader(student, grade_id, source, words):
    _, problems = graded_formula("lab4", grade_id, source)
    assert problems and all(words in problem for problem in problems), problems


@pytest.mark.parametrize("grade_id", sorted(FORMULA_CHECKS))
def test_a_formula_that_calls_autograd_gets_no_points(student, grade_id):
    """The nearest helpers in reach: torch, the kit's own autograd values, the student's check_result."""
    function = kit.check.formulas[FORMULA_CHECKS[grade_id].name].function
    args = "x, y, w" if grade_id == "t1_formula" else "x1, w1, w2, y"
    for body in ("import torch\n", "from course.lab4 import task1_values, task2_values\n"):
        source = f"{body}def {function}({args}):\n    return 0.0, 0.0\n"
        error, problems = graded_formula("lab4", grade_id, source)
        assert "not another import" in str(error) and "A closed form computes" in str(error)
        assert problems and "not another import" in problems[0]
    namespace = {"check_result": lambda *a: (1.0, 8.0)}
    run_cell(f"def {function}({args}):\n    return check_result({args})\n", namespace, grade_id)
    error, _ = run_test_cell("lab4", grade_id, namespace)
    assert "a call of `check_result`" in str(error)


def test_the_kernel_check_reads_the_cell_that_defined_the_function(student):
    namespace = {}
    run_cell(T1_RIGHT["solution"], namespace, "t1_formula")
    error, problems = run_test_cell("lab4", "t1_formula", namespace, answers={"t1_formula_answer": "pass\n"})
    assert error is None  # the kernel ran the cell that defined it; the grader reads the answer cell
    assert problems == ["the cell does not define the function `loss_and_gradient` with `def`. " + CLOSED_FORM]
    _, problems = run_test_cell("lab4", "t1_formula", namespace, answers={})
    assert problems == ["the answer cell t1_formula_answer is not in the notebook"]


@pytest.mark.parametrize("grade_id", sorted(FORMULA_CHECKS))
def test_every_formula_slip_is_far_from_the_truth_on_the_hidden_inputs(grade_id):
    slips = grader.task1_formula_slips if grade_id == "t1_formula" else grader.task2_formula_slips
    assert_formula_slips_are_far_and_distinct(FORMULA_CHECKS[grade_id], lambda *p: grader_reference(grade_id, p), slips)


@pytest.mark.parametrize("grade_id", sorted(FORMULA_CHECKS))
def test_on_each_input_a_wrong_output_has_one_name(grade_id):
    """Where two slips give the same wrong output on one input, that input alone cannot tell them
    apart (the grader then names the one that explains every input). The only such pair: at
    m1 = 0 exactly, letting the gradient through the ReLU everywhere also gives it slope 1 there."""
    check = FORMULA_CHECKS[grade_id]
    slips = grader.task1_formula_slips if grade_id == "t1_formula" else grader.task2_formula_slips
    same = lambda u, v: all(close(a, b, FUNCTION_RTOL, FUNCTION_ATOL) for a, b in zip(u, v, strict=True))  # noqa: E731
    for probe in check.visible + check.hidden:
        outputs = slips(*probe)
        for a in outputs:
            for b in outputs:
                if a < b and same(outputs[a], outputs[b]) and not same(outputs[a], grader_reference(grade_id, probe)):
                    assert {a, b} == {"gave the ReLU slope 1 at m1 = 0 (PyTorch uses 0)",
                                      "let the gradient through the ReLU where m1 ≤ 0"} and probe[1] * probe[0] == 0, (probe, a, b)


def grader_reference(grade_id: str, probe) -> list[float]:
    if grade_id == "t1_formula":
        return [kit.task1_values(*probe)[k] for k in ("loss", "dloss_dw")]
    return [kit.task2_values(*probe)[k] for k in ("dloss_dw1", "dloss_dw2")]


@pytest.mark.parametrize("seed", SEEDS)
def test_every_draw_of_hidden_inputs_covers_every_case(seed):
    """In every submission's draw, Task 1's s has both signs and is not 0, and x is not ±1; Task 2's
    cover the ReLU on, off, exactly at 0 and a hair either side of 0, with targets strictly between 0 and 1."""
    task1 = [p for _, p in FORMULA_CHECKS["t1_formula"].drawn(seed)]
    assert {x * w - y > 0 for x, y, w in task1} == {True, False}
    for x, y, w in task1:
        assert abs(x * w - y) > 0.1 and abs(abs(x) - 1) > 0.05
    task2 = [p for _, p in FORMULA_CHECKS["t2_formula"].drawn(seed)]
    m1s = [x1 * w1 for x1, w1, _, _ in task2]
    assert min(m1s) < -0.1 and max(m1s) > 0.1 and 0.0 in m1s
    assert {m1 > 0 for m1 in m1s if 0 < abs(m1) < 1e-6} == {True, False}  # a hair either side, in every draw
    assert all(0 < y < 1 for *_, y in task2)


@pytest.mark.parametrize("probe", FORMULA_CHECKS["t2_formula"].visible + drawn_probes(FORMULA_CHECKS["t2_formula"], SEEDS[:2]))
def test_task2_formula_references_are_the_closed_form(device, probe):
    x1, w1, w2, y = probe
    m1 = x1 * w1
    yhat = sigmoid(max(m1, 0) * w2)
    up = 2 * (yhat - y) * yhat * (1 - yhat)
    ref = kit.task2_values(*probe)
    assert ref["dloss_dw1"] == pytest.approx(up * w2 * (m1 > 0) * x1, rel=1e-12, abs=1e-15)
    assert ref["dloss_dw2"] == pytest.approx(up * max(m1, 0), rel=1e-12, abs=1e-15)


# ---------------------------------------------------------------- Task 3: the numerical gradient

def test_every_task1_slip_can_fire_on_task1s_numbers():
    """A slip that equals the right answer on the lab's fixed numbers could never be named (a loss of
    s instead of s² at s = 1): each one left differs from the right value and from the others."""
    for expected in kit.task1_answers():
        values = [expected.value, *expected.slips.values()]
        assert all(not close(a, b) for i, a in enumerate(values) for b in values[i + 1:]), expected.name


# ---------------------------------------------------------------- derivations that are not derived

ADAPTIVE_DIFFERENCE = T2_FORWARD.replace("def gradients(x1, w1, w2, y):", "def loss(x1, w1, w2, y):") + (
    "    return s * s\n\n"
    "def gradients(x1, w1, w2, y):\n"
    "    h1, h2 = (abs(w1) + 1) * 1e-6, (abs(w2) + 1) * 1e-6\n"
    "    g1 = (loss(x1, w1 + h1, w2, y) - loss(x1, w1 - h1, w2, y)) / (2 * h1)\n"
    "    return g1, (loss(x1, w1, w2 + h2, y) - loss(x1, w1, w2 - h2, y)) / (2 * h2)\n")
INLINED_DIFFERENCE = ("import math\n\ndef gradients(x1, w1, w2, y):\n"
                      "    h = abs(w1) * 1e-6 + abs(w2) * 1e-6 + abs(x1) * 1e-9\n"
                      "    lo = (1 / (1 + math.exp(-max(x1 * (w1 - h), 0.0) * w2)) - y) ** 2\n"
                      "    hi = (1 / (1 + math.exp(-max(x1 * (w1 + h), 0.0) * w2)) - y) ** 2\n"
                      "    lo2 = (1 / (1 + math.exp(-max(x1 * w1, 0.0) * (w2 - h))) - y) ** 2\n"
                      "    hi2 = (1 / (1 + math.exp(-max(x1 * w1, 0.0) * (w2 + h))) - y) ** 2\n"
                      "    return (hi - lo) / (h + h), (hi2 - lo2) / (h + h)\n")


def test_a_centred_difference_through_a_helper_is_no_closed_form(student):
    error, problems = graded_formula("lab4", "t2_formula", ADAPTIVE_DIFFERENCE)
    assert "another function (`loss`)" in str(error) and "another function (`loss`)" in problems[0]


def test_a_centred_difference_the_rule_cannot_see_fails_at_the_kink_and_the_tolerance(student):
    """A step worked out from the inputs, written inline: no literal step for the rule to find,
    but within 10⁻⁷ of the ReLU's kink the difference straddles it, and elsewhere it misses
    autograd by more than a formula's tolerance. The feedback names the cases, not the inputs."""
    error, problems = graded_formula("lab4", "t2_formula", INLINED_DIFFERENCE)
    assert error is None or "does not give what autograd gives" in str(error)
    assert any("a hair above the ReLU's kink" in p or "a hair below the ReLU's kink" in p
               or "exactly at its kink" in p for p in problems), problems
    hidden = [p for p in problems if p.startswith("On one of the grader's hidden inputs, when ")]
    assert len(hidden) >= 4  # two draws in each of at least two cases


def test_a_lookup_of_one_submissions_probes_is_worthless_for_the_next(student):
    """A formula that returns autograd's outputs for the visible inputs and for every input one
    submission was graded on (as if a kernel had printed them) passes that submission's draw and
    fails any other: the probes are drawn anew for each."""
    check = FORMULA_CHECKS["t2_formula"]
    harvested, other = SEEDS[0], SEEDS[1]
    lines = ["def gradients(x1, w1, w2, y):"]
    for probe in check.visible + [p for _, p in check.drawn(harvested)]:
        a, b = grader_reference("t2_formula", probe)
        lines.append(f"    if x1 == {probe[0]!r} and w1 == {probe[1]!r} and w2 == {probe[2]!r} and y == {probe[3]!r}:")
        lines.append(f"        return {a!r}, {b!r}")
    lines.append("    return 1.0, 1.0\n")
    lookup = "\n".join(lines)
    assert graded_formula("lab4", "t2_formula", lookup, seed=harvested) == (None, [])
    _, problems = graded_formula("lab4", "t2_formula", lookup, seed=other)
    assert len(problems) == len(check.drawn(other))  # every hidden input of the next draw is wrong
    assert not [p for p in problems if any(repr(v) in p for v in check.drawn(other)[0][1])]


def test_a_regrade_draws_the_same_probes_and_another_submission_others():
    check = FORMULA_CHECKS["t2_formula"]
    assert check.drawn(SEEDS[0]) == check.drawn(SEEDS[0])
    first, second = ({tuple(p) for _, p in check.drawn(seed)} for seed in SEEDS[:2])
    assert not first & second


# ---------------------------------------------------------------- 2g: cross-entropy's gradient, derived unaided

def test_2c_2d_and_the_graph_give_the_gradient_pair_in_one_order():
    """dloss/dw1 first everywhere: the hand values, the formula's return value, autograd's printout."""
    assert grader.LAB.checks["t2_gradients"].names == ("dloss_dw1", "dloss_dw2")
    probe = grader.LAB.checks["t2_formula"].visible[0]
    values = kit.task2_values(*probe)
    assert grader.LAB.checks["t2_formula"].reference(probe) == [values["dloss_dw1"], values["dloss_dw2"]]
    source = (REPO / "source" / "lab4" / "lab4.py").read_text()
    assert "Set `dloss_dw1` and `dloss_dw2`" in source and "returning `(dloss/dw1, dloss/dw2)`" in source
    assert 'print(f"dloss/dw1 = {w1.grad.item():+.6f},  dloss/dw2' in source


def test_what_each_node_of_task_2_keeps_as_q1s_answer_says():
    """SigmoidBackward0 and ReluBackward0 keep their outputs, MulBackward0 both factors; changing a
    kept output in place makes backward refuse, as Lab 3's exp trap does."""
    def graph():
        w1, w2 = torch.tensor(0.5, requires_grad=True), torch.tensor(0.2, requires_grad=True)
        r = torch.relu(4.0 * w1)
        m2 = r * w2
        yhat = torch.sigmoid(m2)
        return r, m2, yhat, (yhat - 1.0) ** 2

    r, m2, yhat, _ = graph()
    saved = {name: sorted(a for a in dir(t.grad_fn) if a.startswith("_saved") and not a.endswith("_raw"))
             for name, t in (("yhat", yhat), ("r", r), ("m2", m2))}
    assert saved == {"yhat": ["_saved_result"], "r": ["_saved_result"], "m2": ["_saved_other", "_saved_self"]}
    assert torch.equal(yhat.grad_fn._saved_result, yhat) and torch.equal(r.grad_fn._saved_result, r)
    for changed in ("yhat", "r"):
        r, m2, yhat, loss = graph()
        with torch.no_grad():
            {"yhat": yhat, "r": r}[changed].add_(0.0)  # even a change that changes no value
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()
