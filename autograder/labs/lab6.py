"""Lab 6: the grader's references and checks.

A student's engine is judged on programs: a few lines of Python that build a graph from `Value`s
("a = Value(2.0); b = Value(-3.0); out = a * b + a"). The kit's harness builds each one with the
student's engine, in the standard-library sandbox; here the same program is built with
`TorchValue`, whose every operation is the torch operation in float64 on the grading device, and
autograd's gradients are the reference. The known mistakes are a plain-Python engine written as
the solution is, with one slip switched on (`slipped_engine`), run through the kit's own harness.
Hidden programs are drawn per submission (`Case`s): deep chains, shared subexpressions, every
operation in one graph, ReLUs at and a hair from their kink, plain numbers on either side.
"""

import math
import operator
import random
from typing import Any, Callable

import torch
import torch.nn.functional as F

from course import lab6 as kit
from course.device import grading_device

from . import Case, Lab, Mistake, uniform

LAB = Lab(kit.check)
F64 = torch.float64
# An engine is code run in float64 like the reference, so only rounding separates a right one from
# autograd: on the drawn graphs, a right engine written otherwise stays within a hundredth of this
# tolerance (tests/labs/test_lab6.py); a numerical derivative is 1e-10 off at the very best, and
# 1e-7 or worse as students write one. Graphs are drawn with every value within ±100 and every
# gradient within ±1000, so that the absolute part only matters near 0.
ENGINE_RTOL, ENGINE_ATOL = 1e-10, 1e-11
MAX_VALUE, MAX_GRADIENT = 100.0, 1000.0
MAX_PATHS = 2000  # paths from the output to its nodes, summed over nodes


# ---------------------------------------------------------------- the reference: torch, float64

class TorchValue:
    """A program's `Value`, built from torch operations on float64 tensors."""

    def __init__(self, data: float, tensor: torch.Tensor | None = None):
        self.tensor = (torch.tensor(float(data), dtype=F64, device=grading_device(), requires_grad=True)
                       if tensor is None else tensor)

    @property
    def data(self) -> float:
        return float(self.tensor.item())

    @property
    def grad(self) -> float:
        return 0.0 if self.tensor.grad is None else float(self.tensor.grad.item())

    def __pow__(self, k: float) -> "TorchValue":
        return TorchValue(0.0, self.tensor ** k)

    def __neg__(self) -> "TorchValue":
        return TorchValue(0.0, -self.tensor)


def _operation(fn: Callable[..., torch.Tensor], swapped: bool = False) -> Callable[..., TorchValue]:
    """A method of TorchValue doing `fn` on its tensor (and the other operand, a number or a TorchValue)."""
    def apply(self: TorchValue, *other: Any) -> TorchValue:
        operands = [o.tensor if isinstance(o, TorchValue) else o for o in other]
        return TorchValue(0.0, fn(*operands, self.tensor) if swapped else fn(self.tensor, *operands))
    return apply


for _name, _fn in {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv}.items():
    setattr(TorchValue, f"__{_name}__", _operation(_fn))
    setattr(TorchValue, f"__r{_name}__", _operation(_fn, swapped=True))
for _name, _fn in {"exp": torch.exp, "log": torch.log, "tanh": torch.tanh, "relu": torch.relu,
                   "sigmoid": torch.sigmoid}.items():
    setattr(TorchValue, _name, _operation(_fn))


def _built(program: str, value: type) -> tuple[Any, list[Any], dict[str, Any]]:
    scope: dict[str, Any] = {"Value": value}
    exec(program, scope)  # a program of the grader's own, never a student's
    return scope["out"], [scope[name] for name in kit.LEAVES if name in scope], scope


def reference(program: str, upstream: float = 1.0) -> list[float]:
    """[out, d out/d a, d out/d b, ...] of `program` by torch.autograd (float64), with `upstream`
    as the gradient put on the output."""
    out, leaves, _ = _built(program, TorchValue)
    out.tensor.backward(torch.tensor(upstream, dtype=F64, device=grading_device()))
    return [out.data] + [leaf.grad for leaf in leaves]


# ---------------------------------------------------------------- the mistakes: the solution with a slip

SLIPS = {
    "overwrite": "set an input's gradient with = instead of adding to it with += (a node used twice keeps only "
                 "its last path)",
    "no_upstream": "left out out.grad: a rule multiplies its local derivative by the gradient arriving at its "
                   "output",
    "tanh_input": "wrote tanh's local derivative as 1 − x² with x its input; it is 1 − t² with t = tanh(x), "
                  "the output",
    "sigmoid_input": "wrote the sigmoid's local derivative as x(1 − x) with x its input (an error of the source "
                     "texts); it is s(1 − s) with s = σ(x)",
    "relu_at_zero": "gave the ReLU slope 1 at exactly 0; autograd's slope there is 0",
    "power": "wrote the power rule as k·x^k; it is k·x^(k−1)",
    "not_reversed": "ran the rules from the inputs up instead of from the output down (the topological order, "
                    "not reversed)",
    "no_visited": "listed a node once per path that reaches it, so its rule ran more than once (keep a set of "
                  "the nodes visited)",
    "no_seed": "started backward without setting out.grad = 1",
}
RULE_SLIPS = ("overwrite", "no_upstream", "tanh_input", "sigmoid_input", "relu_at_zero", "power")


def slipped_engine(slips: frozenset[str], guarded: bool = False) -> type:
    """The lab's solution engine in plain Python, with the named `slips` made; `guarded`: it
    refuses (ValueError) a log, or a negative or fractional power, of a number near 0."""

    def near_pole(x: float, k: float = -1) -> None:
        if guarded and (x < 0.05 if k != int(k) else abs(x) < 0.2 and k < 0):
            raise ValueError("too near a pole")

    def adds(node: Any, amount: float) -> None:
        node.grad = amount if "overwrite" in slips else node.grad + amount

    def upstream(out: Any) -> float:
        return 1.0 if "no_upstream" in slips else out.grad

    class Value:
        def __init__(self, data: float, children: tuple[Any, ...] = ()):
            self.data, self.grad, self._prev = float(data), 0.0, tuple(children)
            self._backward: Callable[[], None] = lambda: None

        def _made(self, data: float, children: tuple[Any, ...], rule: Callable[[Any], None]) -> Any:
            out = Value(data, children)
            out._backward = lambda: rule(out)
            return out

        def __add__(self, other: Any) -> Any:
            other = other if isinstance(other, Value) else Value(other)
            return self._made(self.data + other.data, (self, other),
                              lambda out: (adds(self, upstream(out)), adds(other, upstream(out))))

        def __mul__(self, other: Any) -> Any:
            other = other if isinstance(other, Value) else Value(other)
            return self._made(self.data * other.data, (self, other),
                              lambda out: (adds(self, other.data * upstream(out)),
                                           adds(other, self.data * upstream(out))))

        def __pow__(self, k: float) -> Any:
            near_pole(self.data, k)
            lowered = k if "power" in slips else k - 1
            return self._made(self.data ** k, (self,), lambda out: adds(self, k * self.data ** lowered * upstream(out)))

        def exp(self) -> Any:
            return self._made(math.exp(self.data), (self,), lambda out: adds(self, out.data * upstream(out)))

        def log(self) -> Any:
            near_pole(self.data, 0.5)
            return self._made(math.log(self.data), (self,), lambda out: adds(self, upstream(out) / self.data))

        def tanh(self) -> Any:
            at = self.data if "tanh_input" in slips else math.tanh(self.data)
            return self._made(math.tanh(self.data), (self,), lambda out: adds(self, (1 - at * at) * upstream(out)))

        def relu(self) -> Any:
            on = self.data >= 0 if "relu_at_zero" in slips else self.data > 0
            return self._made(max(self.data, 0.0), (self,), lambda out: adds(self, float(on) * upstream(out)))

        def sigmoid(self) -> Any:
            s = 1 / (1 + math.exp(-self.data))
            at = self.data if "sigmoid_input" in slips else s
            return self._made(s, (self,), lambda out: adds(self, at * (1 - at) * upstream(out)))

        def __neg__(self) -> Any:
            return self * -1

        def __radd__(self, other: float) -> Any:
            return self + other

        def __sub__(self, other: Any) -> Any:
            return self + (-other)

        def __rsub__(self, other: float) -> Any:
            return other + (-self)

        def __rmul__(self, other: float) -> Any:
            return self * other

        def __truediv__(self, other: Any) -> Any:
            return self * other ** -1

        def __rtruediv__(self, other: float) -> Any:
            return other * self ** -1

        def backward(self) -> None:
            order: list[Any] = []
            seen: set[int] = set()

            def visit(node: Any) -> None:
                if "no_visited" in slips or id(node) not in seen:
                    seen.add(id(node))
                    for child in node._prev:
                        visit(child)
                    order.append(node)
            visit(self)
            if "no_seed" not in slips:
                self.grad = 1.0
            for node in order if "not_reversed" in slips else reversed(order):
                node._backward()

    return Value


def harness(call: str, program: str, slips: frozenset[str] = frozenset()) -> list[float]:
    """What the kit's harness gives for `program` on the solution engine with `slips`."""
    scope: dict[str, Any] = {"Value": slipped_engine(slips)}
    exec(kit.HARNESS, scope)
    result: list[float] = scope[call](program)
    return result


def slip_mistakes(call: str, names: tuple[str, ...]) -> list[Mistake]:
    return [Mistake(SLIPS[name], lambda p, name=name: harness(call, p, frozenset({name}))) for name in names]


# ---------------------------------------------------------------- drawing programs

UNARY = ("{x}.exp()", "{x}.log()", "{x}.tanh()", "{x}.relu()", "{x}.sigmoid()", "-{x}", "{x} ** 2", "{x} ** 3",
         "{x} ** -1", "{x} ** 0.5")
WITH_NUMBER = ("{x} + {c}", "{c} + {x}", "{x} - {c}", "{c} - {x}", "{x} * {c}", "{c} * {x}", "{x} / {c}", "{c} / {x}")
BINARY = ("{x} + {y}", "{x} - {y}", "{x} * {y}", "{x} / {y}")


class Program:
    """A program being drawn: its lines, and the names of its nodes."""

    def __init__(self, rng: random.Random, leaves: dict[str, float]):
        self.rng = rng
        self.lines = [f"{name} = Value({value!r})" for name, value in leaves.items()]
        self.names = list(leaves)

    def add(self, template: str, *operands: str) -> str:
        name = f"t{len(self.names)}"
        number = self.rng.choice((0.5, 1.5, 2.0, 3.0, -1.0, -2.5))
        x, y = (operands + (operands[0],))[:2]
        self.lines.append(f"{name} = " + template.format(x=x, y=y, c=number))
        self.names.append(name)
        return name

    def text(self, out: str) -> str:
        return "; ".join(self.lines + [f"out = {out}"])


def well_drawn(program: str) -> bool:
    """Whether every value of `program` stays within ±MAX_VALUE, every gradient within
    ±MAX_GRADIENT, and no log, negative or fractional power (so no division) comes near 0."""
    try:
        out, _, scope = _built(program, slipped_engine(frozenset(), guarded=True))
        out.backward()
    except (ValueError, ZeroDivisionError, OverflowError):
        return False
    nodes = [v for v in scope.values() if hasattr(v, "_prev")]
    return (all(math.isfinite(v.data) and abs(v.data) <= MAX_VALUE and abs(v.grad) <= MAX_GRADIENT for v in nodes)
            and paths(out) <= MAX_PATHS)


def paths(out: Any) -> int:
    """How many paths lead from `out` to its nodes: the visits of an engine that forgets which
    nodes it has seen (a named mistake, whose output the grader computes)."""
    order: list[Any] = []
    seen: set[int] = set()

    def visit(node: Any) -> None:
        if id(node) not in seen:
            seen.add(id(node))
            for child in node._prev:
                visit(child)
            order.append(node)
    visit(out)
    count = {id(out): 1}
    for node in reversed(order):
        for child in node._prev:
            count[id(child)] = count.get(id(child), 0) + count[id(node)]
    return sum(count.values())


def shows_every_slip(program: str) -> bool:
    """Whether each named slip but the ReLU's at 0 (the kink case's) moves some output of
    `program` by more than a thousandth (ten million tolerances): a graph on which they all show."""
    right = harness("gradients", program)
    return all(far(harness("gradients", program, frozenset({slip})), right) for slip in SLIPS if slip != "relu_at_zero")


def far(got: list[float], right: list[float]) -> bool:
    """Whether some output is off by more than a thousandth of itself (of 1e-3 near 0)."""
    return max(abs(g - w) / (abs(w) + 1e-3) for g, w in zip(got, right, strict=True)) > 1e-3


def drawn(rng: random.Random, build: Callable[[random.Random], str],
          holds: Callable[[str], bool] = lambda program: True) -> str:
    """The first program `build` draws that is `well_drawn` and `holds`."""
    for _ in range(10_000):
        program = build(rng)
        if well_drawn(program) and holds(program):
            return program
    raise RuntimeError("no program met the case's condition")


def leaves(rng: random.Random, count: int) -> dict[str, float]:
    return {name: rng.choice((-1, 1)) * uniform(rng, 0.2, 2.0, 2) for name in kit.LEAVES[:count]}


def deep_chain(rng: random.Random) -> str:
    program = Program(rng, leaves(rng, 2))
    node = "a"
    for step in range(rng.randint(24, 32)):
        if step % 6 == 5:
            node = program.add(rng.choice(BINARY), node, "b")
        else:
            node = program.add(rng.choice(UNARY[:5] + WITH_NUMBER), node)
    return program.text(node)


def shared(rng: random.Random) -> str:
    program = Program(rng, leaves(rng, 3))
    for _ in range(rng.randint(8, 12)):
        program.add(rng.choice(BINARY), rng.choice(program.names[-3:]), rng.choice(program.names))
    uses = " ".join(line.split(" = ", 1)[1] for line in program.lines).split()
    if sum(uses.count(name) >= 2 for name in program.names[3:]) < 2:
        return shared(rng)  # fewer than two intermediate nodes used twice: draw again
    return program.text(f"{program.names[-1]} * {program.names[-2]}")


def every_operation(rng: random.Random) -> str:
    program = Program(rng, leaves(rng, 3))
    templates = list(UNARY + WITH_NUMBER + BINARY)
    rng.shuffle(templates)
    for template in templates:
        program.add(template, rng.choice(program.names[-4:]), rng.choice(program.names))
    return program.text(f"{program.names[-1]} + {program.names[-2]}")


def at_the_kink(rng: random.Random) -> str:
    values = leaves(rng, 2)
    hair = math.copysign(rng.randint(1, 9), values["b"])  # c·b is a hair above 0, −c·b a hair below
    program = Program(rng, {**values, "c": float(f"{hair:g}e-9"), "d": 0.0})
    at = program.add("({x} * {y}).relu()", "d", "a")
    above = program.add("({x} * {y}).relu()", "c", "b")
    below = program.add("(-{x} * {y}).relu()", "c", "b")
    smooth = program.add(rng.choice(UNARY[:5]), program.add("{x} + {y}", at, "b"))
    return program.text(f"{smooth} + {above} * a + {below} * a")


def with_numbers(rng: random.Random) -> str:
    program = Program(rng, leaves(rng, 2))
    node = "a"
    for _ in range(rng.randint(5, 8)):
        node = program.add(rng.choice(WITH_NUMBER + UNARY[5:]), node)
    return program.text(f"{node} * b")


ONE_RULE_CASES = [
    Case("a sum of two inputs", lambda r: "; ".join(f"{k} = Value({v!r})" for k, v in leaves(r, 2).items())
         + "; out = a + b"),
    Case("a product of two inputs", lambda r: "; ".join(f"{k} = Value({v!r})" for k, v in leaves(r, 2).items())
         + "; out = a * b"),
    Case("an input times itself", lambda r: f"a = Value({leaves(r, 1)['a']!r}); out = a * a"),
    Case("a power", lambda r: f"a = Value({abs(leaves(r, 1)['a'])!r}); out = a ** {r.choice((2, 3, -1, 0.5, -2))}"),
    *[Case(f"{name}", lambda r, name=name: f"a = Value({leaves(r, 1)['a']!r}); out = a.{name}()")
      for name in ("exp", "tanh", "sigmoid")],
    Case("log", lambda r: f"a = Value({abs(leaves(r, 1)['a'])!r}); out = a.log()"),
    Case("the ReLU", lambda r: f"a = Value({leaves(r, 1)['a']!r}); out = a.relu()"),  # at 0: visible, and in Task 3
]
BACKWARD_CASES = [
    Case("a deep chain", lambda r: drawn(r, deep_chain)),
    Case("a graph whose nodes are shared", lambda r: drawn(r, shared)),
    Case("a graph with every operation", lambda r: drawn(r, every_operation, shows_every_slip)),
    Case("ReLUs at and a hair from their kink", lambda r: drawn(r, at_the_kink)),
    Case("plain numbers on either side of an operation", lambda r: drawn(r, with_numbers)),
]


def engine_close(got: Any, right: Any) -> bool:
    """Every number within ENGINE_RTOL of autograd's, ENGINE_ATOL near 0."""
    return (isinstance(got, list) and len(got) == len(right)
            and all(isinstance(g, float) and math.isfinite(g) and abs(g - w) <= ENGINE_ATOL + ENGINE_RTOL * abs(w)
                    for g, w in zip(got, right, strict=True)))


def engine_form(program: str, got: Any, right: Any) -> str | None:
    if isinstance(got, list) and len(got) == len(right):
        return None
    return f"gave {len(got) if isinstance(got, list) else got!r} numbers for out and {len(right) - 1} inputs"


# ---------------------------------------------------------------- the log-sigmoid Function

def log_sigmoid_reference(xs: list[float], backward: str = "right") -> dict[str, list[float]]:
    """torch's logsigmoid on xs and the gradient of Σ upstream·logsigmoid(x), by autograd; or
    the gradient a known slip of `backward` gives."""
    x = torch.tensor(xs, dtype=F64, device=grading_device(), requires_grad=True)
    y = F.logsigmoid(x)
    w = kit.upstream(len(xs))
    (y * w).sum().backward()
    assert x.grad is not None
    grads = {"right": x.grad, "sigma_x": torch.sigmoid(x.detach()) * w, "no_upstream": torch.sigmoid(-x.detach()),
             "from_output": (1 - torch.exp(y.detach())) * w}[backward]
    return {"values": y.detach().cpu().tolist(), "grads": grads.detach().cpu().tolist()}


def inputs(low: float, high: float, count: int = 6) -> Callable[[random.Random], list[float]]:
    return lambda rng: [rng.choice((-1, 1)) * uniform(rng, low, high) for _ in range(count)]


LOG_SIGMOID_MISTAKES = {
    "sigma_x": "returned σ(x)·grad_output; d/dx log σ(x) = 1 − σ(x) = σ(−x)",
    "no_upstream": "returned the local derivative σ(−x) without multiplying by grad_output",
    "from_output": "computed 1 − exp(log σ(x)) from the saved output, which rounds to 0 where σ(x) is near 1 "
                   "(x above about 37); σ(−x) from the saved input keeps every digit",
}

# ---------------------------------------------------------------- the checks, one declaration each

LAB.values("t1_fan_out", "out", "dout_da", "dout_db", "dout_dc")
LAB.engine(
    "t2_rules", "rules", answer_cells=("t2_value_answer",),
    visible=["a = Value(1.5); b = Value(-2.0); out = a + b", "a = Value(1.5); b = Value(-2.0); out = a * b",
             "a = Value(-1.5); out = a * a", "a = Value(1.5); out = a + 2.0", "a = Value(1.5); out = a ** 3",
             "a = Value(0.5); out = a.exp()", "a = Value(0.5); out = a.log()", "a = Value(0.5); out = a.tanh()",
             "a = Value(0.5); out = a.sigmoid()", "a = Value(-0.5); out = a.relu()", "a = Value(0.0); out = a.relu()",
             "a = Value(0.5); out = a.relu()", "a = Value(1.5); out = a.relu()"],
    cases=ONE_RULE_CASES, reference=lambda p: reference(p, kit.UPSTREAM),
    mistakes=slip_mistakes("one_rule", RULE_SLIPS), same=engine_close, form=engine_form,
    rtol=ENGINE_RTOL, atol=ENGINE_ATOL,
    hint="Each rule adds local derivative × out.grad into the gradient of each input (+=, not =), "
         "with the local derivative at the values of this forward pass.")
LAB.engine(
    "t3_backward", "backward", answer_cells=("t2_value_answer", "t3_backward_answer"),
    visible=["a = Value(2.0); b = Value(-1.0); c = Value(3.0); out = (a * b + c) * a",
             "a = Value(0.5); b = Value(-1.0); t1 = a * b; out = t1.tanh() * t1.sigmoid() + t1 ** 2 + a",
             "a = Value(1.5); b = Value(-2.0); c = Value(0.0); t1 = (c * a).relu(); "
             "out = (t1 + (a - b).log()) * (2.0 / a).exp() + b"],
    cases=BACKWARD_CASES, reference=reference,
    mistakes=slip_mistakes("gradients", ("not_reversed", "no_visited", "no_seed", *RULE_SLIPS)),
    same=engine_close, form=engine_form, rtol=ENGINE_RTOL, atol=ENGINE_ATOL,
    hint="Order the nodes so that each comes after everything it was made from (visit each once), set "
         "out.grad = 1, then run every node's rule from the output back to the inputs.")
LAB.function(
    "t5_log_sigmoid", "log_sigmoid", answer_cell="t5_log_sigmoid_answer",
    visible=[[-3.0, -0.5, 0.0, 0.5, 3.0], [-800.0, -40.0, 40.0, 800.0]],
    cases=[Case("inputs between −6 and 6", inputs(0.01, 6)), Case("inputs far from 0", inputs(30, 900, 4))],
    reference=log_sigmoid_reference,
    mistakes=[Mistake(why, lambda p, slip=slip: log_sigmoid_reference(p, slip))
              for slip, why in LOG_SIGMOID_MISTAKES.items()],
    rtol=1e-9, atol=1e-200,  # far from 0 the gradient is e^−|x|: relative error is what counts, down to the
    # denormals, where one right way to compute it rounds to 0 and another does not
    hint="Forward: log σ(x) = min(x, 0) − log(1 + exp(−|x|)), which never takes the log of a number that "
         "rounded to 0. Backward: save x, return grad_output · σ(−x).")
