"""Lab 1: references against closed forms, numbers the lab states, and checks against slips."""

import pytest
import torch

from autograder import identity, lab1
from autograder.kernel import CheckFailed


def test_step_reference_matches_the_chain_rule(device):
    for A, B, target, lr in ((0.0, 0.0, 10.0, 0.01), (-2.0, 2.0, 6.0, 0.02), (1.5, 2.5, 11.0, 0.1)):
        u = A + B - target
        ref = lab1.step_reference(A, B, target, lr)
        assert ref == pytest.approx({"u": u, "loss": u * u, "dloss_dA": 2 * u, "dloss_dB": 2 * u,
                                     "A_next": A - lr * 2 * u})


def test_textbook_gradients_are_minus_20():
    ref = lab1.step_reference(0.0, 0.0, 10.0, 0.01)
    assert ref["dloss_dA"] == ref["dloss_dB"] == -20.0


def test_descent_numbers_stated_by_the_lab(device):
    run = lab1.descent_reference(0.0, 0.0, 10.0, 0.01, 101)
    assert run["As"][0] == pytest.approx(0.2) and run["losses"][0] == 100.0
    assert run["As"][50] == pytest.approx(4.3765, abs=5e-5) and run["losses"][50] == pytest.approx(1.6870, abs=5e-5)
    assert f"{run['As'][100]:.3f}" == "4.919" and f"{run['losses'][100]:.5f}" == "0.02846"
    assert run["As"] == run["Bs"]  # the symmetric start keeps A = B


def test_descent_reference_is_the_closed_form_recursion():
    run = lab1.descent_reference(1.0, -2.0, 7.0, 0.05, 30)
    u = 1.0 - 2.0 - 7.0
    for k in range(30):
        assert run["losses"][k] == pytest.approx(u * u)
        u *= 1 - 4 * 0.05
        assert run["As"][k] + run["Bs"][k] - 7.0 == pytest.approx(u)


def test_factor_and_regimes_stated_by_the_lab():
    assert lab1.measured_factor(0.01) == pytest.approx(0.96)
    assert 10 * 0.96 ** 100 < 0.2  # "within 2% of the target in about 100 epochs"
    for lr in (0.01, 0.1, 0.3, 0.45, 0.6):
        assert lab1.measured_factor(lr) == pytest.approx(1 - 4 * lr)
    assert [lab1.regime(lr) for lr in (0.2, 0.25, 0.3, 0.49, 0.51)] == \
        ["monotone", "one step", "oscillating", "oscillating", "diverging"]
    for name, lrs in lab1.REGIME_LRS.items():
        assert {lab1.regime(lr) for lr in lrs} == {name}


def test_without_reset_the_loss_swings_back_to_its_start():
    losses = lab1.descent_reference(0.0, 0.0, 10.0, 0.01, 200, zero_grad=False)["losses"]
    assert min(losses[1:]) < 0.1 and max(losses[30:]) > 99


@pytest.mark.parametrize("student", [f"s{i}" for i in range(60)] + ["ada", "zoë"])
def test_step_slips_fail_by_name_and_rounded_answers_pass(student):
    n = lab1.student_numbers(student)
    assert sorted(lab1.regime(lr) for lr in n["rates"]) == sorted(lab1.REGIMES)
    expected = lab1.step_expected(n["A"], n["B"], n["target"], n["lr"])
    assert lab1.diagnose_all({e.name: float(f"{e.value:.4g}") for e in expected}, expected) == []
    for e in expected:
        for slip, wrong in e.slips.items():
            assert slip in e.diagnose(float(f"{wrong:.4g}"))


@pytest.fixture
def ada(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv(identity.STUDENT_ENV, "ada")
    return lab1.student_numbers("ada")


def descent(A, B, target, lr, epochs, zero_grad=True, reset=True, sign=-1.0):
    A = torch.tensor(float(A), requires_grad=True)
    B = torch.tensor(float(B), requires_grad=True)
    out = ([], [], [])
    for _ in range(epochs):
        loss = (A + B - target) ** 2
        loss.backward()
        with torch.no_grad():
            A += sign * lr * A.grad
            B += sign * lr * B.grad
        if zero_grad and reset:
            A.grad = None
            B.grad = None
        for lst, v in zip(out, (A, B, loss)):
            lst.append(v.item())
    return out


@pytest.mark.parametrize("hidden", [False, True])
def test_descent_check(ada, device, hidden):
    lab1.check_descent({"gradient_descent": descent}, hidden=hidden)
    with pytest.raises(CheckFailed, match="never reset"):
        lab1.check_descent({"gradient_descent": lambda *a, **k: descent(*a, **k, reset=False)}, hidden=hidden)
    with pytest.raises(CheckFailed, match="up the gradient"):
        lab1.check_descent({"gradient_descent": lambda *a, **k: descent(*a, **k, sign=1.0)}, hidden=hidden)


def test_descent_check_requires_the_zero_grad_flag(ada):
    always_reset = lambda *a, zero_grad=True, **k: descent(*a, **k)  # noqa: E731
    with pytest.raises(CheckFailed, match="although zero_grad=False"):
        lab1.check_descent({"gradient_descent": always_reset}, hidden=True)


def test_factor_check(ada):
    lab1.check_factor({"shrink_factor": lambda lr: 1 - 4 * lr}, hidden=True)
    with pytest.raises(CheckFailed, match="only A changes"):
        lab1.check_factor({"shrink_factor": lambda lr: 1 - 2 * lr})


def test_regimes_check(ada):
    right = {lr: lab1.regime(lr) for lr in ada["rates"]}
    lab1.check_regimes({"predictions": right})
    lab1.check_regimes({"predictions": {str(lr): v for lr, v in right.items()}})
    wrong = {**right, **{lr: "monotone" for lr in ada["rates"] if right[lr] == "oscillating"}}
    with pytest.raises(CheckFailed, match="you predicted 'monotone', but it is 'oscillating'"):
        lab1.check_regimes({"predictions": wrong})
    with pytest.raises(AssertionError, match="use one of"):
        lab1.check_regimes({"predictions": {0.1: "slow"}})
    with pytest.raises(NotImplementedError):
        lab1.check_regimes({})
