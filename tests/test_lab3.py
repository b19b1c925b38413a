"""Lab 3: references against closed forms and finite differences, stated facts, and checks."""

import pytest
import torch
from torch import nn

from autograder import identity, lab3
from autograder.compare import relative_error
from autograder.kernel import CheckFailed


def test_accumulation_numbers_stated_by_the_lab(device):
    ref = lab3.accumulation_reference([1.0, 2.0, 3.0, 4.0], 5.0)
    assert ref == {"grad_once": [28.0, 36.0, 44.0, 52.0], "grad_twice": [56.0, 72.0, 88.0, 104.0]}


@pytest.mark.parametrize("student", [f"s{i}" for i in range(40)] + ["ada"])
def test_accumulation_reference_is_the_closed_form(student):
    n = lab3.student_numbers(student)
    once = [4 * (2 * a + n["k"]) for a in n["a"]]
    assert lab3.accumulation_reference(n["a"], n["k"]) == {"grad_once": once, "grad_twice": [2 * g for g in once]}
    assert 2 <= sum(map(lab3.needs_retain_graph, n["expressions"])) <= 3


def test_second_backward_facts_stated_by_the_lab():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    out = (x + 2).sum()
    out.backward()
    out.backward()  # nothing saved: works, and the gradient adds up
    assert x.grad.tolist() == [2.0, 2.0]
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        out = (x * x).sum()
        out.backward()
        out.backward()
    assert [lab3.needs_retain_graph(e) for e in ("(x + 2).sum()", "(x * x).sum()", "x.exp().sum()")] == \
        [False, True, True]


def test_clearing_facts_stated_by_the_lab():
    assert [lab3.after_clearing(m) for m in lab3.CLEARING] == ["zeros", "None", "None", "zeros"]


def test_full_batch_gradient_by_finite_differences(device):
    model, X, y = lab3.problem_data(8, 0)
    ref = lab3.full_batch_gradients(8, 0)
    for p, g in zip(model.parameters(), ref):
        numeric = torch.zeros_like(p)
        for i in range(p.numel()):
            with torch.no_grad():
                p.view(-1)[i] += 1e-6
                up = nn.functional.mse_loss(model(X), y).item()
                p.view(-1)[i] -= 2e-6
                down = nn.functional.mse_loss(model(X), y).item()
                p.view(-1)[i] += 1e-6
            numeric.view(-1)[i] = (up - down) / 2e-6
        assert relative_error(g, numeric) < 1e-6


def test_problem_data_ignores_the_global_random_state():
    torch.manual_seed(1)
    first = [p.tolist() for p in lab3.problem_data(8, 0)[0].parameters()]
    torch.manual_seed(2)
    assert first == [p.tolist() for p in lab3.problem_data(8, 0)[0].parameters()]


@pytest.fixture
def ada(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv(identity.STUDENT_ENV, "ada")
    return lab3.student_numbers("ada")


def test_accumulation_check(ada):
    once = [4 * (2 * a + ada["k"]) for a in ada["a"]]
    lab3.check_accumulation({"grad_once": torch.tensor(once), "grad_twice": [2 * g for g in once]})
    with pytest.raises(CheckFailed, match="adds to it"):
        lab3.check_accumulation({"grad_once": once, "grad_twice": once})
    with pytest.raises(CheckFailed, match="half the right value"):
        lab3.check_accumulation({"grad_once": [g / 2 for g in once], "grad_twice": [2 * g for g in once]})


def test_retain_and_clearing_checks(ada):
    right = {e: lab3.needs_retain_graph(e) for e in ada["expressions"]}
    lab3.check_retain({"needs_retain": right})
    with pytest.raises(CheckFailed, match="nothing to free"):
        lab3.check_retain({"needs_retain": {e: True for e in right}})
    with pytest.raises(CheckFailed, match="exactly your expressions"):
        lab3.check_retain({"needs_retain": {"(x + 2).sum()": False}})
    with pytest.raises(NotImplementedError):
        lab3.check_clearing({"after_clear": {m: ... for m in lab3.CLEARING}})
    with pytest.raises(CheckFailed, match="None by default"):
        lab3.check_clearing({"after_clear": {m: "zeros" if "zero" in m else "None" for m in lab3.CLEARING}})


def micro(scale=True, clear=True):
    def accumulate_gradients(model, X, y, k):
        if clear:
            model.zero_grad()
        for xb, yb in zip(X.chunk(k), y.chunk(k)):
            (nn.functional.mse_loss(model(xb), yb) / (k if scale else 1)).backward()
        return [p.grad.clone() for p in model.parameters()]
    return accumulate_gradients


@pytest.mark.parametrize("hidden", [False, True])
def test_micro_batch_check(ada, device, hidden):
    lab3.check_micro_batches({"accumulate_gradients": micro()}, hidden=hidden)
    with pytest.raises(CheckFailed, match="times too large"):
        lab3.check_micro_batches({"accumulate_gradients": micro(scale=False)}, hidden=hidden)
    with pytest.raises(CheckFailed, match="stale gradients"):
        lab3.check_micro_batches({"accumulate_gradients": micro(clear=False)}, hidden=hidden)


def test_layer_grad_check(ada, device):
    def right(model, X, y):
        model.zero_grad()
        nn.functional.mse_loss(model(X), y).backward()
        return model[0].weight.grad

    lab3.check_layer_grad({"first_layer_grad": right}, hidden=True)
    with pytest.raises(CheckFailed, match="not model"):
        lab3.check_layer_grad({"first_layer_grad": lambda m, X, y: m[0].weight})
