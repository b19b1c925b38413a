"""Lab 3 — gradient accumulation: references and checks.

Facts the lab asks students to predict (which graphs survive a second backward, what each way
of clearing `.grad` leaves behind) are observed on the installed PyTorch when grading runs.
"""

import torch
from torch import nn

from .compare import WrongType, lists_close, relative_error
from .device import grading_device
from .identity import ANONYMOUS, draw_numbers, student_id
from .kernel import probe_set, run_check, shielded, take_function, take_list

LAB = "lab3"
F64 = torch.float64

# Expressions of a vector x (requires grad) and a constant vector y, by the text students see.
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
CLEARING = ("p.grad.zero_()", "p.grad = None", "optimizer.zero_grad()", "optimizer.zero_grad(set_to_none=False)")
OFFSETS = (1.0, 2.0, 3.0, 4.0, 6.0, 7.0)
MICRO_PROBES = {"visible": [(8, 2, 0)], "hidden": [(12, 3, 1), (12, 4, 2)]}  # (samples, micro-batches, seed)
LAYER_PROBES = {"visible": [0], "hidden": [1, 2]}


# ---------------------------------------------------------------- references, observed with autograd

def accumulation_reference(a: list[float], k: float) -> dict[str, list[float]]:
    """a.grad after one and after two backward calls of out = ((2a + k)²).sum()."""
    at = torch.tensor(a, dtype=F64, device=grading_device(), requires_grad=True)
    out = ((2 * at + k) ** 2).sum()
    out.backward(retain_graph=True)
    once = at.grad.tolist()
    out.backward()
    return {"grad_once": once, "grad_twice": at.grad.tolist()}


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


def problem_data(samples: int, seed: int) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    """A small seeded regression problem: model Linear(3, 4) → ReLU → Linear(4, 1), data X, y."""
    # A private generator, not torch.manual_seed: grading threads and the student's own
    # random state must not change these numbers.
    g = torch.Generator().manual_seed(100 + seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)).to(F64)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64) * 0.5)
    model = model.to(grading_device())
    X = torch.randn(samples, 3, generator=g, dtype=F64).to(grading_device())
    y = torch.randn(samples, 1, generator=g, dtype=F64).to(grading_device())
    return model, X, y


def full_batch_gradients(samples: int, seed: int) -> list[torch.Tensor]:
    """Gradients of the mean squared error over the whole batch, by autograd."""
    model, X, y = problem_data(samples, seed)
    nn.functional.mse_loss(model(X), y).backward()
    return [p.grad for p in model.parameters()]


# ---------------------------------------------------------------- per-student numbers

def student_numbers(student: str) -> dict:
    """A vector a and offset k for the by-hand part; five expressions to predict."""
    names = list(EXPRESSIONS)

    def draw(d: bytes) -> dict:
        a = [float(1 + d[i] % 6) * (1 if d[4 + i] % 2 else -1) for i in range(4)]
        chosen = sorted(range(len(names)), key=lambda i: (d[8 + i], i))[:5]
        return {"a": a, "k": OFFSETS[d[16] % len(OFFSETS)], "expressions": [names[i] for i in sorted(chosen)]}

    def varied(n: dict) -> bool:
        kinds = [needs_retain_graph(e) for e in n["expressions"]]
        return 2 <= sum(kinds) <= 3 and len(set(n["a"])) == 4

    return draw_numbers(LAB, student, draw, varied)


def my_numbers() -> dict:
    """Show and return this student's numbers."""
    student, source = student_id()
    n = student_numbers(student)
    print(f"Student id: {student!r} (from {source})")
    print(f"Task 1: a = {n['a']}, k = {n['k']:g}")
    print("Task 2 expressions: " + "   ".join(n["expressions"]))
    if student == ANONYMOUS:
        print("No student id is set, so these are practice numbers. Your grade uses the numbers "
              "of your real id: see 'Your numbers' at the top of the notebook.")
    return n


# ---------------------------------------------------------------- verify

def _verify_accumulation(data: dict, student: str) -> list[str]:
    n = student_numbers(student)
    ref = accumulation_reference(n["a"], n["k"])
    problems = []
    once, twice = data["grad_once"], data["grad_twice"]
    if not lists_close(once, ref["grad_once"], 2e-3, 1e-6):
        if lists_close(once, [v / 2 for v in ref["grad_once"]], 2e-3, 1e-6):
            problems.append("`grad_once` is half the right value: d/dc of c² is 2c, and dc/da = 2 as well.")
        else:
            problems.append("`grad_once` is not right: dout/da = 2c · dc/da with c = 2a + k.")
    if not lists_close(twice, ref["grad_twice"], 2e-3, 1e-6):
        if lists_close(twice, once, 2e-3, 1e-6):
            problems.append("`grad_twice` equals `grad_once`: backward does not overwrite `.grad`, it adds to it.")
        else:
            problems.append("`grad_twice` is not right: what does a second backward do to a.grad?")
    if problems:
        problems.append(f"(Your numbers, for student id {student!r}: a = {n['a']}, k = {n['k']:g}.)")
    return problems


def _verify_retain(data: dict, student: str) -> list[str]:
    expected = student_numbers(student)["expressions"]
    given = dict(data["predictions"])
    if sorted(given) != sorted(expected):
        return [f"needs_retain should have exactly your expressions as keys: {expected}."]
    problems = []
    for expression in expected:
        truth = needs_retain_graph(expression)
        if given[expression] != truth:
            problems.append(f"{expression}: a second backward {'fails' if truth else 'works'} without "
                            "retain_graph. Ask what its backward needs: "
                            + ("it saved a tensor from the forward pass, and backward frees saved tensors."
                               if truth else "nothing was saved, so there is nothing to free."))
    return problems


def _verify_clearing(data: dict, student: str) -> list[str]:
    given = dict(data["predictions"])
    if sorted(given) != sorted(CLEARING):
        return [f"after_clear should have exactly these keys: {list(CLEARING)}."]
    return [f"after {method}, .grad is {after_clearing(method)}, not {given[method]}"
            + (" (zero_grad sets gradients to None by default)" if method == "optimizer.zero_grad()" else "") + "."
            for method in CLEARING if given[method] != after_clearing(method)]


def _verify_micro_batches(data: dict, student: str) -> list[str]:
    problems = []
    for (samples, parts, seed), got in zip(data["probes"], data["grads"]):
        ref = full_batch_gradients(samples, seed)
        label = f"accumulate_gradients with {parts} micro-batches of {samples // parts}"
        if len(got) != len(ref):
            problems.append(f"{label}: returned {len(got)} gradients, expected one per parameter ({len(ref)}).")
            continue
        errors = [relative_error(g, r) for g, r in zip(got, ref)]
        if max(errors) <= 1e-6:
            continue
        if max(relative_error(torch.tensor(g) / parts, r) for g, r in zip(got, ref)) <= 1e-6:
            problems.append(f"{label}: the gradients are {parts} times too large; scale each micro-batch loss by 1/{parts}.")
        else:
            problems.append(f"{label}: differs from the full-batch gradient (relative error {max(errors):.1e}). "
                            "Did you clear the stale gradients first?")
    return problems


def _verify_layer(data: dict, student: str) -> list[str]:
    problems = []
    for seed, got in zip(data["probes"], data["grads"]):
        model, X, y = problem_data(6, seed)
        nn.functional.mse_loss(model(X), y).backward()
        ref = model[0].weight.grad
        if torch.tensor(got).shape != ref.shape:
            problems.append(f"first_layer_grad should have the shape of model[0].weight, {tuple(ref.shape)}.")
        elif relative_error(got, ref) > 1e-6:
            problems.append("first_layer_grad is not model[0].weight.grad after one backward of the MSE loss.")
    return problems


PUBLISHED = {
    "t1_accumulation": ("t1_accumulation",),
    "t2_retain": ("t2_retain",),
    "t3_clearing": ("t3_clearing",),
    "t4_micro_batches": ("t4_micro_batches", "t4_micro_batches.hidden"),
    "t5_layer_grad": ("t5_layer_grad", "t5_layer_grad.hidden"),
}
VERIFIERS = {"t1_accumulation": _verify_accumulation, "t2_retain": _verify_retain, "t3_clearing": _verify_clearing,
             "t4_micro_batches": _verify_micro_batches, "t5_layer_grad": _verify_layer}


def verify(item: str, data: dict, student: str) -> list[str]:
    """Problems with one item's plain-data answers (empty when all is right)."""
    return VERIFIERS[item.removesuffix(".hidden")](data, student)


# ---------------------------------------------------------------- kernel side

def _take_dict(namespace: dict, name: str, values) -> dict:
    __tracebackhide__ = True
    answer = namespace.get(name)
    if not isinstance(answer, dict) or not answer:
        raise NotImplementedError(f"Fill in `{name}` in the answer cell above and run it.")
    for key, value in answer.items():
        if value is Ellipsis:
            raise NotImplementedError(f"{name}[{key!r}] is still `...`: fill in your prediction.")
        if value not in values:
            raise WrongType(f"{name}[{key!r}] = {value!r}: use one of {', '.join(map(repr, values))}.")
    return answer


def check_accumulation(namespace: dict) -> None:
    __tracebackhide__ = True
    data = {}
    for name in ("grad_once", "grad_twice"):
        if name not in namespace:
            raise NotImplementedError(f"Define `{name}` in the answer cell above and run it.")
        data[name] = take_list(name, namespace[name])
    run_check(LAB, "t1_accumulation", data, verify, "both gradients are right.")


def check_retain(namespace: dict) -> None:
    __tracebackhide__ = True
    answer = _take_dict(namespace, "needs_retain", (True, False))
    run_check(LAB, "t2_retain", {"predictions": [[str(k), bool(v)] for k, v in answer.items()]}, verify,
              "every prediction matches what PyTorch does.")


def check_clearing(namespace: dict) -> None:
    __tracebackhide__ = True
    answer = _take_dict(namespace, "after_clear", ("zeros", "None"))
    run_check(LAB, "t3_clearing", {"predictions": [[str(k), v] for k, v in answer.items()]}, verify,
              "every prediction matches what PyTorch does.")


def _tensor_lists(name: str, result) -> list:
    if not isinstance(result, (list, tuple)) or not all(isinstance(g, torch.Tensor) for g in result):
        raise WrongType(f"{name} should return a list of tensors, one per parameter.")
    return [g.detach().to("cpu", F64).tolist() for g in result]


def check_micro_batches(namespace: dict, hidden: bool = False) -> None:
    __tracebackhide__ = True
    fn = take_function(namespace, "accumulate_gradients")
    probes = MICRO_PROBES[probe_set(hidden)]
    grads = []
    for samples, parts, seed in probes:
        model, X, y = problem_data(samples, seed)
        for p in model.parameters():  # stale gradients from an earlier step
            p.grad = torch.full_like(p, 0.5)
        with shielded():
            result = fn(model, X, y, parts)
        grads.append(_tensor_lists("accumulate_gradients", result))
    run_check(LAB, "t4_micro_batches" + ".hidden" * hidden, {"probes": probes, "grads": grads}, verify,
              "the accumulated gradients equal the full-batch gradients.")


def check_layer_grad(namespace: dict, hidden: bool = False) -> None:
    __tracebackhide__ = True
    fn = take_function(namespace, "first_layer_grad")
    probes = LAYER_PROBES[probe_set(hidden)]
    grads = []
    for seed in probes:
        model, X, y = problem_data(6, seed)
        with shielded():
            result = fn(model, X, y)
        if not isinstance(result, torch.Tensor):
            raise WrongType(f"first_layer_grad should return a tensor, not {type(result).__name__}.")
        grads.append(result.detach().to("cpu", F64).tolist())
    run_check(LAB, "t5_layer_grad" + ".hidden" * hidden, {"probes": probes, "grads": grads}, verify,
              "matches model[0].weight.grad from autograd.")
