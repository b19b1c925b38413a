"""Lab 6 in the student kit: your numbers, the fan-out you predict by hand, how your engine and
your autograd Function are run.

The engine (`Value`) is plain Python, so it is run as a formula is: with Python's standard
library only (`course.formulas`), by HARNESS, which builds each graph from a short program and
reads the gradients. What they should be is not here: the checks compare with data in
expected/lab6.json, and the grader with torch.autograd in float64.
"""

import torch

from .answers import Expected, WrongType, as_floats
from .checks import Engine, Function, LabKit
from .device import grading_device
from .identity import draw_numbers, pick_all

F64 = torch.float64
# Per-student numbers: 980³ ≈ 9.4e8 combinations, so two students of a class of 1,000 share them
# with a chance under 0.1 % (tests/unit/test_promises.py).
VALUES = tuple(round(0.01 * k, 2) for k in range(-500, 501) if abs(k) >= 10)  # ±0.10 … ±5.00
GRIDS = {"a": VALUES, "b": VALUES, "c": VALUES}
LEAVES = "abcd"  # the names a program gives its inputs, in the order their gradients are returned
UPSTREAM = 2.5  # the gradient `one_rule` puts on the output before running its own rule

# The kit's own code, run after the student's engine cells by the formula runner: it builds a
# program's graph with the student's Value and returns [out.data, d out/d a, d out/d b, ...].
HARNESS = '''
def _number(what, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} is {type(value).__name__}, not a float")
    return float(value)


def _built(program):
    scope = {"Value": Value}
    exec(program, scope)
    return scope["out"], [scope[name] for name in LEAVES if name in scope]


def one_rule(program):
    """Build a one-operation program, set out.grad to UPSTREAM and run out._backward() alone."""
    out, leaves = _built(program)
    out.grad = UPSTREAM
    out._backward()
    return [_number("out.data", out.data)] + [_number(f"{n}.grad", leaf.grad) for n, leaf in zip(LEAVES, leaves)]


def gradients(program):
    """Build a program, run out.backward() and return out.data and every input's gradient."""
    out, leaves = _built(program)
    out.backward()
    return [_number("out.data", out.data)] + [_number(f"{n}.grad", leaf.grad) for n, leaf in zip(LEAVES, leaves)]
''' + f"\nLEAVES = {LEAVES!r}\nUPSTREAM = {UPSTREAM!r}\n"


def _leaf(value: float) -> torch.Tensor:
    return torch.tensor(float(value), dtype=F64, device=grading_device(), requires_grad=True)


# ---------------------------------------------------------------- Task 1: a fan-out by hand

def fan_out_reference(a: float, b: float, c: float) -> dict[str, float]:
    """out = (a·b + c)·a and its gradients, by autograd."""
    at, bt, ct = _leaf(a), _leaf(b), _leaf(c)
    out = (at * bt + ct) * at
    out.backward()
    return {"out": out.item(), "dout_da": at.grad.item(), "dout_db": bt.grad.item(), "dout_dc": ct.grad.item()}


def answers(numbers: dict) -> dict[str, Expected]:
    """Task 1's hand answers, by name, with the slips feedback can name."""
    a, b, c = (numbers[k] for k in ("a", "b", "c"))
    r = fan_out_reference(a, b, c)
    uses = f"a = {a:g}, b = {b:g}, c = {c:g}"
    return {
        "out": Expected("out", r["out"], "Forward first: t = a·b, u = t + c, out = u·a.", {}, uses),
        "dout_da": Expected("dout_da", r["dout_da"],
                            "a reaches out along two paths, through u and directly; add the two products.",
                            {"followed only the path through u = a·b + c": a * b,
                             "followed only the direct path, out = u·a": a * b + c}, uses),
        "dout_db": Expected("dout_db", r["dout_db"], "dout/db = dout/du · du/dt · dt/db = a · 1 · a.",
                            {"stopped at dt/db = a, without dout/du = a": a}, uses),
        "dout_dc": Expected("dout_dc", r["dout_dc"], "dout/dc = dout/du · du/dc = a · 1.",
                            {"took du/dc = 1 as the whole gradient": 1.0}, uses),
    }


def draw(digest: bytes) -> dict:
    return pick_all(digest, GRIDS)


def acceptable(numbers: dict) -> bool:
    """Numbers whose slips can all be told apart from the right answers, every gradient away from 0."""
    expected = answers(numbers)
    return all(e.separated() for e in expected.values()) and all(abs(e.value) > 0.05 for e in expected.values())


def student_numbers(student: str) -> dict:
    return draw_numbers("lab6", student, draw, acceptable)


def show_numbers(n: dict) -> list[str]:
    return [f"Task 1: a = {n['a']:g}, b = {n['b']:g}, c = {n['c']:g}"]


# The numbers of the lab's worked example (Task 1's text).
WORKED_EXAMPLE = {"a": 2.0, "b": -1.0, "c": 3.0}


# ---------------------------------------------------------------- Task 5: a Function of your own

UPSTREAM_WEIGHTS = (1.0, -0.5, 2.0, 0.25, -1.5, 3.0, 0.75, -2.0)  # the gradient sent into a probe's outputs


def upstream(n: int) -> torch.Tensor:
    """The gradient arriving at a probe's n outputs (not all ones, so grad_output must be used)."""
    return torch.tensor([UPSTREAM_WEIGHTS[i % len(UPSTREAM_WEIGHTS)] for i in range(n)], dtype=F64,
                        device=grading_device())


def run_log_sigmoid(fns: dict, xs: list) -> dict[str, list[float]]:
    """LogSigmoid.apply on float64 inputs xs, then backward with `upstream`: its values and x.grad."""
    function = fns["LogSigmoid"]
    if not (isinstance(function, type) and issubclass(function, torch.autograd.Function)):
        raise WrongType("`LogSigmoid` should be a subclass of torch.autograd.Function.")
    x = torch.tensor(xs, dtype=F64, device=grading_device(), requires_grad=True)
    y = function.apply(x)
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        raise WrongType(f"LogSigmoid.apply should return a tensor of the input's shape {tuple(x.shape)}.")
    if not bool(torch.isfinite(y).all()):
        raise WrongType("LogSigmoid.apply(x) gave -inf or nan for an input far from 0: compute log σ(x) so that "
                        "it never takes the log of a number that rounded to 0, min(x, 0) − log1p(exp(−|x|)).")
    (y * upstream(len(xs))).sum().backward()
    if x.grad is None:
        raise WrongType("backward did not reach the input: return the gradient with respect to x from backward.")
    return {"values": as_floats("LogSigmoid.apply(x)", y), "grads": as_floats("x.grad", x.grad)}


check = LabKit(
    "lab6", numbers=student_numbers, show_numbers=show_numbers, answers=answers, example=WORKED_EXAMPLE,
    engines={
        "rules": Engine(("Value",), "one_rule", HARNESS,
                        "every operation's value and local rule match autograd on the visible programs."),
        "backward": Engine(("Value", "backward"), "gradients", HARNESS,
                           "every gradient matches autograd on the visible graphs."),
    },
    functions={"log_sigmoid": Function(("LogSigmoid",), run_log_sigmoid,
                                       "values and gradients match autograd's logsigmoid at every probe.",
                                       without_autograd=())})
