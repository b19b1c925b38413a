"""Lab 5 — training loops with nn.Module and optimizers: the grader's references and checks.

The training loop's reference runs with torch.autograd on the grading device, when grading
runs, from the kit's seeded models and data. Hand-computed answers are checked on the kit's
values for the student's numbers (course.lab5.answers).
"""

import math
import warnings

import torch
from torch import nn

from course import lab5 as kit

from . import Case, Lab, Mistake, draw_until, uniform

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


# ---------------------------------------------------------------- the formulas' references and slips

def sgd_step_reference(w, b, x1, y1, x2, y2, lr) -> list[float]:
    r = kit.sgd_step_values(w, b, x1, y1, x2, y2, lr)
    return [r["mse"], r["dmse_dw"], r["dmse_db"], r["w_next"], b - lr * r["dmse_db"]]


def sgd_step_slips(w, b, x1, y1, x2, y2, lr) -> dict[str, list[float]]:
    """(mse, dmse/dw, dmse/db, w_next, b_next) as each known slip gives them, in closed form."""
    points = ((x1, y1), (x2, y2))

    def step(bias_sign=1.0, mean=2.0, factor=2.0, grad_sign=1.0, direction=-1.0, x_in_b=False, x_in_w=True):
        res = [(w * x + bias_sign * b - y, x) for x, y in points]
        mse = sum(r * r for r, _ in res) / mean
        gw = grad_sign * sum(factor * r * (x if x_in_w else 1.0) for r, x in res) / mean
        gb = grad_sign * bias_sign * sum(factor * r * (x if x_in_b else 1.0) for r, x in res) / mean
        return [mse, gw, gb, w + direction * lr * gw, b + direction * lr * gb]

    return {"summed the squared errors instead of averaging them": step(mean=1.0),
            "forgot the factor 2 from the square": step(factor=1.0),
            "flipped the sign of the residual (y − ŷ) in the gradients": step(grad_sign=-1.0),
            "stepped uphill (w + lr · dMSE/dw)": step(direction=1.0),
            "flipped the bias's sign in the model (ŷ = w·x − b)": step(bias_sign=-1.0),
            "multiplied dMSE/db by x as well (the bias's input is 1)": step(x_in_b=True),
            "left x out of dMSE/dw": step(x_in_w=False)}


def cross_entropy_reference(z0, z1, z2, target) -> list[float]:
    r = kit.cross_entropy_values([z0, z1, z2], target)
    return [r["ce_loss"], r["ce_grad_0"], r["ce_grad_1"], r["ce_grad_2"]]


SOFTMAX_TWICE_BY_HAND = ("applied softmax before the cross-entropy, which applies it again, and took the gradient as "
                         "softmax(p) − one-hot, as if the probabilities p were the logits (the first softmax's "
                         "slope left out)")


def cross_entropy_slips(z0, z1, z2, target) -> dict[str, list[float]]:
    """(loss, dL/dz0, dL/dz1, dL/dz2) as each known slip gives them, in closed form."""
    z = [z0, z1, z2]

    def softmax(v):
        total = sum(math.exp(u) for u in v)
        return [math.exp(u) / total for u in v]

    p = softmax(z)
    onehot = [float(i == target) for i in range(3)]
    right = [p_i - t_i for p_i, t_i in zip(p, onehot, strict=True)]
    twice = softmax(p)  # softmax applied to probabilities: the gradient goes back through the first softmax
    upstream = [q_i - t_i for q_i, t_i in zip(twice, onehot, strict=True)]
    through = [p[i] * (upstream[i] - sum(p_j * u_j for p_j, u_j in zip(p, upstream, strict=True))) for i in range(3)]
    log_sum = math.log(sum(math.exp(u) for u in z))
    return {"forgot to subtract the one-hot target": [log_sum - z[target], *p],
            "applied softmax before the cross-entropy, which applies it again":
                [-p[target] + math.log(sum(math.exp(u) for u in p)), *through],
            SOFTMAX_TWICE_BY_HAND: [-p[target] + math.log(sum(math.exp(u) for u in p)), *upstream],
            "used log base 10": [log_sum / math.log(10) - z[target], *right],
            "left out the log-sum-exp term (−z_target alone)": [-z[target], *right],
            "flipped the sign of the gradient (one-hot − softmax)": [log_sum - z[target], *(-g for g in right)]}


def sgd_cases() -> list[Case]:
    def draw(scale: float, lrs: tuple[float, float], holds):
        def fits(w, b, x1, y1, x2, y2, lr):
            return (abs(b) > 0.2 and all(abs(x) > 0.2 and abs(x - 1) > 0.2 for x in (x1, x2))
                    and abs(x1 - x2) > 0.2 and holds(w * x1 + b - y1, w * x2 + b - y2))

        return lambda rng: draw_until(rng, lambda r: [uniform(r, -2, 2), uniform(r, -2, 2), uniform(r, -scale, scale),
                                                      uniform(r, -scale, scale), uniform(r, -scale, scale),
                                                      uniform(r, -scale, scale), uniform(r, *lrs)], fits)

    return [Case("when both points lie below the line (both residuals positive)",
                 draw(3, (0.01, 0.3), lambda r1, r2: r1 > 0.2 and r2 > 0.2)),
            Case("when the residuals have opposite signs",
                 draw(3, (0.01, 0.3), lambda r1, r2: r1 * r2 < 0 and min(abs(r1), abs(r2)) > 0.2)),
            Case("with inputs in the hundreds", draw(300, (1e-5, 1e-4), lambda r1, r2: min(abs(r1), abs(r2)) > 1))]


def cross_entropy_cases() -> list[Case]:
    def logits(target: int | None, low: float = -3, high: float = 3):
        def fits(*probe) -> bool:
            z = sorted(probe[:3])
            return z[1] - z[0] > 0.1 and z[2] - z[1] > 0.1

        return lambda rng: draw_until(rng, lambda r: [uniform(r, low, high) for _ in range(3)]
                                      + [r.randrange(3) if target is None else target], fits)

    return [*(Case(f"when the target is class {t}", logits(t)) for t in range(3)),
            Case("with large logits (around 30)", logits(None, 25, 35))]


# ---------------------------------------------------------------- the checks, one declaration each

LAB.function(
    "t1_model", "make_model", visible=[[]], hidden=[],
    reference=lambda p: ARCHITECTURE, detail=lambda p, got, right: f"has the layers {got}",
    hint="Expected Linear(2, 2) → ReLU → Linear(2, 1).")
LAB.function(
    "t2_train", "train", visible=[dict(optimizer="SGD", lr=1e-3, steps=50, zero_grad=True, seed=0)],
    hidden=[dict(optimizer="SGD", lr=1e-3, steps=30, zero_grad=False, seed=0),
            dict(optimizer="Adam", lr=0.05, steps=40, zero_grad=True, seed=2)],
    reference=lambda p: train_reference(**p),
    form=lambda p, got, right: f"return one loss per step ({p['steps']}), got {len(got)}." if len(got) != p["steps"]
    else None,
    mistakes=[Mistake("never called optimizer.zero_grad(): the gradients are never cleared, so each step adds "
                      "the new gradient to all the old ones",
                      lambda p: train_reference(**{**p, "zero_grad": False}) if p["zero_grad"] else None),
              Mistake("cleared the gradients although zero_grad=False",
                      lambda p: None if p["zero_grad"] else train_reference(**{**p, "zero_grad": True})),
              Mistake("called zero_grad() between backward() and step(): zero_grad() runs after backward(), so "
                      "step() sees zero gradients and nothing is learned. Clear the gradients before backward()",
                      lambda p: train_reference(**p, zero_after_backward=True)),
              Mistake("compared model(X), of shape (11, 1), with y, of shape (11,): the loss broadcasts them to "
                      "(11, 11) and compares every prediction with every target. Squeeze the output",
                      lambda p: train_reference(**p, squeeze=False))],
    detail=lambda p, got, right: f"the losses differ from the reference loop (first loss {got[0]:.6g}, expected "
                                 f"{right[0]:.6g})",
    rtol=TRAIN_RTOL, atol=TRAIN_ATOL,
    hint="Each step: optimizer.zero_grad() (when zero_grad is true), the MSE of model(X).squeeze(1) "
         "against y, backward(), step(); return the loss of every step.")
LAB.values("t3_sgd_step", "mse", "dmse_dw", "dmse_db", "w_next")
# (w, b, x1, y1, x2, y2, lr): b ≠ 0 and no x of ±1, so every slip shows.
LAB.formula(
    "t3_sgd_formula", "sgd_step", answer_cell="t3_sgd_formula_answer",
    visible=[[0.8, 0.3, 1.5, 2.5, -0.5, 0.2, 0.2], [1.0, -1.0, 2.0, 0.0, 3.0, 4.0, 0.1]],
    cases=sgd_cases(),
    reference=lambda p: sgd_step_reference(*p),
    mistakes=[Mistake(why, lambda p, why=why: sgd_step_slips(*p)[why])
              for why in sgd_step_slips(1, 1, 2, 0, 3, 1, 0.1)],
    hint="Residuals r = w·x + b − y first; average the squares and the gradients of both; then step "
         "each parameter against its gradient.")
LAB.values("t4_cross_entropy", "ce_loss", "ce_grad_0", "ce_grad_1", "ce_grad_2")
# (z0, z1, z2, target): distinct logits, every target once and more.
LAB.formula(
    "t4_ce_formula", "cross_entropy", answer_cell="t4_ce_formula_answer",
    visible=[[1.0, 2.0, 0.5, 1], [-1.0, 0.5, 0.2, 0]],
    cases=cross_entropy_cases(),
    reference=lambda p: cross_entropy_reference(*p),
    mistakes=[Mistake(why, lambda p, why=why: cross_entropy_slips(*p)[why])
              for why in cross_entropy_slips(0.0, 1.0, 2.0, 0)],
    hint="The loss is −z_target plus the natural log of the sum of exponentials; each gradient is the "
         "softmax probability minus 1 at the target.")
