"""Lab 5 in the student kit: your numbers, the hand-computed answers, how your functions are run.

The values of a hand computation on your own numbers (one SGD step, one cross-entropy loss) are
computed here with autograd: what is graded by hand is that you can work them out. What your
model and your training loop should give is not here: `check.function` compares with data in
expected/lab5.json.
"""

import math

import torch
from torch import nn

from .answers import Expected, WrongType, as_floats, four_digits, survives_rounding
from .checks import Formula, Function, LabKit
from .data import thermometer
from .device import grading_device
from .identity import draw_numbers, pick_all

F64 = torch.float64

# Grids the per-student numbers are drawn from: 5 · 3 · 5⁴ · 2 · 31³ · 3 ≈ 1.7e9 combinations, so
# two students of a class of 1,000 share numbers with a chance under 0.1 % (tests/unit/test_promises.py).
WEIGHTS = (-1.0, -0.5, 0.5, 1.0, 1.5)
BIASES = (-1.0, 0.0, 1.0)
INPUTS = (-2.0, -1.0, 1.0, 2.0, 3.0)
TARGETS = (-1.0, 0.0, 1.0, 2.0, 4.0)
LRS = (0.05, 0.1)
LOGITS = tuple(round(-1 + 0.1 * k, 1) for k in range(31))  # -1.0 … 2.0
GRIDS = {"w": WEIGHTS, "b": BIASES, "x1": INPUTS, "y1": TARGETS, "x2": INPUTS, "y2": TARGETS, "lr": LRS,
         "logit0": LOGITS, "logit1": LOGITS, "logit2": LOGITS, "target": (0, 1, 2)}


# ---------------------------------------------------------------- hand computations

def sgd_step_values(w, b, x1, y1, x2, y2, lr) -> dict[str, float]:
    """MSE of ŷ = w·x + b on two points, its gradients by autograd, and w after one SGD step."""
    wt = torch.tensor(w, dtype=F64, device=grading_device(), requires_grad=True)
    bt = torch.tensor(b, dtype=F64, device=grading_device(), requires_grad=True)
    x = torch.tensor([x1, x2], dtype=F64, device=grading_device())
    y = torch.tensor([y1, y2], dtype=F64, device=grading_device())
    mse = nn.functional.mse_loss(wt * x + bt, y)
    mse.backward()
    return {"mse": mse.item(), "dmse_dw": wt.grad.item(), "dmse_db": bt.grad.item(),
            "w_next": w - lr * wt.grad.item()}


def cross_entropy_values(logits: list[float], target: int) -> dict[str, float]:
    """nn.CrossEntropyLoss of one sample and its gradient with respect to the logits, by autograd."""
    z = torch.tensor([logits], dtype=F64, device=grading_device(), requires_grad=True)
    loss = nn.CrossEntropyLoss()(z, torch.tensor([target], device=grading_device()))
    loss.backward()
    return {"ce_loss": loss.item(), **{f"ce_grad_{i}": g for i, g in enumerate(z.grad[0].tolist())}}


def step_uses(n: dict) -> str:
    return (f"w = {n['w']:g}, b = {n['b']:g}, points (x, y) = ({n['x1']:g}, {n['y1']:g}) and "
            f"({n['x2']:g}, {n['y2']:g}), lr = {n['lr']:g}")


def ce_uses(n: dict) -> str:
    return f"logits z = {n['logits']}, target class {n['target']}"


def step_answers(n: dict) -> list[Expected]:
    """Task 3's right answers for these numbers, each with the slips feedback can name."""
    r = sgd_step_values(n["w"], n["b"], n["x1"], n["y1"], n["x2"], n["y2"], n["lr"])
    uses = step_uses(n)
    return [
        Expected("mse", r["mse"], "MSE = mean of (w·x + b − y)² over both points.",
                 {"summed the squares instead of averaging": 2 * r["mse"]}, uses),
        Expected("dmse_dw", r["dmse_dw"], "Differentiate the mean of the squared residuals with respect to w: "
                 "the chain rule through each residual w·x + b − y, and the mean's 1/N stays.",
                 {"summed instead of averaging": 2 * r["dmse_dw"], "forgot the factor 2": r["dmse_dw"] / 2}, uses),
        Expected("dmse_db", r["dmse_db"], "Differentiate the mean of the squared residuals with respect to b: "
                 "b enters each residual with slope 1.",
                 {"summed instead of averaging": 2 * r["dmse_db"], "forgot the factor 2": r["dmse_db"] / 2}, uses),
        Expected("w_next", r["w_next"], "SGD: w ← w − lr · dMSE/dw.",
                 {"stepped uphill (w + lr · dMSE/dw)": n["w"] + n["lr"] * r["dmse_dw"],
                  "used the summed gradient": n["w"] - 2 * n["lr"] * r["dmse_dw"]}, uses),
    ]


SOFTMAX_TWICE = "applied softmax before CrossEntropyLoss, which applies it again"
SOFTMAX_TWICE_BY_HAND = ("applied softmax twice and took the gradient as softmax(p) − one-hot, as if the "
                         "probabilities p were the logits (the first softmax's slope left out)")


def softmax_twice(z: list[float], target: int) -> dict[str, float]:
    """The loss and gradients, by autograd, of cross-entropy applied to softmax(z) instead of z."""
    logits = torch.tensor(z, dtype=F64, device=grading_device(), requires_grad=True)
    loss = nn.CrossEntropyLoss()(torch.softmax(logits, 0)[None], torch.tensor([target], device=grading_device()))
    loss.backward()
    return {"ce_loss": loss.item(), **{f"ce_grad_{i}": g for i, g in enumerate(logits.grad.tolist())}}


def ce_answers(n: dict) -> list[Expected]:
    """Task 4's right answers for these numbers, each with the slips feedback can name."""
    z, t = n["logits"], n["target"]
    r = cross_entropy_values(z, t)
    p = torch.softmax(torch.tensor(z, dtype=F64), 0).tolist()
    twice = softmax_twice(z, t)
    by_hand = cross_entropy_values(p, t)  # the second softmax's gradient, taken as if p were the logits
    log_sum = math.log(sum(math.exp(v) for v in z))
    uses = ce_uses(n)
    grads = [Expected(f"ce_grad_{i}", r[f"ce_grad_{i}"], "Differentiate L = −z_target + ln Σ exp(z_j) with respect to "
                      "z_i: one term from the log-sum-exp, one from −z_target when i is the target.",
                      {**({"forgot to subtract the one-hot target": p[i]} if i == t else {}),
                       SOFTMAX_TWICE: twice[f"ce_grad_{i}"], SOFTMAX_TWICE_BY_HAND: by_hand[f"ce_grad_{i}"]}, uses)
             for i in range(3)]
    return [Expected("ce_loss", r["ce_loss"], "L = −z_target + ln Σ exp(z_j), the natural logarithm.",
                     {SOFTMAX_TWICE: twice["ce_loss"],
                      "used log base 10": log_sum / math.log(10) - z[t],
                      "left out the log-sum-exp term (−z_target alone)": -z[t]}, uses)] + grads


def answers(numbers: dict) -> dict[str, Expected]:
    """Every hand-computed answer of the lab, by name."""
    return {e.name: e for e in step_answers(numbers) + ce_answers(numbers)}


def written_to_4_digits(n: dict) -> dict[str, float]:
    """Task 4 as a careful student works it: every intermediate written down to 4 digits."""
    r, z, t = four_digits, n["logits"], n["target"]
    exps = [r(math.exp(v)) for v in z]
    total = r(sum(exps))
    return {"ce_loss": r(r(math.log(total)) - z[t]),
            **{f"ce_grad_{i}": r(r(exps[i] / total) - (i == t)) for i in range(3)}}


def draw(digest: bytes) -> dict:
    """One pick from each of `GRIDS`, the three logits gathered in a list."""
    n = pick_all(digest, GRIDS)
    return {**{k: v for k, v in n.items() if not k.startswith("logit")},
            "logits": [n["logit0"], n["logit1"], n["logit2"]]}


def acceptable(n: dict) -> bool:
    """Two distinct inputs, three distinct logits, every slip clearly wrong, and every
    intermediate written to 4 digits still right."""
    expected = step_answers(n) + ce_answers(n)
    return (n["x1"] != n["x2"] and len(set(n["logits"])) == 3 and all(e.separated() for e in expected)
            and survives_rounding(written_to_4_digits(n), expected))


def student_numbers(student: str) -> dict:
    """Tasks 3 and 4 inputs for one student id: the first `acceptable` draw over SHA-256 digests of the id."""
    return draw_numbers("lab5", student, draw, acceptable)


def show_numbers(n: dict) -> list[str]:
    return [f"Task 3: {step_uses(n)}", f"Task 4: {ce_uses(n)}"]


# ---------------------------------------------------------------- running the student's functions

def seeded_model(seed: int) -> nn.Sequential:
    """Linear(2, 2) → ReLU → Linear(2, 1), with the weights nn's default initialisation gives
    after torch.manual_seed(seed), drawn from a generator of its own. The global generator is
    shared by every thread of the grading process: another thread drawing from it (or seeding
    it) between this one's seeding and its draws gave a reference model with other weights, and
    a right training loop lost its points at random."""
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 2, device="meta"), nn.ReLU(), nn.Linear(2, 1, device="meta"))
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):  # nn.Linear.reset_parameters, in its order of draws
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                bound = 1 / math.sqrt(layer.in_features)
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return model.to(grading_device())


def training_inputs(probe: dict, dtype: torch.dtype = F64) -> tuple:
    """The model, data and optimizer one training probe starts from. Probes run in float64: their
    losses grow and swing, which magnifies rounding, and in float32 they would differ between CPUs
    and GPUs by more than the tolerance after 50 steps (in float64, by under 1e-9)."""
    model = seeded_model(probe["seed"]).to(dtype)
    X, y = thermometer(dtype=dtype, device=grading_device())
    optimizer = getattr(torch.optim, probe["optimizer"])(model.parameters(), lr=probe["lr"])
    return model, X, y, optimizer


def describe_layers(model: nn.Module) -> list[list]:
    """The model's layers as plain data: ["Linear", in, out] or ["ReLU"]."""
    layers = []
    for module in model.modules():
        if isinstance(module, nn.Linear):
            layers.append(["Linear", module.in_features, module.out_features])
        elif not list(module.children()):
            layers.append([type(module).__name__])
    return layers


def run_make_model(fns: dict, probe: list) -> list[list]:
    model = fns["make_model"](*probe)
    if not isinstance(model, nn.Module):
        raise WrongType(f"make_model() should return an nn.Module, not {type(model).__name__}.")
    return describe_layers(model)


def run_train(fns: dict, probe: dict) -> list[float]:
    model, X, y, optimizer = training_inputs(probe)
    losses = fns["train"](model, X, y, optimizer, probe["steps"], zero_grad=probe["zero_grad"])
    return as_floats("losses", losses)


# The numbers of the lab's worked example (the observe cell after Task 3):
# answers worked on them instead of the student's own are named as such.
WORKED_EXAMPLE = {"w": 0.8, "b": 0.3, "x1": 1.5, "y1": 2.5, "x2": -0.5, "y2": 0.2, "lr": 0.2}

check = LabKit(
    "lab5", numbers=student_numbers, show_numbers=show_numbers, answers=answers, example=WORKED_EXAMPLE,
    functions={
        "make_model": Function(("make_model",), run_make_model, "the architecture is right."),
        "train": Function(("train",), run_train, "every loss matches the reference training loop."),
    },
    formulas={
        "sgd_step": Formula("sgd_step", "the loss, both gradients and both updated parameters match autograd."),
        "cross_entropy": Formula("cross_entropy", "the loss and its three gradients match autograd."),
    })
