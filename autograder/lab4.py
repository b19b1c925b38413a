"""Lab 4 — computation graphs and backprop by hand: references and checks.

Every reference is computed with torch.autograd, in float64, on the grading
device, at the moment of grading. A check has two halves:
  * `take_*` pulls the answers out of the notebook as plain data;
  * `verify(item, data, student)` compares plain data with the references.
`verify` never touches the student's kernel, so it can run again elsewhere.
"""

import torch

from .compare import FUNCTION_RTOL, Expected, WrongType, as_float, close, diagnose_all, lists_close, relative_error
from .device import grading_device
from .identity import ANONYMOUS, draw_numbers, student_id
from .kernel import probe_set, run_check, shielded, take_function, take_list, values_check

LAB = "lab4"
F64 = torch.float64

# Task 1 uses the same numbers for everyone; Task 2's worked example uses these.
TASK1_NUMBERS = {"x": 4.0, "y": 1.0, "w": 0.5}
WORKED_NUMBERS = {"x1": 4.0, "w1": 0.5, "w2": 0.2, "y": 1.0}

TASK1_FORWARD = ("yhat", "s", "loss")
TASK1_BACKWARD = ("dloss_ds", "ds_dyhat", "dyhat_dw", "dloss_dw")
# Task 2 answers that would clash with Task 1's names carry the suffix _2.
TASK2_ANSWER_NAMES = {"yhat": "yhat_2", "s": "s_2", "loss": "loss_2",
                      "dloss_ds": "dloss_ds_2", "ds_dyhat": "ds_dyhat_2"}
TASK2_FORWARD = ("m1", "r", "m2", "yhat_2", "s_2", "loss_2")
TASK2_LOCAL = ("dloss_ds_2", "ds_dyhat_2", "dyhat_dm2", "dm2_dw2", "dm2_dr", "dr_dm1", "dm1_dw1")
TASK2_GRADIENTS = ("dloss_dw2", "dloss_dw1")

# Grids the per-student numbers are drawn from (x1, w1 > 0 keep the ReLU active);
# 11 · 17 · 34 · 2 = 12,716 combinations, so classmates rarely share numbers.
X1_CHOICES = tuple(1.5 + 0.5 * k for k in range(11))                      # 1.5 … 6.5
W1_CHOICES = tuple(round(0.15 + 0.05 * k, 2) for k in range(17))          # 0.15 … 0.95
W2_CHOICES = tuple(sign * w for sign in (-1, 1) for w in W1_CHOICES)      # ±0.15 … ±0.95
Y_CHOICES = (0.0, 1.0)

BACKWARD_MAX_REL_ERROR = 1e-5


def _leaf(value: float, grad: bool = False) -> torch.Tensor:
    return torch.tensor(float(value), dtype=F64, device=grading_device(), requires_grad=grad)


def _local(out: torch.Tensor, inp: torch.Tensor) -> float:
    """d out / d inp on the recorded graph, by autograd."""
    return torch.autograd.grad(out, inp, retain_graph=True)[0].item()


# ---------------------------------------------------------------- Task 1

def task1_reference(x: float, y: float, w: float) -> dict[str, float]:
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


def task1_expected() -> dict[str, list[Expected]]:
    n, r = TASK1_NUMBERS, task1_reference(**TASK1_NUMBERS)
    chain = "dloss/dw = dloss/ds · ds/dŷ · dŷ/dw."
    return {
        "forward": [
            Expected("yhat", r["yhat"], "ŷ = x · w.", {"added x and w": n["x"] + n["w"]}),
            Expected("s", r["s"], "s = ŷ − y.", {"computed y − ŷ": -r["s"]}),
            Expected("loss", r["loss"], "loss = s².", {"forgot to square s": r["s"]}),
        ],
        "backward": [
            Expected("dloss_ds", r["dloss_ds"], "The derivative of s² is 2s.",
                     {"forgot the factor 2 from the square": r["s"]}),
            Expected("ds_dyhat", r["ds_dyhat"], "s = ŷ − y changes one-for-one with ŷ."),
            Expected("dyhat_dw", r["dyhat_dw"], "ŷ = x · w; differentiate with respect to w.",
                     {"used w instead of x": n["w"]}),
            Expected("dloss_dw", r["dloss_dw"], chain,
                     {"forgot the factor 2 from the square": r["dloss_dw"] / 2,
                      "used w instead of x for dŷ/dw": r["dloss_ds"] * n["w"],
                      "stopped at dloss/ds": r["dloss_ds"]}),
        ],
    }


def train_reference(x: float, y: float, w: float, lr: float, steps: int,
                    zero_grad: bool = True, direction: float = -1.0) -> dict[str, list[float]]:
    """Gradient descent on w by autograd; ws[k], losses[k] are taken at the start of step k.

    `zero_grad=False` and `direction=+1` reproduce two classic bugs, for feedback.
    """
    xt, yt, wt = _leaf(x), _leaf(y), _leaf(w, grad=True)
    ws, losses = [], []
    for _ in range(steps):
        loss = (xt * wt - yt) ** 2
        ws.append(wt.item())
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            wt += direction * lr * wt.grad
        if zero_grad:
            wt.grad.zero_()
    return {"ws": ws, "losses": losses}


# ---------------------------------------------------------------- Task 2

def task2_reference(x1: float, w1: float, w2: float, y: float) -> dict[str, float]:
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


def task2_expected(x1: float, w1: float, w2: float, y: float) -> dict[str, list[Expected]]:
    """The right answers for these numbers, each with the slips that feedback can name."""
    r = task2_reference(x1, w1, w2, y)
    worked = task2_reference(**WORKED_NUMBERS)
    wrong_sigmoid = r["m2"] * (1 - r["m2"])
    upstream = r["dloss_ds"] * r["dyhat_dm2"]          # dloss/dm2
    other = "used the worked example's numbers instead of your own"

    def exp(name, hint, slips=None):
        slips = dict(slips or {})
        if worked[name] != r[name]:
            slips[other] = worked[name]
        return Expected(TASK2_ANSWER_NAMES.get(name, name), r[name], hint, slips)

    return {
        "forward": [
            exp("m1", "m1 = x1 · w1."),
            exp("r", "r = ReLU(m1) = max(m1, 0)."),
            exp("m2", "m2 = r · w2."),
            exp("yhat", "ŷ = σ(m2) = 1 / (1 + e^(−m2)).", {"forgot the sigmoid (ŷ = m2)": r["m2"]}),
            exp("s", "s = ŷ − y.", {"computed y − ŷ": -r["s"]}),
            exp("loss", "loss = s².", {"forgot to square s": r["s"]}),
        ],
        "local": [
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
        ],
        "gradients": [
            exp("dloss_dw2", "dloss/dw2 = 2s · ŷ(1 − ŷ) · r.",
                {"used m2·(1 − m2) for the sigmoid's derivative": r["dloss_ds"] * wrong_sigmoid * r["r"],
                 "forgot the factor 2 from the square": r["dloss_dw2"] / 2,
                 "used w2 instead of r for dm2/dw2": upstream * w2}),
            exp("dloss_dw1", "dloss/dw1 = 2s · ŷ(1 − ŷ) · w2 · 1 · x1 (through m2, r and m1).",
                {"used m2·(1 − m2) for the sigmoid's derivative": r["dloss_ds"] * wrong_sigmoid * w2 * x1,
                 "forgot the factor 2 from the square": r["dloss_dw1"] / 2,
                 "used r instead of w2 for dm2/dr": upstream * r["r"] * x1,
                 "stopped at w2 (that is dloss/dw2)": r["dloss_dw2"]}),
        ],
    }


def student_numbers(student: str) -> dict[str, float]:
    """Task 2 inputs for one student id: stable everywhere, every slip clearly wrong.

    Candidates come from a SHA-256 of the id; the first whose slips can all be
    told apart from the right answers (compare.Expected.separated) is taken.
    """
    def draw(d: bytes) -> dict[str, float]:
        return {"x1": X1_CHOICES[d[0] % len(X1_CHOICES)], "w1": W1_CHOICES[d[1] % len(W1_CHOICES)],
                "w2": W2_CHOICES[d[2] % len(W2_CHOICES)], "y": Y_CHOICES[d[3] % len(Y_CHOICES)]}

    def separable(numbers: dict[str, float]) -> bool:
        return all(e.separated() for group in task2_expected(**numbers).values() for e in group)

    return draw_numbers(LAB, student, draw, separable)


def my_numbers() -> dict[str, float]:
    """Show and return this student's Task 2 numbers."""
    student, source = student_id()
    numbers = student_numbers(student)
    print(f"Student id: {student!r} (from {source})")
    print("Your numbers: " + ", ".join(f"{k} = {v:g}" for k, v in numbers.items()))
    if student == ANONYMOUS:
        print("No student id is set, so these are practice numbers. Your grade uses the numbers "
              "of your real id: see 'Your numbers' at the top of the notebook.")
    return numbers


# ---------------------------------------------------------------- probes for student functions

CHECK_RESULT_PROBES = {"visible": [(4.0, 1.0, 0.5)], "hidden": [(2.0, 3.0, 0.25), (-1.5, 0.5, 2.0)]}
TRAIN_PROBES = {"visible": [dict(x=4.0, y=1.0, w=0.5, lr=0.01, steps=60)],
                "hidden": [dict(x=2.0, y=3.0, w=0.0, lr=0.05, steps=25)]}
ACTIVATION_PROBES = {"visible": [-2.0, -0.5, 0.0, 0.3, 0.7, 1.5, 3.0],
                     "hidden": [-4.0, -1e-3, 1e-3, 0.25, 5.0]}
# (features, hidden units, seed): seeds chosen so the ReLUs are partly on, partly off.
BACKWARD_PROBES = {"visible": [(3, 4, 1), (2, 3, 1)], "hidden": [(5, 6, 2), (1, 1, 2)]}


def backward_inputs(features: int, hidden: int, seed: int) -> dict[str, torch.Tensor]:
    """Seeded random x (D,), W1 (H, D), w2 (H,), y () in float64 on the grading device."""
    g = torch.Generator().manual_seed(1000 + seed)
    make = lambda *shape: torch.randn(*shape, generator=g, dtype=F64)  # noqa: E731
    # Scaled like a standard initialisation, so the sigmoid is not saturated and gradients are O(0.1).
    inputs = {"x": make(features), "W1": make(hidden, features) / features ** 0.5,
              "w2": make(hidden) / hidden ** 0.5, "y": torch.rand((), generator=g, dtype=F64)}
    return {k: v.to(grading_device()) for k, v in inputs.items()}


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


# ---------------------------------------------------------------- verify: plain data in, problems out

def _values(task: int, group: str):
    def verify_values(data: dict, student: str) -> list[str]:
        if task == 1:
            return diagnose_all(data, task1_expected()[group])
        numbers = student_numbers(student)
        problems = diagnose_all(data, task2_expected(**numbers)[group])
        if problems:
            shown = ", ".join(f"{k} = {v:g}" for k, v in numbers.items())
            problems.append(f"(Your numbers, for student id {student!r}: {shown}.)")
        return problems
    return verify_values


def _verify_check_result(data: dict, student: str) -> list[str]:
    problems = []
    for (x, y, w), (loss, grad) in zip(data["probes"], data["outputs"]):
        ref = task1_reference(x, y, w)
        if not close(loss, ref["loss"], FUNCTION_RTOL, 1e-9):
            problems.append(f"check_result({x:g}, {y:g}, {w:g}) returned loss {loss:.6g}: "
                            "build ŷ = x·w, s = ŷ − y, loss = s² with tensors.")
        if not close(grad, ref["dloss_dw"], FUNCTION_RTOL, 1e-9):
            why = " (the sign is flipped)" if close(-grad, ref["dloss_dw"], FUNCTION_RTOL, 1e-9) else ""
            problems.append(f"check_result({x:g}, {y:g}, {w:g}) returned gradient {grad:.6g}{why}: "
                            "make w a tensor with requires_grad=True, call loss.backward() and read w.grad.")
    return problems


def _verify_train(data: dict, student: str) -> list[str]:
    problems = []
    for args, run in zip(data["probes"], data["runs"]):
        call = "train(" + ", ".join(f"{k}={v:g}" for k, v in args.items()) + ")"
        ref = train_reference(**args)
        if len(run["ws"]) != args["steps"] or len(run["losses"]) != args["steps"]:
            problems.append(f"{call} should return {args['steps']} values of w and of the loss, "
                            f"one per step; got {len(run['ws'])} and {len(run['losses'])}.")
            continue
        if lists_close(run["ws"], ref["ws"]) and lists_close(run["losses"], ref["losses"]):
            continue
        if lists_close(run["ws"], train_reference(**args, zero_grad=False)["ws"]):
            problems.append(f"{call}: w.grad is never reset, so each step adds the new gradient to "
                            "all the old ones. Zero it (w.grad.zero_()) after every update.")
        elif lists_close(run["ws"], train_reference(**args, direction=+1.0)["ws"]):
            problems.append(f"{call}: w moves up the gradient, so the loss grows. Subtract lr · w.grad.")
        elif close(run["ws"][0], args["w"]) and not close(run["losses"][0], ref["losses"][0], FUNCTION_RTOL, 1e-6):
            problems.append(f"{call}: losses[k] should be the loss computed with ws[k], at the start of step k.")
        else:
            problems.append(f"{call}: ws[k] should be w at the start of step k (ws[0] = {args['w']:g}), "
                            "then w ← w − lr · dloss/dw with the gradient from autograd.")
    return problems


def _activation_references(xs: list[float]) -> dict[str, list[float]]:
    refs = {}
    for name, fn in (("relu_grad", torch.relu), ("sigmoid_grad", torch.sigmoid)):
        t = torch.tensor(xs, dtype=F64, device=grading_device(), requires_grad=True)
        fn(t).sum().backward()
        refs[name] = t.grad.tolist()
    return refs


def _verify_activation_grads(data: dict, student: str) -> list[str]:
    xs, refs = data["xs"], _activation_references(data["xs"])
    t = torch.tensor(xs, dtype=F64)
    slips = {"relu_grad": {"returned ReLU(x) instead of its slope": torch.relu(t).tolist(),
                           "gave slope 1 at x = 0 (PyTorch, and this lab, use 0 there)":
                               (t >= 0).to(F64).tolist()},
             "sigmoid_grad": {"used x·(1 − x), the derivative written in terms of the sigmoid's "
                              "output, on the input x; σ'(x) = σ(x)·(1 − σ(x))": (t * (1 - t)).tolist(),
                              "returned σ(x) instead of its derivative": torch.sigmoid(t).tolist()}}
    problems = []
    for name in ("relu_grad", "sigmoid_grad"):
        got = data[name]
        if lists_close(got, refs[name]):
            continue
        named = [why for why, wrong in slips[name].items() if lists_close(got, wrong)]
        where = [x for x, a, b in zip(xs, got, refs[name]) if not close(a, b, FUNCTION_RTOL, 1e-6)]
        problems.append(f"`{name}` is wrong at x = {', '.join(f'{x:g}' for x in where)}"
                        + (f": it {named[0]}." if named else "."))
    return problems


def _verify_manual_backward(data: dict, student: str) -> list[str]:
    problems = []
    for (features, hidden, seed), got in zip(data["probes"], data["cases"]):
        inputs = backward_inputs(features, hidden, seed)
        ref = backward_reference(**inputs)
        label = f"manual_backward on x of size {features} with {hidden} hidden units"
        bad = {}
        for name in ("dW1", "dw2"):
            if torch.tensor(got[name]).shape != ref[name].shape:
                bad[name] = f"`{name}` should have shape {tuple(ref[name].shape)}"
            elif (err := relative_error(got[name], ref[name])) > BACKWARD_MAX_REL_ERROR:
                bad[name] = f"`{name}` differs from autograd (relative error {err:.1e})"
        if not bad:
            continue
        named = [why for why, wrong in backward_slips(**inputs).items()
                 if all(torch.tensor(got[k]).shape == wrong[k].shape
                        and relative_error(got[k], wrong[k]) <= BACKWARD_MAX_REL_ERROR for k in wrong)]
        problems.append(f"{label}: " + "; ".join(bad.values())
                        + (f". It matches what you get if you {named[0]}." if named else "."))
    return problems


VERIFIERS = {
    "t1_forward": _values(1, "forward"),
    "t1_backward": _values(1, "backward"),
    "t1_check_result": _verify_check_result,
    "t1_train": _verify_train,
    "t2_forward": _values(2, "forward"),
    "t2_local": _values(2, "local"),
    "t2_gradients": _values(2, "gradients"),
    "t2_activation_grads": _verify_activation_grads,
    "t2_manual_backward": _verify_manual_backward,
}


# What each autograder test cell publishes; the out-of-kernel audit expects exactly this.
PUBLISHED = {
    "t1_forward": ("t1_forward",),
    "t1_backward": ("t1_backward",),
    "t1_check_result": ("t1_check_result", "t1_check_result.hidden"),
    "t1_train": ("t1_train", "t1_train.hidden"),
    "t2_forward": ("t2_forward",),
    "t2_local": ("t2_local",),
    "t2_gradients": ("t2_gradients",),
    "t2_activation_grads": ("t2_activation_grads", "t2_activation_grads.hidden"),
    "t2_manual_backward": ("t2_manual_backward", "t2_manual_backward.hidden"),
}


def verify(item: str, data: dict, student: str) -> list[str]:
    """Problems with one item's plain-data answers (empty when all is right)."""
    return VERIFIERS[item.removesuffix(".hidden")](data, student)


# ---------------------------------------------------------------- kernel side: one call per test cell

check_task1_forward = values_check(LAB, "t1_forward", TASK1_FORWARD, verify)
check_task1_backward = values_check(LAB, "t1_backward", TASK1_BACKWARD, verify)
check_task2_forward = values_check(LAB, "t2_forward", TASK2_FORWARD, verify)
check_task2_local = values_check(LAB, "t2_local", TASK2_LOCAL, verify)
check_task2_gradients = values_check(LAB, "t2_gradients", TASK2_GRADIENTS, verify)


def check_check_result(namespace: dict, hidden: bool = False) -> None:
    __tracebackhide__ = True
    fn = take_function(namespace, "check_result")
    probes = CHECK_RESULT_PROBES[probe_set(hidden)]
    outputs = []
    for x, y, w in probes:
        with shielded():
            result = fn(x, y, w)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise WrongType("check_result should return two numbers: (loss, dloss_dw).")
        outputs.append([as_float("loss", result[0]), as_float("dloss_dw", result[1])])
    run_check(LAB, "t1_check_result" + ".hidden" * hidden, {"probes": probes, "outputs": outputs}, verify,
         "one forward and one backward pass agree with autograd.")


def check_train(namespace: dict, hidden: bool = False) -> None:
    __tracebackhide__ = True
    fn = take_function(namespace, "train")
    probes = TRAIN_PROBES[probe_set(hidden)]
    runs = []
    for args in probes:
        with shielded():
            result = fn(**args)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise WrongType("train should return two lists: (ws, losses).")
        runs.append({"ws": take_list("ws", result[0]), "losses": take_list("losses", result[1])})
    run_check(LAB, "t1_train" + ".hidden" * hidden, {"probes": probes, "runs": runs}, verify,
         "every step matches gradient descent done by autograd.")


def check_activation_grads(namespace: dict, hidden: bool = False) -> None:
    __tracebackhide__ = True
    xs = ACTIVATION_PROBES[probe_set(hidden)]
    data = {"xs": xs}
    for name in ("relu_grad", "sigmoid_grad"):
        fn = take_function(namespace, name)
        t = torch.tensor(xs, dtype=F64, device=grading_device())
        with shielded():
            out = fn(t)
        if not isinstance(out, torch.Tensor) or out.shape != t.shape:
            raise WrongType(f"`{name}` should return a tensor of the same shape as its input.")
        data[name] = take_list(name, out)
    run_check(LAB, "t2_activation_grads" + ".hidden" * hidden, data, verify,
         "relu_grad and sigmoid_grad agree with autograd at every probe point.")


def check_manual_backward(namespace: dict, hidden: bool = False) -> None:
    __tracebackhide__ = True
    fn = take_function(namespace, "manual_backward")
    probes = BACKWARD_PROBES[probe_set(hidden)]
    cases = []
    for features, hidden_units, seed in probes:
        inputs = backward_inputs(features, hidden_units, seed)
        with shielded(), torch.no_grad():
            result = fn(**inputs)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise WrongType("manual_backward should return two tensors: (dW1, dw2).")
        case = {}
        for name, value in zip(("dW1", "dw2"), result):
            if not isinstance(value, torch.Tensor):
                raise WrongType(f"`{name}` should be a tensor, not {type(value).__name__}.")
            case[name] = value.detach().to("cpu", F64).tolist()
        cases.append(case)
    run_check(LAB, "t2_manual_backward" + ".hidden" * hidden, {"probes": probes, "cases": cases}, verify,
         f"dW1 and dw2 match autograd (relative error below {BACKWARD_MAX_REL_ERROR:g}).")
