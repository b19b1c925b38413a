"""Test the tests: right answers in any reasonable form pass, every known slip fails by name."""

import re
import warnings

import pytest
import torch

from autograder import identity, lab4, recheck
from autograder.compare import Unanswered
from autograder.kernel import CheckFailed

STUDENTS = [f"student{i}" for i in range(60)] + ["ada", "zoë", "a.b-c"]


def rounded(value: float) -> float:
    """What a student types: 4 significant digits."""
    return float(f"{value:.4g}")


@pytest.mark.parametrize("student", STUDENTS)
def test_task2_right_answers_rounded_to_4_digits_pass_and_each_slip_fails_by_name(student):
    for group in lab4.task2_expected(**lab4.student_numbers(student)).values():
        answers = {e.name: rounded(e.value) for e in group}
        assert lab4.diagnose_all(answers, group) == []
        for e in group:
            for slip, wrong in e.slips.items():
                message = e.diagnose(rounded(wrong))
                assert message is not None and slip in message, (e.name, slip)
            assert e.diagnose(-rounded(e.value)) is not None  # a sign slip never passes


def test_textbook_numbers_hide_the_sigmoid_slip_so_grading_uses_per_student_numbers():
    """On x1=4, w1=0.5, w2=0.2 the slip gives 0.24 against 0.2403: within rounding of each other."""
    (dyhat,) = [e for e in lab4.task2_expected(**lab4.WORKED_NUMBERS)["local"] if e.name == "dyhat_dm2"]
    assert not dyhat.separated()
    assert lab4.student_numbers("ada") != lab4.WORKED_NUMBERS


def test_task1_slips_are_named():
    backward = lab4.task1_expected()["backward"]
    answers = {"dloss_ds": 2, "ds_dyhat": 1, "dyhat_dw": 4, "dloss_dw": 4}
    (message,) = lab4.diagnose_all(answers, backward)
    assert "forgot the factor 2" in message
    answers["dloss_dw"] = -8
    assert "wrong sign" in lab4.diagnose_all(answers, backward)[0]


@pytest.fixture
def student(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv(identity.STUDENT_ENV, "ada")
    return "ada"


def right_task2_namespace(student):
    ref = lab4.task2_reference(**lab4.student_numbers(student))
    return {lab4.TASK2_ANSWER_NAMES.get(k, k): rounded(v) for k, v in ref.items()}


def test_value_checks_accept_tensors_and_numpy(student):
    np = pytest.importorskip("numpy")
    ns = right_task2_namespace(student)
    ns["m1"] = torch.tensor(ns["m1"], requires_grad=True) * 1
    ns["yhat_2"] = np.float64(ns["yhat_2"])
    lab4.check_task2_forward(ns)


def test_copied_numbers_fail(student):
    ns = {lab4.TASK2_ANSWER_NAMES.get(k, k): v for k, v in lab4.task2_reference(
        **lab4.student_numbers("grace")).items()}
    with pytest.raises(CheckFailed, match="Your numbers, for student id 'ada'"):
        lab4.check_task2_gradients(ns)


def test_missing_answers_raise_not_implemented(student):
    with pytest.raises(Unanswered, match="`dloss_dw1`"):
        lab4.check_task2_gradients({"dloss_dw2": 1.0})
    assert issubclass(Unanswered, NotImplementedError)


def good_train(x, y, w, lr, steps):
    w = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    ws, losses = [], []
    for _ in range(steps):
        loss = (x * w - y) ** 2
        ws.append(w.item())
        losses.append(loss.item())
        (grad,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            w.sub_(lr * grad)
    return torch.tensor(ws), losses


def accumulating_train(x, y, w, lr, steps):
    w = torch.tensor(float(w), requires_grad=True)
    ws, losses = [], []
    for _ in range(steps):
        loss = (x * w - y) ** 2
        ws.append(w.item())
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            w -= lr * w.grad
    return ws, losses


def uphill_train(x, y, w, lr, steps):
    ws, losses = [], []
    for _ in range(steps):
        ws.append(w)
        losses.append((x * w - y) ** 2)
        w = w + lr * 2 * x * (x * w - y)
    return ws, losses


@pytest.mark.parametrize("hidden", [False, True])
def test_train_check(student, device, hidden):
    lab4.check_train({"train": good_train}, hidden=hidden)
    with pytest.raises(CheckFailed, match="never reset"):
        lab4.check_train({"train": accumulating_train}, hidden=hidden)
    with pytest.raises(CheckFailed, match="up the gradient"):
        lab4.check_train({"train": uphill_train}, hidden=hidden)
    with pytest.raises(CheckFailed, match="one per step"):
        lab4.check_train({"train": lambda **k: good_train(**{**k, "steps": k["steps"] + 1})}, hidden=hidden)


def test_check_result_check(student, device):
    def by_autograd(x, y, w):
        w = torch.tensor(w, requires_grad=True)
        loss = (x * w - y) ** 2
        loss.backward()
        return loss, w.grad

    lab4.check_check_result({"check_result": by_autograd}, hidden=True)
    with pytest.raises(CheckFailed, match="sign is flipped"):
        lab4.check_check_result({"check_result": lambda x, y, w: (by_autograd(x, y, w)[0], -by_autograd(x, y, w)[1])})
    with pytest.raises(AssertionError, match="two numbers"):
        lab4.check_check_result({"check_result": lambda x, y, w: 1.0})


def test_a_pytorch_warning_in_student_code_reaches_stdout_not_stderr(student, capfd):
    def noisy(x, y, w):
        w = torch.tensor(float(w), requires_grad=True)
        yhat = x * w
        loss = (yhat - y) ** 2
        loss.backward()
        _ = yhat.grad  # UserWarning: .grad of a non-leaf tensor
        return loss.item(), w.grad.item()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # were the warning to escape the shield, this test would fail
        lab4.check_check_result({"check_result": noisy})
    out, err = capfd.readouterr()
    assert err == "" and "does not cost points" in out and "not a leaf" in out


def sigmoid_grad(z):
    return torch.sigmoid(z) * (1 - torch.sigmoid(z))


def relu_grad(z):
    return (z > 0).to(z.dtype)


@pytest.mark.parametrize("hidden", [False, True])
def test_activation_checks(student, device, hidden):
    lab4.check_activation_grads({"relu_grad": relu_grad, "sigmoid_grad": sigmoid_grad}, hidden=hidden)
    with pytest.raises(CheckFailed, match=r"x·\(1 − x\)"):
        lab4.check_activation_grads({"relu_grad": relu_grad, "sigmoid_grad": lambda z: z * (1 - z)}, hidden=hidden)
    with pytest.raises(CheckFailed, match="returned σ"):
        lab4.check_activation_grads({"relu_grad": relu_grad, "sigmoid_grad": torch.sigmoid}, hidden=hidden)
    with pytest.raises(AssertionError, match="same shape"):
        lab4.check_activation_grads({"relu_grad": lambda z: 1.0, "sigmoid_grad": sigmoid_grad}, hidden=hidden)


def test_relu_slope_at_zero_follows_pytorch(student):
    with pytest.raises(CheckFailed, match="slope 1 at x = 0"):
        lab4.check_activation_grads({"relu_grad": lambda z: (z >= 0).to(z.dtype), "sigmoid_grad": sigmoid_grad})


def backward_with(dsig, mask=True, factor=2.0):
    def manual_backward(x, W1, w2, y):
        m1 = W1 @ x
        r = torch.relu(m1)
        m2 = w2 @ r
        d_m2 = factor * (torch.sigmoid(m2) - y) * dsig(m2)
        d_m1 = d_m2 * w2 * (relu_grad(m1) if mask else 1)
        return torch.outer(d_m1, x), d_m2 * r
    return manual_backward


@pytest.mark.parametrize("hidden", [False, True])
def test_manual_backward_checks(student, device, hidden):
    lab4.check_manual_backward({"manual_backward": backward_with(sigmoid_grad)}, hidden=hidden)
    cases = [(backward_with(lambda z: z * (1 - z)), "m2·(1 − m2)"),
             (backward_with(sigmoid_grad, factor=1.0), "factor 2"),
             (backward_with(sigmoid_grad, mask=False), "through the ReLU")]
    for fn, named in cases:
        with pytest.raises(CheckFailed, match=re.escape(named)):
            lab4.check_manual_backward({"manual_backward": fn}, hidden=hidden)


def test_manual_backward_cannot_lean_on_autograd(student):
    def via_autograd(x, W1, w2, y):
        W1 = W1.clone().requires_grad_()
        w2 = w2.clone().requires_grad_()
        ((torch.sigmoid(w2 @ torch.relu(W1 @ x)) - y) ** 2).backward()
        return W1.grad, w2.grad

    with pytest.raises(RuntimeError):
        lab4.check_manual_backward({"manual_backward": via_autograd})


def test_identity_in_student_mode(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv(identity.STUDENT_ENV, raising=False)
    monkeypatch.setenv("JUPYTERHUB_USER", "hub-user")
    assert identity.student_id() == ("hub-user", "JUPYTERHUB_USER")
    monkeypatch.setenv(identity.STUDENT_ENV, "ada")
    assert identity.student_id()[0] == "ada"
    monkeypatch.delenv(identity.STUDENT_ENV)
    monkeypatch.delenv("JUPYTERHUB_USER")
    assert identity.student_id()[0] == identity.ANONYMOUS


def test_identity_while_autograding_comes_from_the_submission_folder(monkeypatch, tmp_path):
    folder = tmp_path / "autograded" / "ada" / "lab4"
    folder.mkdir(parents=True)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.delenv(identity.STUDENT_ENV, raising=False)
    monkeypatch.setenv("JUPYTERHUB_USER", "instructor")
    assert identity.student_id()[0] == "ada"
    monkeypatch.setenv(identity.STUDENT_ENV, "grace")
    with pytest.raises(identity.UnknownStudent):
        identity.student_id()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(identity.STUDENT_ENV)
    with pytest.raises(identity.UnknownStudent):
        identity.student_id()


def test_recheck_rejects_missing_extra_or_malformed_payloads():
    good = {"item": "t1_forward", "data": {"yhat": 2.0, "s": 1.0, "loss": 1.0}}
    assert recheck.cell_problems(lab4, "t1_forward", [good], "ada") == []
    assert recheck.cell_problems(lab4, "t1_forward", [], "ada")
    assert recheck.cell_problems(lab4, "t1_train", [{"item": "t1_train", "data": {}}], "ada")
    malformed = {"item": "t1_forward", "data": {"yhat": "x"}}
    assert recheck.cell_problems(lab4, "t1_forward", [malformed], "ada")
    wrong = {"item": "t1_forward", "data": {"yhat": 2.0, "s": 1.0, "loss": 2.0}}
    assert recheck.cell_problems(lab4, "t1_forward", [wrong], "ada")
