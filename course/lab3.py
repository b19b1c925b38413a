"""Lab 3 in the student kit: your numbers, the hand-computed answers, how your functions are run.

Task 1's values on your own numbers are computed here with autograd (what is graded is that you
can predict them). Which graphs survive a second backward and what each way of clearing `.grad`
leaves behind are not decided here: expected/lab3.json holds them sealed, written by the grader
from what PyTorch does. What your functions should return on the visible probes is there too.
"""

import itertools

import torch
from torch import nn

from .answers import Expected, WrongType
from .checks import CheckFailed, Function, LabKit, Table, sealed
from .device import grading_device
from .identity import draw_numbers, pick_all

F64 = torch.float64

# Expressions of a vector x (requires grad) and a constant vector y, by the text students see.
# Their order matters: student numbers choose five of them by position (GRIDS).
EXPRESSIONS = ("(x + 2).sum()", "(x - y).sum()", "(-x).sum()", "(x * x).sum()", "(x * y).sum()",
               "x.sigmoid().sum()", "x.exp().sum()", "x.relu().sum()")
CLEARING = ("p.grad.zero_()", "p.grad = None", "optimizer.zero_grad()", "optimizer.zero_grad(set_to_none=False)")
# Task 6's statements about five classic autograd traps (in-place changes, rebinding a parameter,
# detach, a non-scalar backward, an integer leaf), to be predicted True or False.
TRAPS = ("w += 1 raises an error",
         "y = x.exp(); y.add_(1); y.sum().backward() raises an error",
         "y = x * 2; y.add_(1); y.sum().backward() raises an error",
         "A = A - 0.1 * A.grad, outside torch.no_grad(), leaves A.grad as None",
         "(s.detach() * s).backward() gives s.grad = 6 for s = tensor(3., requires_grad=True)",
         "x.backward() raises an error (x has three elements)",
         "torch.tensor(3, requires_grad=True) raises an error")
# Grids the per-student numbers are drawn from: 24⁴ · 12 · 56 ≈ 2.2e8 combinations, over a third of
# them acceptable, so two students of a class of 1,000 share numbers with a chance under 1 %
# (tests/unit/test_promises.py). k is odd, so 2a + k is never 0 and no gradient vanishes.
A_VALUES = tuple(float(v) for v in range(-12, 13) if v)
OFFSETS = tuple(float(k) for k in range(1, 24, 2))
GRIDS = {"a0": A_VALUES, "a1": A_VALUES, "a2": A_VALUES, "a3": A_VALUES, "k": OFFSETS,
         "expressions": tuple(itertools.combinations(EXPRESSIONS, 5))}
# What every parameter's .grad holds before accumulate_gradients is called: stale values.
STALE_GRAD = 0.5


# ---------------------------------------------------------------- hand computations

def accumulation_values(a: list[float], k: float) -> dict[str, list[float]]:
    """a.grad after one and after two backward calls of out = ((2a + k)²).sum(), by autograd."""
    at = torch.tensor(a, dtype=F64, device=grading_device(), requires_grad=True)
    out = ((2 * at + k) ** 2).sum()
    out.backward(retain_graph=True)
    once = at.grad.tolist()
    out.backward()
    return {"grad_once": once, "grad_twice": at.grad.tolist()}


def uses(numbers: dict) -> str:
    return f"a = {numbers['a']}, k = {numbers['k']:g}"


def answers(numbers: dict) -> dict[str, Expected]:
    """Task 1's right answers for these numbers, with the slips feedback can name."""
    r = accumulation_values(numbers["a"], numbers["k"])
    return {
        "grad_once": Expected(
            "grad_once", r["grad_once"], "dout/da = 2c · dc/da with c = 2a + k.",
            {"dropped a factor 2, giving half the right value (d/dc of c² is 2c, and dc/da = 2 as well)":
             [g / 2 for g in r["grad_once"]]}, uses(numbers)),
        "grad_twice": Expected(
            "grad_twice", r["grad_twice"], "What does a second backward do to a.grad?",
            {"kept a.grad from one backward (`grad_twice` equals `grad_once`): "
             "backward does not overwrite `.grad`, it adds to it": r["grad_once"]}, uses(numbers)),
    }


# ---------------------------------------------------------------- per-student numbers

def draw(digest: bytes) -> dict:
    """One pick from each of `GRIDS`: the four entries of a, k, and five expressions in the lab's order."""
    n = pick_all(digest, GRIDS)
    return {"a": [n[f"a{i}"] for i in range(4)], "k": n["k"], "expressions": list(n["expressions"])}


def acceptable(n: dict) -> bool:
    """Four distinct entries of a, and two or three expressions that need retain_graph (which
    ones do is read from the kit's sealed data, which the grader writes from what PyTorch does)."""
    truth = check.expected["tables"]["needs_retain"]
    kinds = [sealed("lab3", "needs_retain", e, True) == truth[e] for e in n["expressions"]]
    return 2 <= sum(kinds) <= 3 and len(set(n["a"])) == 4


def student_numbers(student: str) -> dict:
    """A vector a and offset k for the by-hand part, and five expressions to predict: the first
    `acceptable` draw over SHA-256 digests of the id."""
    return draw_numbers("lab3", student, draw, acceptable)


def show_numbers(n: dict) -> list[str]:
    return [f"Task 1: a = {n['a']}, k = {n['k']:g}", "Task 2 expressions: " + "   ".join(n["expressions"])]


# ---------------------------------------------------------------- inputs for the student's functions

def problem_data(samples: int, seed: int,
                 normalised: bool = False) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    """A small seeded regression problem: model Linear(3, 4) → ReLU → Linear(4, 1), data X, y.
    `normalised`: a BatchNorm1d after the first layer, so that the model's output for a sample
    depends on the batch it came in (micro-batches and the full batch then differ)."""
    # A private generator, not torch.manual_seed: grading threads and the student's own
    # random state must not change these numbers.
    g = torch.Generator().manual_seed(100 + seed)
    batch = [nn.BatchNorm1d(4, affine=False, track_running_stats=False)] if normalised else []
    model = nn.Sequential(nn.Linear(3, 4), *batch, nn.ReLU(), nn.Linear(4, 1)).to(F64)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64) * 0.5)
    model = model.to(grading_device())
    X = torch.randn(samples, 3, generator=g, dtype=F64).to(grading_device())
    y = torch.randn(samples, 1, generator=g, dtype=F64).to(grading_device())
    return model, X, y


def stale_problem(samples: int, seed: int,
                  normalised: bool = False) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    """problem_data, with every .grad already holding STALE_GRAD from an earlier step."""
    model, X, y = problem_data(samples, seed, normalised)
    for p in model.parameters():
        p.grad = torch.full_like(p, STALE_GRAD)
    return model, X, y


def _tensor_lists(name: str, result) -> list:
    if not isinstance(result, (list, tuple)) or not all(isinstance(g, torch.Tensor) for g in result):
        raise WrongType(f"{name} should return a list of tensors, one per parameter.")
    return [g.detach().to("cpu", F64).tolist() for g in result]


def run_accumulate_gradients(fns: dict, probe: dict) -> list:
    """Run the student's function on a model that records the size of every batch it is run on:
    k micro-batches it must be, not the full batch at once."""
    model, X, y = stale_problem(probe["samples"], probe["seed"], probe.get("normalised", False))
    batches: list[int] = []
    model.register_forward_pre_hook(lambda module, args: batches.append(len(args[0])) if args else None)
    gradients = _tensor_lists("accumulate_gradients", fns["accumulate_gradients"](model, X, y, probe["k"]))
    wanted = [len(part) for part in torch.chunk(X, probe["k"])]
    if batches != wanted:
        raise CheckFailed(f"accumulate_gradients(k={probe['k']}) ran the model on batches of {batches} samples; "
                          f"it should run it once per micro-batch, on {wanted} (torch.chunk), and let the "
                          "gradients add up in .grad.")
    return gradients


def run_first_layer_grad(fns: dict, probe: dict) -> list:
    """Run the student's function on a model whose gradients hold stale values, as after a training step."""
    model, X, y = stale_problem(probe["samples"], probe["seed"])
    result = fns["first_layer_grad"](model, X, y)
    if not isinstance(result, torch.Tensor):
        raise WrongType(f"first_layer_grad should return a tensor, not {type(result).__name__}.")
    return result.detach().to("cpu", F64).tolist()


RETAIN_SAYS = {True: "True (a second backward fails: backward frees the tensors the forward pass saved)",
               False: "False (a second backward works: nothing was saved, so there is nothing to free)"}
CLEARED_SAYS = {"zeros": "a tensor of zeros",
                "None": "None (`.grad` is dropped; zero_grad sets gradients to None by default)"}

# The numbers of the lab's worked example (Task 1's text and its observe cell):
# answers worked on them instead of the student's own are named as such.
WORKED_EXAMPLE = {"a": [1.0, 2.0, 3.0, 4.0], "k": 5.0}

check = LabKit(
    "lab3", numbers=student_numbers, show_numbers=show_numbers, answers=answers, example=WORKED_EXAMPLE,
    functions={
        "accumulate_gradients": Function(("accumulate_gradients",), run_accumulate_gradients,
                                         "the accumulated gradients equal the full-batch gradients."),
        "first_layer_grad": Function(("first_layer_grad",), run_first_layer_grad,
                                     "matches model[0].weight.grad from autograd."),
    },
    tables={
        "needs_retain": Table(EXPRESSIONS, (True, False), chosen=lambda n: n["expressions"],
                              describe=RETAIN_SAYS.get, success="every prediction matches what PyTorch does."),
        "after_clear": Table(CLEARING, ("zeros", "None"), describe=CLEARED_SAYS.get,
                             success="every prediction matches what PyTorch does."),
        "traps": Table(TRAPS, (True, False), success="every prediction matches what PyTorch does."),
    })
