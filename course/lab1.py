"""Lab 1 in the student kit: your numbers, the hand-computed step, how your functions are run.

Find A, B with A + B = target by minimising loss = (A + B − target)². The one step you work out
by hand is computed here with autograd (what is graded is that you can work it out). What your
functions and formulas should return, and which regime each learning rate gives, is not here: the checks
compare with data in expected/lab1.json.
"""

import torch

from .answers import Expected, WrongType, as_float, as_floats
from .checks import Formula, Function, LabKit, Table
from .device import grading_device
from .identity import draw_numbers, pick_all

F64 = torch.float64

STEP_NAMES = ("u", "loss", "dloss_dA", "dloss_dB", "A_next")
REGIMES = ("monotone", "one step", "oscillating", "diverging")

# Per-student numbers for the hand computation and the learning-rate study: 60² · 21 · 4 starts,
# targets and rates, times four learning rates to classify, each of a regime drawn on its own (so a
# regime may come twice or not at all, and sorting the rates does not answer the table) and a rate
# of that regime: about 74⁴ ordered choices, ≈ 9e12 combinations, so two students of a class of
# 1,000 share numbers with a chance under 0.1 % (tests/unit/test_promises.py).
TARGETS = tuple(5 + 0.5 * k for k in range(21))  # 5 … 15
# ±0.1 … ±3.0
STARTS = tuple(round(0.1 * k, 1) for k in range(-30, 31) if k)
STEP_LRS = (0.01, 0.02, 0.05, 0.1)
REGIME_LRS = {"monotone": tuple(round(0.01 * k, 2) for k in range(1, 25)),       # 0.01 … 0.24
              "one step": (0.25,),
              "oscillating": tuple(round(0.01 * k, 2) for k in range(26, 50)),   # 0.26 … 0.49
              "diverging": tuple(round(0.01 * k, 2) for k in range(51, 76))}     # 0.51 … 0.75
RATES = 4  # learning rates each student classifies
GRIDS = {"A": STARTS, "B": STARTS, "target": TARGETS, "lr": STEP_LRS,
         **{f"regime{i}": REGIMES for i in range(RATES)}, **{f"rate{i}": tuple(range(600)) for i in range(RATES)}}


def _leaf(value: float, grad: bool = False) -> torch.Tensor:
    return torch.tensor(float(value), dtype=F64, device=grading_device(), requires_grad=grad)


# ---------------------------------------------------------------- the step by hand

def step_reference(A: float, B: float, target: float, lr: float) -> dict[str, float]:
    """u, the loss, both gradients and A after one update, by autograd."""
    At, Bt = _leaf(A, grad=True), _leaf(B, grad=True)
    u = At + Bt - target
    loss = u.square()
    loss.backward()
    return {"u": u.item(), "loss": loss.item(), "dloss_dA": At.grad.item(), "dloss_dB": Bt.grad.item(),
            "A_next": A - lr * At.grad.item()}


def step_expected(A: float, B: float, target: float, lr: float) -> list[Expected]:
    """Task 1's right answers for these numbers, each with the slips feedback can name."""
    r = step_reference(A, B, target, lr)
    g = r["dloss_dA"]
    uses = f"A = {A:g}, B = {B:g}, target = {target:g}, lr = {lr:g}"
    return [
        Expected("u", r["u"], "u = A + B − target.", {"computed target − (A + B)": -r["u"]}, uses),
        Expected("loss", r["loss"], "loss = u².", {"forgot to square u": r["u"]}, uses),
        Expected("dloss_dA", g, "Chain rule: dloss/dA = dloss/du · du/dA, the derivative of the square, then of u.",
                 {"forgot the factor 2 from the square": r["u"], "gave the loss instead of its slope": r["loss"]},
                 uses),
        Expected("dloss_dB", r["dloss_dB"], "B enters u exactly as A does.",
                 {"forgot the factor 2 from the square": r["u"]}, uses),
        Expected("A_next", r["A_next"], "A ← A − lr · dloss/dA.",
                 {"stepped uphill (A + lr · dloss/dA)": A + lr * g, "left out the learning rate": A - g,
                  "forgot the factor 2 in the gradient": A - lr * r["u"]}, uses),
    ]


def answers(numbers: dict) -> dict[str, Expected]:
    """Every hand-computed answer of the lab, by name."""
    return {e.name: e for e in step_expected(numbers["A"], numbers["B"], numbers["target"], numbers["lr"])}


# ---------------------------------------------------------------- per-student numbers

def draw(digest: bytes) -> dict:
    """One pick from each of `GRIDS`: the step's numbers, and four distinct rates, each of a
    regime drawn on its own ("one step" has one rate: drawn again, it gives way to "oscillating")."""
    n = pick_all(digest, GRIDS)
    rates: list[float] = []
    for i in range(RATES):
        regime = n[f"regime{i}"]
        if regime == "one step" and REGIME_LRS[regime][0] in rates:
            regime = "oscillating"
        left = [lr for lr in REGIME_LRS[regime] if lr not in rates]
        rates.append(left[n[f"rate{i}"] % len(left)])
    return {"A": n["A"], "B": n["B"], "target": n["target"], "lr": n["lr"], "rates": rates}


def acceptable(n: dict) -> bool:
    """Numbers whose slips can all be told apart from the right answers."""
    return all(e.separated() for e in step_expected(n["A"], n["B"], n["target"], n["lr"]))


def student_numbers(student: str) -> dict:
    """Start, target and learning rate for the hand computation, plus four learning rates to classify:
    the first `acceptable` draw over SHA-256 digests of the id."""
    return draw_numbers("lab1", student, draw, acceptable)


def show_numbers(n: dict) -> list[str]:
    return [f"Task 1: start A = {n['A']:g}, B = {n['B']:g}, target = {n['target']:g}, lr = {n['lr']:g}",
            "Task 3: learning rates " + ", ".join(f"{lr:g}" for lr in n["rates"])]


# ---------------------------------------------------------------- running the student's functions

def run_descent(fns: dict, probe: dict) -> dict[str, list[float]]:
    result = fns["gradient_descent"](**probe)
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        raise WrongType("gradient_descent should return three lists: (As, Bs, losses).")
    return {k: as_floats(k, v) for k, v in zip(("As", "Bs", "losses"), result, strict=True)}



# ---------------------------------------------------------------- the predictions table

def rate_key(lr) -> str:
    """A learning rate as the key of `predictions`: 0.3 and "0.3" are both "0.3"."""
    if isinstance(lr, str):  # {"0.3": ...} is as clear as {0.3: ...}
        try:
            lr = float(lr)
        except ValueError:
            raise WrongType(f"predictions has the key {lr!r}: use the learning rate as a number.") from None
    return f"{round(as_float('learning rate', lr), 9):g}"


class RegimeTable(Table):
    """The predicted regime of each of the student's learning rates; extra rates do no harm."""

    def check_keys(self, name: str, given: dict, needed: list[str]) -> list[str]:
        missing = [key for key in needed if key not in given]
        return [f"{name} needs an entry for each of your learning rates; missing {', '.join(missing)} "
                f"(your rates: {', '.join(needed)})."] if missing else []


# The numbers of the lab's worked example (Task 1's text: the start A = B = 0 with target 10):
# answers worked on them instead of the student's own are named as such.
WORKED_EXAMPLE = {"A": 0.0, "B": 0.0, "target": 10.0}

check = LabKit(
    "lab1", numbers=student_numbers, show_numbers=show_numbers, answers=answers, example=WORKED_EXAMPLE,
    functions={
        "gradient_descent": Function(("gradient_descent",), run_descent,
                                     "every epoch matches gradient descent done by autograd."),
    },
    formulas={"one_step": Formula("one_step", "the loss, both gradients and both updates match autograd."),
              "shrink_factor": Formula("shrink_factor", "matches u_next / u measured on autograd runs."),
              "unrolled_gradient": Formula("unrolled_gradient", "h3 and dh3/dw match autograd on the unrolled loop.")},
    tables={
        "predictions": RegimeTable(all_keys=tuple(rate_key(lr) for lrs in REGIME_LRS.values() for lr in lrs),
                             choices=REGIMES, chosen=lambda n: [rate_key(lr) for lr in n["rates"]],
                             key=rate_key, describe=repr, success="every regime predicted right."),
    })
