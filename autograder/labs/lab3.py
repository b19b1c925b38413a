"""Lab 3 — gradient accumulation: the grader's references and checks.

Facts the lab asks students to predict (which graphs survive a second backward, what each way
of clearing `.grad` leaves behind) are observed on the installed PyTorch when grading runs, and
so is every reference for the functions a student writes (float64, on the grading device).
Task 1's hand-computed values are checked on the kit's values for the student's numbers
(course.lab3.answers).
"""

import warnings

import torch
from torch import nn

from course import lab3 as kit
from course.answers import relative_error
from course.device import grading_device

from . import Case, Lab, Mistake

F64 = torch.float64
MAX_REL_ERROR = 1e-6
ROUNDING_ZERO = 1e-7  # of the largest gradient entry: below it, an entry is zero up to rounding
LAB = Lab(kit.check)

# The expressions of the prediction table, as code; kit.EXPRESSIONS holds their texts.
EXPRESSIONS = {
    "(x + 2).sum()": lambda x, y: (x + 2).sum(),
    "(x - y).sum()": lambda x, y: (x - y).sum(),
    "(-x).sum()": lambda x, y: (-x).sum(),
    "(x * x).sum()": lambda x, y: (x * x).sum(),
    "(x * y).sum()": lambda x, y: (x * y).sum(),
    "x.sigmoid().sum()": lambda x, y: x.sigmoid().sum(),
    "x.exp().sum()": lambda x, y: x.exp().sum(),
    "x.relu().sum()": lambda x, y: x.relu().sum(),
}
assert tuple(EXPRESSIONS) == kit.EXPRESSIONS


# ---------------------------------------------------------------- references, observed with autograd

def needs_retain_graph(expression: str) -> bool:
    """Whether a second backward through this expression's graph fails without retain_graph."""
    x = torch.tensor([0.5, -1.0, 2.0], dtype=F64, device=grading_device(), requires_grad=True)
    y = torch.tensor([1.0, 2.0, 3.0], dtype=F64, device=grading_device())
    out = EXPRESSIONS[expression](x, y)
    out.backward()
    try:
        out.backward()
    except RuntimeError:
        return True
    return False


def after_clearing(method: str) -> str:
    """'zeros' or 'None': what `.grad` holds after clearing it this way."""
    p = nn.Parameter(torch.ones(2, device=grading_device()))
    optimizer = torch.optim.SGD([p], lr=0.1)
    (p * p).sum().backward()
    if method == "p.grad.zero_()":
        p.grad.zero_()
    elif method == "p.grad = None":
        p.grad = None
    elif method == "optimizer.zero_grad()":
        optimizer.zero_grad()
    else:
        optimizer.zero_grad(set_to_none=False)
    return "None" if p.grad is None else "zeros"


def full_batch_gradients(samples: int, seed: int, normalised: bool = False) -> list[torch.Tensor]:
    """Gradients of the mean squared error over the whole batch, by autograd."""
    model, X, y = kit.problem_data(samples, seed, normalised)
    nn.functional.mse_loss(model(X), y).backward()
    return [p.grad for p in model.parameters()]


def micro_batch_gradients(probe: dict) -> list[torch.Tensor]:
    """The gradients accumulated over k micro-batches, each loss scaled by 1/k, by autograd: the
    full-batch ones, unless the model normalises over its batch."""
    model, X, y = kit.problem_data(probe["samples"], probe["seed"], probe.get("normalised", False))
    for X_part, y_part in zip(torch.chunk(X, probe["k"]), torch.chunk(y, probe["k"]), strict=True):
        (nn.functional.mse_loss(model(X_part), y_part) / probe["k"]).backward()
    return [p.grad for p in model.parameters()]


def layer_reference(samples: int, seed: int) -> torch.Tensor:
    """model[0].weight.grad after one backward of the MSE loss, by autograd."""
    model, X, y = kit.problem_data(samples, seed)
    nn.functional.mse_loss(model(X), y).backward()
    return model[0].weight.grad


def _plain(tensors: list[torch.Tensor]) -> list:
    return [t.detach().to("cpu", F64).tolist() for t in tensors]


def retain_lesson(expression: str, said: bool) -> str:
    """Why a second backward through `expression` fails or works, for a wrong prediction."""
    truth = needs_retain_graph(expression)
    return (f"{expression}: a second backward {'fails' if truth else 'works'} without retain_graph. Ask what its "
            "backward needs: " + ("it saved a tensor from the forward pass, and backward frees saved tensors."
                                  if truth else "nothing was saved, so there is nothing to free."))


def clearing_lesson(method: str, said: str) -> str:
    return (f"after {method}, .grad is {after_clearing(method)}, not {said}"
            + (" (zero_grad sets gradients to None by default)" if method == "optimizer.zero_grad()" else "") + ".")


def raises(action) -> bool:
    """Whether `action()` raises the RuntimeError autograd uses for its refusals."""
    try:
        action()
    except RuntimeError:
        return True
    return False


def rebound_grad_is_none() -> bool:
    A = torch.tensor(1.0, device=grading_device(), requires_grad=True)
    (A * A).backward()
    A = A - 0.1 * A.grad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reading .grad of a non-leaf warns; that is the trap
        return A.grad is None


def detached_product_grad() -> float:
    s = torch.tensor(3.0, device=grading_device(), requires_grad=True)
    (s.detach() * s).backward()
    return s.grad.item()


def vector() -> torch.Tensor:
    return torch.tensor([1.0, 2.0, 3.0], device=grading_device(), requires_grad=True)


# Each trap observed now, and what a wrong prediction misses.
TRAP_TRUTHS = {
    kit.TRAPS[0]: lambda: raises(lambda: torch.ones(2, device=grading_device(), requires_grad=True).add_(1)),
    kit.TRAPS[1]: lambda: raises(lambda: vector().exp().add_(1).sum().backward()),
    kit.TRAPS[2]: lambda: raises(lambda: (vector() * 2).add_(1).sum().backward()),
    kit.TRAPS[3]: rebound_grad_is_none,
    kit.TRAPS[4]: lambda: detached_product_grad() == 6.0,
    kit.TRAPS[5]: lambda: raises(lambda: vector().backward()),
    kit.TRAPS[6]: lambda: raises(lambda: torch.tensor(3, requires_grad=True)),
}
TRAP_LESSONS = {
    kit.TRAPS[0]: "a leaf that requires grad cannot be changed in place outside torch.no_grad(): autograd would "
                  "have to record the change as an operation whose output is w, and w would no longer be a leaf",
    kit.TRAPS[1]: "exp saves its output for backward, so changing it in place leaves backward a stale value, "
                  "and autograd refuses",
    kit.TRAPS[2]: "x * 2 saves nothing of its output, so changing the output in place is harmless",
    kit.TRAPS[3]: "A - 0.1 * A.grad is a new tensor computed from the leaf: not a leaf, so no .grad",
    kit.TRAPS[4]: "detach() turns s into a constant factor, so the gradient is that constant, 3",
    kit.TRAPS[5]: "backward() needs a scalar, or gradient= with one weight per element",
    kit.TRAPS[6]: "integer tensors cannot require gradients",
}


def close_gradients(got: list, right: list) -> bool:
    """Every gradient within MAX_REL_ERROR of autograd's, relative to its size, where entries
    under ROUNDING_ZERO of the largest one count as zero: behind a BatchNorm the first layer's bias
    gradient is exactly 0 in exact arithmetic, and its rounding noise (up to 1e-14 of the largest
    entry) depends on the order of the additions, which a right answer may change."""
    floor = max([1e-8] + [ROUNDING_ZERO * float(torch.as_tensor(r, dtype=F64).abs().max()) for r in right if r])
    return all(relative_error(g, r, floor) <= MAX_REL_ERROR for g, r in zip(got, right, strict=True))


def micro_batch_cases() -> list[Case]:
    """A drawn problem (its seed), k and a batch that k splits evenly into micro-batches of 3 to 5."""
    def draw(normalised: bool):
        def probe(rng):
            k = rng.randint(2, 4)
            return {"samples": k * rng.randint(3, 5), "k": k, "seed": rng.randint(1, 10**6),
                    **({"normalised": True} if normalised else {})}
        return probe

    return [Case("on k micro-batches of a plain model", draw(False)),
            Case("on a model that normalises over its batch (BatchNorm), where one full-batch pass gives "
                 "other gradients", draw(True))]


# ---------------------------------------------------------------- the checks, one declaration each

LAB.values("t1_accumulation", "grad_once", "grad_twice")
LAB.table("t2_retain", "needs_retain", truth=needs_retain_graph, explain=retain_lesson)
LAB.table("t3_clearing", "after_clear", truth=after_clearing, explain=clearing_lesson)
LAB.table("t6_traps", "traps", truth=lambda trap: TRAP_TRUTHS[trap](),
          explain=lambda trap, said: f"{trap}: {TRAP_TRUTHS[trap]()}, not {said}: {TRAP_LESSONS[trap]}.")
# samples, micro-batches k, seed of kit.problem_data
LAB.function(
    "t4_micro_batches", "accumulate_gradients", visible=[{"samples": 8, "k": 2, "seed": 0}],
    cases=micro_batch_cases(),
    reference=lambda p: _plain(micro_batch_gradients(p)),
    form=lambda p, got, right: (f"returned {len(got)} gradients, expected one per parameter ({len(right)})."
                                if len(got) != len(right) else None),
    same=close_gradients,
    mistakes=[Mistake("did not scale each micro-batch loss by 1/k, so the gradients are k times too large",
                      lambda p: _plain([g * p["k"] for g in micro_batch_gradients(p)])),
              Mistake("did not clear the stale gradients first (each .grad held old values)",
                      lambda p: _plain([g + kit.STALE_GRAD for g in micro_batch_gradients(p)])),
              Mistake("ran the model once on the whole batch instead of on k micro-batches (with a layer that "
                      "normalises over its batch, the two give different gradients)",
                      lambda p: _plain(full_batch_gradients(p["samples"], p["seed"], True))
                      if p.get("normalised") else None)],
    detail=lambda p, got, right: "differs from the full-batch gradient (relative error "
                                 f"{max(relative_error(g, r) for g, r in zip(got, right, strict=True)):.1e})",
    rtol=2 * MAX_REL_ERROR, atol=1e-9,
    hint="Clear the stale gradients first, then backpropagate each micro-batch's MSE scaled by 1/k.")
LAB.function(
    "t5_layer_grad", "first_layer_grad", visible=[{"samples": 6, "seed": 0}],
    cases=[Case("on another drawn problem and batch size",
                lambda rng: {"samples": rng.randint(3, 10), "seed": rng.randint(1, 10**6)})],
    reference=lambda p: layer_reference(p["samples"], p["seed"]).tolist(),
    form=lambda p, got, right: (f"should have the shape of model[0].weight, {tuple(torch.tensor(right).shape)}."
                                if torch.tensor(got).shape != torch.tensor(right).shape else None),
    same=lambda got, right: relative_error(got, right) <= MAX_REL_ERROR,
    mistakes=[Mistake("returned the weight model[0].weight, not model[0].weight.grad",
                      lambda p: kit.problem_data(p["samples"], p["seed"])[0][0].weight.tolist()),
              Mistake("did not clear the old gradients first (the model's .grad held values from an earlier "
                      "step, and backward adds to them)",
                      lambda p: (layer_reference(p["samples"], p["seed"]) + kit.STALE_GRAD).tolist())],
    rtol=2 * MAX_REL_ERROR, atol=1e-9,
    hint="Clear the old gradients, backpropagate the MSE of model(X) against y once, "
         "and return model[0].weight.grad (not model[0].weight).")
