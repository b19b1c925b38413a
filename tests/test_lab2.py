"""Lab 2: references against closed forms and finite differences, stated facts, and checks."""

import math

import matplotlib
import matplotlib.text
import pytest
import torch

from autograder import identity, lab2
from autograder.kernel import CheckFailed
from course.graphs import draw_graph, graph_layers

matplotlib.use("Agg")


def composite(x, y, z):
    return math.tanh(math.log(1 + z * 2 * x / math.sin(y)))


def test_linear_numbers_stated_by_the_lab(device):
    assert lab2.linear_reference(3.0, 4.0, 5.0) == {"y_value": 17.0, "w_grad": 3.0, "b_grad": 1.0}


@pytest.mark.parametrize("student", ["ada", "grace", "s1", "s2", "zoë"])
def test_composite_reference_by_finite_differences(device, student):
    n = lab2.student_numbers(student)
    x, y, z = n["gx"], n["gy"], n["gz"]
    ref = lab2.composite_reference(x, y, z)
    assert ref["f"] == pytest.approx(composite(x, y, z), rel=1e-12)
    h = 1e-6
    for name, args in (("df_dx", (x + h, y, z, x - h, y, z)), ("df_dy", (x, y + h, z, x, y - h, z)),
                       ("df_dz", (x, y, z + h, x, y, z - h))):
        numeric = (composite(*args[:3]) - composite(*args[3:])) / (2 * h)
        assert ref[name] == pytest.approx(numeric, rel=1e-6, abs=1e-10), name
    assert abs(ref["f"]) <= 0.85


def test_chain_graph_and_gradient_stated_by_the_lab():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    out = ((2 * a + 5) ** 2).sum()
    assert lab2.graph_names(out) == ["SumBackward0", "PowBackward0", "AddBackward0", "MulBackward0", "AccumulateGrad"]
    out.backward()
    assert a.grad.tolist() == [28.0, 36.0, 44.0, 52.0]
    with pytest.raises(RuntimeError, match="floating point and complex dtype"):
        torch.tensor([1, 2, 3, 4], requires_grad=True)
    assert torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True).shape == (4,)


def test_dtype_and_statement_facts_stated_by_the_lab():
    assert [lab2.requires_grad_allowed(d) for d in lab2.DTYPES] == [False, True, False, True, True, False]
    assert [lab2.observe_statement(s) for s in lab2.STATEMENTS] == [True, False, True, False, False, True, False]


def test_walk_reference_visits_shared_nodes_once_and_skips_none():
    out = lab2.probe_expression(2)
    names = lab2.graph_names(out)
    assert names.count("ExpBackward0") == 1 and "NoneType" not in names
    assert lab2.breadth_first_names(out) != names  # the hidden probes can tell the orders apart


@pytest.mark.parametrize("student", [f"s{i}" for i in range(40)] + ["ada"])
def test_hand_values_rounded_pass_and_slips_fail_by_name(student):
    n = lab2.student_numbers(student)
    groups = [lab2.linear_expected(n["x"], n["w"], n["b"])] + list(
        lab2.composite_expected(n["gx"], n["gy"], n["gz"]).values())
    for expected in groups:
        assert lab2.diagnose_all({e.name: float(f"{e.value:.4g}") for e in expected}, expected) == []
        for e in expected:
            for slip, wrong in e.slips.items():
                assert slip in e.diagnose(float(f"{wrong:.4g}"))


@pytest.fixture
def ada(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv(identity.STUDENT_ENV, "ada")


def bfs(t):
    return lab2.breadth_first_names(t)


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
def test_walk_check(ada, hidden):
    lab2.check_walk({"graph_walk": lab2.graph_names}, hidden=hidden)


def test_walk_check_names_the_slips(ada):
    with pytest.raises(CheckFailed, match="breadth-first"):
        lab2.check_walk({"graph_walk": bfs}, hidden=True)
    with pytest.raises(CheckFailed, match="listed twice"):
        lab2.check_walk({"graph_walk": listing_twice}, hidden=True)
    with pytest.raises(AssertionError, match="list of node names"):
        lab2.check_walk({"graph_walk": lambda t: t.grad_fn})


def test_table_checks(ada):
    lab2.check_dtypes({"can_require_grad": {d: lab2.requires_grad_allowed(d) for d in lab2.DTYPES}})
    with pytest.raises(CheckFailed, match="torch.int64: an error, not allowed"):
        lab2.check_dtypes({"can_require_grad": {d: True for d in lab2.DTYPES}})
    with pytest.raises(NotImplementedError):
        lab2.check_statements({"statements": {s: ... for s in lab2.STATEMENTS}})
    with pytest.raises(AssertionError, match="True or False"):
        lab2.check_statements({"statements": {s: "yes" for s in lab2.STATEMENTS}})


def test_draw_graph_shows_every_node():
    out = lab2.probe_expression(3)
    layers, edges = graph_layers(out)
    assert sorted(type(n).__name__ for layer in layers for n in layer) == sorted(lab2.graph_names(out))
    fig = draw_graph(out)
    labels = [t for t in fig.axes[0].texts if not isinstance(t, matplotlib.text.Annotation)]
    assert len(labels) == len(lab2.graph_names(out))
    assert sum(isinstance(t, matplotlib.text.Annotation) for t in fig.axes[0].texts) == len(edges)
    with pytest.raises(ValueError, match="no grad_fn"):
        draw_graph(torch.ones(2, requires_grad=True))


def test_layer_graph_stated_by_the_graphs_notebook():
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    names = lab2.graph_names(model(torch.randn(4, 3)).pow(2).mean())
    assert names.count("AddmmBackward0") == 2 and names.count("TBackward0") == 2
    s = torch.tensor([1.0, 2.0], requires_grad=True).exp()
    (first, _), (second, _) = (s * s).grad_fn.next_functions
    assert first is second and type(first).__name__ == "ExpBackward0"
