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

# Task 1 uses the same numbers for everyone; Task 2's worked example uses these.
TASK1_NUMBERS = {"x": 4.0, "y": 1.0, "w": 0.5}
WORKED_NUMBERS = {"x1": 4.0, "w1": 0.5, "w2": 0.2, "y": 1.0}
# Task 2 answers that would clash with Task 1's names carry the suffix _2.
TASK2_ANSWER_NAMES = {"yhat": "yhat_2", "s": "s_2", "loss": "loss_2",
                      "dloss_ds": "dloss_ds_2", "ds_dyhat": "ds_dyhat_2"}

# Grids the per-student numbers are drawn from (x1, w1 > 0 keep the ReLU active):
# 551 · 851 · 1702 · 2 ≈ 1.6e9 combinations, about 58 % of them acceptable, so two students
# of a class of 1,000 share numbers with a chance under 0.1 % (tests/unit/test_promises.py).
X1_CHOICES = tuple(round(1 + 0.01 * k, 2) for k in range(551))            # 1.00 … 6.50
W1_CHOICES = tuple(round(0.1 + 0.001 * k, 3) for k in range(851))         # 0.100 … 0.950
W2_CHOICES = tuple(sign * w for sign in (-1, 1) for w in W1_CHOICES)      # ±0.100 … ±0.950
Y_CHOICES = (0.0, 1.0)
GRIDS = {"x1": X1_CHOICES, "w1": W1_CHOICES, "w2": W2_CHOICES, "y": Y_CHOICES}


def _leaf(value: float, grad: bool = False) -> torch.Tensor:
    return torch.tensor(float(value), dtype=F64, device=grading_device(), requires_grad=grad)


def _local(out: torch.Tensor, inp: torch.Tensor) -> float:
    """d out / d inp on the recorded graph, by autograd."""
    return torch.autograd.grad(out, inp, retain_graph=True)[0].item()


# ---------------------------------------------------------------- hand computations

def task1_values(x: float, y: float, w: float) -> dict[str, float]:
    """Node values, local derivatives and dloss/dw of ŷ = x·w, s = ŷ − y, loss = s²."""
    xt, yt, wt = _leaf(x), _leaf(y), _leaf(w, grad=True)
    yhat = xt * wt
    s = yhat - yt
    loss = s ** 2
    ref = {"yhat": yhat.item(), "s": s.item(), "loss": loss.item(),
           "dloss_ds": _local(loss, s), "ds_dyhat": _local(s, yhat), "dyhat_dw": _local(yhat, wt)}
    loss.backward()
    ref["dloss_dw"] = wt.grad.item()
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


def task1_answers() -> list[Expected]:
    """Task 1's right answers (the same for everyone), each with the slips feedback can name."""
    n, r = TASK1_NUMBERS, task1_values(**TASK1_NUMBERS)
    return [
        Expected("yhat", r["yhat"], "ŷ = x · w.", {"added x and w": n["x"] + n["w"]}),
        Expected("s", r["s"], "s = ŷ − y.", {"computed y − ŷ": -r["s"]}),
        # s = 1 here, so a loss of s instead of s² cannot be told apart: 1c's formula names that slip.
        Expected("loss", r["loss"], "loss = s²."),
        Expected("dloss_ds", r["dloss_ds"], "The derivative of s² is 2s.",
                 {"forgot the factor 2 from the square": r["s"]}),
        Expected("ds_dyhat", r["ds_dyhat"], "s = ŷ − y changes one-for-one with ŷ."),
        Expected("dyhat_dw", r["dyhat_dw"], "ŷ = x · w; differentiate with respect to w.",
                 {"used w instead of x": n["w"]}),
        Expected("dloss_dw", r["dloss_dw"], "dloss/dw = dloss/ds · ds/dŷ · dŷ/dw.",
                 {"forgot the factor 2 from the square": r["dloss_dw"] / 2,
                  "used w instead of x for dŷ/dw": r["dloss_ds"] * n["w"],
                  "stopped at dloss/ds": r["dloss_ds"]}),
    ]


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
        return Expected(TASK2_ANSWER_NAMES.get(name, name), r[name], hint, slips, uses)

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


def answers(numbers: dict) -> dict[str, Expected]:
    """Every hand-computed answer of the lab, by name."""
    return {e.name: e for e in task1_answers() + task2_answers(**numbers)}


def draw(digest: bytes) -> dict[str, float]:
    """One pick from each of `GRIDS`."""
    return pick_all(digest, GRIDS)


def written_to_4_digits(n: dict[str, float]) -> dict[str, float]:
    """Task 2's forward values and gradients as a careful student works them: every
    intermediate written down to 4 digits."""
    r = four_digits
    m1 = r(n["x1"] * n["w1"])
    relu = max(m1, 0.0)
    yhat = r(1 / (1 + math.exp(-r(relu * n["w2"]))))
    s = r(yhat - n["y"])
    upstream = r(2 * s) * r(yhat * (1 - yhat))
    return {"m1": m1, "r": relu, "yhat_2": yhat, "s_2": s, "loss_2": r(s * s),
            "dloss_dw2": r(upstream * relu), "dloss_dw1": r(upstream * n["w2"] * n["x1"])}


def acceptable(numbers: dict[str, float]) -> bool:
    """Numbers whose slips can all be told apart from the right answers (answers.Expected.separated),
    whose ŷ stays within [0.08, 0.92] (nearer 0 or 1, ŷ to 4 digits loses too many digits of
    s = ŷ − y and 1 − ŷ), and whose answers still pass when every intermediate is written to 4
    digits (tests/unit/test_promises.py)."""
    expected = task2_answers(**numbers)
    return (0.08 <= task2_values(**numbers)["yhat"] <= 0.92 and all(e.separated() for e in expected)
            and survives_rounding(written_to_4_digits(numbers), expected))


def student_numbers(student: str) -> dict[str, float]:
    """Task 2 inputs for one student id: stable everywhere, every slip clearly wrong.

    Candidates come from a SHA-256 of the id, one pick from each of `GRIDS`; the first
    `acceptable` one is taken."""
    return draw_numbers("lab4", student, draw, acceptable)


def show_numbers(numbers: dict) -> list[str]:
    return ["Your numbers: " + ", ".join(f"{k} = {v:g}" for k, v in numbers.items())]


# The numbers of the lab's worked example (the textbook numbers of Task 2's text and of `show_graph`):
# answers worked on them instead of the student's own are named as such.
WORKED_EXAMPLE = {"x1": 4.0, "w1": 0.5, "w2": 0.2, "y": 1.0}

check = LabKit(
    "lab4", numbers=student_numbers, show_numbers=show_numbers, answers=answers, example=WORKED_EXAMPLE,
    formulas={
        "loss_and_gradient": Formula("loss_and_gradient",
                                     "the loss and dloss/dw match autograd on the visible inputs."),
        "gradients": Formula("gradients", "dloss/dw1 and dloss/dw2 match autograd on the visible inputs."),
    })
