"""Lab 2 — tensors, requires_grad and the autograd graph: the grader's references and checks.

Hand-computed answers are checked on the kit's values for the student's numbers
(course.lab2.answers, computed with autograd in float64 on the grading device); what PyTorch does
in the prediction tables is observed here, on the installed PyTorch, and the student's graph walk
is compared with the grader's own walk of each probe expression (course.lab2.expression).
"""

import warnings

import torch

from course import lab2 as kit

from . import Case, Lab, Mistake, draw_until, uniform

LAB = Lab(kit.check)


# ---------------------------------------------------------------- what PyTorch does (table truths)

def requires_grad_allowed(dtype_name: str) -> bool:
    """Whether a tensor of this dtype may require gradients, tried on the installed PyTorch."""
    try:
        torch.zeros(2, dtype=getattr(torch, dtype_name.removeprefix("torch.")), requires_grad=True)
    except RuntimeError:
        return False
    return True


def observe_statement(statement: str) -> bool:
    """Evaluate one of kit.STATEMENTS for w = tensor(2., requires_grad=True), h = w * 3."""
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


# ---------------------------------------------------------------- the reference walk and its slips

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


def repeating_names(tensor: torch.Tensor) -> list[str]:
    """Depth first, but a node reached twice is listed twice (a slip the feedback names)."""
    names = []

    def visit(node):
        if node is not None:
            names.append(type(node).__name__)
            for child, _ in node.next_functions:
                visit(child)

    visit(tensor.grad_fn)
    return names


def none_listing_names(tensor: torch.Tensor) -> list[str]:
    """Depth first, each node once, but the None entries of next_functions listed as 'NoneType'."""
    seen, names = set(), []

    def visit(node):
        if node in seen:
            return
        seen.add(node)
        names.append(type(node).__name__)
        for child, _ in getattr(node, "next_functions", ()):
            visit(child)

    visit(tensor.grad_fn)
    return names


# ---------------------------------------------------------------- the formula's slips and inputs

def task4_formula_slips(x: float, y: float, w: float) -> dict[str, list[float]]:
    """(loss, dloss/dw) as each known slip of Task 4's derivation gives them, in closed form."""
    s = x * w - y
    return {"forgot to square s (loss = s)": [s, 2 * s * x],
            "forgot the factor 2 from the square": [s * s, s * x],
            "used w instead of x for dŷ/dw": [s * s, 2 * s * w],
            "stopped at dloss/ds (2s), before the factor dŷ/dw = x": [s * s, 2 * s],
            "flipped the sign of the gradient (s = y − ŷ with ds/dŷ = +1)": [s * s, -2 * s * x]}


def squared_error_cases() -> list[Case]:
    def draw(scale: float, holds):
        return lambda rng: draw_until(rng, lambda r: [uniform(r, -scale, scale), uniform(r, -scale, scale),
                                                      uniform(r, -3, 3)],
                                      lambda x, y, w: abs(x) > 0.2 and abs(abs(x) - 1) > 0.1 and abs(x - w) > 0.2
                                      and holds(x * w - y))

    return [Case("when the prediction x·w is above y (s > 0)", draw(4, lambda s: s > 0.3)),
            Case("when the prediction x·w is below y (s < 0)", draw(4, lambda s: s < -0.3)),
            Case("with x and y in the hundreds", draw(500, lambda s: abs(s) > 1))]


# One-input operations a drawn graph is built from ("{}" is where the input goes).
UNARY = ("torch.sigmoid({})", "torch.tanh({})", "torch.relu({})", "torch.sin({})", "torch.square({})", "(3 * {})")


def chain_text(rng, leaf: str, depth: int) -> str:
    """`depth` one-input operations applied to `leaf`, drawn."""
    for _ in range(depth):
        leaf = rng.choice(UNARY).format(leaf)
    return leaf


def walk_cases() -> list[Case]:
    """Expressions of a, b and k, drawn per submission, each of a shape in which one named slip
    of the walk gives a different list than the depth-first walk does."""
    def drawn(make, slip):
        def holds(text):
            t = kit.expression(text)
            return slip(t) != graph_names(t) and breadth_first_names(t) != graph_names(t)
        return lambda rng: draw_until(rng, lambda r: [make(r)], holds)[0]

    def branches(rng):
        return (f"({chain_text(rng, 'a', rng.randint(2, 3))} {rng.choice('+*-')} "
                f"{chain_text(rng, 'b', rng.randint(1, 2))}).{rng.choice(('sum', 'mean'))}()")

    def shares(rng):
        return (f"((s := {chain_text(rng, 'a', rng.randint(1, 2))}) * {chain_text(rng, 'b', 1)} + "
                f"{chain_text(rng, 's', rng.randint(1, 2))}).sum()")

    def constant(rng):
        return (f"({chain_text(rng, 'a', rng.randint(1, 2))} {rng.choice('+-')} "
                f"k * {chain_text(rng, 'b', rng.randint(1, 2))}).{rng.choice(('sum', 'mean'))}()")

    return [Case("on a graph that branches (an operation whose two inputs both need gradients)",
                 drawn(branches, breadth_first_names)),
            Case("on a graph in which two paths reach the same node", drawn(shares, repeating_names)),
            Case("on a graph with a constant that needs no gradient (k)", drawn(constant, none_listing_names))]


def drawn_walk_slip(text: str, given: list[str]) -> str:
    """What a wrong drawn walk got wrong, where it is a known slip (else that it is not the graph)."""
    graph = kit.expression(text)
    slips = [(breadth_first_names(graph), "walked breadth first; the walk goes deep first"),
             (repeating_names(graph), "listed a node twice where two paths reach it"),
             (none_listing_names(graph), "listed an input that needs no gradient (a None entry)"),
             (graph_names(kit.expression(text.replace(".detach()", ""))),
              "went through `detach()`, which cuts the graph: a.detach() needs no gradient, like k")]
    named = [words for walk, words in slips if given == walk and walk != graph_names(graph)]
    return f"{text}: " + (named[0] if named else "not the walk of the graph autograd builds; draw it again, "
                          "node by node, from the output")


# ---------------------------------------------------------------- the checks, one declaration each

LAB.values("t1_linear", "y_value", "w_grad", "b_grad")
LAB.table("t2_dtypes", "can_require_grad", truth=requires_grad_allowed)
# Expressions of the leaves a = [1, 2, 3, 4], b = [0.5, -1, 2, 1] (both requiring grad) and the
# constant k = [1, 1, 2, 2]: the lab's chain, then graphs that branch, share a node and mix ops.
# The second visible graph branches, reaches a twice and holds k: each named slip fails on it in
# the notebook, not first in the feedback.
LAB.function(
    "t3_walk", "graph_walk", visible=["((2 * a + 5) ** 2).sum()", "(torch.tanh(a * b) + k * torch.sin(a)).sum()"],
    cases=walk_cases(),
    reference=lambda text: graph_names(kit.expression(text)),
    mistakes=[Mistake("walked the graph breadth first (go deep first: a node, then each of its next_functions in "
                      "turn)", lambda text: breadth_first_names(kit.expression(text))),
              Mistake("listed a node twice when two paths reach it (remember which nodes you visited)",
                      lambda text: repeating_names(kit.expression(text)),
                      shows=lambda text, got, right: set(got) == set(right) and len(got) > len(right)),
              Mistake("listed the None entries of next_functions (skip those: they are inputs that need no gradient)",
                      lambda text: none_listing_names(kit.expression(text)),
                      shows=lambda text, got, right: "NoneType" in got)],
    detail=lambda text, got, right: f"got {got[:6]}{'…' if len(got) > 6 else ''}, expected {len(right)} nodes "
                                    f"starting with {right[:3]}",
    hint="Start at t.grad_fn and go depth first: a node, then each entry of its next_functions in turn; "
         "skip None and list every node once.")
LAB.table("t3_draw", "predicted_walks", truth=lambda text: graph_names(kit.expression(text)), explain=drawn_walk_slip)
LAB.values("t4_forward", "yhat", "s", "loss")
LAB.values("t4_backward", "dloss_ds", "ds_dyhat", "dyhat_dw", "dloss_dw")
LAB.formula(
    "t4_formula", "loss_and_gradient", answer_cell="t4_formula_answer",
    visible=[[4.0, 1.0, 0.5], [3.0, 2.0, 0.25]], cases=squared_error_cases(),
    reference=lambda p: [kit.squared_error_values(*p)[k] for k in ("loss", "dloss_dw")],
    mistakes=[Mistake(why, lambda p, why=why: task4_formula_slips(*p)[why])
              for why in task4_formula_slips(1.0, 2.0, 3.0)],
    hint="Compute ŷ and s from the inputs inside the function, then multiply the three local derivatives of "
         "the backward pass.")
LAB.table("t5_statements", "statements", truth=observe_statement)
