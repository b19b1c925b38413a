"""Lab 2 in the student kit: your numbers, the hand-computed answers, how your graph walk is run.

The values of a hand computation on your own numbers are computed here with autograd (what is
graded by hand is that you can work them out). What your graph walk should return, and what
PyTorch does in the prediction tables, is not here: `check` compares with data in
expected/lab2.json.
"""

from dataclasses import dataclass
from typing import Any

import torch

from .answers import Expected, Plain, WrongType
from .checks import Formula, Function, LabKit, Table
from .device import grading_device
from .identity import draw_numbers, pick_all

F64 = torch.float64

DTYPES = ("torch.int64", "torch.float32", "torch.bool", "torch.float64", "torch.complex64", "torch.uint8")
STATEMENTS = ("w.is_leaf", "h.is_leaf", "h.requires_grad", "h.detach().requires_grad",
              "(w * 3).requires_grad inside torch.no_grad()", "h.grad is None after h.sum().backward()",
              "h.grad is None after h.retain_grad(); h.sum().backward()")

# Grids the per-student numbers are drawn from: 16³ · 56 · 61 · 146 ≈ 2.0e9 combinations, about
# two thirds of them acceptable, so two students of a class of 1,000 share numbers with a chance
# under 0.1 % (tests/unit/test_promises.py).
INTS = tuple(float(v) for v in range(-9, 10) if abs(v) > 1)
TENTHS = tuple(round(1 + 0.1 * k, 1) for k in range(56))             # 1.0 … 6.5
TARGETS = tuple(round(-3 + 0.1 * k, 1) for k in range(61))           # −3.0 … 3.0
WEIGHTS = tuple(round(0.05 + 0.01 * k, 2) for k in range(146))       # 0.05 … 1.50
GRIDS = {"x": INTS, "w": INTS, "b": INTS, "x4": TENTHS, "y4": TARGETS, "w4": WEIGHTS}


# ---------------------------------------------------------------- hand computations

def linear_values(x: float, w: float, b: float) -> dict[str, float]:
    """y = w·x + b with w and b requiring grad; y and the two gradients by autograd."""
    wt = torch.tensor(w, dtype=F64, device=grading_device(), requires_grad=True)
    bt = torch.tensor(b, dtype=F64, device=grading_device(), requires_grad=True)
    y = wt * x + bt
    y.backward()
    return {"y_value": y.item(), "w_grad": wt.grad.item(), "b_grad": bt.grad.item()}


def _local(out: torch.Tensor, inp: torch.Tensor) -> float:
    """d out / d inp on the recorded graph, by autograd."""
    return torch.autograd.grad(out, inp, retain_graph=True)[0].item()


def squared_error_values(x: float, y: float, w: float) -> dict[str, float]:
    """Node values, local derivatives and dloss/dw of ŷ = x·w, s = ŷ − y, loss = s²."""
    xt, yt = (torch.tensor(v, dtype=F64, device=grading_device()) for v in (x, y))
    wt = torch.tensor(w, dtype=F64, device=grading_device(), requires_grad=True)
    yhat = xt * wt
    s = yhat - yt
    loss = s ** 2
    ref = {"yhat": yhat.item(), "s": s.item(), "loss": loss.item(),
           "dloss_ds": _local(loss, s), "ds_dyhat": _local(s, yhat), "dyhat_dw": _local(yhat, wt)}
    loss.backward()
    ref["dloss_dw"] = wt.grad.item()
    return ref


def linear_answers(x: float, w: float, b: float) -> list[Expected]:
    """Task 1's right answers for these numbers, each with the slips feedback can name."""
    r = linear_values(x, w, b)
    uses = f"x = {x:g}, w = {w:g}, b = {b:g}"
    return [
        Expected("y_value", r["y_value"], "y = w · x + b.", {"added all three": w + x + b}, uses),
        Expected("w_grad", r["w_grad"], "dy/dw = x: w is multiplied by x.", {"used w instead of x": w}, uses),
        Expected("b_grad", r["b_grad"], "dy/db = 1: b is added once.", {"gave b itself": b}, uses),
    ]


def squared_error_answers(x: float, y: float, w: float) -> list[Expected]:
    """Task 4's right answers for these numbers, each with the slips feedback can name."""
    r = squared_error_values(x, y, w)
    uses = f"x = {x:g}, y = {y:g}, w = {w:g}"

    def exp(name, hint, slips=None):
        return Expected(name, r[name], hint, dict(slips or {}), uses)

    return [
        exp("yhat", "ŷ = x · w.", {"added x and w": x + w}),
        exp("s", "s = ŷ − y.", {"computed y − ŷ": -r["s"]}),
        exp("loss", "loss = s².", {"forgot to square s": r["s"]}),
        exp("dloss_ds", "The derivative of s² is 2s.", {"forgot the factor 2 from the square": r["s"]}),
        exp("ds_dyhat", "s = ŷ − y changes one-for-one with ŷ."),
        exp("dyhat_dw", "ŷ = x · w; differentiate with respect to w.", {"used w instead of x": w}),
        exp("dloss_dw", "dloss/dw = dloss/ds · ds/dŷ · dŷ/dw.",
            {"forgot the factor 2 from the square": r["dloss_dw"] / 2,
             "used w instead of x for dŷ/dw": r["dloss_ds"] * w,
             "stopped at dloss/ds": r["dloss_ds"]}),
    ]


def all_answers(n: dict) -> list[Expected]:
    return linear_answers(n["x"], n["w"], n["b"]) + squared_error_answers(n["x4"], n["y4"], n["w4"])


def answers(numbers: dict) -> dict[str, Expected]:
    """Every hand-computed answer of the lab, by name."""
    return {e.name: e for e in all_answers(numbers)}


def draw(digest: bytes) -> dict[str, float]:
    """One pick from each of `GRIDS`."""
    return pick_all(digest, GRIDS)


def acceptable(n: dict) -> bool:
    """Every slip clearly wrong (answers.Expected.separated), and s = x·w − y far enough from 0
    that its sign, its square and its double are three different numbers."""
    s = n["x4"] * n["w4"] - n["y4"]
    return 0.3 <= abs(s) and abs(abs(s) - 1) > 0.2 and abs(abs(s) - 2) > 0.2 \
        and all(e.separated() for e in all_answers(n))


def student_numbers(student: str) -> dict:
    """Task 1 (x, w, b) and Task 4 (x4, y4, w4) inputs for one student id: the first `acceptable`
    pick from `GRIDS` over SHA-256 digests of the id."""
    return draw_numbers("lab2", student, draw, acceptable)


def show_numbers(n: dict) -> list[str]:
    return [f"Task 1: x = {n['x']:g}, w = {n['w']:g}, b = {n['b']:g}",
            f"Task 4: x = {n['x4']:g}, y = {n['y4']:g}, w = {n['w4']:g}"]


# ---------------------------------------------------------------- running the student's graph walk

def expression(text: str) -> torch.Tensor:
    """The tensor an expression of the leaves a, b (requiring grad) and the constant k evaluates to."""
    a, b = (torch.tensor(values, requires_grad=True) for values in ([1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 2.0, 1.0]))
    k = torch.tensor([1.0, 1.0, 2.0, 2.0])
    return eval(text, {"torch": torch, "__builtins__": {}}, {"a": a, "b": b, "k": k})


def run_graph_walk(fns: dict, text: str) -> list[str]:
    result = fns["graph_walk"](expression(text))
    if not isinstance(result, (list, tuple)) or not all(isinstance(n, str) for n in result):
        raise WrongType("graph_walk should return a list of node names (strings).")
    return list(result)


# Graphs a student draws by hand and writes as the walk `graph_walk` would give, before running
# anything: one that branches and reaches a twice, one with a constant and a detached input.
DRAWN = ("(a * b + torch.exp(a)).sum()", "(a.detach() * b + k * torch.sin(a)).mean()")


@dataclass
class WalkTable(Table):
    """Predicted walks: for each expression, the node names in the order `graph_walk` lists them."""

    def refuse(self, name: str, key: str, value: Any) -> str | None:
        if isinstance(value, (list, tuple)) and value and all(isinstance(n, str) for n in value):
            return None
        return f"{name}[{key!r}] should be a list of node names, such as ['SumBackward0', 'AccumulateGrad']."

    def wrong(self, key: str, given: Plain) -> str:
        return f"{key}: the walk {given} is not the graph autograd builds for it."


# The numbers of the lab's worked examples (the texts of Task 1 and Task 4): answers worked on
# them instead of the student's own are named as such.
WORKED_EXAMPLE = {"x": 3.0, "w": 4.0, "b": 5.0, "x4": 4.0, "y4": 1.0, "w4": 0.5}

check = LabKit(
    "lab2", numbers=student_numbers, show_numbers=show_numbers, answers=answers, example=WORKED_EXAMPLE,
    functions={"graph_walk": Function(("graph_walk",), run_graph_walk, "the walk matches the real graph.")},
    formulas={"loss_and_gradient": Formula("loss_and_gradient",
                                           "the loss and dloss/dw match autograd on the visible inputs.")},
    tables={
        "can_require_grad": Table(DTYPES, (True, False), describe=lambda ok: "allowed" if ok else "an error"),
        "statements": Table(STATEMENTS, (True, False)),
        "predicted_walks": WalkTable(DRAWN, (), success="each walk you drew is the graph autograd builds."),
    })
