"""Lab 2: references against closed forms and finite differences, stated facts, and checks."""

import contextlib
import math

import matplotlib
import nbformat
import matplotlib.text
import pytest
import torch

import course.checks
from autograder.labs import lab2 as grader
from course import identity
from course import lab2 as kit
from course.answers import diagnose_all
from course.checks import CheckFailed
from course.graphs import draw_graph, graph_layers

from helpers import REPO, SEED, SEEDS, assert_formula_slips_are_far_and_distinct, assert_named_slips, drawn_probes, graded_formula, texts

matplotlib.use("Agg")

WALK = grader.LAB.checks["t3_walk"]
# Graphs whose walks are written out by hand below (WALKS): one that branches, one that shares a
# node and has a constant, one that mixes matrix and reduction ops.
BRANCHING, SHARED, MIXED = ("(a * b + torch.sigmoid(a)).mean()", "((s := a.exp()) * s + k * b).sum()",
                            "torch.relu(a @ b.unsqueeze(1) + a.sum()).squeeze() * torch.tanh(b).max()")


def composite(x, y, z):
    return math.tanh(math.log(1 + z * 2 * x / math.sin(y)))


def test_linear_numbers_stated_by_the_lab(device):
    assert kit.linear_values(3.0, 4.0, 5.0) == {"y_value": 17.0, "w_grad": 3.0, "b_grad": 1.0}


@pytest.mark.parametrize("student", ["ada", "grace", "s1", "s2", "zoë"])
def test_composite_reference_is_the_gradcheck_verified_gradient(device, student):
    n = kit.student_numbers(student)
    x, y, z = n["gx"], n["gy"], n["gz"]
    ref = kit.composite_values(x, y, z)
    assert ref["f"] == pytest.approx(composite(x, y, z), rel=1e-12)
    leaves = tuple(torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (x, y, z))

    def f(x, y, z):
        return torch.tanh(torch.log(1 + z * 2 * x / torch.sin(y)))

    assert torch.autograd.gradcheck(f, leaves) and torch.autograd.gradgradcheck(f, leaves)
    grads = torch.autograd.grad(f(*leaves), leaves)
    for name, grad in zip(("df_dx", "df_dy", "df_dz"), grads, strict=True):
        assert ref[name] == pytest.approx(grad.item(), rel=1e-12), name
    assert abs(ref["f"]) <= 0.85


def test_chain_graph_and_gradient_stated_by_the_lab():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    out = ((2 * a + 5) ** 2).sum()
    assert grader.graph_names(out) == ["SumBackward0", "PowBackward0", "AddBackward0", "MulBackward0", "AccumulateGrad"]
    out.backward()
    assert a.grad.tolist() == [28.0, 36.0, 44.0, 52.0]
    with pytest.raises(RuntimeError, match="floating point and complex dtype"):
        torch.tensor([1, 2, 3, 4], requires_grad=True)
    assert torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True).shape == (4,)


def test_dtype_and_statement_facts_stated_by_the_lab():
    assert [grader.requires_grad_allowed(d) for d in kit.DTYPES] == [False, True, False, True, True, False]
    assert [grader.observe_statement(s) for s in kit.STATEMENTS] == [True, False, True, False, False, True, False]


def test_walk_reference_visits_shared_nodes_once_and_skips_none():
    out = kit.expression(SHARED)
    names = grader.graph_names(out)
    assert names.count("ExpBackward0") == 1 and "NoneType" not in names
    assert grader.breadth_first_names(out) != names


def test_every_drawn_graph_tells_its_cases_slip_from_the_right_walk():
    slips = {"branches": [grader.breadth_first_names], "two paths": [grader.repeating_names, grader.breadth_first_names],
             "constant": [grader.none_listing_names, grader.breadth_first_names]}
    for seed in SEEDS:
        for case, text in WALK.drawn(seed):
            out = kit.expression(text)
            (named,) = [key for key in slips if key in case]
            assert all(slip(out) != grader.graph_names(out) for slip in slips[named]), (case, text)


@pytest.mark.parametrize("student", [f"s{i}" for i in range(40)] + ["ada"])
def test_hand_values_rounded_pass_and_slips_fail_by_name(student):
    n = kit.student_numbers(student)
    groups = [kit.linear_answers(n["x"], n["w"], n["b"]), kit.fan_out_answers(n["gx"], n["gz"])] + list(
        kit.composite_answers(n["gx"], n["gy"], n["gz"]).values())
    for expected in groups:
        assert diagnose_all({e.name: float(f"{e.value:.4g}") for e in expected}, expected, student) == []
        for e in expected:
            for slip, wrong in e.slips.items():
                assert slip in e.diagnose(float(f"{wrong:.4g}"))


@pytest.fixture
def ada(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv(identity.STUDENT_ENV, "ada")


@pytest.fixture
def payloads(monkeypatch):
    """What the checks publish (outside IPython they publish nothing), for the grader to verify."""
    sent = []
    monkeypatch.setattr(course.checks, "publish", sent.append)
    return sent


def walk(fn, hidden: bool, payloads: list) -> list[str]:
    """Run the walk check as the notebook does (the visible probes, or the hidden ones too), then
    verify what it published as the grader does."""
    with contextlib.suppress(CheckFailed):
        kit.check.function({"graph_walk": fn}, "graph_walk")
    if hidden:
        kit.check.function({"graph_walk": fn}, "graph_walk", hidden=WALK.hidden_probes(SEED))
    return texts(grader.LAB.verify_cell("t3_walk", payloads, "ada", seed=SEED)) if hidden else []


def bfs(t):
    return grader.breadth_first_names(t)


def listing_twice(t):
    names = []

    def visit(node):
        if node is not None:
            names.append(type(node).__name__)
            for child, _ in node.next_functions:
                visit(child)

    visit(t.grad_fn)
    return names


@pytest.mark.parametrize("hidden", [False, True])
def test_walk_check(ada, payloads, hidden):
    assert walk(grader.graph_names, hidden, payloads) == []


def test_walk_check_names_the_slips(ada, payloads):
    assert any("breadth first" in p for p in walk(bfs, True, payloads))
    payloads.clear()
    assert any("listed a node twice" in p for p in walk(listing_twice, True, payloads))
    with pytest.raises(AssertionError, match="list of node names"):
        kit.check.function({"graph_walk": lambda t: t.grad_fn}, "graph_walk")


def lists_none(t):
    return grader.none_listing_names(t)


@pytest.mark.parametrize(("fn", "slip"), [(bfs, "breadth first"), (listing_twice, "listed a node twice"),
                                          (lists_none, "listed the None entries")])
def test_each_slip_of_the_walk_fails_in_the_notebook_on_a_visible_graph(ada, fn, slip):
    with pytest.raises(CheckFailed, match=slip):
        kit.check.function({"graph_walk": fn}, "graph_walk")


def test_table_checks(ada, payloads):
    kit.check.table({"can_require_grad": {d: grader.requires_grad_allowed(d) for d in kit.DTYPES}},
                    "can_require_grad")
    assert grader.LAB.verify_cell("t2_dtypes", payloads, "ada") == []
    payloads.clear()
    with pytest.raises(CheckFailed, match=r"^\n  - 3 of 6 predictions are right\. Which") as failed:
        kit.check.table({"can_require_grad": {d: True for d in kit.DTYPES}}, "can_require_grad")
    assert "int64" not in str(failed.value)  # the grader's feedback names the wrong entries, the kit does not
    assert "torch.int64: an error, not allowed." in texts(grader.LAB.verify_cell("t2_dtypes", payloads, "ada"))
    with pytest.raises(NotImplementedError):
        kit.check.table({"statements": {s: ... for s in kit.STATEMENTS}}, "statements")
    with pytest.raises(AssertionError, match="True, False"):
        kit.check.table({"statements": {s: "yes" for s in kit.STATEMENTS}}, "statements")


def test_draw_graph_shows_every_node():
    out = kit.expression(MIXED)
    layers, edges = graph_layers(out)
    assert sorted(type(n).__name__ for layer in layers for n in layer) == sorted(grader.graph_names(out))
    assert layers[0] == [out.grad_fn] and all(layers)  # the output on top, no empty row
    depth = {node: row for row, layer in enumerate(layers) for node in layer}
    assert all(depth[child] > depth[parent] for parent, child in edges)  # every arrow points down
    fig = draw_graph(out)
    labels = [t for t in fig.axes[0].texts if not isinstance(t, matplotlib.text.Annotation)]
    assert len(labels) == len(grader.graph_names(out))
    assert sum(isinstance(t, matplotlib.text.Annotation) for t in fig.axes[0].texts) == len(edges)
    with pytest.raises(ValueError, match="no grad_fn"):
        draw_graph(torch.ones(2, requires_grad=True))


def test_layer_graph_stated_by_the_graphs_notebook():
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    names = grader.graph_names(model(torch.randn(4, 3)).pow(2).mean())
    assert names.count("AddmmBackward0") == 2 and names.count("TBackward0") == 2
    s = torch.tensor([1.0, 2.0], requires_grad=True).exp()
    (first, _), (second, _) = (s * s).grad_fn.next_functions
    assert first is second and type(first).__name__ == "ExpBackward0"


# Written out by hand (depth first, next_functions in order, a node reached twice listed once,
# None skipped), so that a change to the reference walk cannot pass unnoticed.
WALKS = {
    "((2 * a + 5) ** 2).sum()": ["SumBackward0", "PowBackward0", "AddBackward0", "MulBackward0", "AccumulateGrad"],
    "(torch.tanh(a * b) + k * torch.sin(a)).sum()": ["SumBackward0", "AddBackward0", "TanhBackward0", "MulBackward0",
                                                     "AccumulateGrad", "AccumulateGrad", "MulBackward0",
                                                     "SinBackward0"],
    "(a * b + torch.sigmoid(a)).mean()": ["MeanBackward0", "AddBackward0", "MulBackward0", "AccumulateGrad",
                                          "AccumulateGrad", "SigmoidBackward0"],
    "((s := a.exp()) * s + k * b).sum()": ["SumBackward0", "AddBackward0", "MulBackward0", "ExpBackward0",
                                           "AccumulateGrad", "MulBackward0", "AccumulateGrad"],
    "torch.relu(a @ b.unsqueeze(1) + a.sum()).squeeze() * torch.tanh(b).max()": [
        "MulBackward0", "SqueezeBackward0", "ReluBackward0", "AddBackward0", "SqueezeBackward4", "MmBackward0",
        "UnsqueezeBackward0", "AccumulateGrad", "UnsqueezeBackward0", "AccumulateGrad", "SumBackward0",
        "MaxBackward1", "TanhBackward0"],
}


def test_the_reference_walk_gives_the_orders_written_out_by_hand():
    assert sorted(WALK.visible + [BRANCHING, SHARED, MIXED]) == sorted(WALKS)
    for source, names in WALKS.items():
        assert grader.graph_names(kit.expression(source)) == names, source


# The graphs students draw before running them, walked by hand: the first branches and reaches a
# twice (its AccumulateGrad listed once), the second holds a constant and a detached input (no node).
DRAWN_BY_HAND = {
    "(a * b + torch.exp(a)).sum()": ["SumBackward0", "AddBackward0", "MulBackward0", "AccumulateGrad",
                                     "AccumulateGrad", "ExpBackward0"],
    "(a.detach() * b + k * torch.sin(a)).mean()": ["MeanBackward0", "AddBackward0", "MulBackward0", "AccumulateGrad",
                                                   "MulBackward0", "SinBackward0", "AccumulateGrad"],
}
DRAWN = grader.LAB.checks["t3_draw"]


def test_the_graphs_to_draw_are_autograds_walked_by_hand_and_the_kit_holds_only_their_seals():
    assert list(kit.DRAWN) == list(DRAWN_BY_HAND)
    for text, names in DRAWN_BY_HAND.items():
        assert grader.graph_names(kit.expression(text)) == names == DRAWN.truth(text), text
    sealed = kit.check.expected["tables"]["predicted_walks"]
    assert sealed == DRAWN.kit_data() and "AccumulateGrad" not in str(sealed)


def draw(walks: dict, payloads: list) -> list[str]:
    """The drawing checked as the notebook does, then verified as the grader does."""
    with contextlib.suppress(CheckFailed):
        kit.check.table({"predicted_walks": walks}, "predicted_walks")
    return texts(grader.LAB.verify_cell("t3_draw", payloads, "ada"))


def test_a_right_drawing_passes_as_lists_or_tuples(ada, payloads):
    for walks in (DRAWN_BY_HAND, {t: tuple(w) for t, w in DRAWN_BY_HAND.items()}):
        kit.check.table({"predicted_walks": walks}, "predicted_walks")
        assert grader.LAB.verify_cell("t3_draw", payloads, "ada") == []
        payloads.clear()


@pytest.mark.parametrize(("slip", "named"), [
    (grader.breadth_first_names, "walked breadth first"),
    (grader.repeating_names, "listed a node twice"),
    (grader.none_listing_names, "listed an input that needs no gradient"),
    (lambda graph: grader.graph_names(graph)[::-1], "not the walk of the graph autograd builds")])
def test_each_wrong_drawing_fails_in_the_notebook_unnamed_and_in_the_feedback_by_name(ada, payloads, slip, named):
    drawn = {text: slip(kit.expression(text)) for text in kit.DRAWN}
    with pytest.raises(CheckFailed, match="predictions are right") as failed:
        kit.check.table({"predicted_walks": drawn}, "predicted_walks")
    assert "Backward" not in str(failed.value)  # the notebook counts, it does not tell
    verdicts = texts(grader.LAB.verify_cell("t3_draw", payloads, "ada"))
    assert verdicts and all(named in v for v in verdicts if v.startswith(tuple(kit.DRAWN))), verdicts


def test_a_drawing_through_detach_is_named(ada, payloads):
    through = {text: grader.graph_names(kit.expression(text.replace(".detach()", ""))) for text in kit.DRAWN}
    (verdict,) = draw(through, payloads)
    assert verdict.startswith(kit.DRAWN[1]) and "went through `detach()`" in verdict


def test_an_unfinished_or_malformed_drawing_is_told_what_to_write(ada):
    with pytest.raises(NotImplementedError):
        kit.check.table({"predicted_walks": {t: ... for t in kit.DRAWN}}, "predicted_walks")
    with pytest.raises(AssertionError, match="list of node names"):
        kit.check.table({"predicted_walks": {t: "SumBackward0" for t in kit.DRAWN}}, "predicted_walks")


def slips_by_hand(x, w, b, gx, gy, gz):
    """Every hand-computation slip the feedback names, worked out here from the formulas."""
    a, sb = 2 * gx, math.sin(gy)
    c = a / sb
    d = 1 + gz * c
    e = math.log(d)
    f = math.tanh(e)
    right, wrong = 1 - f * f, 1 - e * e
    return {
        ("y_value", "added all three"): w + x + b, ("w_grad", "used w instead of x"): w,
        ("b_grad", "gave b itself"): b, ("b", "took y in degrees"): math.sin(math.radians(gy)),
        ("e", "used log base 10"): math.log10(d),
        ("df_dx", "used 1 − e²"): wrong / d * gz / sb * 2, ("df_dx", "forgot the 2"): right / d * gz / sb,
        ("df_dy", "used 1 − e²"): wrong / d * gz * (-a / sb ** 2) * math.cos(gy),
        ("df_dy", "dropped the minus sign"): -(right / d * gz * (-a / sb ** 2) * math.cos(gy)),
        ("df_dz", "used 1 − e²"): wrong / d * c, ("df_dz", "forgot the 1/d"): right * c,
        ("dg_dx", "through u = x · z"): gz, ("dg_dx", "through v = 3x"): 3.0,
    }


@pytest.mark.parametrize("student", ["ada", "grace", "s1", "s2", "zoë", "s-17"])
def test_every_named_slip_is_the_value_its_name_says(student):
    numbers = kit.student_numbers(student)
    answers = kit.check.expected_answers(student)
    assert_named_slips(answers, slips_by_hand(**numbers))


@pytest.mark.parametrize("x, z", [(0.25, 0.4), (1.15, 0.67), (2.0, 2.0)])
def test_fan_out_gradient_is_the_sum_of_both_paths_as_the_lab_states(device, x, z):
    assert kit.fan_out_values(x, z)["dg_dx"] == pytest.approx(z + 3, rel=1e-12)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (u_path,) = torch.autograd.grad(xt * z, xt)
    (v_path,) = torch.autograd.grad(3 * xt, xt)
    assert kit.fan_out_values(x, z)["dg_dx"] == pytest.approx(u_path.item() + v_path.item(), rel=1e-12)


def test_the_fan_out_observe_cell_shows_the_sum_and_each_path(device):
    assert kit.fan_out_values(0.25, 0.4)["dg_dx"] == pytest.approx(3.4, rel=1e-12)  # x.grad, printed
    assert [e.slips for e in kit.fan_out_answers(0.25, 0.4)] == [
        {"followed one path only (through u = x · z)": 0.4, "followed one path only (through v = 3x)": 3.0}]


def test_reading_a_non_leafs_grad_warns_as_the_observe_cell_shows():
    w = torch.tensor(2.0, requires_grad=True)
    h = w * 3
    h.sum().backward()
    with pytest.warns(UserWarning, match="not a leaf Tensor is being accessed"):
        assert h.grad is None
    h = w * 3
    h.retain_grad()
    h.sum().backward()
    assert h.grad.item() == 1.0 and w.grad.item() == 6.0  # w.grad: 3 from each backward call


def test_a_matrix_products_backward_costs_about_twice_its_forward():
    """Labs 2 and 4 say backward costs a small constant multiple of forward, about 2× for matmuls."""
    from torch.utils.flop_counter import FlopCounterMode

    x, W = torch.randn(64, 128, requires_grad=True), torch.randn(128, 32, requires_grad=True)
    with FlopCounterMode(display=False) as forward:
        y = x @ W
    with FlopCounterMode(display=False) as backward:
        y.sum().backward()
    assert backward.get_total_flops() == 2 * forward.get_total_flops()


# ---------------------------------------------------------------- Task 4's chain graded as a formula

F_HEAD = ("import math\ndef f_gradients(x, y, z):\n    a, b = 2 * x, math.sin(y)\n    c = a / b\n"
          "    d = 1 + z * c\n    e = math.log(d)\n    f = math.tanh(e)\n")
F_RIGHT = {
    "solution": F_HEAD + "    g = (1 - f * f) / d\n    return g * z * 2 / b, -g * z * a * math.cos(y) / b ** 2, g * c\n",
    "tanh' from cosh, no named nodes": (
        "from math import cos, cosh, log, sin\ndef f_gradients(x, y, z):\n"
        "    d = 1 + z * 2 * x / sin(y)\n    g = 1 / cosh(log(d)) ** 2 / d\n"
        "    return [2 * z * g / sin(y), -2 * x * z * cos(y) * g / sin(y) ** 2, 2 * x * g / sin(y)]\n"),
}
F_SLIPS = {
    "used 1 − e² for tanh'": F_HEAD + "    g = (1 - e * e) / d\n    return g * z * 2 / b, -g * z * a * math.cos(y) / b ** 2, g * c\n",
    "forgot the 1/d": F_HEAD + "    g = 1 - f * f\n    return g * z * 2 / b, -g * z * a * math.cos(y) / b ** 2, g * c\n",
    "forgot the 2 from a = 2x": F_HEAD + "    g = (1 - f * f) / d\n    return g * z / b, -g * z * a * math.cos(y) / b ** 2, g * c\n",
    "dropped the minus sign": F_HEAD + "    g = (1 - f * f) / d\n    return g * z * 2 / b, g * z * a * math.cos(y) / b ** 2, g * c\n",
    "used sin(y) for db/dy": F_HEAD + "    g = (1 - f * f) / d\n    return g * z * 2 / b, -g * z * a * math.sin(y) / b ** 2, g * c\n",
}


@pytest.mark.parametrize("source", F_RIGHT.values(), ids=F_RIGHT)
def test_right_formulas_in_other_words_pass(student, source):
    assert graded_formula("lab2", "t4_formula", source) == (None, [])


@pytest.mark.parametrize("words, source", F_SLIPS.items(), ids=F_SLIPS)
def test_each_slip_in_the_formula_is_named_by_the_grader(student, words, source):
    _, problems = graded_formula("lab2", "t4_formula", source)
    assert problems and all(words in problem for problem in problems), problems


def test_every_formula_slip_is_far_from_the_truth_on_the_hidden_inputs():
    assert_formula_slips_are_far_and_distinct(grader.LAB.checks["t4_formula"], grader.f_gradients_reference,
                                              grader.f_gradients_slips)


def test_the_formula_inputs_reach_what_the_students_numbers_do_not():
    """Students' y lies in [0.5, 2.5] (sin y > 0) and x, z in [0.5, 2]; in every submission's draw
    the grader also tries sin y < 0 and negative x and z, always with d > 0 and tanh away from
    saturation."""
    for seed in SEEDS:
        probes = [p for _, p in grader.LAB.checks["t4_formula"].drawn(seed)]
        assert min(math.sin(y) for _, y, _ in probes) < 0 < max(math.sin(y) for _, y, _ in probes)
        assert min(x for x, _, _ in probes) < 0 and min(z for *_, z in probes) < 0
        for x, y, z in probes:
            d = 1 + z * 2 * x / math.sin(y)
            assert d > 0.1 and abs(math.tanh(math.log(d))) < 0.999


@pytest.mark.parametrize("probe", grader.LAB.checks["t4_formula"].visible + drawn_probes(grader.LAB.checks["t4_formula"], SEEDS[:2]))
def test_formula_reference_is_the_gradcheck_verified_gradient(device, probe):
    leaves = tuple(torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in probe)

    def f(x, y, z):
        return torch.tanh(torch.log(1 + z * (2 * x) / torch.sin(y)))

    assert torch.autograd.gradcheck(f, leaves)
    grads = torch.autograd.grad(f(*leaves), leaves)
    assert grader.f_gradients_reference(*probe) == pytest.approx([g.item() for g in grads], rel=1e-12)


def test_the_observe_cell_after_task_1_runs_on_numbers_no_student_gets(capsys):
    """It shows the rule at work, not the student's graded answers."""
    cells = nbformat.read(REPO / "release" / "lab2" / "lab2.ipynb", as_version=4).cells
    graded = next(i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "t1_linear")
    observe = next(c for c in cells[graded + 1:] if c.cell_type == "code")
    assert "mine" not in observe.source
    namespace = {"torch": torch}
    exec(observe.source, namespace)
    shown = [namespace[name].item() for name in ("x", "w", "b")]
    assert not all(value in kit.GRIDS[name] for name, value in zip(("x", "w", "b"), shown, strict=True))
    assert "w.grad = tensor(2.5000)" in capsys.readouterr().out  # dy/dw = x
