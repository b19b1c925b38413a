"""Lab 1: references against closed forms, numbers the lab states, and checks against slips."""

import contextlib
import json

import pytest
import torch

import course.checks
from autograder.labs import lab1
from autograder.pipeline import kitdata
from course import identity
from course import lab1 as kit
from course.answers import diagnose_all
from course.checks import CheckFailed, report, sealed

from helpers import SEED, SEEDS, assert_formula_slips_are_far_and_distinct, assert_named_slips, drawn_probes, graded_formula, texts


def test_step_reference_matches_the_chain_rule(device):
    for A, B, target, lr in ((0.0, 0.0, 10.0, 0.01), (-2.0, 2.0, 6.0, 0.02), (1.5, 2.5, 11.0, 0.1)):
        u = A + B - target
        ref = kit.step_reference(A, B, target, lr)
        assert ref == pytest.approx({"u": u, "loss": u * u, "dloss_dA": 2 * u, "dloss_dB": 2 * u,
                                     "A_next": A - lr * 2 * u})


def test_textbook_gradients_are_minus_20():
    ref = kit.step_reference(0.0, 0.0, 10.0, 0.01)
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
        assert lab1.measured_factor(lr) == pytest.approx(lab1.distances(lr, 1)[1] / -10.0)  # what descent does
        for n in (1, 3, 7, 40):  # n parameters that add up: each moves by lr · 2u
            assert lab1.measured_factor(lr, n) == pytest.approx(1 - 2 * n * lr, abs=1e-12)
    assert [lab1.regime(lr) for lr in (0.2, 0.25, 0.3, 0.49, 0.51)] == \
        ["monotone", "one step", "oscillating", "oscillating", "diverging"]
    for name, lrs in kit.REGIME_LRS.items():
        assert {lab1.regime(lr) for lr in lrs} == {name}


def test_without_reset_the_loss_swings_back_to_its_start():
    losses = lab1.descent_reference(0.0, 0.0, 10.0, 0.01, 200, zero_grad=False)["losses"]
    assert min(losses[1:]) < 0.1 and max(losses[30:]) > 99


@pytest.mark.parametrize("student", [f"s{i}" for i in range(60)] + ["ada", "zoë"])
def test_step_slips_fail_by_name_and_rounded_answers_pass(student):
    n = kit.student_numbers(student)
    assert len(set(n["rates"])) == 4 and all(lr in kit.REGIME_LRS[lab1.regime(lr)] for lr in n["rates"])
    expected = kit.step_expected(n["A"], n["B"], n["target"], n["lr"])
    assert diagnose_all({e.name: float(f"{e.value:.4g}") for e in expected}, expected, student) == []
    for e in expected:
        for slip, wrong in e.slips.items():
            assert slip in e.diagnose(float(f"{wrong:.4g}"))


@pytest.fixture
def ada(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv(identity.STUDENT_ENV, "ada")
    return kit.student_numbers("ada")


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
        for lst, v in zip(out, (A, B, loss), strict=True):
            lst.append(v.item())
    return out


def graded(grade_id: str, namespace: dict) -> list[str]:
    """Run a test cell as the notebook does (visible and hidden parts), then verify what it handed
    over as the grader does; the grader's problems."""
    check = lab1.LAB.checks[grade_id]
    payloads = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(course.checks, "publish", payloads.append)
        for hidden in [None] + ([check.hidden_probes(SEED)] if check.hidden_probes() else []):
            with contextlib.suppress(CheckFailed):
                kit.check.function(namespace, check.name, hidden=hidden)
    return [problem.text for problem in lab1.LAB.verify_cell(grade_id, payloads, "ada", seed=SEED)]


def verdict(grade_id: str, namespace: dict, hidden: bool) -> None:
    """The kernel's verdict on the visible probes, or the grader's on the hidden ones; raise CheckFailed."""
    name = lab1.LAB.checks[grade_id].name
    if hidden:
        report(name, graded(grade_id, namespace), "right.")
    else:
        kit.check.function(namespace, name)


@pytest.mark.parametrize("hidden", [False, True])
def test_descent_check(ada, device, hidden):
    verdict("t2_descent", {"gradient_descent": descent}, hidden)
    with pytest.raises(CheckFailed, match="never reset"):
        verdict("t2_descent", {"gradient_descent": lambda *a, **k: descent(*a, **k, reset=False)}, hidden)
    with pytest.raises(CheckFailed, match="up the gradient"):
        verdict("t2_descent", {"gradient_descent": lambda *a, **k: descent(*a, **k, sign=1.0)}, hidden)


def test_a_loop_that_makes_int_tensors_fails_the_visible_check_saying_why(ada):
    assert all(isinstance(v, int) for v in kit.check.expected["functions"]["gradient_descent"]["probes"][0].values()
               if not isinstance(v, (bool, float)))  # the lab's own call, gradient_descent(0, 0, 10, ...)

    def from_the_ints(A, B, target, lr, epochs, zero_grad=True):
        return descent(torch.tensor(A, requires_grad=True).item(), B, target, lr, epochs, zero_grad)

    with pytest.raises(CheckFailed, match="Integer tensors cannot require gradients") as failed:
        verdict("t2_descent", {"gradient_descent": from_the_ints}, hidden=False)
    assert "gradient_descent(A=0, B=0, target=10" in str(failed.value)

    def another_error(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):  # unknown errors are left as they are
        verdict("t2_descent", {"gradient_descent": another_error}, hidden=False)


def test_descent_check_requires_the_zero_grad_flag(ada):
    always_reset = lambda *a, zero_grad=True, **k: descent(*a, **k)  # noqa: E731
    with pytest.raises(CheckFailed, match="although zero_grad=False"):
        verdict("t2_descent", {"gradient_descent": always_reset}, hidden=True)


def test_regimes_check(ada):
    right = {lr: lab1.regime(lr) for lr in ada["rates"]}
    kit.check.table({"predictions": right}, "predictions")
    kit.check.table({"predictions": {str(lr): v for lr, v in right.items()}}, "predictions")
    first = ada["rates"][0]
    said = next(regime for regime in kit.REGIMES if regime != right[first])
    with pytest.raises(CheckFailed, match=f"{len(right) - 1} of {len(right)} predictions are right") as failed:
        kit.check.table({"predictions": {**right, first: said}}, "predictions")
    assert right[first] not in str(failed.value)  # the kit's data does not spell out the truth
    assert said not in str(failed.value) and "lr =" not in str(failed.value)  # nor which entry is wrong
    with pytest.raises(CheckFailed, match="needs an entry for each of your learning rates"):
        kit.check.table({"predictions": {ada["rates"][0]: right[ada["rates"][0]]}}, "predictions")
    with pytest.raises(AssertionError, match="use one of"):
        kit.check.table({"predictions": {0.1: "slow"}}, "predictions")
    with pytest.raises(AssertionError, match="use the learning rate as a number"):
        kit.check.table({"predictions": {"fast": "monotone"}}, "predictions")
    with pytest.raises(NotImplementedError):
        kit.check.table({}, "predictions")


def test_regimes_grader_verdict(ada):
    check = lab1.LAB.checks["t3_regimes"]
    right = [[kit.rate_key(lr), lab1.regime(lr)] for lr in ada["rates"]]
    assert check.verify_data(right, "ada") == []
    lr = next(lr for lr in ada["rates"] if lab1.regime(lr) == "oscillating")
    wrong = [[k, "monotone" if k == kit.rate_key(lr) else v] for k, v in right]
    (problem,) = texts(check.verify_data(wrong, "ada"))
    assert f"multiplies u by {1 - 4 * lr:+.2f}" in problem and "but it is 'oscillating'" in problem
    assert "1 − 4·lr" not in problem  # the factor's formula is Task 3's derivation
    assert "needs an entry for each of your learning rates" in texts(check.verify_data(right[1:], "ada"))[0]


def test_a_factor_that_rounds_to_zero_reads_plus_zero():
    assert lab1.measured_factor(0.25) == 0.0  # −0.0 in floating point: autograd's u is exactly 0
    assert lab1.signed(lab1.measured_factor(0.25)) == lab1.signed(-0.001) == "+0.00"
    assert lab1.signed(-0.04) == "-0.04"


def test_kit_data_matches_the_grader():
    assert kitdata.agree(json.loads(kitdata.render("lab1")), kit.check.expected)
    assert kit.check.expected["tables"]["predictions"] == {
        kit.rate_key(lr): sealed("lab1", "predictions", kit.rate_key(lr), name)
        for name, lrs in kit.REGIME_LRS.items() for lr in lrs}


@pytest.mark.parametrize("lr", [0.1, 0.25, 0.4, 0.55])
def test_the_learning_rate_explorers_closed_form_is_what_autograd_does(lr):
    """notebooks/learning_rate_explorer.py draws u_k = −10 · (1 − 4·lr)^k instead of running descent."""
    run = lab1.descent_reference(0.0, 0.0, 10.0, lr, 12)
    for k, (a, b) in enumerate(zip(run["As"], run["Bs"], strict=True), start=1):
        assert a + b == pytest.approx(10 - 10 * (1 - 4 * lr) ** k, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("student", ["ada", "zoë", "s-17", "s-18"])
def test_every_named_slip_is_the_value_its_name_says(student):
    n = kit.student_numbers(student)
    A, B, target, lr = n["A"], n["B"], n["target"], n["lr"]
    u = A + B - target
    assert_named_slips(kit.check.expected_answers(student), {
        ("u", "computed target − (A + B)"): -u, ("loss", "forgot to square u"): u,
        ("dloss_dA", "forgot the factor 2"): u, ("dloss_dA", "gave the loss"): u * u,
        ("dloss_dB", "forgot the factor 2"): u,
        ("A_next", "stepped uphill"): A + lr * 2 * u, ("A_next", "left out the learning rate"): A - 2 * u,
        ("A_next", "forgot the factor 2"): A - lr * u})


# ---------------------------------------------------------------- Task 1's step graded as a formula

STEP_HEAD = "def one_step(A, B, target, lr):\n"
STEP_RIGHT = {
    "solution": STEP_HEAD + "    u = A + B - target\n    return u * u, 2 * u, 2 * u, A - 2 * lr * u, B - 2 * lr * u\n",
    "expanded, as a list": STEP_HEAD + ("    g = 2 * A + 2 * B - 2 * target\n"
                                        "    return [(A + B - target) ** 2, g, g, A - lr * g, B - lr * g]\n"),
}
STEP_SLIPS = {
    "forgot to square u": STEP_HEAD + "    u = A + B - target\n    return u, 2 * u, 2 * u, A - 2 * lr * u, B - 2 * lr * u\n",
    "forgot the factor 2": STEP_HEAD + "    u = A + B - target\n    return u * u, u, u, A - lr * u, B - lr * u\n",
    "stepped uphill": STEP_HEAD + "    u = A + B - target\n    return u * u, 2 * u, 2 * u, A + 2 * lr * u, B + 2 * lr * u\n",
    "left out the learning rate": STEP_HEAD + "    u = A + B - target\n    return u * u, 2 * u, 2 * u, A - 2 * u, B - 2 * u\n",
}


@pytest.mark.parametrize("source", STEP_RIGHT.values(), ids=STEP_RIGHT)
def test_right_step_formulas_in_other_words_pass(student, source):
    assert graded_formula("lab1", "t1_step_formula", source) == (None, [])


@pytest.mark.parametrize("words, source", STEP_SLIPS.items(), ids=STEP_SLIPS)
def test_each_slip_in_the_step_formula_is_named(student, words, source):
    _, problems = graded_formula("lab1", "t1_step_formula", source)
    assert problems and all(words in problem for problem in problems), problems


def test_every_step_formula_slip_is_far_from_the_truth_on_the_hidden_inputs():
    assert_formula_slips_are_far_and_distinct(lab1.LAB.checks["t1_step_formula"], lab1.one_step_reference,
                                              lab1.one_step_slips)
    for A, B, target, lr in drawn_probes(lab1.LAB.checks["t1_step_formula"]):
        assert abs(abs(A + B - target) - 1) > 0.1 and lr not in (0.5, 1.0)


# ---------------------------------------------------------------- Task 3's shrink factor, a derivation

FACTOR_HEAD = "def shrink_factor(lr, n):\n"
FACTOR_RIGHT = {
    "solution": FACTOR_HEAD + "    return 1 - 2 * n * lr\n",
    "step by step, with a conditional": FACTOR_HEAD + ("    grad_over_u = 2.0\n    moved = n * lr * grad_over_u\n"
                                                      "    return 1.0 - moved if n > 0 else 1.0\n"),
}
FACTOR_SLIPS = {
    "as if one parameter moved": FACTOR_HEAD + "    return 1 - 2 * lr\n",
    "kept the two-parameter factor": FACTOR_HEAD + "    return 1 - 4 * lr\n",
    "forgot the factor 2": FACTOR_HEAD + "    return 1 - n * lr\n",
    "stepped uphill": FACTOR_HEAD + "    return 1 + 2 * n * lr\n",
}


@pytest.mark.parametrize("source", FACTOR_RIGHT.values(), ids=FACTOR_RIGHT)
def test_right_shrink_factors_in_other_words_pass(student, source):
    assert graded_formula("lab1", "t3_factor", source) == (None, [])


@pytest.mark.parametrize("words, source", FACTOR_SLIPS.items(), ids=FACTOR_SLIPS)
def test_each_slip_in_the_shrink_factor_is_named(student, words, source):
    _, problems = graded_formula("lab1", "t3_factor", source)
    assert problems and all(words in problem for problem in problems), problems


def test_a_shrink_factor_simulated_with_a_numerical_slope_is_named_and_scores_nothing(student):
    simulated = FACTOR_HEAD + ("    h = 1e-5\n    u = -10.0\n    slope = ((u + h) ** 2 - (u - h) ** 2) / (2 * h)\n"
                               "    return (u - n * lr * slope) / u\n")
    _, problems = graded_formula("lab1", "t3_factor", simulated)
    assert problems and "numerical derivative" in problems[0]


def test_every_shrink_factor_slip_is_far_from_the_truth_on_the_hidden_inputs():
    assert_formula_slips_are_far_and_distinct(lab1.LAB.checks["t3_factor"], lambda *p: [lab1.measured_factor(*p)],
                                              lab1.factor_slips)


def test_sorting_the_rates_does_not_answer_the_regime_table():
    """Each rate's regime is drawn on its own: the regimes' counts vary between students, so
    reading the four rates in order as monotone, one step, oscillating, diverging is mostly wrong."""
    by_rank, counts = 0, set()
    for i in range(200):
        rates = kit.student_numbers(f"student{i}")["rates"]
        truth = [lab1.regime(lr) for lr in rates]
        assert len(set(rates)) == len(rates) == 4
        by_rank += [lab1.regime(lr) for lr in sorted(rates)] == list(kit.REGIMES)
        counts.add(tuple(sorted(truth.count(r) for r in kit.REGIMES)))
    assert by_rank < 50 and len(counts) >= 4, (by_rank, counts)



# ---------------------------------------------------------------- Task 4's unrolled recurrence, a formula

UNROLLED = lab1.LAB.checks["t4_unrolled"]


@pytest.mark.parametrize("probe", UNROLLED.visible + drawn_probes(UNROLLED, SEEDS[:3]))
def test_the_unrolled_reference_is_the_closed_form_summed_over_steps(device, probe):
    """h3 = w³h0 + w² + w + 1; dh3/dw = 3w²h0 + 2w + 1, which is the three steps' terms added."""
    w, h0 = probe
    h3, grad = lab1.unrolled_reference(w, h0)
    h1, h2 = w * h0 + 1, w * (w * h0 + 1) + 1
    assert h3 == pytest.approx(w ** 3 * h0 + w * w + w + 1, rel=1e-12)
    assert grad == pytest.approx(3 * w * w * h0 + 2 * w + 1, rel=1e-12)
    assert grad == pytest.approx(h2 + w * h1 + w * w * h0, rel=1e-12)


def test_every_unrolled_slip_is_far_from_the_truth_on_the_hidden_inputs():
    assert_formula_slips_are_far_and_distinct(UNROLLED, lab1.unrolled_reference, lab1.unrolled_slips)


UNROLLED_HEAD = "def unrolled_gradient(w, h0):\n    h1 = w * h0 + 1\n    h2 = w * h1 + 1\n"
UNROLLED_RIGHT = {
    "the steps' terms added": UNROLLED_HEAD + "    return w * h2 + 1, h2 + w * h1 + w * w * h0\n",
    "the polynomial differentiated": ("import math\ndef unrolled_gradient(w, h0):\n"
                                      "    return math.pow(w, 3) * h0 + w * w + w + 1, 3 * w * w * h0 + 2 * w + 1\n"),
    "forward-mode, step by step": ("def unrolled_gradient(w, h0):\n    h, dh = h0, 0.0\n"
                                   "    dh = h + w * dh\n    h = w * h + 1\n    dh = h + w * dh\n    h = w * h + 1\n"
                                   "    dh = h + w * dh\n    h = w * h + 1\n    return h, dh\n"),
}
UNROLLED_SLIPS = {
    "kept only the last step's term": UNROLLED_HEAD + "    return w * h2 + 1, h2\n",
    "kept only the first step's term": UNROLLED_HEAD + "    return w * h2 + 1, w * w * h0\n",
    "left out the + 1 of each step": "def unrolled_gradient(w, h0):\n    return w ** 3 * h0, 3 * w * w * h0\n",
}


@pytest.mark.parametrize("source", UNROLLED_RIGHT.values(), ids=UNROLLED_RIGHT)
def test_right_unrolled_formulas_in_other_words_pass(ada, source):
    assert graded_formula("lab1", "t4_unrolled", source) == (None, [])


@pytest.mark.parametrize("words, source", UNROLLED_SLIPS.items(), ids=UNROLLED_SLIPS)
def test_each_unrolled_slip_is_named_in_the_notebook_and_by_the_grader(ada, words, source):
    error, problems = graded_formula("lab1", "t4_unrolled", source)
    assert words in str(error) and problems and all(words in problem for problem in problems), (error, problems)
