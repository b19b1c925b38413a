"""Lab 4 in the student kit: your numbers and the hand-computed answers.

The values of a hand computation on your own numbers are computed here with autograd (autograd
is in your hands anyway: what is graded by hand is that you can work them out). What your
formulas should return is not here: `check.formula` compares with data in expected/lab4.json.
"""

import math

import torch

from .answers import Expected, four_digits, survives_rounding
from .checks import Formula, LabKit
from .device import grading_device
from .identity import draw_numbers, pick_all

F64 = torch.float64

# Task 2's worked example (the textbook numbers).
WORKED_NUMBERS = {"x1": 4.0, "w1": 0.5, "w2": 0.2, "y": 1.0}

# Grids the per-student numbers are drawn from (x1, w1 > 0 keep the ReLU active; y in radians
# keeps sin(y) > 0): 551 · 851 · 1702 · 2 · 151 · 201 · 151 ≈ 7e15 combinations, so two students
# of a class of 1,000 share numbers with a chance far under 0.1 % (tests/unit/test_promises.py).
X1_CHOICES = tuple(round(1 + 0.01 * k, 2) for k in range(551))            # 1.00 … 6.50
W1_CHOICES = tuple(round(0.1 + 0.001 * k, 3) for k in range(851))         # 0.100 … 0.950
W2_CHOICES = tuple(sign * w for sign in (-1, 1) for w in W1_CHOICES)      # ±0.100 … ±0.950
Y_CHOICES = (0.0, 1.0)
HUNDREDTHS = tuple(round(0.5 + 0.01 * k, 2) for k in range(151))          # 0.50 … 2.00
ANGLES = tuple(round(0.5 + 0.01 * k, 2) for k in range(201))              # 0.50 … 2.50 radians
GRIDS = {"x1": X1_CHOICES, "w1": W1_CHOICES, "w2": W2_CHOICES, "y": Y_CHOICES,
         "gx": HUNDREDTHS, "gy": ANGLES, "gz": HUNDREDTHS}


def _leaf(value: float, grad: bool = False) -> torch.Tensor:
    return torch.tensor(float(value), dtype=F64, device=grading_device(), requires_grad=grad)


def _local(out: torch.Tensor, inp: torch.Tensor) -> float:
    """d out / d inp on the recorded graph, by autograd."""
    return torch.autograd.grad(out, inp, retain_graph=True)[0].item()


# ---------------------------------------------------------------- hand computations

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


def task2_values(x1: float, w1: float, w2: float, y: float) -> dict[str, float]:
    """Every node value, local derivative and weight gradient of the ReLU→sigmoid network."""
    x1t, yt = _leaf(x1), _leaf(y)
    w1t, w2t = _leaf(w1, grad=True), _leaf(w2, grad=True)
    m1 = x1t * w1t
    r = torch.relu(m1)
    m2 = r * w2t
    yhat = torch.sigmoid(m2)
    s = yhat - yt
    loss = s ** 2
    ref = {name: t.item() for name, t in
           {"m1": m1, "r": r, "m2": m2, "yhat": yhat, "s": s, "loss": loss}.items()}
    ref.update(dloss_ds=_local(loss, s), ds_dyhat=_local(s, yhat), dyhat_dm2=_local(yhat, m2),
               dm2_dw2=_local(m2, w2t), dm2_dr=_local(m2, r), dr_dm1=_local(r, m1),
               dm1_dw1=_local(m1, w1t))
    loss.backward()
    ref.update(dloss_dw2=w2t.grad.item(), dloss_dw1=w1t.grad.item())
    return ref


def composite_answers(x: float, y: float, z: float) -> dict[str, list[Expected]]:
    """Task 1's right answers for these numbers, forward and gradients, with their slips."""
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
    """Task 1's fan-out answer: the sum over both paths, with each path alone as a named slip."""
    return [Expected("dg_dx", fan_out_values(x, z)["dg_dx"],
                     "dg/dx = dg/du · du/dx + dg/dv · dv/dx = z + 3: x reaches g along two paths, and "
                     "their products add.",
                     {"followed one path only (through u = x · z)": z, "followed one path only (through v = 3x)": 3.0},
                     f"x = {x:g}, z = {z:g}")]


def task2_answers(x1: float, w1: float, w2: float, y: float) -> list[Expected]:
    """Task 2's right answers for these numbers, each with the slips feedback can name."""
    r = task2_values(x1, w1, w2, y)
    worked = task2_values(**WORKED_NUMBERS)
    wrong_sigmoid = r["m2"] * (1 - r["m2"])
    upstream = r["dloss_ds"] * r["dyhat_dm2"]          # dloss/dm2
    other = "used the worked example's numbers instead of your own"
    uses = f"x1 = {x1:g}, w1 = {w1:g}, w2 = {w2:g}, y = {y:g}"

    def exp(name, hint, slips=None):
        slips = dict(slips or {})
        if worked[name] != r[name]:
            slips[other] = worked[name]
        return Expected(name, r[name], hint, slips, uses)

    return [
        exp("m1", "m1 = x1 · w1."),
        exp("r", "r = ReLU(m1) = max(m1, 0)."),
        exp("m2", "m2 = r · w2."),
        exp("yhat", "ŷ = σ(m2) = 1 / (1 + e^(−m2)).", {"forgot the sigmoid (ŷ = m2)": r["m2"]}),
        exp("s", "s = ŷ − y.", {"computed y − ŷ": -r["s"]}),
        exp("loss", "loss = s².", {"forgot to square s": r["s"]}),
        exp("dloss_ds", "d(s²)/ds = 2s.", {"forgot the factor 2 from the square": r["s"]}),
        exp("ds_dyhat", "s = ŷ − y."),
        exp("dyhat_dm2", "σ'(m2) = σ(m2)(1 − σ(m2)) = ŷ(1 − ŷ): use the sigmoid's output, not its input.",
            {"plugged the sigmoid's input into σ' (m2·(1 − m2) instead of ŷ·(1 − ŷ))": wrong_sigmoid,
             "took σ(m2) itself as its derivative": r["yhat"]}),
        exp("dm2_dw2", "m2 = r · w2; differentiate with respect to w2.", {"used w2 instead of r": w2}),
        exp("dm2_dr", "m2 = r · w2; differentiate with respect to r.", {"used r instead of w2": r["r"]}),
        exp("dr_dm1", "ReLU passes the gradient through (slope 1) where m1 > 0 and blocks it (0) elsewhere.",
            {"used the ReLU's output instead of its slope": r["r"]}),
        exp("dm1_dw1", "m1 = x1 · w1; differentiate with respect to w1.", {"used w1 instead of x1": w1}),
        exp("dloss_dw1", "Chain rule from the loss back to w1 (loss ← s ← ŷ ← m2 ← r ← m1 ← w1): multiply your "
                         "local derivatives of 2b along that path; the ReLU's slope depends on the sign of m1.",
            {"used m2·(1 − m2) for the sigmoid's derivative": r["dloss_ds"] * wrong_sigmoid * w2 * x1,
             "forgot the factor 2 from the square": r["dloss_dw1"] / 2,
             "used r instead of w2 for dm2/dr": upstream * r["r"] * x1,
             "stopped at w2 (that is dloss/dw2)": r["dloss_dw2"]}),
        exp("dloss_dw2", "Chain rule from the loss back to w2 (loss ← s ← ŷ ← m2 ← w2): multiply your local "
                         "derivatives of 2b along that path.",
            {"used m2·(1 − m2) for the sigmoid's derivative": r["dloss_ds"] * wrong_sigmoid * r["r"],
             "forgot the factor 2 from the square": r["dloss_dw2"] / 2,
             "used w2 instead of r for dm2/dw2": upstream * w2}),
    ]


def all_answers(n: dict) -> list[Expected]:
    groups = composite_answers(n["gx"], n["gy"], n["gz"])
    return (groups["forward"] + groups["gradients"] + fan_out_answers(n["gx"], n["gz"])
            + task2_answers(n["x1"], n["w1"], n["w2"], n["y"]))


def answers(numbers: dict) -> dict[str, Expected]:
    """Every hand-computed answer of the lab, by name."""
    return {e.name: e for e in all_answers(numbers)}


def draw(digest: bytes) -> dict[str, float]:
    """One pick from each of `GRIDS`."""
    return pick_all(digest, GRIDS)


def graph_written_to_4_digits(n: dict) -> dict[str, float]:
    """Task 1 as a careful student works it: every intermediate written down to 4 digits."""
    x, y, z, r = n["gx"], n["gy"], n["gz"], four_digits
    a, b = r(2 * x), r(math.sin(y))
    c = r(a / b)
    d = r(1 + z * c)
    f = r(math.tanh(r(math.log(d))))
    df_dd = r(1 - f * f) * r(1 / d)
    return {"df_dx": r(df_dd * z * r(1 / b) * 2), "df_dy": r(df_dd * z * r(-a / b ** 2) * r(math.cos(y))),
            "df_dz": r(df_dd * c)}


def written_to_4_digits(n: dict[str, float]) -> dict[str, float]:
    """Task 2's forward values and gradients as a careful student works them: every
    intermediate written down to 4 digits."""
    r = four_digits
    m1 = r(n["x1"] * n["w1"])
    relu = max(m1, 0.0)
    yhat = r(1 / (1 + math.exp(-r(relu * n["w2"]))))
    s = r(yhat - n["y"])
    upstream = r(2 * s) * r(yhat * (1 - yhat))
    return {"m1": m1, "r": relu, "yhat": yhat, "s": s, "loss": r(s * s),
            "dloss_dw2": r(upstream * relu), "dloss_dw1": r(upstream * n["w2"] * n["x1"])}


def acceptable(n: dict[str, float]) -> bool:
    """Numbers whose slips can all be told apart from the right answers (answers.Expected.separated);
    whose ŷ stays within [0.08, 0.92] (nearer 0 or 1, ŷ to 4 digits loses too many digits of
    s = ŷ − y and 1 − ŷ) and whose tanh stays away from saturation (1 − f² from a rounded f would
    lose its digits); and whose answers still pass when every intermediate is written to 4 digits
    (tests/unit/test_promises.py)."""
    if not 0.08 <= task2_values(n["x1"], n["w1"], n["w2"], n["y"])["yhat"] <= 0.92:
        return False
    if abs(composite_values(n["gx"], n["gy"], n["gz"])["f"]) > 0.85:
        return False
    expected = all_answers(n)
    return (all(e.separated() for e in expected)
            and survives_rounding(written_to_4_digits(n) | graph_written_to_4_digits(n), expected))


def student_numbers(student: str) -> dict[str, float]:
    """Task 1 (gx, gy, gz) and Task 2 (x1, w1, w2, y) inputs for one student id: stable
    everywhere, every slip clearly wrong.

    Candidates come from a SHA-256 of the id, one pick from each of `GRIDS`; the first
    `acceptable` one is taken."""
    return draw_numbers("lab4", student, draw, acceptable)


def show_numbers(n: dict) -> list[str]:
    return [f"Task 1: x = {n['gx']:g}, y = {n['gy']:g}, z = {n['gz']:g}",
            "Task 2: " + ", ".join(f"{k} = {n[k]:g}" for k in ("x1", "w1", "w2", "y"))]


# The numbers of the lab's worked examples (the observe cell after Task 1; the textbook numbers of
# Task 2's text and of `show_graph`): answers worked on them instead of the student's own are named.
WORKED_EXAMPLE = {"gx": 0.25, "gy": 0.3, "gz": 0.4} | WORKED_NUMBERS

check = LabKit(
    "lab4", numbers=student_numbers, show_numbers=show_numbers, answers=answers, example=WORKED_EXAMPLE,
    formulas={
        "f_gradients": Formula("f_gradients", "df/dx, df/dy and df/dz match autograd on the visible inputs."),
        "gradients": Formula("gradients", "dloss/dw1 and dloss/dw2 match autograd on the visible inputs."),
    })
