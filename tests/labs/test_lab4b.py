"""Lab 4b: every reference the grader computes, checked against an independent computation.

As in micrograd's tests: the grader's numbers come from torch.autograd; here each one is
recomputed from its closed form, or from a loss written in the test whose autograd gradient
`torch.autograd.gradcheck` verifies by central differences in float64.
"""

import contextlib
import math

import pytest
import torch

import course.checks
from autograder.labs import lab4b as grader
from course import lab4b as kit
from course.checks import CheckFailed
from course.answers import relative_error

from helpers import (SEEDS, as_cell, assert_formula_slips_are_far_and_distinct, drawn_probes,
                     graded_formula, run_test_cell)

# The visible probes and hidden ones as a few submissions draw them.
ACTIVATION_PROBES = grader.LAB.checks["t3_activation_grads"].visible + drawn_probes(grader.LAB.checks["t3_activation_grads"], SEEDS[:5])
BACKWARD_PROBES = grader.LAB.checks["t4_manual_backward"].visible + drawn_probes(grader.LAB.checks["t4_manual_backward"], SEEDS[:3])


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def test_train_reference_is_gradient_descent_in_closed_form(device):
    run = grader.train_reference(x=4.0, y=1.0, w=0.5, lr=0.01, steps=60)
    w = 0.5
    for k in range(60):  # Lab 1's convention: the loss before update k, w after it
        assert run["losses"][k] == pytest.approx((4 * w - 1) ** 2, rel=1e-12)
        w -= 0.01 * 2 * 4 * (4 * w - 1)
        assert run["ws"][k] == pytest.approx(w, rel=1e-12)


def test_stated_learning_rate_factors():
    """Lab 4 states that w − y/x shrinks by 1 − 2·lr·x²: 0.68, −0.6, −2.2 for lr 0.01, 0.05, 0.1."""
    for lr, factor in ((0.01, 0.68), (0.05, -0.6), (0.1, -2.2)):
        ws = grader.train_reference(x=4.0, y=1.0, w=0.5, lr=lr, steps=3)["ws"]
        assert (ws[2] - 0.25) / (ws[1] - 0.25) == pytest.approx(factor, rel=1e-9)
    assert grader.train_reference(x=4.0, y=1.0, w=0.5, lr=0.01, steps=400)["ws"][-1] == pytest.approx(0.25)


def test_activation_references_match_closed_forms(device):
    xs = [x for probe in ACTIVATION_PROBES for x in probe]
    refs = grader.activation_references(xs)
    for x, r, s in zip(xs, refs["relu_grad"], refs["sigmoid_grad"], strict=True):
        assert r == (1.0 if x > 0 else 0.0)  # PyTorch's slope at exactly 0 is 0
        assert s == pytest.approx(sigmoid(x) * (1 - sigmoid(x)), rel=1e-12)  # σ' = σ(1 − σ)


@pytest.mark.parametrize("probe", BACKWARD_PROBES)
def test_backward_reference_is_the_gradcheck_verified_gradient(device, probe):
    inputs = kit.backward_inputs(*probe)
    x, y = inputs["x"], inputs["y"]
    W1, w2 = (inputs[k].detach().clone().requires_grad_() for k in ("W1", "w2"))

    def loss(W1, w2):
        return (torch.sigmoid(w2 @ torch.relu(W1 @ x)) - y) ** 2

    assert torch.autograd.gradcheck(loss, (W1, w2))  # central differences in float64 agree with autograd
    assert torch.autograd.gradgradcheck(loss, (W1, w2))
    dW1, dw2 = torch.autograd.grad(loss(W1, w2), (W1, w2))
    ref = grader.backward_reference(**inputs)
    assert relative_error(ref["dW1"], dW1) < 1e-12 and relative_error(ref["dw2"], dw2) < 1e-12


def test_backward_probes_exercise_both_sides_of_the_relu_with_sizeable_gradients():
    signs = set()
    for probe in BACKWARD_PROBES:
        inputs = kit.backward_inputs(*probe)
        signs |= set((inputs["W1"] @ inputs["x"] > 0).tolist())
        assert grader.backward_reference(**inputs)["dw2"].abs().max() > 1e-2
    assert signs == {True, False}


def test_backward_slips_are_what_they_claim():
    inputs = {k: v.cpu() for k, v in kit.backward_inputs(3, 4, 1).items()}
    right = grader.backward_reference(**inputs)
    slips = grader.backward_slips(**inputs)
    half = slips["forgot the factor 2 from the square"]
    assert torch.allclose(half["dW1"] * 2, right["dW1"]) and torch.allclose(half["dw2"] * 2, right["dw2"])
    for wrong in slips.values():
        assert relative_error(wrong["dW1"], right["dW1"]) > 1e-3


NUMERICAL_PROBES = (grader.LAB.checks["t6_numerical_gradient"].visible
                    + drawn_probes(grader.LAB.checks["t6_numerical_gradient"], SEEDS[:3]))


@pytest.mark.parametrize("probe", NUMERICAL_PROBES)
def test_the_centred_difference_agrees_with_autograd_to_order_h_squared(device, probe):
    name, h = probe
    f, _ = kit.GRADCHECK_PROBLEMS[name]
    x = kit.gradcheck_point(name).requires_grad_()
    (autograd,) = torch.autograd.grad(f(x), x)
    centred = torch.tensor(grader.centred_difference(name, h), dtype=torch.float64)
    assert relative_error(centred, autograd) < 100 * h ** 2
    for slip in grader.NUMERICAL_MISTAKES.values():  # each mistake is far outside the check's tolerance
        assert relative_error(torch.tensor(grader.centred_difference(name, h, **slip)), centred) > 1e-4


NUMERICAL_SLIPS = {
    "one-sided": "    g = torch.zeros_like(x)\n    for i in range(len(x)):\n        s = torch.zeros_like(x)\n"
                 "        s[i] = h\n        g[i] = (f(x + s) - f(x)) / h\n    return g\n",
    "divided by h instead of 2h": "    g = torch.zeros_like(x)\n    for i in range(len(x)):\n        s = torch.zeros_like(x)\n"
                                  "        s[i] = h\n        g[i] = (f(x + s) - f(x - s)) / h\n    return g\n",
    "moved every coordinate at once": "    return torch.full_like(x, ((f(x + h) - f(x - h)) / (2 * h)).item())\n",
}


@pytest.mark.parametrize("words, body", NUMERICAL_SLIPS.items(), ids=NUMERICAL_SLIPS)
def test_each_numerical_gradient_slip_is_named(student, words, body):
    namespace = {"torch": torch}
    exec("def numerical_gradient(f, x, h):\n" + body, namespace)
    error, _ = run_test_cell("lab4b", "t6_numerical_gradient", namespace)
    assert words in str(error)  # named in the notebook, on the visible probe
    assert all(words in problem.text for problem in grader.LAB.checks["t6_numerical_gradient"].judge(
        NUMERICAL_PROBES, [kit.run_numerical_gradient(namespace, p) for p in NUMERICAL_PROBES]))  # and by the grader, on every probe


def test_a_numerical_gradient_that_changes_x_is_told_so(student):
    def numerical_gradient(f, x, h):
        grad = torch.zeros_like(x)
        for i in range(len(x)):
            x[i] += h
            up = f(x)
            x[i] -= 2 * h
            grad[i] = (up - f(x)) / (2 * h)
        return grad

    error, _ = run_test_cell("lab4b", "t6_numerical_gradient", {"numerical_gradient": numerical_gradient})
    assert "changed x itself" in str(error)


def test_the_gradient_check_numbers_the_lab_states():
    """Task 3b: float64's relative error 1.5e-4, 1.5e-6, 1.5e-8, about 1e-10 and 4e-9 at h = 1e-2,
    1e-3, 1e-4, 1e-6, 1e-8 (falling like h², then rising as rounding takes over); float32's best
    about 3e-5 at 1e-3, about 3e-2 at 1e-6, and 1 at 1e-8; the best h near ε^⅓, 6e-6 and 5e-3; at
    the kink the centred difference is not autograd's 0."""
    def loss(weights, x1=2.0, y=0.3):
        return (torch.sigmoid(torch.relu(x1 * weights[0]) * weights[1]) - y) ** 2

    def errors(dtype):
        w = torch.tensor([0.7, -1.3], dtype=dtype, requires_grad=True)
        (exact,) = torch.autograd.grad(loss(w), w)
        found = []
        for h in (1e-2, 1e-3, 1e-4, 1e-6, 1e-8):
            numeric = torch.stack([(loss(w.detach() + h * e) - loss(w.detach() - h * e)) / (2 * h)
                                   for e in torch.eye(2, dtype=dtype)])
            found.append(((numeric - exact).abs().max() / torch.maximum(numeric.abs().max(), exact.abs().max())).item())
        return found  # the lab's relative error: max |a − b| / max(|a|, |b|)

    f64 = errors(torch.float64)
    assert [f"{e:.1e}" for e in f64[:3]] == ["1.5e-04", "1.5e-06", "1.5e-08"]
    assert 3e-11 < f64[3] < 3e-10 and 2e-9 < f64[4] < 8e-9 and min(f64) == f64[3]
    f32 = errors(torch.float32)
    assert 2e-5 < f32[1] < 5e-5 and min(f32) == f32[1] and 1e-2 < f32[3] < 1e-1 and f32[4] == 1.0
    for dtype, best in ((torch.float64, 6e-6), (torch.float32, 5e-3)):  # ε^⅓, where h² meets ε/h
        assert torch.finfo(dtype).eps ** (1 / 3) == pytest.approx(best, rel=0.05)
    kink = torch.tensor([0.0, -1.3], dtype=torch.float64, requires_grad=True)
    (exact,) = torch.autograd.grad(loss(kink), kink)
    centred = (loss(kink.detach() + torch.tensor([1e-4, 0.0])) - loss(kink.detach() - torch.tensor([1e-4, 0.0]))) / 2e-4
    assert exact.tolist() == [0.0, 0.0] and abs(centred.item()) > 0.1


BCE_CHECK = grader.LAB.checks["t5_bce_formula"]
BCE_HEAD = "import math\n\n\ndef bce_gradient(m2, y):\n    yhat = 1 / (1 + math.exp(-m2))\n"
BCE_RIGHT = {
    "simplified": BCE_HEAD + "    return yhat - y\n",
    "the chain, unsimplified": BCE_HEAD + ("    dloss_dyhat = -(y / yhat - (1 - y) / (1 - yhat))\n"
                                           "    return dloss_dyhat * yhat * (1 - yhat)\n"),
    "from e^m2": "from math import exp\n\ndef bce_gradient(m2, y):\n    return exp(m2) / (1 + exp(m2)) - y\n",
}
BCE_SLIPS = {
    "used the squared error's chain": BCE_HEAD + "    return 2 * (yhat - y) * yhat * (1 - yhat)\n",
    "stopped at dloss/dŷ": BCE_HEAD + "    return (yhat - y) / (yhat * (1 - yhat))\n",
    "flipped the sign": BCE_HEAD + "    return y - yhat\n",
    "used m2·(1 − m2)": BCE_HEAD + "    return (yhat - y) / (yhat * (1 - yhat)) * m2 * (1 - m2)\n",
}


@pytest.mark.parametrize("probe", BCE_CHECK.visible + drawn_probes(BCE_CHECK, SEEDS[:5]))
def test_the_cross_entropy_reference_is_sigmoid_minus_target(device, probe):
    m2, y = probe
    assert grader.bce_reference(m2, y) == [pytest.approx(1 / (1 + math.exp(-m2)) - y, rel=1e-12, abs=1e-15)]


def test_the_cross_entropy_numbers_task_5_states():
    m2 = torch.tensor(-6.0, dtype=torch.float64, requires_grad=True)
    yhat = torch.sigmoid(m2)
    assert f"{yhat.item():.4f}" == "0.0025"  # "ŷ ≈ 0.0025"
    (squared,) = torch.autograd.grad((yhat - 1) ** 2, m2, retain_graph=True)
    (cross,) = torch.autograd.grad(-torch.log(yhat), m2)
    assert cross.item() == pytest.approx(yhat.item() - 1) and abs(cross) > 100 * abs(squared)  # "pushes harder"


@pytest.mark.parametrize("source", BCE_RIGHT.values(), ids=BCE_RIGHT)
def test_right_cross_entropy_gradients_in_other_words_pass(student, source):
    assert graded_formula("lab4b", "t5_bce_formula", source) == (None, [])


@pytest.mark.parametrize("words, source", BCE_SLIPS.items(), ids=BCE_SLIPS)
def test_each_slip_in_the_cross_entropy_gradient_is_named(student, words, source):
    _, problems = graded_formula("lab4b", "t5_bce_formula", source)
    assert problems and all(words in problem for problem in problems), problems


def test_every_cross_entropy_slip_is_far_from_the_truth_on_the_hidden_inputs():
    assert_formula_slips_are_far_and_distinct(BCE_CHECK, grader.bce_reference, grader.bce_slips)


RELU = {"right": "return (z > 0).to(z.dtype)", "slope 1 at 0": "return (z >= 0).to(z.dtype)"}
SIGMOID = {"right": "s = torch.sigmoid(z)\n    return s * (1 - s)", "x(1 - x)": "return z * (1 - z)"}


def activation_verdicts(relu: str, sigmoid: str) -> tuple[str, list[str]]:
    """What the notebook says on the visible inputs, and the grader's problems on the visible and hidden ones."""
    source = f"def relu_grad(z):\n    {RELU[relu]}\n\n\ndef sigmoid_grad(z):\n    {SIGMOID[sigmoid]}\n"
    namespace = as_cell(source, "t3_activation_grads_answer")
    check, payloads = grader.LAB.checks["t3_activation_grads"], []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(course.checks, "publish", payloads.append)
        with pytest.raises(CheckFailed) as notebook:
            kit.check.function(namespace, check.name)
        with contextlib.suppress(CheckFailed):
            kit.check.function(namespace, check.name, hidden=check.hidden_probes(SEEDS[0]))
    problems = [p.text for payload in payloads
                for p in check.verify_data(payload["data"], "ada", hidden=payload["hidden"], seed=SEEDS[0])]
    return str(notebook.value), problems


@pytest.mark.parametrize(("relu", "sigmoid"), [("right", "x(1 - x)"), ("slope 1 at 0", "right"),
                                               ("slope 1 at 0", "x(1 - x)")])
def test_each_wrong_activation_slope_is_named_under_its_own_function(relu, sigmoid):
    notebook, problems = activation_verdicts(relu, sigmoid)
    for name, slip, wrong in (("relu_grad", "gave slope 1 at x = 0", relu != "right"),
                              ("sigmoid_grad", "used x·(1 − x)", sigmoid != "right")):
        said = [line for line in notebook.splitlines() if line.strip().startswith(f"- {name}(")]
        assert bool(said) == wrong and all(slip in line for line in said), notebook
        named = [text for text in problems if f"`{name}`" in text or text.startswith(f"{name}(")]
        assert bool(named) == wrong and all(slip in text for text in named), problems
    assert len(problems) == len([t for t in problems if "relu_grad" in t or "sigmoid_grad" in t])


def loop(record_w_first: bool = False, loss_after: bool = False):
    """Task 2's loop, right or with w or the loss recorded at another moment than Lab 1's convention."""
    def train(x, y, w, lr, steps):
        w = torch.tensor(float(w), dtype=torch.float64, requires_grad=True)
        ws, losses = [], []
        for _ in range(steps):
            if record_w_first:
                ws.append(w.item())
            loss = (x * w - y) ** 2
            loss.backward()
            with torch.no_grad():
                w -= lr * w.grad
            w.grad.zero_()
            if not record_w_first:
                ws.append(w.item())
            losses.append(((x * w - y) ** 2).item() if loss_after else loss.item())
        return ws, losses
    return train


@pytest.mark.parametrize(("train", "named"), [(loop(), None), (loop(record_w_first=True), "at the start of each step"),
                                              (loop(loss_after=True), "recorded each loss at another moment")])
def test_the_training_loop_follows_lab_1s_convention_and_other_moments_are_named(train, named):
    check = grader.LAB.checks["t2_train_w"]
    outputs = [kit.check.functions["train"].run({"train": train}, p) for p in check.visible]
    problems = [p.text for p in check.judge(check.visible, outputs)]
    assert (problems == []) if named is None else (problems and all(named in p for p in problems)), problems

