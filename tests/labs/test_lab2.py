"""Lab 2: references against closed forms and finite differences, stated facts, and checks."""

import contextlib

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

from helpers import REPO, SEED, SEEDS, assert_formula_slips_are_far_and_distinct, assert_named_slips, graded_formula, texts

matplotlib.use("Agg")

WALK = grader.LAB.checks["t3_walk"]
# Graphs whose walks are written out by hand below (WALKS): one that branches, one that shares a
# node and has a constant, one that mixes matrix and reduction ops.
BRANCHING, SHARED, MIXED = ("(a * b + torch.sigmoid(a)).mean()", "((s := a.exp()) * s + k * b).sum()",
                            "torch.relu(a @ b.unsqueeze(1) + a.sum()).squeeze() * torch.tanh(b).max()")


def test_linear_numbers_stated_by_the_lab(device):
    assert kit.linear_values(3.0, 4.0, 5.0) == {"y_value": 17.0, "w_grad": 3.0, "b_grad": 1.0}


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
    groups = [kit.linear_answers(n["x"], n["w"], n["b"]), kit.squared_error_answers(n["x4"], n["y4"], n["w4"])]
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



# ---------------------------------------------------------------- Task 4: one weight, one squared error

@pytest.mark.parametrize("x, y, w", [(4.0, 1.0, 0.5), (2.0, 3.0, 0.25), (-1.5, 0.5, 2.0)])
def test_task4_reference_matches_closed_form(device, x, y, w):
    ref = kit.squared_error_values(x, y, w)
    s = x * w - y
    assert ref["yhat"] == pytest.approx(x * w) and ref["s"] == pytest.approx(s)
    assert ref["loss"] == pytest.approx(s * s)
    assert ref["dloss_ds"] == pytest.approx(2 * s) and ref["ds_dyhat"] == 1 and ref["dyhat_dw"] == pytest.approx(x)
    assert ref["dloss_dw"] == pytest.approx(2 * x * (x * w - y), rel=1e-12)


def test_task4_numbers_stated_by_the_lab():
    """Task 4's text (and Lab 4b's Task 1) state the textbook numbers x = 4, y = 1, w = 0.5."""
    assert kit.squared_error_values(4.0, 1.0, 0.5) == {
        "yhat": 2.0, "s": 1.0, "loss": 1.0, "dloss_ds": 2.0, "ds_dyhat": 1.0, "dyhat_dw": 4.0, "dloss_dw": 8.0}


SQ_RIGHT = {"solution": "def loss_and_gradient(x, y, w):\n    s = x * w - y\n    return s ** 2, 2 * s * x\n",
            "expanded": "def loss_and_gradient(x, y, w):\n    return (x*w)**2 - 2*x*w*y + y*y, 2*x*x*w - 2*x*y\n"}
SQ_SLIPS = {"forgot to square s": "    return s, 2 * s * x\n", "forgot the factor 2": "    return s * s, s * x\n",
            "used w instead of x": "    return s * s, 2 * s * w\n", "stopped at dloss/ds": "    return s * s, 2 * s\n",
            "flipped the sign": "    return s * s, 2 * (y - x * w) * x\n"}
SQ_HEAD = "def loss_and_gradient(x, y, w):\n    s = x * w - y\n"



@pytest.mark.parametrize("source", SQ_RIGHT.values(), ids=SQ_RIGHT)
def test_right_squared_error_formulas_in_other_words_pass(student, source):
    assert graded_formula("lab2", "t4_formula", source) == (None, [])


@pytest.mark.parametrize("words, source", SQ_SLIPS.items(), ids=SQ_SLIPS)
def test_each_slip_in_the_squared_error_formula_is_named_by_the_grader(student, words, source):
    _, problems = graded_formula("lab2", "t4_formula", SQ_HEAD + source)
    assert problems and all(words in problem for problem in problems), problems


def test_every_formula_slip_is_far_from_the_truth_on_the_hidden_inputs():
    check = grader.LAB.checks["t4_formula"]
    assert_formula_slips_are_far_and_distinct(
        check, lambda *p: [kit.squared_error_values(*p)[k] for k in ("loss", "dloss_dw")], grader.task4_formula_slips)


@pytest.mark.parametrize("seed", SEEDS)
def test_every_draw_of_hidden_inputs_gives_s_both_signs(seed):
    """In every submission's draw, s = x·w − y has both signs and is not 0, and x is not ±1."""
    probes = [p for _, p in grader.LAB.checks["t4_formula"].drawn(seed)]
    assert {x * w - y > 0 for x, y, w in probes} == {True, False}
    for x, y, w in probes:
        assert abs(x * w - y) > 0.1 and abs(abs(x) - 1) > 0.05


def squared_error_slips_by_hand(x4, y4, w4, **_):
    """Every Task 4 slip the feedback names, worked out here from the formulas."""
    s = x4 * w4 - y4
    return {("yhat", "added x and w"): x4 + w4, ("s", "computed y − ŷ"): -s, ("loss", "forgot to square s"): s,
            ("dloss_ds", "forgot the factor 2"): s, ("dyhat_dw", "used w instead of x"): w4,
            ("dloss_dw", "forgot the factor 2"): s * x4, ("dloss_dw", "used w instead of x"): 2 * s * w4,
            ("dloss_dw", "stopped at dloss/ds"): 2 * s}


@pytest.mark.parametrize("student", ["ada", "grace", "s1", "s2", "zoë", "s-17"])
def test_every_named_slip_is_the_value_its_name_says(student):
    numbers = kit.student_numbers(student)
    answers = kit.check.expected_answers(student)
    linear = {("y_value", "added all three"): numbers["w"] + numbers["x"] + numbers["b"],
              ("w_grad", "used w instead of x"): numbers["w"], ("b_grad", "gave b itself"): numbers["b"]}
    assert_named_slips(answers, linear | squared_error_slips_by_hand(**numbers))


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
