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
from course.answers import FUNCTION_ATOL, FUNCTION_RTOL, HAND_ATOL, HAND_RTOL, as_float, close, diagnose_all
from course.rules import CLOSED_FORM

from helpers import (REPO, SEEDS, assert_formula_slips_are_far_and_distinct, assert_named_slips, drawn_probes,
                     graded_formula, run_cell, run_test_cell)

# The visible probes and hidden ones as a few submissions draw them.
def task2(numbers: dict) -> dict:
    """A student's Task 2 inputs (their numbers hold Task 1's too)."""
    return {k: numbers[k] for k in ("x1", "w1", "w2", "y")}


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


@pytest.mark.parametrize("student", ["ada", "grace", "sigmoid_slip", "zoë", "s-17"])
def test_task2_reference_matches_closed_forms_and_gradcheck(device, student):
    n = kit.student_numbers(student)
    ref = kit.task2_values(**task2(n))
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


def composite(x, y, z):
    return math.tanh(math.log(1 + z * 2 * x / math.sin(y)))


@pytest.mark.parametrize("student", ["ada", "grace", "s1", "s2", "zoë"])
def test_composite_reference_is_the_gradcheck_verified_gradient(device, student):
    n = kit.student_numbers(student)
    x, y, z = n["gx"], n["gy"], n["gz"]
    ref = kit.composite_values(x, y, z)
    assert ref["f"] == pytest.approx(composite(x, y, z), rel=1e-12)
    leaves = tuple(torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (x, y, z))

    def f(x, y, z):
        return torch.tanh(torch.log(1 + z * 2 * x / torch.sin(y)))

    assert torch.autograd.gradcheck(f, leaves) and torch.autograd.gradgradcheck(f, leaves)
    grads = torch.autograd.grad(f(*leaves), leaves)
    for name, grad in zip(("df_dx", "df_dy", "df_dz"), grads, strict=True):
        assert ref[name] == pytest.approx(grad.item(), rel=1e-12), name
    assert abs(ref["f"]) <= 0.85


def task1_slips_by_hand(gx, gy, gz, **_):
    """Every hand-computation slip the feedback names, worked out here from the formulas."""
    a, sb = 2 * gx, math.sin(gy)
    c = a / sb
    d = 1 + gz * c
    e = math.log(d)
    f = math.tanh(e)
    right, wrong = 1 - f * f, 1 - e * e
    return {
        ("b", "took y in degrees"): math.sin(math.radians(gy)),
        ("e", "used log base 10"): math.log10(d),
        ("df_dx", "used 1 − e²"): wrong / d * gz / sb * 2, ("df_dx", "forgot the 2"): right / d * gz / sb,
        ("df_dy", "used 1 − e²"): wrong / d * gz * (-a / sb ** 2) * math.cos(gy),
        ("df_dy", "dropped the minus sign"): -(right / d * gz * (-a / sb ** 2) * math.cos(gy)),
        ("df_dz", "used 1 − e²"): wrong / d * c, ("df_dz", "forgot the 1/d"): right * c,
        ("dg_dx", "through u = x · z"): gz, ("dg_dx", "through v = 3x"): 3.0,
    }


@pytest.mark.parametrize("student", ["ada", "grace", "s1", "s2", "zoë", "s-17"])
def test_every_named_task1_slip_is_the_value_its_name_says(student):
    n = kit.student_numbers(student)
    groups = kit.composite_answers(n["gx"], n["gy"], n["gz"])
    answers = {e.name: e for e in groups["forward"] + groups["gradients"] + kit.fan_out_answers(n["gx"], n["gz"])}
    assert_named_slips(answers, task1_slips_by_hand(**n))


@pytest.mark.parametrize("student", [f"s{i}" for i in range(40)] + ["ada"])
def test_task1_hand_values_rounded_pass_and_slips_fail_by_name(student):
    n = kit.student_numbers(student)
    groups = [kit.fan_out_answers(n["gx"], n["gz"])] + list(kit.composite_answers(n["gx"], n["gy"], n["gz"]).values())
    for expected in groups:
        assert diagnose_all({e.name: float(f"{e.value:.4g}") for e in expected}, expected, student) == []
        for e in expected:
            for slip, wrong in e.slips.items():
                assert slip in e.diagnose(float(f"{wrong:.4g}"))


@pytest.mark.parametrize("x, z", [(0.25, 0.4), (1.15, 0.67), (2.0, 2.0)])
def test_fan_out_gradient_is_the_sum_of_both_paths_as_the_lab_states(device, x, z):
    assert kit.fan_out_values(x, z)["dg_dx"] == pytest.approx(z + 3, rel=1e-12)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (u_path,) = torch.autograd.grad(xt * z, xt)
    (v_path,) = torch.autograd.grad(3 * xt, xt)
    assert kit.fan_out_values(x, z)["dg_dx"] == pytest.approx(u_path.item() + v_path.item(), rel=1e-12)


def test_the_fan_out_observe_cell_shows_the_sum_and_each_path(device):
    assert kit.fan_out_values(0.25, 0.4)["dg_dx"] == pytest.approx(3.4, rel=1e-12)  # x.grad, printed
    assert [e.slips for e in kit.fan_out_answers(0.25, 0.4)] == [
        {"followed one path only (through u = x · z)": 0.4, "followed one path only (through v = 3x)": 3.0}]


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
        assert all(e.separated() for e in kit.task2_answers(**task2(kit.student_numbers(f"student{i}"))))


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
        ("yhat", "forgot the sigmoid"): m2, ("s", "computed y − ŷ"): -s, ("loss", "forgot to square s"): s,
        ("dloss_ds", "forgot the factor 2"): s,
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
    answers = {e.name: e for e in kit.task2_answers(**task2(numbers))}
    assert_named_slips(answers, task2_slips_by_hand(**task2(numbers)), ignore="worked example")
    worked = {e.name: e.value for e in kit.task2_answers(**kit.WORKED_NUMBERS)}
    for name, expected in answers.items():
        if worked[name] != expected.value:
            assert expected.slips["used the worked example's numbers instead of your own"] == worked[name]


# ---------------------------------------------------------------- the derivations graded as formulas

F_HEAD = ("import math\ndef f_gradients(x, y, z):\n    a, b = 2 * x, math.sin(y)\n    c = a / b\n"
          "    d = 1 + z * c\n    e = math.log(d)\n    f = math.tanh(e)\n")
F_RIGHT = {
    "solution": F_HEAD + "    g = (1 - f * f) / d\n    return g * z * 2 / b, -g * z * a * math.cos(y) / b ** 2, g * c\n",
    "tanh' from cosh, no named nodes": (
        "from math import cos, cosh, log, sin\ndef f_gradients(x, y, z):\n"
        "    d = 1 + z * 2 * x / sin(y)\n    g = 1 / cosh(log(d)) ** 2 / d\n"
        "    return [2 * z * g / sin(y), -2 * x * z * cos(y) * g / sin(y) ** 2, 2 * x * g / sin(y)]\n"),
}
F_SLIPS = {
    "used 1 − e² for tanh'": F_HEAD + "    g = (1 - e * e) / d\n    return g * z * 2 / b, -g * z * a * math.cos(y) / b ** 2, g * c\n",
    "forgot the 1/d": F_HEAD + "    g = 1 - f * f\n    return g * z * 2 / b, -g * z * a * math.cos(y) / b ** 2, g * c\n",
    "forgot the 2 from a = 2x": F_HEAD + "    g = (1 - f * f) / d\n    return g * z / b, -g * z * a * math.cos(y) / b ** 2, g * c\n",
    "dropped the minus sign": F_HEAD + "    g = (1 - f * f) / d\n    return g * z * 2 / b, g * z * a * math.cos(y) / b ** 2, g * c\n",
    "used sin(y) for db/dy": F_HEAD + "    g = (1 - f * f) / d\n    return g * z * 2 / b, -g * z * a * math.sin(y) / b ** 2, g * c\n",
}


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
@pytest.mark.parametrize("grade_id, source", [("t1_formula", s) for s in F_RIGHT.values()]
                         + [("t2_formula", s) for s in T2_RIGHT.values()], ids=[*F_RIGHT, *T2_RIGHT])
def test_right_formulas_in_other_words_pass(student, grade_id, source):
    assert graded_formula("lab4", grade_id, source) == (None, [])


@pytest.mark.parametrize("grade_id, source, words", [("t1_formula", s, w) for w, s in F_SLIPS.items()]
                         + [("t2_formula", T2_FORWARD + s, w) for w, s in T2_SLIPS.items()],
                         ids=[*F_SLIPS, *T2_SLIPS])
def test_each_slip_in_a_formula_is_named_by_the_grader(student, grade_id, source, words):
    _, problems = graded_formula("lab4", grade_id, source)
    assert problems and all(words in problem for problem in problems), problems


@pytest.mark.parametrize("grade_id", sorted(FORMULA_CHECKS))
def test_a_formula_that_calls_autograd_gets_no_points(student, grade_id):
    """The nearest helpers in reach: torch, the kit's own autograd values, the student's check_result."""
    function = kit.check.formulas[FORMULA_CHECKS[grade_id].name].function
    args = "x, y, z" if grade_id == "t1_formula" else "x1, w1, w2, y"
    for body in ("import torch\n", "from course.lab4 import composite_values, task2_values\n"):
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
    run_cell(F_RIGHT["solution"], namespace, "t1_formula")
    error, problems = run_test_cell("lab4", "t1_formula", namespace, answers={"t1_formula_answer": "pass\n"})
    assert error is None  # the kernel ran the cell that defined it; the grader reads the answer cell
    assert problems == ["the cell does not define the function `f_gradients` with `def`. " + CLOSED_FORM]
    _, problems = run_test_cell("lab4", "t1_formula", namespace, answers={})
    assert problems == ["the answer cell t1_formula_answer is not in the notebook"]


@pytest.mark.parametrize("grade_id", sorted(FORMULA_CHECKS))
def test_every_formula_slip_is_far_from_the_truth_on_the_hidden_inputs(grade_id):
    slips = grader.f_gradients_slips if grade_id == "t1_formula" else grader.task2_formula_slips
    assert_formula_slips_are_far_and_distinct(FORMULA_CHECKS[grade_id], lambda *p: grader_reference(grade_id, p), slips)


@pytest.mark.parametrize("grade_id", sorted(FORMULA_CHECKS))
def test_on_each_input_a_wrong_output_has_one_name(grade_id):
    """Where two slips give the same wrong output on one input, that input alone cannot tell them
    apart (the grader then names the one that explains every input). The only such pair: at
    m1 = 0 exactly, letting the gradient through the ReLU everywhere also gives it slope 1 there."""
    check = FORMULA_CHECKS[grade_id]
    slips = grader.f_gradients_slips if grade_id == "t1_formula" else grader.task2_formula_slips
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
        return grader.f_gradients_reference(*probe)
    return [kit.task2_values(*probe)[k] for k in ("dloss_dw1", "dloss_dw2")]


@pytest.mark.parametrize("seed", SEEDS)
def test_every_draw_of_hidden_inputs_covers_every_case(seed):
    """In every submission's draw, Task 2's inputs cover the ReLU on, off, exactly at 0 and a hair
    either side of 0, with targets strictly between 0 and 1 (Task 1's: the test below)."""
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


# ---------------------------------------------------------------- Task 1's hidden inputs

def test_the_formula_inputs_reach_what_the_students_numbers_do_not():
    """Students' y lies in [0.5, 2.5] (sin y > 0) and x, z in [0.5, 2]; in every submission's draw
    the grader also tries sin y < 0 and negative x and z, always with d > 0 and tanh away from
    saturation."""
    for seed in SEEDS:
        probes = [p for _, p in grader.LAB.checks["t1_formula"].drawn(seed)]
        assert min(math.sin(y) for _, y, _ in probes) < 0 < max(math.sin(y) for _, y, _ in probes)
        assert min(x for x, _, _ in probes) < 0 and min(z for *_, z in probes) < 0
        for x, y, z in probes:
            d = 1 + z * 2 * x / math.sin(y)
            assert d > 0.1 and abs(math.tanh(math.log(d))) < 0.999


@pytest.mark.parametrize("probe", grader.LAB.checks["t1_formula"].visible + drawn_probes(grader.LAB.checks["t1_formula"], SEEDS[:2]))
def test_formula_reference_is_the_gradcheck_verified_gradient(device, probe):
    leaves = tuple(torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in probe)

    def f(x, y, z):
        return torch.tanh(torch.log(1 + z * (2 * x) / torch.sin(y)))

    assert torch.autograd.gradcheck(f, leaves)
    grads = torch.autograd.grad(f(*leaves), leaves)
    assert grader.f_gradients_reference(*probe) == pytest.approx([g.item() for g in grads], rel=1e-12)


