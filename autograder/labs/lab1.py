"""Lab 1 — gradient descent from scratch: the grader's references and checks.

Find A, B with A + B = target by minimising loss = (A + B − target)². Every reference is
computed with torch.autograd, in float64, on the grading device, when grading runs. The step
by hand is checked on the kit's values for the student's numbers (course.lab1.answers); the
training loop, the shrink factor and the regimes are checked here, on probes the grader holds.
"""

from itertools import pairwise

import torch

from course import lab1 as kit
from course.answers import lists_close
from course.device import grading_device

from . import Case, Lab, Mistake, draw_until, uniform

F64 = torch.float64
LAB = Lab(kit.check)


def _leaf(value: float) -> torch.Tensor:
    return torch.tensor(float(value), dtype=F64, device=grading_device(), requires_grad=True)


# ---------------------------------------------------------------- references

def descent_reference(A: float, B: float, target: float, lr: float, epochs: int,
                      zero_grad: bool = True, direction: float = -1.0) -> dict[str, list[float]]:
    """Gradient descent by autograd. As[k], Bs[k]: after update k; losses[k]: computed before it.

    `zero_grad=False` and `direction=+1` reproduce two classic bugs, for feedback.
    """
    At, Bt = _leaf(A), _leaf(B)
    As, Bs, losses = [], [], []
    for _ in range(epochs):
        loss = (At + Bt - target) ** 2
        loss.backward()
        with torch.no_grad():
            At += direction * lr * At.grad
            Bt += direction * lr * Bt.grad
        if zero_grad:
            At.grad.zero_()
            Bt.grad.zero_()
        As.append(At.item())
        Bs.append(Bt.item())
        losses.append(loss.item())
    return {"As": As, "Bs": Bs, "losses": losses}


def distances(lr: float, epochs: int = 8) -> list[float]:
    """u = A + B − 10 before each of `epochs` updates from A = B = 0, by autograd."""
    run = descent_reference(0.0, 0.0, 10.0, lr, epochs)
    return [-10.0] + [a + b - 10.0 for a, b in zip(run["As"], run["Bs"], strict=True)]


def measured_factor(lr: float, n: int = 2) -> float:
    """u_next / u for one step of gradient descent on (p1 + … + pn − 10)² from p = 0, by autograd
    (n = 2 is the lab's A and B)."""
    params = [_leaf(0.0) for _ in range(n)]
    u = sum(params) - 10.0
    (u ** 2).backward()
    with torch.no_grad():
        u_next = sum(p - lr * p.grad for p in params) - 10.0
    return (u_next / u).item()


def factor_slips(lr: float, n: int) -> dict[str, list[float]]:
    """u_next / u as each known slip of the derivation gives it, in closed form."""
    return {"took 1 − 2·lr, as if one parameter moved (each of the n moves by lr · 2u, so u moves n times as far)":
            [1 - 2 * lr],
            "kept the two-parameter factor 1 − 4·lr for every n": [1 - 4 * lr],
            "forgot the factor 2 from the square": [1 - n * lr],
            "stepped uphill (p + lr · dloss/dp)": [1 + 2 * n * lr]}


def signed(x: float) -> str:
    """x to two decimals with its sign; a value that rounds to zero reads +0.00, never -0.00."""
    return f"{round(x, 2) + 0.0:+.2f}"


def regime(lr: float) -> str:
    """How training behaves at this learning rate, read off an autograd run."""
    u = distances(lr)
    if abs(u[1]) <= 1e-9 * abs(u[0]):
        return "one step"
    shrinking = all(abs(b) < abs(a) for a, b in pairwise(u))
    same_sign = all(a * b > 0 for a, b in pairwise(u))
    if not shrinking:
        return "diverging"
    return "monotone" if same_sign else "oscillating"


# ---------------------------------------------------------------- the step as a formula

def one_step_reference(A, B, target, lr) -> list[float]:
    r = kit.step_reference(A, B, target, lr)
    return [r["loss"], r["dloss_dA"], r["dloss_dB"], r["A_next"], B - lr * r["dloss_dB"]]


def one_step_slips(A, B, target, lr) -> dict[str, list[float]]:
    """(loss, dloss/dA, dloss/dB, A after the step, B after it) as each known slip gives them."""
    u = A + B - target

    def step(loss=u * u, grad=2 * u, direction=-1.0, rate=lr):
        return [loss, grad, grad, A + direction * rate * grad, B + direction * rate * grad]

    return {"forgot to square u (loss = u)": step(loss=u),
            "forgot the factor 2 from the square": step(grad=u),
            "computed u as target − (A + B), which flips the gradients' sign": step(grad=-2 * u),
            "stepped uphill (A + lr · dloss/dA)": step(direction=1.0),
            "left out the learning rate": step(rate=1.0)}


def step_cases() -> list[Case]:
    def draw(scale: float, lrs: tuple[float, float]):
        return lambda rng: [uniform(rng, -scale, scale), uniform(rng, -scale, scale), uniform(rng, -scale, scale),
                            uniform(rng, *lrs)]

    def where(scale: float, lrs: tuple[float, float], sign: int = 0):
        """u = A + B − target of that sign (0: either), far from 0 and ±1."""
        def holds(A, B, target, lr):
            u = A + B - target
            return abs(u) > 0.5 and abs(abs(u) - 1) > 0.2 and u * sign >= 0
        return lambda rng: draw_until(rng, draw(scale, lrs), holds)

    return [Case("when A + B is above the target (u > 0)", where(5, (0.01, 0.3), +1)),
            Case("when A + B is below the target (u < 0)", where(5, (0.01, 0.3), -1)),
            Case("with inputs in the thousands", where(5000, (1e-4, 1e-3)))]


UNROLLED_STEPS = 3  # Task 4: h_t = w · h_{t−1} + 1, three times from h0


def unrolled_reference(w: float, h0: float) -> list[float]:
    """[h3, dh3/dw] of the recurrence, by autograd on the loop as it runs (the unrolled graph)."""
    wt = _leaf(w)
    h = torch.tensor(float(h0), dtype=F64, device=grading_device())
    for _ in range(UNROLLED_STEPS):
        h = wt * h + 1
    h.backward()
    return [h.item(), wt.grad.item()]


def unrolled_slips(w: float, h0: float) -> dict[str, list[float]]:
    """[h3, dh3/dw] as each known slip gives them, in closed form."""
    h1 = w * h0 + 1
    h2 = w * h1 + 1
    h3 = w * h2 + 1
    return {"kept only the last step's term, as if w were used once (dh3/dw = h2)": [h3, h2],
            "kept only the first step's term (w²·h0)": [h3, w * w * h0],
            "left out the + 1 of each step": [w ** 3 * h0, 3 * w * w * h0]}


def unrolled_cases() -> list[Case]:
    def draw(ws: tuple[float, float], hs: tuple[float, float]):
        def holds(w, h0):
            """Every step's term of dh3/dw away from 0, so that leaving one out shows."""
            h1 = w * h0 + 1
            return min(abs(w * h1 + 1), abs(w * h1), abs(w * w * h0)) > 0.2
        return lambda rng: draw_until(rng, lambda r: [uniform(r, *ws), uniform(r, *hs)], holds)

    return [Case("with 0 < w < 1", draw((0.2, 0.95), (0.5, 4))),
            Case("with w > 1", draw((1.05, 2), (0.5, 4))),
            Case("with a negative w", draw((-2, -0.2), (0.5, 4))),
            Case("from a negative start h0", draw((0.2, 2), (-4, -0.5)))]


# ---------------------------------------------------------------- the checks, one declaration each

LAB.values("t1_step", *kit.STEP_NAMES)
# (A, B, target, lr), drawn per submission: u = A + B − target of either sign and far from 0 and ±1
# (where the slips coincide), learning rates students do not get, and large inputs.
LAB.formula(
    "t1_step_formula", "one_step", answer_cell="t1_step_formula_answer",
    visible=[[0.0, 0.0, 10.0, 0.01], [2.5, -1.0, 4.0, 0.1]],
    cases=step_cases(),
    reference=lambda p: one_step_reference(*p),
    mistakes=[Mistake(why, lambda p, why=why: one_step_slips(*p)[why]) for why in one_step_slips(1.0, 2.0, 0.0, 0.1)],
    hint="u = A + B − target first; then the loss, the two gradients by the chain rule, and one step of each "
         "parameter against its gradient.")
LAB.function(
    "t2_descent", "gradient_descent",
    visible=[dict(A=0, B=0, target=10, lr=0.01, epochs=101, zero_grad=True)],  # ints, as the lab calls it
    cases=[Case("resetting the gradients every epoch (zero_grad=True)",
                lambda rng: dict(A=uniform(rng, -5, 5), B=uniform(rng, -5, 5), target=uniform(rng, -10, 10),
                                 lr=uniform(rng, 0.01, 0.2), epochs=rng.randint(10, 40), zero_grad=True)),
           Case("without resetting them (zero_grad=False)",
                lambda rng: dict(A=uniform(rng, -5, 5), B=uniform(rng, -5, 5), target=uniform(rng, -10, 10),
                                 lr=uniform(rng, 0.005, 0.02), epochs=rng.randint(10, 25), zero_grad=False))],
    reference=lambda p: descent_reference(**p),
    form=lambda p, got, right: (f"should return three lists of {p['epochs']} values, one per epoch."
                                if any(len(got[k]) != p["epochs"] for k in right) else None),
    mistakes=[Mistake("never reset A.grad and B.grad, so every step adds the new gradient to all the old ones",
                      lambda p: descent_reference(**{**p, "zero_grad": False}) if p["zero_grad"] else None),
              Mistake("reset the gradients although zero_grad=False (skip the reset when zero_grad is False)",
                      lambda p: None if p["zero_grad"] else descent_reference(**{**p, "zero_grad": True})),
              Mistake("moved A and B up the gradient instead of down (subtract lr · grad)",
                      lambda p: descent_reference(**p, direction=+1.0)),
              Mistake("recorded each loss after its update (losses[k] is the loss computed just before update k)",
                      shows=lambda p, got, right: all(lists_close(got[k], right[k]) for k in ("As", "Bs")))],
    hint="As[k], Bs[k] should be A and B after update k, and losses[k] the loss computed just before it; "
         "each update is A ← A − lr · dloss/dA (and the same for B), with the gradient from autograd.")
# (lr, n): two parameters as in the lab, one, and many, with rates of every regime.
LAB.formula(
    "t3_factor", "shrink_factor", answer_cell="t3_factor_answer",
    visible=[[0.1, 2], [0.05, 5]],
    cases=[Case("with two parameters, as in the lab (n = 2)", lambda rng: [uniform(rng, 0.02, 0.45), 2]),
           Case("with one parameter (n = 1)", lambda rng: [uniform(rng, 0.02, 0.9), 1]),
           Case("with many parameters (n from 3 to 50)",
                lambda rng: [uniform(rng, 0.001, 0.05, 4), rng.randint(3, 50)])],
    reference=lambda p: [measured_factor(*p)],
    mistakes=[Mistake(why, lambda p, why=why: factor_slips(*p)[why]) for why in factor_slips(0.1, 3)],
    hint="Write the gradient of the loss with respect to one parameter in terms of u, then add up how far "
         "all n parameters move in one update.")
LAB.table("t3_regimes", "predictions", truth=lambda key: regime(float(key)),
          explain=lambda key, said: f"lr = {key}: you predicted {said!r}, but it is {regime(float(key))!r}: each "
                                    f"update multiplies u by {signed(measured_factor(float(key)))}.")
# (w, h0), drawn per submission: w below 1, above 1 and negative, and a negative start.
LAB.formula(
    "t4_unrolled", "unrolled_gradient", answer_cell="t4_unrolled_answer",
    visible=[[0.5, 3.0], [1.5, -1.0]],
    cases=unrolled_cases(),
    reference=lambda p: unrolled_reference(*p),
    mistakes=[Mistake(why, lambda p, why=why: unrolled_slips(*p)[why]) for why in unrolled_slips(0.5, 3.0)],
    hint="w is used at every step: add one term per step, h_{t−1} (the step's own dh_t/dw), times w once for "
         "each later step.")
