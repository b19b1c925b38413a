"""Lab 4 — computation graphs and backprop by hand: the grader's references and checks.

Every reference is computed with torch.autograd, in float64, on the grading device, when
grading runs. Hand-computed answers are checked on the kit's values for the student's numbers
(course.lab4.answers); the formulas are run out of the kernel on inputs the grader draws for
each submission.
"""

import math

from course import lab4 as kit

from . import Case, Lab, Mistake, draw_until, uniform

LAB = Lab(kit.check)


# ---------------------------------------------------------------- the slips of each derivation

def f_gradients_reference(x: float, y: float, z: float) -> list[float]:
    r = kit.composite_values(x, y, z)
    return [r["df_dx"], r["df_dy"], r["df_dz"]]


def f_gradients_slips(x: float, y: float, z: float) -> dict[str, list[float]]:
    """(df/dx, df/dy, df/dz) as each known slip of the chain gives them, in closed form."""
    a, b = 2 * x, math.sin(y)
    c = a / b
    d = 1 + z * c
    e = math.log(d)
    f = math.tanh(e)
    cos_y = math.cos(y)

    def chain(dtanh=1 - f * f, dlog=1 / d, da_dx=2.0, dc_db=-a / b ** 2, db_dy=cos_y):
        df_dc = dtanh * dlog * z
        return [df_dc / b * da_dx, df_dc * dc_db * db_dy, dtanh * dlog * c]

    return {"used 1 − e² for tanh' (its input, not its output)": chain(dtanh=1 - e * e),
            "forgot the 1/d from the logarithm": chain(dlog=1.0),
            "forgot the 2 from a = 2x": chain(da_dx=1.0),
            "dropped the minus sign of d(a/b)/db = −a/b²": chain(dc_db=a / b ** 2),
            "used sin(y) for db/dy (the derivative of sin is cos)": chain(db_dy=math.sin(y)),
            "took dc/db as 1/b (the derivative of a/b with respect to a)": chain(dc_db=1 / b)}


def composite_cases() -> list[Case]:
    def fits(x: float, y: float, z: float) -> bool:
        """sin(y) away from 0, d = 1 + z·2x/sin(y) in (0.1, 20) and away from 1, no input near 0."""
        d = 1 + z * 2 * x / math.sin(y) if abs(math.sin(y)) > 0.2 else 0.0
        return 0.1 < d < 20 and abs(math.log(d)) > 0.05 and abs(x) > 0.1 and abs(z) > 0.1

    def draw(xs, ys, zs):
        return lambda rng: draw_until(rng, lambda r: [uniform(r, *xs), uniform(r, *ys), uniform(r, *zs)], fits)

    return [Case("when sin y > 0 and every input is positive", draw((0.1, 2), (0.2, 2.9), (0.1, 2))),
            Case("when sin y < 0 (π < y < 2π)", draw((-2, 2), (3.4, 6.0), (-2, 2))),
            Case("when x is negative", draw((-2, -0.1), (0.2, 2.9), (-2, 2))),
            Case("when z is negative", draw((-2, 2), (0.2, 2.9), (-2, -0.1)))]


def task2_formula_slips(x1: float, w1: float, w2: float, y: float) -> dict[str, list[float]]:
    """(dloss/dw1, dloss/dw2) as each known slip of Task 2's derivation gives them, in closed form."""
    m1 = x1 * w1
    r = max(m1, 0.0)
    m2 = r * w2
    yhat = 1 / (1 + math.exp(-m2))
    s = yhat - y
    slope = 1.0 if m1 > 0 else 0.0

    def grads(dyhat_dm2=yhat * (1 - yhat), factor=2.0, relu=slope, dm2_dr=w2, dm2_dw2=r):
        dm2 = factor * s * dyhat_dm2
        return [dm2 * dm2_dr * relu * x1, dm2 * dm2_dw2]

    right = grads()
    return {"used m2·(1 − m2) for the sigmoid's derivative": grads(dyhat_dm2=m2 * (1 - m2)),
            "took σ(m2) itself as its derivative": grads(dyhat_dm2=yhat),
            "forgot the factor 2 from the square": grads(factor=1.0),
            "flipped the sign of both gradients (s = y − ŷ)": grads(factor=-2.0),
            "gave the ReLU slope 1 at m1 = 0 (PyTorch uses 0)": grads(relu=1.0 if m1 >= 0 else 0.0),
            "let the gradient through the ReLU where m1 ≤ 0": grads(relu=1.0),
            "used the ReLU's output r instead of its slope": grads(relu=r),
            "used r instead of w2 for dm2/dr": grads(dm2_dr=r),
            "used w2 instead of r for dm2/dw2": grads(dm2_dw2=w2),
            "returned (dloss/dw2, dloss/dw1): the order is (dloss/dw1, dloss/dw2)": right[::-1]}


def task2_cases() -> list[Case]:
    def inputs(rng, w1=None):
        return [uniform(rng, -3, 3), uniform(rng, -2, 2) if w1 is None else w1, uniform(rng, -2, 2),
                uniform(rng, 0.05, 0.95)]

    def usual(x1, w1, w2, y):
        """No input near 0 or ±1 (where slips coincide), the sigmoid far from saturation."""
        r = max(x1 * w1, 0.0)
        return (all(abs(v) > 0.2 and abs(abs(v) - 1) > 0.1 for v in (x1, w2)) and abs(r * w2) < 4
                and abs(r - 1) > 0.1 and abs(r - abs(w2)) > 0.1)

    def near_kink(side: int):
        """m1 within 10⁻⁷ of the kink on one side: each side in every draw, so that a slope taken
        on the wrong side of 0 (or with the kink moved) meets an input that shows it."""
        def draw(rng):
            x1 = uniform(rng, 0.5, 3) * rng.choice([-1, 1])
            m1 = rng.uniform(1e-9, 1e-7) * side
            return [x1, m1 / x1, uniform(rng, 0.3, 2) * rng.choice([-1, 1]), uniform(rng, 0.05, 0.95)]
        return draw

    return [Case("when the ReLU is on (m1 > 0)",
                 lambda rng: draw_until(rng, inputs, lambda x1, w1, w2, y: x1 * w1 > 0.2 and usual(x1, w1, w2, y))),
            Case("when the ReLU is off (m1 < 0)",
                 lambda rng: draw_until(rng, inputs, lambda x1, w1, w2, y: x1 * w1 < -0.2 and usual(x1, w1, w2, y))),
            Case("when the ReLU sits exactly at its kink (m1 = 0)",
                 lambda rng: draw_until(rng, lambda r: inputs(r, w1=0.0), usual)),
            Case("when m1 is a hair above the ReLU's kink (0 < m1 < 10⁻⁷)", near_kink(1)),
            Case("when m1 is a hair below the ReLU's kink (−10⁻⁷ < m1 < 0)", near_kink(-1))]


# ---------------------------------------------------------------- the checks, one declaration each

LAB.values("t1_forward", "a", "b", "c", "d", "e", "f")
LAB.values("t1_gradients", "df_dx", "df_dy", "df_dz")
# (x, y, z), drawn per submission with d > 0: sin(y) of either sign (y beyond π), x and z of either
# sign, tanh far from saturation, d away from 1 (where e = 0 hides the tanh slip).
LAB.formula(
    "t1_formula", "f_gradients", answer_cell="t1_formula_answer",
    visible=[[0.25, 0.3, 0.4], [1.0, 1.2, 0.7]],
    cases=composite_cases(),
    reference=lambda p: f_gradients_reference(*p),
    mistakes=[Mistake(why, lambda p, why=why: f_gradients_slips(*p)[why]) for why in f_gradients_slips(1.0, 1.0, 1.0)],
    hint="Compute a, b, c, d and f inside the function, then multiply the local derivatives along each "
         "input's path, from f back to it.")
LAB.values("t1_two_paths", "dg_dx")
LAB.values("t2_forward", "m1", "r", "m2", "yhat", "s", "loss")
LAB.values("t2_local", "dloss_ds", "ds_dyhat", "dyhat_dm2", "dm2_dw2", "dm2_dr", "dr_dm1", "dm1_dw1")
LAB.values("t2_gradients", "dloss_dw1", "dloss_dw2")
# (x1, w1, w2, y), drawn per submission: the ReLU on, off, exactly at its kink and a hair either side
# of it (where a numerical derivative straddles the kink); targets strictly between 0 and 1.
LAB.formula(
    "t2_formula", "gradients", answer_cell="t2_formula_answer",
    visible=[[4.0, 0.5, 0.2, 1.0], [4.0, 0.5, 0.2, 0.0], [4.0, -0.5, 0.2, 1.0]],
    cases=task2_cases(),
    reference=lambda p: [kit.task2_values(*p)[k] for k in ("dloss_dw1", "dloss_dw2")],
    mistakes=[Mistake(why, lambda p, why=why: task2_formula_slips(*p)[why])
              for why in task2_formula_slips(1.0, 1.0, 1.0, 0.0)],
    hint="Run the forward pass inside the function, then multiply 2b's local derivatives along each weight's "
         "path; the ReLU's slope depends on the sign of m1.")
