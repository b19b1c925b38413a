"""Lab 4b — backpropagation in code: the grader's references and checks.

Every reference is computed with torch.autograd, in float64, on the grading device, when
grading runs; the functions a student writes are checked here, on probes the grader holds
itself, and the cross-entropy formula out of the kernel on inputs drawn for each submission.
"""

import math

import torch
from torch import nn

from course import lab2
from course import lab4b as kit
from course.answers import FUNCTION_RTOL, close, lists_close, relative_error
from course.device import grading_device

from . import Case, Lab, Mistake, draw_until, uniform

F64 = torch.float64
BACKWARD_MAX_REL_ERROR = 1e-5
LAB = Lab(kit.check)


# ---------------------------------------------------------------- references for the student's functions

def train_reference(x: float, y: float, w: float, lr: float, steps: int,
                    zero_grad: bool = True, direction: float = -1.0) -> dict[str, list[float]]:
    """Gradient descent on w by autograd; ws[k] is w after update k and losses[k] the loss
    computed before it (Lab 1's convention: `ws[k]` has the loss `losses[k + 1]`).

    `zero_grad=False` and `direction=+1` reproduce two classic bugs, for feedback.
    """
    xt, yt = (torch.tensor(float(v), dtype=F64, device=grading_device()) for v in (x, y))
    wt = torch.tensor(float(w), dtype=F64, device=grading_device(), requires_grad=True)
    ws, losses = [], []
    for _ in range(steps):
        loss = (xt * wt - yt) ** 2
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            wt += direction * lr * wt.grad
        ws.append(wt.item())
        if zero_grad:
            wt.grad.zero_()
    return {"ws": ws, "losses": losses}


def activation_references(xs: list[float]) -> dict[str, list[float]]:
    """ReLU'(x) and σ'(x) at each x, by autograd."""
    refs = {}
    for name, fn in (("relu_grad", torch.relu), ("sigmoid_grad", torch.sigmoid)):
        t = torch.tensor(xs, dtype=F64, device=grading_device(), requires_grad=True)
        fn(t).sum().backward()
        refs[name] = t.grad.tolist()
    return refs


def backward_reference(x, W1, w2, y) -> dict[str, torch.Tensor]:
    """dloss/dW1 and dloss/dw2 of loss = (σ(w2 · ReLU(W1 x)) − y)² by autograd."""
    W1, w2 = W1.detach().clone().requires_grad_(), w2.detach().clone().requires_grad_()
    loss = (torch.sigmoid(w2 @ torch.relu(W1 @ x)) - y) ** 2
    dW1, dw2 = torch.autograd.grad(loss, (W1, w2))
    return {"dW1": dW1, "dw2": dw2}


def backward_slips(x, W1, w2, y) -> dict[str, dict[str, torch.Tensor]]:
    """What three classic mistakes give for the manual backward pass, in closed form."""
    m1 = W1 @ x
    r = torch.relu(m1)
    m2 = w2 @ r
    yhat = torch.sigmoid(m2)

    def grads(dyhat_dm2, factor=2.0, mask=True):
        dm2 = factor * (yhat - y) * dyhat_dm2
        dm1 = dm2 * w2 * ((m1 > 0).to(m1.dtype) if mask else 1.0)
        return {"dW1": torch.outer(dm1, x), "dw2": dm2 * r}

    return {"used m2·(1 − m2) for the sigmoid's derivative": grads(m2 * (1 - m2)),
            "forgot the factor 2 from the square": grads(yhat * (1 - yhat), factor=1.0),
            "let the gradient through the ReLU where m1 ≤ 0": grads(yhat * (1 - yhat), mask=False)}


def centred_difference(name: str, h: float, one_sided: bool = False, divisor: float = 2.0,
                       all_at_once: bool = False) -> list[float]:
    """(f(x + h·eᵢ) − f(x − h·eᵢ)) / (2h) for each coordinate of a kit problem, in float64; the
    switches give three classic mistakes."""
    f, _ = kit.GRADCHECK_PROBLEMS[name]
    x = kit.gradcheck_point(name)
    grads = []
    for i in range(x.numel()):
        step = torch.full_like(x, h) if all_at_once else torch.zeros_like(x).index_fill_(0, torch.tensor([i]), h)
        low = f(x) if one_sided else f(x - step)
        grads.append(((f(x + step) - low) / (h if one_sided else divisor * h)).item())
    return grads


def _plain(tensors: dict[str, torch.Tensor]) -> dict[str, list]:
    return {k: v.detach().to("cpu", F64).tolist() for k, v in tensors.items()}


NUMERICAL_MISTAKES = {
    "used the one-sided difference (f(x + h) − f(x)) / h, whose error is of order h (the centred one's, h²)":
        dict(one_sided=True),
    "divided by h instead of 2h (the two points are 2h apart)": dict(divisor=1.0),
    "moved every coordinate at once (nudge one coordinate at a time)": dict(all_at_once=True)}


def activation_slips(xs: list[float]) -> dict[str, dict[str, list[float]]]:
    t = torch.tensor(xs, dtype=F64)
    return {"relu_grad": {"returned ReLU(x) instead of its slope": torch.relu(t).tolist(),
                          "gave slope 1 at x = 0 (PyTorch, and this lab, use 0 there)": (t >= 0).to(F64).tolist()},
            "sigmoid_grad": {"used x·(1 − x), the derivative written in terms of the sigmoid's "
                             "output, on the input x; σ'(x) = σ(x)·(1 − σ(x))": (t * (1 - t)).tolist(),
                             "returned σ(x) instead of its derivative": torch.sigmoid(t).tolist()}}


def backward_errors(got: dict, right: dict) -> dict[str, float]:
    """The relative error of each gradient of manual_backward against autograd's."""
    return {name: relative_error(got[name], right[name]) for name in ("dW1", "dw2")}


def shape_problem(got: dict, right: dict) -> str | None:
    wrong = [f"`{name}` should have shape {tuple(torch.tensor(right[name]).shape)}" for name in ("dW1", "dw2")
             if torch.tensor(got[name]).shape != torch.tensor(right[name]).shape]
    return "; ".join(wrong) + "." if wrong else None


def slope_slip(got: dict, right: dict, name: str, slip: list[float]) -> bool:
    """Whether the slope `name` is wrong, and as `slip` is (whatever the other slope is)."""
    return not lists_close(got[name], right[name]) and lists_close(got[name], slip)


def wrong_at(xs: list[float], got: dict, right: dict) -> str:
    """Where each activation's slope is wrong."""
    return "; ".join(f"`{name}` is wrong at x = " + ", ".join(f"{x:g}" for x, a, b in zip(xs, got[name], right[name],
                                                                                        strict=True)
                                                          if not close(a, b, FUNCTION_RTOL, 1e-6))
                     for name in right if not lists_close(got[name], right[name]))


def train_start(rng) -> dict:
    """A start, target and rate for Task 2's loop that converge (lr · x² < 0.4), w not already there."""
    x, y, w, lr, steps = draw_until(rng, lambda r: [uniform(r, 0.5, 3), uniform(r, -3, 3), uniform(r, -2, 2),
                                                    uniform(r, 0.01, 0.1), r.randint(10, 30)],
                                    lambda x, y, w, lr, steps: lr * x * x < 0.4 and abs(x * w - y) > 0.5)
    return dict(x=x, y=y, w=w, lr=lr, steps=steps)


def bce_reference(m2: float, y: float) -> list[float]:
    """dloss/dm2 of binary cross-entropy of σ(m2) against y, by autograd (from m2, as PyTorch's
    BCEWithLogitsLoss computes it, so that a saturated sigmoid loses no digits)."""
    m = torch.tensor(float(m2), dtype=F64, device=grading_device(), requires_grad=True)
    target = torch.tensor(float(y), dtype=F64, device=grading_device())
    (slope,) = torch.autograd.grad(nn.functional.binary_cross_entropy_with_logits(m, target), m)
    return [slope.item()]


def bce_slips(m2: float, y: float) -> dict[str, list[float]]:
    """dloss/dm2 as each known slip of the derivation gives it, in closed form."""
    yhat = 1 / (1 + math.exp(-m2))
    slope = yhat * (1 - yhat)
    return {"used the squared error's chain, 2(ŷ − y) · ŷ(1 − ŷ)": [2 * (yhat - y) * slope],
            "stopped at dloss/dŷ = (ŷ − y) / (ŷ(1 − ŷ)), without the sigmoid's own derivative": [(yhat - y) / slope],
            "flipped the sign (the loss has a minus in front)": [y - yhat],
            "used m2·(1 − m2) for the sigmoid's derivative": [(yhat - y) / slope * m2 * (1 - m2)]}


def bce_cases() -> list[Case]:
    """(m2, y): confidently wrong, either target, soft targets, and a sigmoid saturated the wrong way."""
    return [Case("when the target is 1 and the output is confidently wrong (m2 < −3)",
                 lambda rng: [uniform(rng, -12, -3), 1.0]),
            Case("when the target is 0", lambda rng: [uniform(rng, -5, 5), 0.0]),
            Case("with a target strictly between 0 and 1", lambda rng: [uniform(rng, -5, 5), uniform(rng, 0.05, 0.95)]),
            Case("when the sigmoid saturates on the wrong side (|m2| from 10 to 30)", saturated_wrong)]


def saturated_wrong(rng) -> list[float]:
    """m2 of 10 to 30 in size, and the target on the other side: the squared error's gradient
    has all but vanished there, cross-entropy's has not."""
    m2 = rng.choice((-1, 1)) * uniform(rng, 10, 30)
    return [m2, 0.0 if m2 > 0 else 1.0]


def activation_cases() -> list[Case]:
    """Lists of inputs for relu_grad and sigmoid_grad: a hair either side of the kink, and large."""
    def hair(rng):
        return [-uniform(rng, 1e-4, 1e-2, 6), uniform(rng, 1e-4, 1e-2, 6), -uniform(rng, 0.1, 1), uniform(rng, 0.1, 1)]

    def large(rng):
        return [-uniform(rng, 2, 8), uniform(rng, 2, 8), -uniform(rng, 1, 2), uniform(rng, 1, 2)]

    return [Case("a hair either side of 0", hair), Case("at inputs of large magnitude", large)]


def backward_cases() -> list[Case]:
    """(features, hidden units, seed) whose ReLUs are as the case says, with gradients large enough
    (above 10⁻²) that every slip shows."""
    def draw(features: tuple[int, int], hidden: tuple[int, int], relus_on):
        def holds(d, h, seed):
            inputs = kit.backward_inputs(d, h, seed)
            return (relus_on((inputs["W1"] @ inputs["x"] > 0).tolist())
                    and backward_reference(**inputs)["dw2"].abs().max() > 1e-2)
        return lambda rng: draw_until(rng, lambda r: [r.randint(*features), r.randint(*hidden), r.randint(1, 10**6)],
                                      holds)

    return [Case("with several hidden units, some of whose ReLUs are off",
                 draw((2, 6), (3, 8), lambda on: any(on) and not all(on))),
            Case("with one input and one hidden unit whose ReLU is on", draw((1, 1), (1, 1), all))]


def numerical_cases() -> list[Case]:
    return [Case("on the wave function", lambda rng: ["wave", uniform(rng, 0.005, 0.02, 4)]),
            Case("on the small network", lambda rng: ["network", uniform(rng, 0.0005, 0.002, 5)])]


# ---------------------------------------------------------------- the checks, one declaration each

LAB.function(
    "t1_check_result", "check_result", visible=[[4.0, 1.0, 0.5]],
    cases=[Case("when the prediction x·w is above y", lambda rng: draw_until(
               rng, lambda r: [uniform(r, -4, 4), uniform(r, -3, 3), uniform(r, -3, 3)],
               lambda x, y, w: abs(x) > 0.5 and x * w - y > 0.3)),
           Case("when it is below y", lambda rng: draw_until(
               rng, lambda r: [uniform(r, -4, 4), uniform(r, -3, 3), uniform(r, -3, 3)],
               lambda x, y, w: abs(x) > 0.5 and x * w - y < -0.3))],
    reference=lambda p: [lab2.squared_error_values(*p)[k] for k in ("loss", "dloss_dw")],
    mistakes=[Mistake("flipped the sign of the gradient", lambda p: [lab2.squared_error_values(*p)["loss"],
                                                                     -lab2.squared_error_values(*p)["dloss_dw"]])],
    detail=lambda p, got, right: (f"returned loss {got[0]:.6g}: build ŷ = x·w, s = ŷ − y, loss = s² with tensors"
                                  if not close(got[0], right[0], FUNCTION_RTOL, 1e-9)
                                  else f"returned gradient {got[1]:.6g}, which is not autograd's dloss/dw"),
    hint="Make w a tensor with requires_grad=True, build the loss, call loss.backward() and read w.grad.")
LAB.function(
    "t2_train_w", "train", visible=[dict(x=4.0, y=1.0, w=0.5, lr=0.01, steps=60)],
    cases=[Case("another start, target and learning rate", train_start)],
    reference=lambda p: train_reference(**p),
    form=lambda p, got, right: (f"should return {p['steps']} values of w and of the loss, one per step; got "
                                f"{len(got['ws'])} and {len(got['losses'])}."
                                if len(got["ws"]) != p["steps"] or len(got["losses"]) != p["steps"] else None),
    mistakes=[Mistake("never reset w.grad, so each step adds the new gradient to all the old ones",
                      lambda p: train_reference(**p, zero_grad=False)),
              Mistake("moved w up the gradient instead of down", lambda p: train_reference(**p, direction=+1.0)),
              Mistake("recorded w at the start of each step (ws[k] is w after update k, as in Lab 1)",
                      shows=lambda p, got, right: close(got["ws"][0], p["w"])
                      and lists_close(got["ws"][1:], right["ws"][:-1])),
              Mistake("recorded each loss at another moment (losses[k] is the loss computed before update k, "
                      "from the w that update starts with)",
                      shows=lambda p, got, right: lists_close(got["ws"], right["ws"])
                      and not lists_close(got["losses"], right["losses"]))],
    hint="Each step: compute the loss (losses[k]), then w ← w − lr · dloss/dw, then record the new w (ws[k]).")
LAB.function(
    "t3_activation_grads", "activation_grads", answer_cell="t3_activation_grads_answer",
    visible=[[-2.0, -0.5, 0.0, 0.3, 0.7, 1.5, 3.0]], cases=activation_cases(),
    reference=activation_references,
    form=lambda xs, got, right: "; ".join(f"`{name}` gave {len(got[name])} values for {len(xs)} inputs: one per input"
                                          for name in right if len(got[name]) != len(xs)) or None,
    mistakes=[Mistake(f"{why} (in {name})",
                      lambda p, name=name, why=why: {**activation_references(p), name: activation_slips(p)[name][why]},
                      shows=lambda p, got, right, name=name, why=why: slope_slip(got, right, name,
                                                                                 activation_slips(p)[name][why]))
              for name in ("relu_grad", "sigmoid_grad") for why in activation_slips([0.0])[name]],
    detail=wrong_at,
    hint="ReLU'(z) is 1 where z > 0, else 0; σ'(z) = σ(z)·(1 − σ(z)).")
# (features, hidden units, seed): the visible seeds leave the ReLUs partly on, partly off.
LAB.function(
    "t4_manual_backward", "manual_backward", answer_cell="t4_manual_backward_answer",
    visible=[[3, 4, 1], [2, 3, 1]], cases=backward_cases(),
    reference=lambda p: _plain(backward_reference(**kit.backward_inputs(*p))),
    form=lambda p, got, right: shape_problem(got, right),
    same=lambda got, right: max(backward_errors(got, right).values()) <= BACKWARD_MAX_REL_ERROR,
    mistakes=[Mistake(why, lambda p, why=why: _plain(backward_slips(**kit.backward_inputs(*p))[why]))
              for why in ("used m2·(1 − m2) for the sigmoid's derivative", "forgot the factor 2 from the square",
                          "let the gradient through the ReLU where m1 ≤ 0")],
    detail=lambda p, got, right: "; ".join(f"`{name}` differs from autograd (relative error {err:.1e})"
                                           for name, err in backward_errors(got, right).items()
                                           if err > BACKWARD_MAX_REL_ERROR),
    rtol=2 * BACKWARD_MAX_REL_ERROR, atol=1e-8,
    hint="Run the forward pass, keep m1, r, m2 and ŷ, then chain the local derivatives from the loss back.")
LAB.formula(
    "t5_bce_formula", "bce_gradient", answer_cell="t5_bce_formula_answer",
    visible=[[0.4, 1.0], [-2.0, 0.0]], cases=bce_cases(),
    reference=lambda p: bce_reference(*p),
    mistakes=[Mistake(why, lambda p, why=why: bce_slips(*p)[why]) for why in bce_slips(0.5, 1.0)],
    hint="Take dloss/dŷ of each logarithm, multiply by the sigmoid's derivative written with ŷ, and simplify.")
# (problem, h): h large enough that a one-sided difference is visibly off.
LAB.function(
    "t6_numerical_gradient", "numerical_gradient",
    visible=[["bowl", 0.01]], cases=numerical_cases(),
    reference=lambda p: centred_difference(*p),
    mistakes=[Mistake(why, lambda p, switch=switch: centred_difference(*p, **switch))
              for why, switch in NUMERICAL_MISTAKES.items()],
    rtol=1e-7, atol=1e-10,
    hint="For each i: copy x, add h to coordinate i for one copy and subtract it for the other, and take "
         "(f(up) − f(down)) / (2h).")
