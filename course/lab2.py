"""Lab 2 in the student kit: your numbers, the hand-computed answers, how your graph walk is run.

The values of a hand computation on your own numbers are computed here with autograd (what is
graded by hand is that you can work them out). What your graph walk should return, and what
PyTorch does in the prediction tables, is not here: `check` compares with data in
expected/lab2.json.
"""

import math
from dataclasses import dataclass
from typing import Any

import torch

from .answers import Expected, Plain, WrongType, four_digits, survives_rounding
from .checks import Formula, Function, LabKit, Table
from .device import grading_device
from .identity import draw_numbers, pick_all

F64 = torch.float64

DTYPES = ("torch.int64", "torch.float32", "torch.bool", "torch.float64", "torch.complex64", "torch.uint8")
STATEMENTS = ("w.is_leaf", "h.is_leaf", "h.requires_grad", "h.detach().requires_grad",
              "(w * 3).requires_grad inside torch.no_grad()", "h.grad is None after h.sum().backward()",
              "h.grad is None after h.retain_grad(); h.sum().backward()")

# Grids the per-student numbers are drawn from: 16³ · 151 · 201 · 151 ≈ 1.9e10 combinations, so
# two students of a class of 1,000 share numbers with a chance under 0.1 % (tests/unit/test_promises.py).
INTS = tuple(float(v) for v in range(-9, 10) if abs(v) > 1)
HUNDREDTHS = tuple(round(0.5 + 0.01 * k, 2) for k in range(151))   # 0.50 … 2.00
ANGLES = tuple(round(0.5 + 0.01 * k, 2) for k in range(201))       # 0.50 … 2.50 radians: sin(y) > 0
GRIDS = {"x": INTS, "w": INTS, "b": INTS, "gx": HUNDREDTHS, "gy": ANGLES, "gz": HUNDREDTHS}


# ---------------------------------------------------------------- hand computations

def linear_values(x: float, w: float, b: float) -> dict[str, float]:
    """y = w·x + b with w and b requiring grad; y and the two gradients by autograd."""
    wt = torch.tensor(w, dtype=F64, device=grading_device(), requires_grad=True)
    bt = torch.tensor(b, dtype=F64, device=grading_device(), requires_grad=True)
    y = wt * x + bt
    y.backward()
    return {"y_value": y.item(), "w_grad": wt.grad.item(), "b_grad": bt.grad.item()}


def composite_values(x: float, y: float, z: float) -> dict[str, float]:
    """f = tanh(ln(1 + z·2x / sin y)) with named intermediates; values and df/dx, df/dy, df/dz."""
    xt, yt, zt = (torch.tensor(v, dtype=F64, device=grading_device(), requires_grad=True) for v in (x, y, z))
    nodes = {}
    nodes["a"] = 2 * xt
    nodes["b"] = torch.sin(yt)
    nodes["c"] = nodes["a"] / nodes["b"]
    nodes["d"] = 1 + zt * nodes["c"]
    nodes["e"] = torch.log(nodes["d"])
    nodes["f"] = torch.tanh(nodes["e"])
    nodes["f"].backward()
    ref = {name: t.item() for name, t in nodes.items()}
    ref.update(df_dx=xt.grad.item(), df_dy=yt.grad.item(), df_dz=zt.grad.item())
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


def composite_answers(x: float, y: float, z: float) -> dict[str, list[Expected]]:
    """Task 4's right answers for these numbers, forward and gradients, with their slips."""
    r = composite_values(x, y, z)
    df_de = 1 - r["f"] ** 2
    wrong_tanh = 1 - r["e"] ** 2                 # tanh' evaluated on its input
    uses = f"x = {x:g}, y = {y:g}, z = {z:g}"

    def exp(name, hint, slips=None):
        return Expected(name, r[name], hint, dict(slips or {}), uses)

    return {
        "forward": [
            exp("a", "a = 2x."),
            exp("b", "b = sin(y), y in radians.", {"took y in degrees": math.sin(math.radians(y))}),
            exp("c", "c = a / b."), exp("d", "d = 1 + z · c."),
            exp("e", "e = ln(d), the natural logarithm.", {"used log base 10": math.log10(r["d"])}),
            exp("f", "f = tanh(e)."),
        ],
        "gradients": [
            exp("df_dx", "Chain rule along x's path, f ← e ← d ← c ← a ← x: multiply the local derivative of each "
                         "step, each taken at what that step received (tanh' is 1 − tanh², from its output).",
                {"used 1 − e² for tanh' (its input, not its output)": wrong_tanh / r["d"] * z / r["b"] * 2,
                 "forgot the 2 from a = 2x": r["df_dx"] / 2}),
            exp("df_dy", "Chain rule along y's path, f ← e ← d ← c ← b ← y: c = a/b depends on b through the quotient "
                         "rule, and b = sin(y).",
                {"used 1 − e² for tanh' (its input, not its output)":
                     wrong_tanh / r["d"] * z * (-r["a"] / r["b"] ** 2) * math.cos(y),
                 "dropped the minus sign of d(a/b)/db = −a/b²": -r["df_dy"]}),
            exp("df_dz", "Chain rule along z's path, f ← e ← d ← z: d = 1 + z · c, and the logarithm's derivative is "
                         "1 over its input.",
                {"used 1 − e² for tanh' (its input, not its output)": wrong_tanh / r["d"] * r["c"],
                 "forgot the 1/d from the logarithm": df_de * r["c"]}),
        ],
    }


def fan_out_values(x: float, z: float) -> dict[str, float]:
    """g = u + v with u = x·z and v = 3x: x reaches g along two paths; g and dg/dx by autograd."""
    xt = torch.tensor(x, dtype=F64, device=grading_device(), requires_grad=True)
    g = xt * z + 3 * xt
    g.backward()
    return {"g": g.item(), "dg_dx": xt.grad.item()}


def fan_out_answers(x: float, z: float) -> list[Expected]:
    """Task 4's fan-out answer: the sum over both paths, with each path alone as a named slip."""
    return [Expected("dg_dx", fan_out_values(x, z)["dg_dx"],
                     "dg/dx = dg/du · du/dx + dg/dv · dv/dx = z + 3: x reaches g along two paths, and "
                     "their products add.",
                     {"followed one path only (through u = x · z)": z, "followed one path only (through v = 3x)": 3.0},
                     f"x = {x:g}, z = {z:g}")]


def all_answers(n: dict) -> list[Expected]:
    groups = composite_answers(n["gx"], n["gy"], n["gz"])
    return (linear_answers(n["x"], n["w"], n["b"]) + groups["forward"] + groups["gradients"]
            + fan_out_answers(n["gx"], n["gz"]))


def answers(numbers: dict) -> dict[str, Expected]:
    """Every hand-computed answer of the lab, by name."""
    return {e.name: e for e in all_answers(numbers)}


def written_to_4_digits(n: dict) -> dict[str, float]:
    """Task 4 as a careful student works it: every intermediate written down to 4 digits."""
    x, y, z, r = n["gx"], n["gy"], n["gz"], four_digits
    a, b = r(2 * x), r(math.sin(y))
    c = r(a / b)
    d = r(1 + z * c)
    f = r(math.tanh(r(math.log(d))))
    df_dd = r(1 - f * f) * r(1 / d)
    return {"df_dx": r(df_dd * z * r(1 / b) * 2), "df_dy": r(df_dd * z * r(-a / b ** 2) * r(math.cos(y))),
            "df_dz": r(df_dd * c)}


def draw(digest: bytes) -> dict[str, float]:
    """One pick from each of `GRIDS`."""
    return pick_all(digest, GRIDS)


def acceptable(n: dict) -> bool:
    """Every slip clearly wrong, tanh away from saturation (1 − f² from a rounded f would lose its
    digits), and every intermediate written to 4 digits still right."""
    if abs(composite_values(n["gx"], n["gy"], n["gz"])["f"]) > 0.85:
        return False
    expected = all_answers(n)
    return all(e.separated() for e in expected) and survives_rounding(written_to_4_digits(n), expected)


def student_numbers(student: str) -> dict:
    """Task 1 (x, w, b) and Task 4 (gx, gy, gz) inputs for one student id: the first `acceptable`
    pick from `GRIDS` over SHA-256 digests of the id."""
    return draw_numbers("lab2", student, draw, acceptable)


def show_numbers(n: dict) -> list[str]:
    return [f"Task 1: x = {n['x']:g}, w = {n['w']:g}, b = {n['b']:g}",
            f"Task 4: x = {n['gx']:g}, y = {n['gy']:g}, z = {n['gz']:g}"]


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


# The numbers of the lab's worked example (Task 1's text and the observe cell after Task 4):
# answers worked on them instead of the student's own are named as such.
WORKED_EXAMPLE = {"x": 3.0, "w": 4.0, "b": 5.0, "gx": 0.25, "gy": 0.3, "gz": 0.4}

check = LabKit(
    "lab2", numbers=student_numbers, show_numbers=show_numbers, answers=answers, example=WORKED_EXAMPLE,
    functions={"graph_walk": Function(("graph_walk",), run_graph_walk, "the walk matches the real graph.")},
    formulas={"f_gradients": Formula("f_gradients", "df/dx, df/dy and df/dz match autograd on the visible inputs.")},
    tables={
        "can_require_grad": Table(DTYPES, (True, False), describe=lambda ok: "allowed" if ok else "an error"),
        "statements": Table(STATEMENTS, (True, False)),
        "predicted_walks": WalkTable(DRAWN, (), success="each walk you drew is the graph autograd builds."),
    })
