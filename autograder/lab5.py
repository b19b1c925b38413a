"""Lab 5 — training loops with nn.Module and optimizers: references and checks."""

import math
import warnings

import torch
from torch import nn

from course.data import thermometer

from .compare import Expected, WrongType, diagnose_all, lists_close
from .device import grading_device
from .identity import ANONYMOUS, draw_numbers, student_id
from .kernel import probe_set, run_check, shielded, take_function, take_list, values_check

LAB = "lab5"
F64 = torch.float64

STEP_NAMES = ("mse", "dmse_dw", "dmse_db", "w_next")
CE_NAMES = ("ce_loss", "ce_grad_0", "ce_grad_1", "ce_grad_2")
ARCHITECTURE = [["Linear", 2, 2], ["ReLU"], ["Linear", 2, 1]]

WEIGHTS = (-1.0, -0.5, 0.5, 1.0, 1.5)
BIASES = (-1.0, 0.0, 1.0)
INPUTS = (-2.0, -1.0, 1.0, 2.0, 3.0)
TARGETS = (-1.0, 0.0, 1.0, 2.0, 4.0)
LRS = (0.05, 0.1)
LOGITS = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)

# (optimizer, learning rate, steps, zero_grad, seed) for the training-loop check.
TRAIN_PROBES = {"visible": [("SGD", 1e-3, 50, True, 0)],
                "hidden": [("SGD", 1e-3, 30, False, 0), ("Adam", 0.05, 40, True, 2)]}


# ---------------------------------------------------------------- references

def seeded_model(seed: int) -> nn.Sequential:
    """Linear(2, 2) → ReLU → Linear(2, 1), initialised by nn's default from a fixed seed.

    The seed is applied under torch.random.fork_rng, so neither the student's random state nor
    other grading threads can change (or be changed by) these weights.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    return model.to(grading_device())


def train_reference(optimizer: str, lr: float, steps: int, zero_grad: bool, seed: int,
                    zero_after_backward: bool = False, squeeze: bool = True) -> list[float]:
    """Losses of the lab's training loop by autograd; two classic bugs can be switched on for feedback."""
    model = seeded_model(seed)
    X, y = thermometer(device=grading_device())
    opt = getattr(torch.optim, optimizer)(model.parameters(), lr=lr)
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


def sgd_step_reference(w, b, x1, y1, x2, y2, lr) -> dict[str, float]:
    """MSE of ŷ = w·x + b on two points, its gradients by autograd, and w after one SGD step."""
    wt = torch.tensor(w, dtype=F64, device=grading_device(), requires_grad=True)
    bt = torch.tensor(b, dtype=F64, device=grading_device(), requires_grad=True)
    x = torch.tensor([x1, x2], dtype=F64, device=grading_device())
    y = torch.tensor([y1, y2], dtype=F64, device=grading_device())
    mse = nn.functional.mse_loss(wt * x + bt, y)
    mse.backward()
    return {"mse": mse.item(), "dmse_dw": wt.grad.item(), "dmse_db": bt.grad.item(),
            "w_next": w - lr * wt.grad.item()}


def cross_entropy_reference(logits: list[float], target: int) -> dict[str, float]:
    """nn.CrossEntropyLoss of one sample and its gradient with respect to the logits, by autograd."""
    z = torch.tensor([logits], dtype=F64, device=grading_device(), requires_grad=True)
    loss = nn.CrossEntropyLoss()(z, torch.tensor([target], device=grading_device()))
    loss.backward()
    return {"ce_loss": loss.item(), **{f"ce_grad_{i}": g for i, g in enumerate(z.grad[0].tolist())}}


# ---------------------------------------------------------------- per-student numbers

def step_expected(n: dict) -> list[Expected]:
    r = sgd_step_reference(n["w"], n["b"], n["x1"], n["y1"], n["x2"], n["y2"], n["lr"])
    return [
        Expected("mse", r["mse"], "MSE = mean of (w·x + b − y)² over both points.",
                 {"summed the squares instead of averaging": 2 * r["mse"]}),
        Expected("dmse_dw", r["dmse_dw"], "dMSE/dw = (2/N) Σ (ŷ − y)·x.",
                 {"summed instead of averaging": 2 * r["dmse_dw"], "forgot the factor 2": r["dmse_dw"] / 2}),
        Expected("dmse_db", r["dmse_db"], "dMSE/db = (2/N) Σ (ŷ − y).",
                 {"summed instead of averaging": 2 * r["dmse_db"], "forgot the factor 2": r["dmse_db"] / 2}),
        Expected("w_next", r["w_next"], "SGD: w ← w − lr · dMSE/dw.",
                 {"stepped uphill (w + lr · dMSE/dw)": n["w"] + n["lr"] * r["dmse_dw"],
                  "used the summed gradient": n["w"] - 2 * n["lr"] * r["dmse_dw"]}),
    ]


def ce_expected(n: dict) -> list[Expected]:
    z, t = n["logits"], n["target"]
    r = cross_entropy_reference(z, t)
    p = torch.softmax(torch.tensor(z, dtype=F64), 0).tolist()
    softmaxed = cross_entropy_reference(p, t)["ce_loss"]
    log_sum = math.log(sum(math.exp(v) for v in z))
    grads = [Expected(f"ce_grad_{i}", r[f"ce_grad_{i}"], "dL/dz_i = softmax(z)_i − (1 if i is the target else 0).",
                      {"forgot to subtract the one-hot target": p[i]} if i == t else {})
             for i in range(3)]
    return [Expected("ce_loss", r["ce_loss"], "L = −z_target + ln Σ exp(z_j), the natural logarithm.",
                     {"applied softmax before CrossEntropyLoss, which applies it again": softmaxed,
                      "used log base 10": log_sum / math.log(10) - z[t],
                      "left out the log-sum-exp term (−z_target alone)": -z[t]})] + grads


def student_numbers(student: str) -> dict:
    def draw(d: bytes) -> dict:
        return {"w": WEIGHTS[d[0] % len(WEIGHTS)], "b": BIASES[d[1] % len(BIASES)],
                "x1": INPUTS[d[2] % len(INPUTS)], "y1": TARGETS[d[3] % len(TARGETS)],
                "x2": INPUTS[d[4] % len(INPUTS)], "y2": TARGETS[d[5] % len(TARGETS)],
                "lr": LRS[d[6] % len(LRS)],
                "logits": [LOGITS[d[7 + i] % len(LOGITS)] for i in range(3)], "target": d[10] % 3}

    def separable(n: dict) -> bool:
        return (n["x1"] != n["x2"] and len(set(n["logits"])) == 3
                and all(e.separated() for e in step_expected(n) + ce_expected(n)))

    return draw_numbers(LAB, student, draw, separable)


def my_numbers() -> dict:
    student, source = student_id()
    n = student_numbers(student)
    print(f"Student id: {student!r} (from {source})")
    print(f"Task 3: w = {n['w']:g}, b = {n['b']:g}, points (x, y) = ({n['x1']:g}, {n['y1']:g}) and "
          f"({n['x2']:g}, {n['y2']:g}), lr = {n['lr']:g}")
    print(f"Task 4: logits z = {n['logits']}, target class {n['target']}")
    if student == ANONYMOUS:
        print("No student id is set, so these are practice numbers. Your grade uses the numbers "
              "of your real id: see 'Your numbers' at the top of the notebook.")
    return n


# ---------------------------------------------------------------- verify

def _verify_model(data: dict, student: str) -> list[str]:
    if data["layers"] == ARCHITECTURE:
        return []
    return [f"make_model() has the layers {data['layers']}; expected Linear(2, 2) → ReLU → Linear(2, 1)."]


def _verify_train(data: dict, student: str) -> list[str]:
    problems = []
    for probe, got in zip(data["probes"], data["losses"]):
        name, lr, steps, zero_grad, seed = probe
        call = f"train with {name}(lr={lr:g}), {steps} steps, zero_grad={zero_grad}"
        ref = train_reference(*probe)
        if lists_close(got, ref, 1e-3, 1e-6):
            continue
        if len(got) != steps:
            problems.append(f"{call}: return one loss per step ({steps}), got {len(got)}.")
        elif lists_close(got, train_reference(name, lr, steps, not zero_grad, seed), 1e-3, 1e-6):
            problems.append(f"{call}: " + ("the gradients are never cleared" if zero_grad else
                                           "the gradients are cleared although zero_grad=False") + ".")
        elif lists_close(got, train_reference(*probe, zero_after_backward=True), 1e-3, 1e-6):
            problems.append(f"{call}: zero_grad() runs after backward(), so step() sees zero gradients and "
                            "nothing is learned. Clear the gradients before backward().")
        elif lists_close(got, train_reference(*probe, squeeze=False), 1e-3, 1e-6):
            problems.append(f"{call}: model(X) has shape (11, 1) and y (11,), so the loss broadcasts them to "
                            "(11, 11) and compares every prediction with every target. Squeeze the output.")
        else:
            problems.append(f"{call}: the losses differ from the reference loop (first loss {got[0]:.6g}, "
                            f"expected {ref[0]:.6g}).")
    return problems


def _values(expected_fn):
    def verify_values(data: dict, student: str) -> list[str]:
        n = student_numbers(student)
        problems = diagnose_all(data, expected_fn(n))
        if problems:
            problems.append(f"(Your numbers, for student id {student!r}: see `mine`.)")
        return problems
    return verify_values


PUBLISHED = {
    "t1_model": ("t1_model",),
    "t2_train": ("t2_train", "t2_train.hidden"),
    "t3_sgd_step": ("t3_sgd_step",),
    "t4_cross_entropy": ("t4_cross_entropy",),
}
VERIFIERS = {"t1_model": _verify_model, "t2_train": _verify_train,
             "t3_sgd_step": _values(step_expected), "t4_cross_entropy": _values(ce_expected)}


def verify(item: str, data: dict, student: str) -> list[str]:
    """Problems with one item's plain-data answers (empty when all is right)."""
    return VERIFIERS[item.removesuffix(".hidden")](data, student)


# ---------------------------------------------------------------- kernel side

check_sgd_step = values_check(LAB, "t3_sgd_step", STEP_NAMES, verify)
check_cross_entropy = values_check(LAB, "t4_cross_entropy", CE_NAMES, verify)


def describe_layers(model: nn.Module) -> list[list]:
    """The model's layers as plain data: ["Linear", in, out] or ["ReLU"]."""
    layers = []
    for module in model.modules():
        if isinstance(module, nn.Linear):
            layers.append(["Linear", module.in_features, module.out_features])
        elif not list(module.children()):
            layers.append([type(module).__name__])
    return layers


def check_model(namespace: dict) -> None:
    __tracebackhide__ = True
    fn = take_function(namespace, "make_model")
    with shielded():
        model = fn()
    if not isinstance(model, nn.Module):
        raise WrongType(f"make_model() should return an nn.Module, not {type(model).__name__}.")
    run_check(LAB, "t1_model", {"layers": describe_layers(model)}, verify, "the architecture is right.")


def check_train(namespace: dict, hidden: bool = False) -> None:
    __tracebackhide__ = True
    fn = take_function(namespace, "train")
    probes = TRAIN_PROBES[probe_set(hidden)]
    all_losses = []
    for name, lr, steps, zero_grad, seed in probes:
        model = seeded_model(seed)
        X, y = thermometer(device=grading_device())
        optimizer = getattr(torch.optim, name)(model.parameters(), lr=lr)
        with shielded():
            losses = fn(model, X, y, optimizer, steps, zero_grad=zero_grad)
        all_losses.append(take_list("losses", losses))
    run_check(LAB, "t2_train" + ".hidden" * hidden, {"probes": [list(p) for p in probes], "losses": all_losses},
              verify, "every loss matches the reference training loop.")
