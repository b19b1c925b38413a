"""Lab 3: references against closed forms and finite differences, stated facts, and checks."""

import pytest
import torch
from torch import nn

from autograder.labs import lab3
from autograder.labs.checks import DRAWS_PER_CASE
from course import identity
from course import lab3 as kit
from course.answers import Unanswered, relative_error
from course.checks import CheckFailed

from helpers import SEED, SEEDS, drawn_probes, run_test_cell, texts


def test_accumulation_numbers_stated_by_the_lab(device):
    ref = kit.accumulation_values([1.0, 2.0, 3.0, 4.0], 5.0)
    assert ref == {"grad_once": [28.0, 36.0, 44.0, 52.0], "grad_twice": [56.0, 72.0, 88.0, 104.0]}


@pytest.mark.parametrize("student", [f"s{i}" for i in range(40)] + ["ada"])
def test_accumulation_reference_is_the_closed_form(student):
    n = kit.student_numbers(student)
    once = [4 * (2 * a + n["k"]) for a in n["a"]]
    assert kit.accumulation_values(n["a"], n["k"]) == {"grad_once": once, "grad_twice": [2 * g for g in once]}
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
    assert [lab3.after_clearing(m) for m in kit.CLEARING] == ["zeros", "None", "None", "zeros"]


def test_full_batch_gradient_is_the_gradcheck_verified_gradient(device):
    model, X, y = kit.problem_data(8, 0)
    names = [name for name, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in model.parameters())

    def loss(*params):
        return nn.functional.mse_loss(torch.func.functional_call(model, dict(zip(names, params, strict=True)), (X,)), y)

    assert torch.autograd.gradcheck(loss, params)  # central differences in float64 agree with autograd
    for ref, grad in zip(lab3.full_batch_gradients(8, 0), torch.autograd.grad(loss(*params), params), strict=True):
        assert relative_error(ref, grad) < 1e-12


def test_problem_data_ignores_the_global_random_state():
    torch.manual_seed(1)
    first = [p.tolist() for p in kit.problem_data(8, 0)[0].parameters()]
    torch.manual_seed(2)
    assert first == [p.tolist() for p in kit.problem_data(8, 0)[0].parameters()]


@pytest.fixture
def ada(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv(identity.STUDENT_ENV, "ada")
    return kit.student_numbers("ada")


def test_accumulation_check(ada):
    once = [4 * (2 * a + ada["k"]) for a in ada["a"]]
    kit.check.values({"grad_once": torch.tensor(once), "grad_twice": [2 * g for g in once]}, "grad_once", "grad_twice")
    with pytest.raises(CheckFailed, match="adds to it"):
        kit.check.values({"grad_once": once, "grad_twice": once}, "grad_once", "grad_twice")
    with pytest.raises(CheckFailed, match="half the right value"):
        kit.check.values({"grad_once": [g / 2 for g in once], "grad_twice": [2 * g for g in once]},
                         "grad_once", "grad_twice")


def test_retain_and_clearing_checks(ada):
    right = {e: lab3.needs_retain_graph(e) for e in ada["expressions"]}
    kit.check.table({"needs_retain": right}, "needs_retain")
    with pytest.raises(CheckFailed, match=f"{sum(right.values())} of 5 predictions are right"):
        kit.check.table({"needs_retain": {e: True for e in right}}, "needs_retain")
    with pytest.raises(CheckFailed, match="needs exactly these keys"):
        kit.check.table({"needs_retain": {"(x + 2).sum()": False}}, "needs_retain")
    with pytest.raises(NotImplementedError):
        kit.check.table({"after_clear": {m: ... for m in kit.CLEARING}}, "after_clear")
    with pytest.raises(CheckFailed, match="3 of 4 predictions are right"):  # optimizer.zero_grad() leaves None, not zeros
        kit.check.table({"after_clear": {m: "zeros" if "zero" in m else "None" for m in kit.CLEARING}}, "after_clear")


def test_grader_table_verdicts(ada):
    """The grader's own verification of the tables, on published pairs."""
    retain, clearing = lab3.LAB.checks["t2_retain"], lab3.LAB.checks["t3_clearing"]
    assert retain.verify_data([[e, lab3.needs_retain_graph(e)] for e in ada["expressions"]], "ada") == []
    assert "nothing to free" in " ".join(texts(retain.verify_data([[e, True] for e in ada["expressions"]], "ada")))
    assert "needs exactly these keys" in texts(retain.verify_data([["(x + 2).sum()", False]], "ada"))[0]
    wrong = [[m, "zeros" if "zero" in m else "None"] for m in kit.CLEARING]
    assert "None by default" in texts(clearing.verify_data(wrong, "ada"))[0]


def grader_problems(grade_id: str, functions: dict, hidden: bool) -> list[str]:
    """Run the student's functions as the kit does on the grader's probes, and verify as the grader does."""
    check = lab3.LAB.checks[grade_id]
    probes = check.hidden_probes(SEED) if hidden else check.visible
    outputs = [kit.check.functions[check.name].run(functions, p) for p in probes]
    return texts(check.judge(probes, outputs, hidden, check.hidden_cases(SEED) if hidden else None))


def micro(scale=True, clear=True):
    def accumulate_gradients(model, X, y, k):
        if clear:
            model.zero_grad()
        for xb, yb in zip(X.chunk(k), y.chunk(k), strict=True):
            (nn.functional.mse_loss(model(xb), yb) / (k if scale else 1)).backward()
        return [p.grad.clone() for p in model.parameters()]
    return accumulate_gradients


def test_micro_batch_check(ada, device):
    kit.check.function({"accumulate_gradients": micro()}, "accumulate_gradients")
    with pytest.raises(CheckFailed, match="times too large"):
        kit.check.function({"accumulate_gradients": micro(scale=False)}, "accumulate_gradients")
    with pytest.raises(CheckFailed, match="stale gradients"):
        kit.check.function({"accumulate_gradients": micro(clear=False)}, "accumulate_gradients")


@pytest.mark.parametrize("hidden", [False, True])
def test_micro_batch_grader(ada, device, hidden):
    assert grader_problems("t4_micro_batches", {"accumulate_gradients": micro()}, hidden) == []
    assert "times too large" in grader_problems("t4_micro_batches", {"accumulate_gradients": micro(scale=False)},
                                                hidden)[0]
    assert "stale gradients" in grader_problems("t4_micro_batches", {"accumulate_gradients": micro(clear=False)},
                                                hidden)[0]


def full_batch(model, X, y, k):
    """The shortcut: one backward of the whole batch's loss (the same gradients on a plain model)."""
    model.zero_grad()
    nn.functional.mse_loss(model(X), y).backward()
    return [p.grad.clone() for p in model.parameters()]


def counted_then_full_batch(model, X, y, k):
    """The shortcut, after running the model on each micro-batch for show."""
    with torch.no_grad():
        for xb in X.chunk(k):
            model(xb)
    return full_batch(model, X, y, k)


@pytest.mark.parametrize("shortcut", [full_batch, counted_then_full_batch])
def test_the_full_batch_shortcut_fails_in_the_notebook(ada, device, shortcut):
    with pytest.raises(CheckFailed, match=r"ran the model on batches of \[8\]|\[4, 4, 8\]"):
        kit.check.function({"accumulate_gradients": shortcut}, "accumulate_gradients")


def test_the_full_batch_shortcut_fails_by_value_when_the_kernel_stops_counting(ada, device, monkeypatch):
    """A kernel that switched the counting off still meets the grader's model that normalises over
    its batch: there the shortcut's gradients are not the micro-batches' ones, and it is named."""
    def uncounted(functions, probe):
        model, X, y = kit.stale_problem(probe["samples"], probe["seed"], probe.get("normalised", False))
        return kit._tensor_lists("accumulate_gradients", functions["accumulate_gradients"](model, X, y, probe["k"]))

    monkeypatch.setattr(kit.check.functions["accumulate_gradients"], "run", uncounted)
    assert grader_problems("t4_micro_batches", {"accumulate_gradients": micro()}, True) == []
    problems = grader_problems("t4_micro_batches", {"accumulate_gradients": full_batch}, True)
    assert len(problems) == DRAWS_PER_CASE  # one per normalising probe
    assert all(p.startswith("On one of the grader's hidden inputs") and "instead of on k micro-batches" in p
               for p in problems)


def test_micro_batches_and_the_full_batch_differ_only_where_the_model_normalises_over_its_batch(device):
    for probe in drawn_probes(lab3.LAB.checks["t4_micro_batches"], SEEDS[:10]):
        micro_grads = lab3._plain(lab3.micro_batch_gradients(probe))
        full = lab3._plain(lab3.full_batch_gradients(probe["samples"], probe["seed"], probe.get("normalised", False)))
        assert lab3.close_gradients(micro_grads, full) is not probe.get("normalised", False)


def test_layer_grad_check(ada, device):
    def right(model, X, y):
        model.zero_grad()
        nn.functional.mse_loss(model(X), y).backward()
        return model[0].weight.grad

    kit.check.function({"first_layer_grad": right}, "first_layer_grad")
    kit.check.function({"first_layer_grad": right}, "first_layer_grad", hidden=lab3.LAB.checks["t5_layer_grad"].hidden_probes(SEED))
    with pytest.raises(CheckFailed, match="not model"):
        kit.check.function({"first_layer_grad": lambda m, X, y: m[0].weight}, "first_layer_grad")
    assert grader_problems("t5_layer_grad", {"first_layer_grad": right}, hidden=True) == []
    assert "not model" in grader_problems("t5_layer_grad", {"first_layer_grad": lambda m, X, y: m[0].weight},
                                          hidden=True)[0]


def test_a_function_that_still_raises_not_implemented_is_unanswered_by_name(ada, device):
    def first_layer_grad(model, X, y):
        raise NotImplementedError()  # as the released answer cell is

    with pytest.raises(Unanswered, match="^`first_layer_grad` still raises NotImplementedError: write its body"):
        kit.check.function({"first_layer_grad": first_layer_grad}, "first_layer_grad")
    with pytest.raises(NotImplementedError, match="sparse"):  # torch's own, with its message, stays as it is
        kit.check.function({"first_layer_grad": lambda m, X, y: exec('raise NotImplementedError("sparse")')},
                           "first_layer_grad")


def test_a_layer_gradient_taken_without_clearing_the_old_ones_fails_and_is_named(ada, device):
    def no_clearing(model, X, y):
        nn.functional.mse_loss(model(X), y).backward()
        return model[0].weight.grad

    with pytest.raises(CheckFailed, match="did not clear the old gradients"):
        kit.check.function({"first_layer_grad": no_clearing}, "first_layer_grad")
    problems = grader_problems("t5_layer_grad", {"first_layer_grad": no_clearing}, hidden=True)
    assert problems and all("did not clear the old gradients" in p for p in problems)


@pytest.mark.parametrize("student", ["ada", "s-17", "s3"])
def test_task1_values_and_named_slips_are_the_closed_forms(student):
    n = kit.student_numbers(student)
    once = [4 * (2 * a + n["k"]) for a in n["a"]]  # d/da (2a + k)² = 2(2a + k) · 2, for each element
    answers = kit.check.expected_answers(student)
    assert answers["grad_once"].value == once and answers["grad_twice"].value == [2 * g for g in once]
    (half,) = answers["grad_once"].slips.values()
    (kept,) = answers["grad_twice"].slips.values()
    assert half == [g / 2 for g in once] and kept == once


def test_the_lab_states_the_graders_tolerance_for_micro_batch_gradients():
    from helpers import REPO

    source = (REPO / "source" / "lab3" / "lab3.py").read_text()
    assert lab3.MAX_REL_ERROR == 1e-6 and "by relative error, at most 1e-6" in source


@pytest.mark.parametrize("text, works", [("x.sum()", True), ("(x + y + 1).sum()", True),
                                         ("(x * 3).sum()", False), ("x.tanh().sum()", False)])
def test_the_observe_cells_expressions_behave_as_the_lab_says(text, works):
    """Task 2's observe cell runs these (nobody's task); the lab says `x * 3` saves the 3."""
    assert not set(kit.EXPRESSIONS) & {text}
    x = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    y = torch.tensor([1.0, 2.0, 3.0])
    out = eval(text, {"torch": torch}, {"x": x, "y": y})
    out.backward()
    if works:
        out.backward()
        assert x.grad.tolist() == [2.0, 2.0, 2.0]
    else:
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            out.backward()


# ---------------------------------------------------------------- Task 6: the traps

def test_every_trap_is_what_pytorch_does():
    """Each statement checked here by hand, independently of the grader's observations."""
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w = torch.ones(2, requires_grad=True)
        w += 1
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x.exp()
    y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    y = x * 2
    y.add_(1)
    y.sum().backward()  # nothing of y was saved
    A = torch.tensor(1.0, requires_grad=True)
    (A * A).backward()
    A = A - 0.1 * A.grad
    assert not A.is_leaf and A.requires_grad
    s = torch.tensor(3.0, requires_grad=True)
    (s.detach() * s).backward()
    assert s.grad.item() == 3.0
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        x.backward()
    x.backward(gradient=torch.ones(3))  # what the lab says works instead
    with pytest.raises(RuntimeError, match="floating point"):
        torch.tensor(3, requires_grad=True)
    assert [lab3.TRAP_TRUTHS[t]() for t in kit.TRAPS] == [True, True, False, True, False, True, True]


def test_a_wrong_trap_prediction_is_counted_in_the_notebook_and_explained_by_the_grader(student):
    truths = {t: lab3.TRAP_TRUTHS[t]() for t in kit.TRAPS}
    answer = {**truths, kit.TRAPS[4]: True}
    error, problems = run_test_cell("lab3", "t6_traps", {"traps": answer})
    assert "6 of 7 predictions are right" in str(error) and "detach" not in str(error)
    assert problems == [f"{kit.TRAPS[4]}: False, not True: detach() turns s into a constant factor, so the "
                        "gradient is that constant, 3."]
    assert run_test_cell("lab3", "t6_traps", {"traps": truths}) == (None, [])


def test_why_a_leaf_cannot_change_in_place_as_task_6_explains_it():
    """An in-place change of a tensor that requires grad is recorded as a node whose output is that
    tensor; for a leaf that would end its being a leaf, so autograd refuses, and under no_grad
    nothing is recorded: the leaf stays a leaf."""
    x = torch.ones(2, requires_grad=True)
    y = x * 1
    y.add_(1)
    assert type(y.grad_fn).__name__ == "AddBackward0" and not y.is_leaf
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad .* in-place"):
        w.add_(1)
    with torch.no_grad():
        w.add_(1)
    assert w.is_leaf and w.grad_fn is None and w.tolist() == [2.0, 2.0]


def forward_all_then_backward(model, X, y, k):
    """A right accumulate_gradients in another order: every micro-batch's forward pass first."""
    model.zero_grad(set_to_none=False)
    losses = [nn.functional.mse_loss(model(xb), yb) / k for xb, yb in zip(X.chunk(k), y.chunk(k), strict=True)]
    for loss in losses:
        loss.backward()
    return [p.grad.detach().clone() for p in model.parameters()]


# BatchNorm problems on which that order, run with two threads against a one-thread reference, left
# rounding noise of 1e-6 relative in the first layer's bias gradient (exactly 0 in exact arithmetic).
NOISY_ZEROS = [{"samples": 12, "k": 3, "seed": 426496, "normalised": True},
               {"samples": 20, "k": 4, "seed": 647442, "normalised": True},
               {"samples": 16, "k": 4, "seed": 434154, "normalised": True}]


@pytest.mark.parametrize("probe", NOISY_ZEROS)
def test_a_gradient_that_is_zero_up_to_rounding_does_not_fail_a_right_answer(probe):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        right = lab3._plain(lab3.micro_batch_gradients(probe))
        torch.set_num_threads(2)
        got = lab3._plain(forward_all_then_backward(*kit.stale_problem(probe["samples"], probe["seed"], True),
                                                    probe["k"]))
    finally:
        torch.set_num_threads(threads)
    assert max(relative_error(g, r) for g, r in zip(got, right, strict=True)) > lab3.MAX_REL_ERROR  # what failed it before
    assert lab3.close_gradients(got, right)
    for mistake in lab3.LAB.checks["t4_micro_batches"].mistakes_known:
        slipped = mistake.gives(probe)
        assert slipped is None or not lab3.close_gradients(slipped, right), mistake.why
