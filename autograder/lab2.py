"""Lab 2 — tensors, requires_grad and the autograd graph: references and checks."""

import math
import warnings

import torch

from .compare import Expected, WrongType, diagnose_all
from .device import grading_device
from .identity import ANONYMOUS, draw_numbers, student_id
from .kernel import probe_set, run_check, shielded, take_function, values_check

LAB = "lab2"
F64 = torch.float64

LINEAR_NAMES = ("y_value", "w_grad", "b_grad")
FORWARD_NAMES = ("a", "b", "c", "d", "e", "f")
GRADIENT_NAMES = ("df_dx", "df_dy", "df_dz")
DTYPES = ("torch.int64", "torch.float32", "torch.bool", "torch.float64", "torch.complex64", "torch.uint8")
STATEMENTS = ("w.is_leaf", "h.is_leaf", "h.requires_grad", "h.detach().requires_grad",
              "(w * 3).requires_grad inside torch.no_grad()", "h.grad is None after h.sum().backward()",
              "h.grad is None after h.retain_grad(); h.sum().backward()")

INTS = (-4, -3, -2, 2, 3, 4, 5, 6)
HALVES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
ANGLES = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5)  # radians: sin(y) > 0, so the logarithm is defined


# ---------------------------------------------------------------- references

def linear_reference(x: float, w: float, b: float) -> dict[str, float]:
    """y = w·x + b with w and b requiring grad; y and the two gradients by autograd."""
    wt = torch.tensor(w, dtype=F64, device=grading_device(), requires_grad=True)
    bt = torch.tensor(b, dtype=F64, device=grading_device(), requires_grad=True)
    y = wt * x + bt
    y.backward()
    return {"y_value": y.item(), "w_grad": wt.grad.item(), "b_grad": bt.grad.item()}


def composite_reference(x: float, y: float, z: float) -> dict[str, float]:
    """f = tanh(ln(1 + z·2x / sin y)) with named intermediates; values and df/dx, df/dy, df/dz."""
    xt, yt, zt = (torch.tensor(v, dtype=F64, device=grading_device(), requires_grad=True) for v in (x, y, z))
    nodes = {}
    nodes["a"] = 2 * xt
    nodes["b"] = torch.sin(yt)
    nodes["c"] = nodes["a"] / nodes["b"]
    nodes["d"] = 1 + zt * nodes["c"]
    nodes["e"] = torch.log(nodes["d"])
    nodes["f"] = torch.tanh(nodes["e"])
    nodes["f"].backward()
    ref = {name: t.item() for name, t in nodes.items()}
    ref.update(df_dx=xt.grad.item(), df_dy=yt.grad.item(), df_dz=zt.grad.item())
    return ref


def requires_grad_allowed(dtype_name: str) -> bool:
    """Whether a tensor of this dtype may require gradients, tried on the installed PyTorch."""
    try:
        torch.zeros(2, dtype=getattr(torch, dtype_name.removeprefix("torch.")), requires_grad=True)
    except RuntimeError:
        return False
    return True


def observe_statement(statement: str) -> bool:
    """Evaluate one of STATEMENTS for w = tensor(2., requires_grad=True), h = w * 3."""
    w = torch.tensor(2.0, requires_grad=True)
    h = w * 3
    if statement.startswith("(w * 3)"):
        with torch.no_grad():
            return (w * 3).requires_grad
    if "retain_grad" in statement:
        h.retain_grad()
    if "backward" in statement:
        h.sum().backward()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # reading .grad of a non-leaf warns; that is the lesson
            return h.grad is None
    return {"w.is_leaf": w.is_leaf, "h.is_leaf": h.is_leaf, "h.requires_grad": h.requires_grad,
            "h.detach().requires_grad": h.detach().requires_grad}[statement]


def graph_names(tensor: torch.Tensor) -> list[str]:
    """Node names reached from tensor.grad_fn, depth first, next_functions in order, each node once."""
    seen, names = set(), []

    def visit(node):
        if node is None or node in seen:
            return
        seen.add(node)
        names.append(type(node).__name__)
        for child, _ in node.next_functions:
            visit(child)

    visit(tensor.grad_fn)
    return names


def breadth_first_names(tensor: torch.Tensor) -> list[str]:
    """The same nodes in breadth-first order (a slip the feedback names)."""
    seen, names, queue = set(), [], [tensor.grad_fn]
    while queue:
        node = queue.pop(0)
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        queue.extend(child for child, _ in node.next_functions)
    return names


def probe_expression(index: int) -> torch.Tensor:
    """Expressions to walk; the visible one is the lab's chain, the hidden ones the student never saw."""
    a, b = (torch.tensor(values, requires_grad=True) for values in ([1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 2.0, 1.0]))
    k = torch.tensor([1.0, 1.0, 2.0, 2.0])
    if index == 0:
        return ((2 * a + 5) ** 2).sum()
    if index == 1:
        return (a * b + torch.sigmoid(a)).mean()
    if index == 2:
        s = a.exp()
        return (s * s + k * b).sum()       # s feeds the product twice: a shared node
    return torch.relu(a @ b.unsqueeze(1) + a.sum()).squeeze() * torch.tanh(b).max()


WALK_PROBES = {"visible": [0], "hidden": [1, 2, 3]}


# ---------------------------------------------------------------- per-student numbers

def linear_expected(x, w, b) -> list[Expected]:
    r = linear_reference(x, w, b)
    return [
        Expected("y_value", r["y_value"], "y = w · x + b.", {"added all three": w + x + b}),
        Expected("w_grad", r["w_grad"], "dy/dw = x: w is multiplied by x.", {"used w instead of x": w}),
        Expected("b_grad", r["b_grad"], "dy/db = 1: b is added once.", {"gave b itself": b}),
    ]


def composite_expected(x, y, z) -> dict[str, list[Expected]]:
    r = composite_reference(x, y, z)
    df_de = 1 - r["f"] ** 2
    wrong_tanh = 1 - r["e"] ** 2                 # tanh' evaluated on its input
    return {
        "forward": [
            Expected("a", r["a"], "a = 2x."), Expected("b", r["b"], "b = sin(y), y in radians.",
                                                       {"took y in degrees": math.sin(math.radians(y))}),
            Expected("c", r["c"], "c = a / b."), Expected("d", r["d"], "d = 1 + z · c."),
            Expected("e", r["e"], "e = ln(d), the natural logarithm.", {"used log base 10": math.log10(r["d"])}),
            Expected("f", r["f"], "f = tanh(e)."),
        ],
        "gradients": [
            Expected("df_dx", r["df_dx"], "df/dx = (1 − f²) · (1/d) · z · (1/b) · 2.",
                     {"used 1 − e² for tanh' (its input, not its output)": wrong_tanh / r["d"] * z / r["b"] * 2,
                      "forgot the 2 from a = 2x": r["df_dx"] / 2}),
            Expected("df_dy", r["df_dy"], "df/dy = (1 − f²) · (1/d) · z · (−a/b²) · cos(y).",
                     {"used 1 − e² for tanh' (its input, not its output)":
                          wrong_tanh / r["d"] * z * (-r["a"] / r["b"] ** 2) * math.cos(y),
                      "dropped the minus sign of d(a/b)/db = −a/b²": -r["df_dy"]}),
            Expected("df_dz", r["df_dz"], "df/dz = (1 − f²) · (1/d) · c.",
                     {"used 1 − e² for tanh' (its input, not its output)": wrong_tanh / r["d"] * r["c"],
                      "forgot the 1/d from the logarithm": df_de * r["c"]}),
        ],
    }


def student_numbers(student: str) -> dict:
    def draw(d: bytes) -> dict:
        return {"x": float(INTS[d[0] % len(INTS)]), "w": float(INTS[d[1] % len(INTS)]),
                "b": float(INTS[d[2] % len(INTS)]), "gx": HALVES[d[3] % len(HALVES)],
                "gy": ANGLES[d[4] % len(ANGLES)], "gz": HALVES[d[5] % len(HALVES)]}

    def separable(n: dict) -> bool:
        # Keep tanh away from saturation: 1 − f² from a rounded f would lose its digits.
        if abs(composite_reference(n["gx"], n["gy"], n["gz"])["f"]) > 0.85:
            return False
        groups = composite_expected(n["gx"], n["gy"], n["gz"])
        expected = linear_expected(n["x"], n["w"], n["b"]) + groups["forward"] + groups["gradients"]
        return all(e.separated() for e in expected)

    return draw_numbers(LAB, student, draw, separable)


def my_numbers() -> dict:
    student, source = student_id()
    n = student_numbers(student)
    print(f"Student id: {student!r} (from {source})")
    print(f"Task 1: x = {n['x']:g}, w = {n['w']:g}, b = {n['b']:g}")
    print(f"Task 4: x = {n['gx']:g}, y = {n['gy']:g}, z = {n['gz']:g}")
    if student == ANONYMOUS:
        print("No student id is set, so these are practice numbers. Your grade uses the numbers "
              "of your real id: see 'Your numbers' at the top of the notebook.")
    return n


# ---------------------------------------------------------------- verify

def _with_numbers(problems: list[str], student: str, keys: tuple[str, ...]) -> list[str]:
    if problems:
        n = student_numbers(student)
        problems.append(f"(Your numbers, for student id {student!r}: "
                        + ", ".join(f"{k.removeprefix('g')} = {n[k]:g}" for k in keys) + ".)")
    return problems


def _verify_linear(data: dict, student: str) -> list[str]:
    n = student_numbers(student)
    return _with_numbers(diagnose_all(data, linear_expected(n["x"], n["w"], n["b"])), student, ("x", "w", "b"))


def _composite(group: str):
    def verify_group(data: dict, student: str) -> list[str]:
        n = student_numbers(student)
        expected = composite_expected(n["gx"], n["gy"], n["gz"])[group]
        return _with_numbers(diagnose_all(data, expected), student, ("gx", "gy", "gz"))
    return verify_group


def _verify_table(keys: tuple[str, ...], observe, what: str):
    def verify_table(data: dict, student: str) -> list[str]:
        given = dict(data["predictions"])
        if sorted(given) != sorted(keys):
            return [f"the dictionary needs exactly these keys: {list(keys)}."]
        return [f"{key}: {what(observe(key))}, not {what(given[key])}." for key in keys if given[key] != observe(key)]
    return verify_table


def _verify_walk(data: dict, student: str) -> list[str]:
    problems = []
    for index, got in zip(data["probes"], data["names"]):
        out = probe_expression(index)
        right = graph_names(out)
        if got == right:
            continue
        if got == breadth_first_names(out):
            why = "that is breadth-first order; go deep first: visit a node, then each of its next_functions in turn"
        elif set(got) == set(right) and len(got) > len(right):
            why = "a node reached twice (a tensor used twice) was listed twice; remember which nodes you visited"
        elif "NoneType" in got:
            why = "next_functions holds None for inputs that need no gradient; skip those"
        else:
            why = f"expected {len(right)} nodes starting with {right[:3]}"
        problems.append(f"graph_walk on expression {index}: got {got[:6]}{'…' if len(got) > 6 else ''}: {why}.")
    return problems


PUBLISHED = {
    "t1_linear": ("t1_linear",),
    "t2_dtypes": ("t2_dtypes",),
    "t3_walk": ("t3_walk", "t3_walk.hidden"),
    "t4_forward": ("t4_forward",),
    "t4_gradients": ("t4_gradients",),
    "t5_statements": ("t5_statements",),
}
VERIFIERS = {
    "t1_linear": _verify_linear,
    "t2_dtypes": _verify_table(DTYPES, requires_grad_allowed, lambda ok: "allowed" if ok else "an error"),
    "t3_walk": _verify_walk,
    "t4_forward": _composite("forward"),
    "t4_gradients": _composite("gradients"),
    "t5_statements": _verify_table(STATEMENTS, observe_statement, str),
}


def verify(item: str, data: dict, student: str) -> list[str]:
    """Problems with one item's plain-data answers (empty when all is right)."""
    return VERIFIERS[item.removesuffix(".hidden")](data, student)


# ---------------------------------------------------------------- kernel side

check_linear = values_check(LAB, "t1_linear", LINEAR_NAMES, verify)
check_forward = values_check(LAB, "t4_forward", FORWARD_NAMES, verify)
check_gradients = values_check(LAB, "t4_gradients", GRADIENT_NAMES, verify)


def _take_bool_table(namespace: dict, name: str) -> list:
    __tracebackhide__ = True
    answer = namespace.get(name)
    if not isinstance(answer, dict) or not answer:
        raise NotImplementedError(f"Fill in `{name}` in the answer cell above and run it.")
    pairs = []
    for key, value in answer.items():
        if value is Ellipsis:
            raise NotImplementedError(f"{name}[{key!r}] is still `...`: fill in your prediction.")
        if not isinstance(value, bool):
            raise WrongType(f"{name}[{key!r}] = {value!r}: use True or False.")
        pairs.append([str(key), value])
    return pairs


def check_dtypes(namespace: dict) -> None:
    __tracebackhide__ = True
    run_check(LAB, "t2_dtypes", {"predictions": _take_bool_table(namespace, "can_require_grad")}, verify,
              "every prediction matches PyTorch.")


def check_statements(namespace: dict) -> None:
    __tracebackhide__ = True
    run_check(LAB, "t5_statements", {"predictions": _take_bool_table(namespace, "statements")}, verify,
              "every prediction matches PyTorch.")


def check_walk(namespace: dict, hidden: bool = False) -> None:
    __tracebackhide__ = True
    fn = take_function(namespace, "graph_walk")
    probes = WALK_PROBES[probe_set(hidden)]
    names = []
    for index in probes:
        with shielded():
            result = fn(probe_expression(index))
        if not isinstance(result, (list, tuple)) or not all(isinstance(n, str) for n in result):
            raise WrongType("graph_walk should return a list of node names (strings).")
        names.append(list(result))
    run_check(LAB, "t3_walk" + ".hidden" * hidden, {"probes": probes, "names": names}, verify,
              "the walk matches the real graph.")
