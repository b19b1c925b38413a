"""Lab 5 — training loops with nn.Module and optimizers: the grader's references and checks.

The training loop's reference runs with torch.autograd on the grading device, when grading
runs, from the kit's seeded models and data. Hand-computed answers are checked on the kit's
values for the student's numbers (course.lab5.answers).
"""

import warnings

import torch
from torch import nn

from course import lab5 as kit
from course.answers import lists_close

from . import Lab

LAB = Lab(kit.check)

# make_model's layers, as the kit's describe_layers reads them.
ARCHITECTURE = [["Linear", 2, 2], ["ReLU"], ["Linear", 2, 1]]
TRAIN_RTOL, TRAIN_ATOL = 1e-3, 1e-6


# ---------------------------------------------------------------- references for the student's functions

def train_reference(optimizer: str, lr: float, steps: int, zero_grad: bool, seed: int,
                    zero_after_backward: bool = False, squeeze: bool = True,
                    dtype: torch.dtype = torch.float64) -> list[float]:
    """Losses of the lab's training loop by autograd; two classic bugs can be switched on for
    feedback. Probes run in float64; the lab's own cells run in float32 (`dtype`)."""
    model, X, y, opt = kit.training_inputs(dict(optimizer=optimizer, lr=lr, seed=seed), dtype)
    losses = []
    for _ in range(steps):
        if zero_grad and not zero_after_backward:
            opt.zero_grad()
        out = model(X)
        if squeeze:
            loss = nn.functional.mse_loss(out.squeeze(1), y)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PyTorch warns about exactly this broadcast
                loss = nn.functional.mse_loss(out, y)  # (11, 1) against (11,): broadcast to (11, 11)
        loss.backward()
        if zero_after_backward:
            opt.zero_grad()
        opt.step()
        losses.append(loss.item())
    return losses


# ---------------------------------------------------------------- verifiers with more to say than "matches"

def verify_model(data: dict, student: str) -> list[str]:
    return [f"make_model() has the layers {layers}; expected Linear(2, 2) → ReLU → Linear(2, 1)."
            for layers in data["outputs"] if layers != ARCHITECTURE]


def verify_train(data: dict, student: str) -> list[str]:
    problems = []
    close = lambda a, b: lists_close(a, b, TRAIN_RTOL, TRAIN_ATOL)  # noqa: E731
    for probe, got in zip(data["probes"], data["outputs"]):
        name, lr, steps, zero_grad = probe["optimizer"], probe["lr"], probe["steps"], probe["zero_grad"]
        call = f"train with {name}(lr={lr:g}), {steps} steps, zero_grad={zero_grad}"
        ref = train_reference(**probe)
        if close(got, ref):
            continue
        if len(got) != steps:
            problems.append(f"{call}: return one loss per step ({steps}), got {len(got)}.")
        elif close(got, train_reference(**{**probe, "zero_grad": not zero_grad})):
            problems.append(f"{call}: " + ("the gradients are never cleared" if zero_grad else
                                           "the gradients are cleared although zero_grad=False") + ".")
        elif close(got, train_reference(**probe, zero_after_backward=True)):
            problems.append(f"{call}: zero_grad() runs after backward(), so step() sees zero gradients and "
                            "nothing is learned. Clear the gradients before backward().")
        elif close(got, train_reference(**probe, squeeze=False)):
            problems.append(f"{call}: model(X) has shape (11, 1) and y (11,), so the loss broadcasts them to "
                            "(11, 11) and compares every prediction with every target. Squeeze the output.")
        else:
            problems.append(f"{call}: the losses differ from the reference loop (first loss {got[0]:.6g}, "
                            f"expected {ref[0]:.6g}).")
    return problems


# ---------------------------------------------------------------- the checks, one declaration each

LAB.function(
    "t1_model", "make_model", visible=[[]], hidden=[],
    reference=lambda p: ARCHITECTURE, verify=verify_model,
    hint="Expected Linear(2, 2) → ReLU → Linear(2, 1).")
LAB.function(
    "t2_train", "train", visible=[dict(optimizer="SGD", lr=1e-3, steps=50, zero_grad=True, seed=0)],
    hidden=[dict(optimizer="SGD", lr=1e-3, steps=30, zero_grad=False, seed=0),
            dict(optimizer="Adam", lr=0.05, steps=40, zero_grad=True, seed=2)],
    reference=lambda p: train_reference(**p),
    mistakes={"never called optimizer.zero_grad(): the gradients are never cleared, so each step adds "
              "the new gradient to all the old ones":
              lambda p: train_reference(**{**p, "zero_grad": False}),
              "called zero_grad() between backward() and step(): zero_grad() runs after backward(), so "
              "step() sees zero gradients and nothing is learned. Clear the gradients before backward()":
              lambda p: train_reference(**p, zero_after_backward=True),
              "compared model(X), of shape (11, 1), with y, of shape (11,): the loss broadcasts them to "
              "(11, 11) and compares every prediction with every target. Squeeze the output":
              lambda p: train_reference(**p, squeeze=False)},
    verify=verify_train, rtol=TRAIN_RTOL, atol=TRAIN_ATOL,
    hint="Each step: optimizer.zero_grad() (when zero_grad is true), the MSE of model(X).squeeze(1) "
         "against y, backward(), step(); return the loss of every step.")
LAB.values("t3_sgd_step", "mse", "dmse_dw", "dmse_db", "w_next")
LAB.values("t4_cross_entropy", "ce_loss", "ce_grad_0", "ce_grad_1", "ce_grad_2")
