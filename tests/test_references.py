"""Every reference the grader computes, checked against an independent computation.

As in micrograd's tests: the grader's numbers come from torch.autograd; here each one is
recomputed by central finite differences in float64 or by its closed form.
"""

import math
import os
import subprocess
import sys

import pytest
import torch

from autograder import lab4
from autograder.compare import HAND_ATOL, HAND_RTOL, as_float, close, relative_error

H = 1e-6


def finite_difference(f, x: float) -> float:
    return (f(x + H) - f(x - H)) / (2 * H)


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def task2_loss(x1, w1, w2, y):
    return (sigmoid(max(x1 * w1, 0.0) * w2) - y) ** 2


@pytest.mark.parametrize("x, y, w", [(4.0, 1.0, 0.5), (2.0, 3.0, 0.25), (-1.5, 0.5, 2.0)])
def test_task1_reference_matches_closed_form(device, x, y, w):
    ref = lab4.task1_reference(x, y, w)
    s = x * w - y
    assert ref["yhat"] == pytest.approx(x * w) and ref["s"] == pytest.approx(s)
    assert ref["loss"] == pytest.approx(s * s)
    assert ref["dloss_ds"] == pytest.approx(2 * s) and ref["ds_dyhat"] == 1 and ref["dyhat_dw"] == pytest.approx(x)
    assert ref["dloss_dw"] == pytest.approx(finite_difference(lambda v: (x * v - y) ** 2, w), rel=1e-7)


def test_task1_numbers_stated_by_the_lab():
    assert lab4.task1_reference(**lab4.TASK1_NUMBERS) == {
        "yhat": 2.0, "s": 1.0, "loss": 1.0, "dloss_ds": 2.0, "ds_dyhat": 1.0, "dyhat_dw": 4.0, "dloss_dw": 8.0}


@pytest.mark.parametrize("student", ["ada", "grace", "sigmoid_slip", "zoë", "s-17"])
def test_task2_reference_matches_finite_differences(device, student):
    n = lab4.student_numbers(student)
    ref = lab4.task2_reference(**n)
    m1 = n["x1"] * n["w1"]
    m2 = max(m1, 0) * n["w2"]
    yhat = sigmoid(m2)
    assert ref["m1"] == pytest.approx(m1) and ref["m2"] == pytest.approx(m2)
    assert ref["yhat"] == pytest.approx(yhat, rel=1e-12) and ref["loss"] == pytest.approx((yhat - n["y"]) ** 2)
    assert ref["dyhat_dm2"] == pytest.approx(finite_difference(sigmoid, m2), rel=1e-7)
    assert ref["dloss_dw2"] == pytest.approx(
        finite_difference(lambda v: task2_loss(n["x1"], n["w1"], v, n["y"]), n["w2"]), rel=1e-6)
    assert ref["dloss_dw1"] == pytest.approx(
        finite_difference(lambda v: task2_loss(n["x1"], v, n["w2"], n["y"]), n["w1"]), rel=1e-6)
    assert ref["dr_dm1"] == 1.0 and ref["dm1_dw1"] == n["x1"] and ref["dm2_dr"] == n["w2"]


def test_worked_example_numbers_from_the_curriculum():
    ref = lab4.task2_reference(**lab4.WORKED_NUMBERS)
    expected = {"yhat": 0.598688, "s": -0.401312, "loss": 0.161052, "dyhat_dm2": 0.240261,
                "dloss_dw2": -0.385678, "dloss_dw1": -0.154271}
    for name, value in expected.items():
        assert ref[name] == pytest.approx(value, abs=1e-6), name


def test_train_reference_is_gradient_descent_in_closed_form(device):
    run = lab4.train_reference(x=4.0, y=1.0, w=0.5, lr=0.01, steps=60)
    w = 0.5
    for k in range(60):
        assert run["ws"][k] == pytest.approx(w, rel=1e-12)
        assert run["losses"][k] == pytest.approx((4 * w - 1) ** 2, rel=1e-12)
        w -= 0.01 * 2 * 4 * (4 * w - 1)


def test_stated_learning_rate_factors():
    """Lab 4 states that w − y/x shrinks by 1 − 2·lr·x²: 0.68, −0.6, −2.2 for lr 0.01, 0.05, 0.1."""
    for lr, factor in ((0.01, 0.68), (0.05, -0.6), (0.1, -2.2)):
        ws = lab4.train_reference(x=4.0, y=1.0, w=0.5, lr=lr, steps=3)["ws"]
        assert (ws[2] - 0.25) / (ws[1] - 0.25) == pytest.approx(factor, rel=1e-9)
    assert lab4.train_reference(x=4.0, y=1.0, w=0.5, lr=0.01, steps=400)["ws"][-1] == pytest.approx(0.25)


def test_stated_sigmoid_slip_numbers():
    """The lab says: at m2 = 0.4 the slip gives 0.24 and the truth 0.2403."""
    z = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    torch.sigmoid(z).backward()
    assert lab4.task2_reference(**lab4.WORKED_NUMBERS)["m2"] == pytest.approx(0.4)
    assert f"{z.grad.item():.4f}" == "0.2403" and 0.4 * (1 - 0.4) == pytest.approx(0.24)


def test_activation_references_by_finite_differences(device):
    xs = lab4.ACTIVATION_PROBES["visible"] + lab4.ACTIVATION_PROBES["hidden"]
    refs = lab4._activation_references(xs)
    for x, r, s in zip(xs, refs["relu_grad"], refs["sigmoid_grad"]):
        assert r == (1.0 if x > 0 else 0.0)  # PyTorch's slope at exactly 0 is 0
        assert s == pytest.approx(finite_difference(sigmoid, x), rel=1e-7)


@pytest.mark.parametrize("probe", lab4.BACKWARD_PROBES["visible"] + lab4.BACKWARD_PROBES["hidden"])
def test_backward_reference_by_finite_differences(device, probe):
    inputs = lab4.backward_inputs(*probe)
    ref = lab4.backward_reference(**inputs)
    x, W1, w2, y = (inputs[k].cpu() for k in ("x", "W1", "w2", "y"))

    def loss(W1, w2):
        return ((torch.sigmoid(w2 @ torch.relu(W1 @ x)) - y) ** 2).item()

    for name, param in (("dW1", W1), ("dw2", w2)):
        numeric = torch.zeros_like(param)
        for i in range(param.numel()):
            up, down = param.clone(), param.clone()
            up.view(-1)[i] += H
            down.view(-1)[i] -= H
            args = {"dW1": lambda p: (p, w2), "dw2": lambda p: (W1, p)}[name]
            numeric.view(-1)[i] = (loss(*args(up)) - loss(*args(down))) / (2 * H)
        assert relative_error(ref[name], numeric) < 1e-6, name


def test_backward_probes_exercise_both_sides_of_the_relu_with_sizeable_gradients():
    signs = set()
    for probe in lab4.BACKWARD_PROBES["visible"] + lab4.BACKWARD_PROBES["hidden"]:
        inputs = lab4.backward_inputs(*probe)
        signs |= set((inputs["W1"] @ inputs["x"] > 0).tolist())
        assert lab4.backward_reference(**inputs)["dw2"].abs().max() > 1e-2
    assert signs == {True, False}


def test_backward_slips_are_what_they_claim():
    inputs = {k: v.cpu() for k, v in lab4.backward_inputs(3, 4, 1).items()}
    right = lab4.backward_reference(**inputs)
    slips = lab4.backward_slips(**inputs)
    half = slips["forgot the factor 2 from the square"]
    assert torch.allclose(half["dW1"] * 2, right["dW1"]) and torch.allclose(half["dw2"] * 2, right["dw2"])
    for wrong in slips.values():
        assert relative_error(wrong["dW1"], right["dW1"]) > 1e-3


def test_student_numbers_are_stable_across_processes():
    code = "from autograder import lab4; print(lab4.student_numbers('ada'), lab4.student_numbers('zoë'))"
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env=dict(os.environ, PYTHONHASHSEED=seed)).stdout for seed in ("1", "2")}
    assert len(outputs) == 1
    assert outputs.pop().strip() == f"{lab4.student_numbers('ada')} {lab4.student_numbers('zoë')}"


def test_student_numbers_differ_between_students_and_from_the_worked_example():
    numbers = [tuple(lab4.student_numbers(f"student{i}").values()) for i in range(300)]
    assert len(set(numbers)) >= 295
    assert tuple(lab4.WORKED_NUMBERS.values()) not in numbers


def test_every_slip_is_separable_for_every_student():
    for i in range(300):
        groups = lab4.task2_expected(**lab4.student_numbers(f"student{i}"))
        assert all(e.separated() for group in groups.values() for e in group)


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
    right = lab4.task2_reference(**lab4.WORKED_NUMBERS)["dyhat_dm2"]
    assert close(float(f"{right:.4g}"), right)
    assert HAND_RTOL * right + HAND_ATOL < 1e-3
