"""Lab 6: the references against autograd, the engines the grader names, and the engine rule.

As in micrograd's tests, every reference is rebuilt independently: each program is run again on
plain float64 tensors, checked by `torch.autograd.gradcheck`; a right engine written another way
agrees with it far inside the tolerance; each named slip is far outside it on every draw.
"""

import math
import re
import tomllib

import pytest
import torch
import torch.nn.functional as F

from autograder.labs import lab6 as grader
from course import lab6 as kit
from course.rules import ENGINE_RULE

from helpers import REPO, SEEDS, run_cell, run_test_cell

RULES, BACKWARD = grader.LAB.checks["t2_rules"], grader.LAB.checks["t3_backward"]
LOG_SIGMOID = grader.LAB.checks["t5_log_sigmoid"]
EXAMPLES = tomllib.loads((REPO / "examples" / "lab6.toml").read_text())
ADA = EXAMPLES["ada"]["answers"]


def tensor_program(program: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The program run on plain float64 tensors (a tensor has every method a Value has)."""
    scope = {"Value": lambda x: torch.tensor(x, dtype=torch.float64, requires_grad=True)}
    exec(program, scope)
    return scope["out"], [scope[name] for name in kit.LEAVES if name in scope]


def programs(check, seeds=SEEDS[:8]) -> list[str]:
    return check.visible + [p for seed in seeds for _, p in check.drawn(seed)]


def engine_answers(value: str = ADA["t2_value_answer"], backward: str = ADA["t3_backward_answer"]) -> tuple[dict, dict]:
    """The namespace of a notebook whose engine cells hold `value` and `backward`, and those cells by grade id."""
    namespace: dict = {}
    run_cell(value, namespace, "t2_value_answer")
    run_cell(backward, namespace, "t3_backward_answer")
    return namespace, {"t2_value_answer": value, "t3_backward_answer": backward}


def graded(grade_id: str, value: str = ADA["t2_value_answer"], backward: str = ADA["t3_backward_answer"]):
    namespace, answers = engine_answers(value, backward)
    return run_test_cell("lab6", grade_id, namespace, answers=answers)


@pytest.mark.parametrize("program", programs(BACKWARD, SEEDS[:4]))
def test_the_reference_is_autograd_on_the_program_itself(device, program):
    out, leaves = tensor_program(program)
    torch.autograd.backward(out)
    assert grader.reference(program) == pytest.approx([out.item()] + [0.0 if leaf.grad is None else leaf.grad.item()
                                                                      for leaf in leaves],
                                                      rel=1e-15, abs=1e-300)
    if "relu" not in program:  # gradcheck's finite differences need a smooth function

        def as_function(*inputs):
            given = iter(inputs)
            scope = {"Value": lambda _: next(given)}
            exec(program, scope)
            return scope["out"]
        assert torch.autograd.gradcheck(as_function, tuple(leaf.detach().clone().requires_grad_() for leaf in leaves))


def test_the_fan_out_of_task1s_worked_example():
    """The lab says: for a = 2, b = −1, c = 3, out = 2 and dout/da = −1."""
    assert grader.reference("a = Value(2.0); b = Value(-1.0); c = Value(3.0); out = (a * b + c) * a") == [2.0, -1.0, 4.0, 2.0]
    assert kit.fan_out_reference(2.0, -1.0, 3.0) == {"out": 2.0, "dout_da": -1.0, "dout_db": 4.0, "dout_dc": 2.0}


def test_a_right_engine_written_otherwise_is_a_hundredth_of_the_tolerance_from_autograd():
    grace = {"Value": None}
    exec(EXAMPLES["grace"]["answers"]["t2_value_answer"], grace)
    exec(EXAMPLES["grace"]["answers"]["t3_backward_answer"], grace)
    scope = {"Value": grace["Value"]}
    exec(kit.HARNESS, scope)
    for check, call, upstream in ((RULES, "one_rule", kit.UPSTREAM), (BACKWARD, "gradients", 1.0)):
        for program in programs(check, SEEDS):
            got, right = scope[call](program), grader.reference(program, upstream)
            worst = max(abs(g - w) / (grader.ENGINE_ATOL + grader.ENGINE_RTOL * abs(w)) for g, w in zip(got, right, strict=True))
            assert worst < 1e-2, (program, worst)


@pytest.mark.parametrize("check", [RULES, BACKWARD], ids=["t2_rules", "t3_backward"])
def test_every_named_slip_is_far_from_autograd_in_every_draw_and_unlike_every_other(check):
    """Test the test: on the visible programs and each submission's draw, every slip gives some
    output 1e-3 or more off (ten million tolerances), and no two slips give the same outputs throughout."""
    for seed in SEEDS:
        drawn = check.visible + [p for _, p in check.drawn(seed)]
        rights = [check.reference(p) for p in drawn]
        outputs = {m.why: [m.gives(p) for p in drawn] for m in check.mistakes_known}
        for why, wrong in outputs.items():
            assert any(grader.far(got, right) for got, right in zip(wrong, rights, strict=True)), (seed.hex(), why)
        for a in outputs:
            for b in outputs:
                assert a == b or not all(grader.engine_close(u, v) for u, v in zip(outputs[a], outputs[b], strict=True)), (a, b)


@pytest.mark.parametrize("check", [RULES, BACKWARD], ids=["t2_rules", "t3_backward"])
def test_on_each_visible_program_a_wrong_output_has_one_name(check):
    """The kit names a slip from one program's output alone: no two slips may give it."""
    for program in check.visible:
        right = check.reference(program)
        wrong = {m.why: out for m in check.mistakes_known if not grader.engine_close(out := m.gives(program), right)}
        for a in wrong:
            for b in wrong:
                assert a == b or not grader.engine_close(wrong[a], wrong[b]), (program, a, b)


@pytest.mark.parametrize("seed", SEEDS)
def test_every_draw_covers_every_case(seed):
    """Each draw holds a chain 24 or more operations deep, nodes used twice, every operation, a
    ReLU at exactly 0 with an input whose gradient passes through it, and one a hair from 0."""
    drawn: dict[str, list[str]] = {}
    for words, program in BACKWARD.drawn(seed):
        drawn.setdefault(words, []).append(program)
        assert grader.well_drawn(program)  # values, gradients and the paths a slip walks all bounded
    assert all(program.count(" = ") >= 26 for program in drawn["a deep chain"])
    every = drawn["a graph with every operation"]
    for operation in (r"\.exp\(\)", r"\.log\(\)", r"\.tanh\(\)", r"\.relu\(\)", r"\.sigmoid\(\)", r"\*\* 2;",
                      r"\*\* 3;", r"\*\* -1;", r"\*\* 0\.5;", r"= -[a-z]", r"[a-z]\d* \+ [a-z]", r"[a-z]\d* - [a-z]",
                      r"[a-z]\d* \* [a-z]", r"[a-z]\d* / [a-z]", r"= -?\d+\.\d+ [-+*/] [a-z]",
                      r"[a-z]\d* [-+*/] -?\d+\.\d+;"):
        assert all(re.search(operation, program) for program in every), operation
    for program in drawn["a graph whose nodes are shared"]:
        uses = " ".join(line.split(" = ", 1)[1] for line in program.split("; ")).split()
        assert sum(uses.count(f"t{n}") >= 2 for n in range(3, 20)) >= 2
    for program in drawn["ReLUs at and a hair from their kink"]:
        assert "d = Value(0.0)" in program and "(d * a).relu()" in program and "e-09)" in program
    rules = " ".join(p for _, p in RULES.drawn(seed))
    for operation in ("a + b", "a * b", "a * a", "**", ".exp()", ".log()", ".tanh()", ".sigmoid()", ".relu()"):
        assert operation in rules


SLIPPED = {  # one_rule on a one-operation program, by hand: [out, d/da (, d/db)] with out.grad = 2.5
    ("a = Value(-1.5); out = a * a", "overwrite"): [2.25, -1.5 * 2.5],
    ("a = Value(1.5); b = Value(-2.0); out = a * b", "no_upstream"): [-3.0, -2.0, 1.5],
    ("a = Value(0.5); out = a.tanh()", "tanh_input"): [math.tanh(0.5), (1 - 0.25) * 2.5],
    ("a = Value(0.5); out = a.sigmoid()", "sigmoid_input"): [1 / (1 + math.exp(-0.5)), 0.25 * 2.5],
    ("a = Value(0.0); out = a.relu()", "relu_at_zero"): [0.0, 2.5],
    ("a = Value(1.5); out = a ** 3", "power"): [3.375, 3 * 1.5 ** 3 * 2.5],
}


@pytest.mark.parametrize("program, slip", sorted(SLIPPED))
def test_each_slipped_engine_makes_the_slip_its_name_says(program, slip):
    assert grader.harness("one_rule", program, frozenset({slip})) == pytest.approx(SLIPPED[program, slip], rel=1e-12)
    assert not grader.engine_close(grader.harness("one_rule", program, frozenset({slip})),
                                   grader.reference(program, kit.UPSTREAM))


def test_the_backward_slips_by_hand():
    program = "a = Value(2.0); b = Value(-1.0); c = Value(3.0); out = (a * b + c) * a"
    assert grader.harness("gradients", program, frozenset({"no_seed"})) == [2.0, 0.0, 0.0, 0.0]
    # leaves first: each rule runs before its output's gradient arrives, so only out's own inputs get one
    assert grader.harness("gradients", program, frozenset({"not_reversed"}))[1:] == [1.0, 0.0, 0.0]
    # t = a·b is listed once per path (three): its rule runs three times, with 1, then 1 + 2t twice
    shared = "a = Value(2.0); b = Value(-1.0); t = a * b; out = t * t + t"
    assert grader.harness("gradients", shared) == [2.0, 3.0, -6.0]
    assert grader.harness("gradients", shared, frozenset({"no_visited"})) == [2.0, 5.0, -10.0]


def test_the_solution_engine_passes_in_the_kernel_and_the_grader():
    assert graded("t2_rules") == (None, [])
    assert graded("t3_backward") == (None, [])


@pytest.mark.parametrize("example, grade_id, words", [
    ("overwrite", "t2_rules", "instead of adding to it with +="),
    ("overwrite", "t3_backward", "instead of adding to it with +="),
    ("sigmoid_slip", "t2_rules", "x(1 − x) with x its input"),
    ("sigmoid_slip", "t3_backward", "x(1 − x) with x its input"),
    ("fan_out_slip", "t3_backward", "listed a node once per path"),
])
def test_each_slip_in_an_engine_is_named_by_the_grader_on_every_graph_it_breaks(example, grade_id, words):
    answers = {**ADA, **EXAMPLES[example]["answers"]}
    error, problems = graded(grade_id, answers["t2_value_answer"], answers["t3_backward_answer"])
    assert error is not None and problems and all(words in problem for problem in problems), problems


@pytest.mark.parametrize("line, words", [
    ("import torch", "the cell imports `torch`"),
    ("from os import write", "the cell imports from `os`"),
    ("import math as m, sys", "the cell imports `math`"),
    ("LEAK = open('/etc/passwd').read()", "the cell uses `open`"),
    ("BASE = ().__class__.__base__", "not Python's internals"),
    ("STEP = 1j", "a complex number"),
    ("STEP = 1e-7", "a finite-difference step"),
    ("exec('x = 1')", "the cell uses `exec`"),
])
def test_an_engine_cell_that_is_not_plain_python_is_never_run(line, words):
    value = f"{line}\n{ADA['t2_value_answer']}"
    for grade_id in ("t2_rules", "t3_backward"):
        error, problems = graded(grade_id, value)
        assert words in str(error) and ENGINE_RULE in str(error)
        assert problems and words in problems[0]


def test_an_engine_that_defines_the_harness_functions_itself_gains_nothing():
    """The harness runs after the cells: a lookup named `gradients` is replaced by the kit's own."""
    lookup = ("class Value:\n    def __init__(self, data, children=()):\n        self.data, self.grad = data, 0.0\n\n\n"
              "def gradients(program):\n    return [2.0, -1.0, 4.0, 2.0]\n")
    error, problems = graded("t3_backward", lookup, "def backward(self):\n    pass\n\n\nValue.backward = backward\n")
    assert error is not None and problems


def test_an_engine_that_never_finishes_is_stopped():
    endless = ADA["t3_backward_answer"].replace("    self.grad = 1.0\n", "    while True:\n        pass\n")
    error, problems = graded("t3_backward", backward=endless)
    assert "did not finish within 5 s" in str(error) and "did not finish within 5 s" in problems[0]


@pytest.mark.parametrize("xs", LOG_SIGMOID.visible + [p for seed in SEEDS[:5] for _, p in LOG_SIGMOID.drawn(seed)])
def test_the_log_sigmoid_reference_is_its_closed_form(device, xs):
    right = grader.log_sigmoid_reference(xs)
    weights = kit.upstream(len(xs)).tolist()
    closed = [min(x, 0) - math.log1p(math.exp(-abs(x))) for x in xs]
    slope = [w / (1 + math.exp(x)) if x < 700 else w * math.exp(-x) for x, w in zip(xs, weights, strict=True)]
    assert right["values"] == pytest.approx(closed, rel=1e-12, abs=1e-300)
    assert right["grads"] == pytest.approx(slope, rel=1e-9, abs=1e-300)


def test_every_log_sigmoid_slip_is_far_from_autograd_in_every_draw():
    for seed in SEEDS:
        drawn = LOG_SIGMOID.visible + [p for _, p in LOG_SIGMOID.drawn(seed)]
        for mistake in LOG_SIGMOID.mistakes_known:
            assert any(not LOG_SIGMOID.is_right(mistake.gives(p), LOG_SIGMOID.reference(p)) for p in drawn), mistake.why


def test_log_of_sigmoid_is_told_where_it_fails_without_the_input():
    cell = ("class LogSigmoid(torch.autograd.Function):\n    @staticmethod\n    def forward(ctx, x):\n"
            "        ctx.save_for_backward(x)\n        return torch.log(torch.sigmoid(x))\n\n"
            "    @staticmethod\n    def backward(ctx, g):\n        (x,) = ctx.saved_tensors\n"
            "        return g * torch.sigmoid(-x)\n")
    namespace = {"torch": torch}
    run_cell(cell, namespace, "t5_log_sigmoid_answer")
    error, _ = run_test_cell("lab6", "t5_log_sigmoid", namespace)
    assert "gave -inf or nan for an input far from 0" in str(error) and "800" not in str(error)
    assert F.logsigmoid(torch.tensor(-800.0, dtype=torch.float64)).item() == -800.0


FUNCTION_HEAD = ("class LogSigmoid(torch.autograd.Function):\n    @staticmethod\n    def forward(ctx, x):\n"
                 "        ctx.save_for_backward(x)\n        return torch.nn.functional.logsigmoid(x)\n\n"
                 "    @staticmethod\n    def backward(ctx, grad_output):\n        (x,) = ctx.saved_tensors\n")


@pytest.mark.parametrize("body, words", [
    ("        return grad_output * torch.sigmoid(-x)\n", None),
    ("        with torch.enable_grad():\n            x = x.detach().requires_grad_()\n"
     "            (g,) = torch.autograd.grad(torch.nn.functional.logsigmoid(x), x, grad_output)\n        return g\n",
     "`.enable_grad`"),
    ("        with torch.enable_grad():\n            y = x.detach().requires_grad_()\n"
     "            (torch.nn.functional.logsigmoid(y) * grad_output).sum().backward()\n        return y.grad\n",
     "`.enable_grad`"),
    ("        return grad_output * torch.autograd.functional.jacobian(torch.nn.functional.logsigmoid, x).diagonal()\n",
     "`.autograd`"),
])
def test_a_function_written_by_hand_passes_and_one_that_asks_autograd_scores_nothing(student, body, words):
    namespace = {"torch": torch}
    run_cell(FUNCTION_HEAD + body, namespace, "t5_log_sigmoid_answer")
    error, problems = run_test_cell("lab6", "t5_log_sigmoid", namespace)
    if words is None:
        assert (error, problems) == (None, [])
    else:
        assert words in str(error) and "This task is done without autograd" in str(error)
        assert problems and words in problems[0]
