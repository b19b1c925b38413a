"""Lab 1 — gradient descent from scratch: references and checks.

Find A, B with A + B = target by minimising loss = (A + B − target)². Every reference is
computed with torch.autograd, in float64, on the grading device, when grading runs.
"""

import torch

from .compare import Expected, WrongType, as_float, close, diagnose_all, lists_close
from .device import grading_device
from .identity import ANONYMOUS, draw_numbers, student_id
from .kernel import probe_set, run_check, shielded, take_function, take_list, values_check

LAB = "lab1"
F64 = torch.float64

STEP_NAMES = ("u", "loss", "dloss_dA", "dloss_dB", "A_next")
REGIMES = ("monotone", "one step", "oscillating", "diverging")

# Per-student numbers for the hand computation and the learning-rate study.
TARGETS = (6.0, 7.0, 8.0, 9.0, 11.0, 12.0, 13.0, 14.0, 15.0)
STARTS = (-2.0, -1.5, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
STEP_LRS = (0.01, 0.02, 0.05, 0.1)
REGIME_LRS = {"monotone": (0.05, 0.1, 0.15, 0.2), "one step": (0.25,),
              "oscillating": (0.3, 0.35, 0.4, 0.45), "diverging": (0.55, 0.6, 0.65, 0.7)}

DESCENT_PROBES = {"visible": [dict(A=0.0, B=0.0, target=10.0, lr=0.01, epochs=101, zero_grad=True)],
                  "hidden": [dict(A=1.0, B=-2.0, target=7.0, lr=0.05, epochs=30, zero_grad=True),
                             dict(A=0.0, B=0.0, target=10.0, lr=0.01, epochs=20, zero_grad=False)]}
FACTOR_PROBES = {"visible": [0.01, 0.1, 0.3, 0.6], "hidden": [0.05, 0.45, 0.7]}


def _leaf(value: float, grad: bool = False) -> torch.Tensor:
    return torch.tensor(float(value), dtype=F64, device=grading_device(), requires_grad=grad)


# ---------------------------------------------------------------- references

def step_reference(A: float, B: float, target: float, lr: float) -> dict[str, float]:
    """u, the loss, both gradients and A after one update, by autograd."""
    At, Bt = _leaf(A, grad=True), _leaf(B, grad=True)
    u = At + Bt - target
    loss = u ** 2
    loss.backward()
    return {"u": u.item(), "loss": loss.item(), "dloss_dA": At.grad.item(), "dloss_dB": Bt.grad.item(),
            "A_next": A - lr * At.grad.item()}


def descent_reference(A: float, B: float, target: float, lr: float, epochs: int,
                      zero_grad: bool = True, direction: float = -1.0) -> dict[str, list[float]]:
    """Gradient descent by autograd. As[k], Bs[k]: after update k; losses[k]: computed before it."""
    At, Bt = _leaf(A, grad=True), _leaf(B, grad=True)
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
    return [-10.0] + [a + b - 10.0 for a, b in zip(run["As"], run["Bs"])]


def measured_factor(lr: float) -> float:
    """u_{k+1} / u_k, measured on an autograd run."""
    u = distances(lr, 1)
    return u[1] / u[0]


def regime(lr: float) -> str:
    """How training behaves at this learning rate, read off an autograd run."""
    u = distances(lr)
    if abs(u[1]) <= 1e-9 * abs(u[0]):
        return "one step"
    shrinking = all(abs(b) < abs(a) for a, b in zip(u, u[1:]))
    same_sign = all(a * b > 0 for a, b in zip(u, u[1:]))
    if not shrinking:
        return "diverging"
    return "monotone" if same_sign else "oscillating"


# ---------------------------------------------------------------- per-student numbers

def step_expected(A: float, B: float, target: float, lr: float) -> list[Expected]:
    r = step_reference(A, B, target, lr)
    g = r["dloss_dA"]
    return [
        Expected("u", r["u"], "u = A + B − target.", {"computed target − (A + B)": -r["u"]}),
        Expected("loss", r["loss"], "loss = u².", {"forgot to square u": r["u"]}),
        Expected("dloss_dA", g, "dloss/dA = dloss/du · du/dA = 2u · 1.",
                 {"forgot the factor 2 from the square": r["u"], "gave the loss instead of its slope": r["loss"]}),
        Expected("dloss_dB", r["dloss_dB"], "By symmetry, dloss/dB = 2u as well.",
                 {"forgot the factor 2 from the square": r["u"]}),
        Expected("A_next", r["A_next"], "A ← A − lr · dloss/dA.",
                 {"stepped uphill (A + lr · dloss/dA)": A + lr * g, "left out the learning rate": A - g,
                  "forgot the factor 2 in the gradient": A - lr * r["u"]}),
    ]


def student_numbers(student: str) -> dict:
    """Start, target and learning rate for the hand computation, plus four learning rates to classify."""
    def draw(d: bytes) -> dict:
        rates = [REGIME_LRS[name][d[4 + i] % len(REGIME_LRS[name])] for i, name in enumerate(REGIMES)]
        order = sorted(range(4), key=lambda i: d[8 + i] * 4 + i)
        return {"A": STARTS[d[0] % len(STARTS)], "B": STARTS[d[1] % len(STARTS)],
                "target": TARGETS[d[2] % len(TARGETS)], "lr": STEP_LRS[d[3] % len(STEP_LRS)],
                "rates": [rates[i] for i in order]}

    def separable(n: dict) -> bool:
        return all(e.separated() for e in step_expected(n["A"], n["B"], n["target"], n["lr"]))

    return draw_numbers(LAB, student, draw, separable)


def my_numbers() -> dict:
    """Show and return this student's numbers."""
    student, source = student_id()
    n = student_numbers(student)
    print(f"Student id: {student!r} (from {source})")
    print(f"Task 1: start A = {n['A']:g}, B = {n['B']:g}, target = {n['target']:g}, lr = {n['lr']:g}")
    print("Task 3: learning rates " + ", ".join(f"{lr:g}" for lr in n["rates"]))
    if student == ANONYMOUS:
        print("No student id is set, so these are practice numbers. Your grade uses the numbers "
              "of your real id: see 'Your numbers' at the top of the notebook.")
    return n


# ---------------------------------------------------------------- verify: plain data in, problems out

def _verify_step(data: dict, student: str) -> list[str]:
    n = student_numbers(student)
    problems = diagnose_all(data, step_expected(n["A"], n["B"], n["target"], n["lr"]))
    if problems:
        problems.append(f"(Your numbers, for student id {student!r}: A = {n['A']:g}, B = {n['B']:g}, "
                        f"target = {n['target']:g}, lr = {n['lr']:g}.)")
    return problems


def _verify_descent(data: dict, student: str) -> list[str]:
    problems = []
    for args, run in zip(data["probes"], data["runs"]):
        call = "gradient_descent(" + ", ".join(f"{k}={v:g}" for k, v in args.items()) + ")"
        ref = descent_reference(**args)
        if any(len(run[k]) != args["epochs"] for k in ("As", "Bs", "losses")):
            problems.append(f"{call} should return three lists of {args['epochs']} values, one per epoch.")
            continue
        if all(lists_close(run[k], ref[k]) for k in ("As", "Bs", "losses")):
            continue
        if lists_close(run["As"], descent_reference(**{**args, "zero_grad": not args["zero_grad"]})["As"]):
            problems.append(f"{call}: the gradients were " + (
                "never reset, so every step adds the new gradient to all the old ones; reset A.grad and B.grad "
                "after each update" if args["zero_grad"] else
                "reset although zero_grad=False; skip the reset when zero_grad is False") + ".")
        elif lists_close(run["As"], descent_reference(**args, direction=+1.0)["As"]):
            problems.append(f"{call}: A and B move up the gradient; subtract lr · grad.")
        elif lists_close(run["As"], ref["As"]):
            problems.append(f"{call}: A and B are right but losses[k] should be the loss computed before update k.")
        else:
            problems.append(f"{call}: As[k], Bs[k] should be A and B after update k, "
                            "and losses[k] the loss computed just before it.")
    return problems


def _verify_factor(data: dict, student: str) -> list[str]:
    got, lrs = data["factors"], data["lrs"]
    right = [measured_factor(lr) for lr in lrs]
    if lists_close(got, right):
        return []
    if lists_close(got, [1 - 2 * lr for lr in lrs]):
        return ["shrink_factor gives 1 − 2·lr: that is how u moves if only A changes, but A and B both "
                "move by lr · 2u each, so u moves by twice that."]
    wrong = ", ".join(f"{lr:g}" for lr, a, b in zip(lrs, got, right) if not close(a, b, 1e-4, 1e-6))
    return [f"shrink_factor is wrong at lr = {wrong}. Write u after one update in terms of u before it."]


def _verify_regimes(data: dict, student: str) -> list[str]:
    rates = student_numbers(student)["rates"]
    given = {round(float(k), 9): v for k, v in data["predictions"]}
    problems = []
    missing = [lr for lr in rates if round(lr, 9) not in given]
    if missing:
        return ["predictions needs an entry for each of your learning rates; missing "
                + ", ".join(f"{lr:g}" for lr in missing) + f" (your rates: {', '.join(f'{r:g}' for r in rates)})."]
    for lr in rates:
        said, truth = given[round(lr, 9)], regime(lr)
        if said != truth:
            f = measured_factor(lr)
            problems.append(f"lr = {lr:g}: you predicted {said!r}, but it is {truth!r}: each update multiplies "
                            f"u by 1 − 4·lr = {f:+.2f}.")
    return problems


PUBLISHED = {
    "t1_step": ("t1_step",),
    "t2_descent": ("t2_descent", "t2_descent.hidden"),
    "t3_factor": ("t3_factor", "t3_factor.hidden"),
    "t3_regimes": ("t3_regimes",),
}
VERIFIERS = {"t1_step": _verify_step, "t2_descent": _verify_descent, "t3_factor": _verify_factor,
             "t3_regimes": _verify_regimes}


def verify(item: str, data: dict, student: str) -> list[str]:
    """Problems with one item's plain-data answers (empty when all is right)."""
    return VERIFIERS[item.removesuffix(".hidden")](data, student)


# ---------------------------------------------------------------- kernel side

check_step = values_check(LAB, "t1_step", STEP_NAMES, verify)


def check_descent(namespace: dict, hidden: bool = False) -> None:
    __tracebackhide__ = True
    fn = take_function(namespace, "gradient_descent")
    probes = DESCENT_PROBES[probe_set(hidden)]
    runs = []
    for args in probes:
        with shielded():
            result = fn(**args)
        if not isinstance(result, (tuple, list)) or len(result) != 3:
            raise WrongType("gradient_descent should return three lists: (As, Bs, losses).")
        runs.append({k: take_list(k, v) for k, v in zip(("As", "Bs", "losses"), result)})
    run_check(LAB, "t2_descent" + ".hidden" * hidden, {"probes": probes, "runs": runs}, verify,
              "every epoch matches gradient descent done by autograd.")


def check_factor(namespace: dict, hidden: bool = False) -> None:
    __tracebackhide__ = True
    fn = take_function(namespace, "shrink_factor")
    lrs = FACTOR_PROBES[probe_set(hidden)]
    with shielded():
        factors = [as_float(f"shrink_factor({lr:g})", fn(lr)) for lr in lrs]
    run_check(LAB, "t3_factor" + ".hidden" * hidden, {"lrs": lrs, "factors": factors}, verify,
              "matches the ratio u_next / u measured on autograd runs.")


def check_regimes(namespace: dict) -> None:
    __tracebackhide__ = True
    predictions = namespace.get("predictions")
    if not isinstance(predictions, dict) or not predictions:
        raise NotImplementedError("Fill in `predictions`: a dict from each of your learning rates to a regime.")
    pairs = []
    for lr, said in predictions.items():
        if said not in REGIMES:
            raise WrongType(f"predictions[{lr!r}] = {said!r}: use one of {', '.join(map(repr, REGIMES))}.")
        if isinstance(lr, str):  # {"0.3": ...} is as clear as {0.3: ...}
            try:
                lr = float(lr)
            except ValueError:
                raise WrongType(f"predictions has the key {lr!r}: use the learning rate as a number.") from None
        pairs.append([as_float("learning rate", lr), said])
    run_check(LAB, "t3_regimes", {"predictions": pairs}, verify, "every regime predicted right.")
