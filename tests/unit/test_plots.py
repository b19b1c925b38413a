"""The kit's figures: shown while a student works, never rendered while nbgrader autogrades."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course import plots  # noqa: E402
from course.graphs import draw_graph  # noqa: E402

FIGURES = {
    "plot_loss_curves": lambda: plots.plot_loss_curves({"a": [3.0, 2.0, 0.0]}),
    "plot_training": lambda: plots.plot_training([0.0, 0.5], [1.0, 0.25], target_w=1.0),
    "plot_sigmoid_derivatives": lambda: plots.plot_sigmoid_derivatives(),
    "draw_graph": lambda: draw_graph((torch.ones(2, requires_grad=True) * 2).sum()),
}


@pytest.mark.parametrize("name", FIGURES)
def test_a_student_sees_the_figure(name, monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    plt.close("all")
    fig = FIGURES[name]()
    assert plt.get_fignums() == [fig.number] and fig.axes
    plt.close("all")


@pytest.mark.parametrize("name", FIGURES)
def test_autograding_draws_nothing_for_plt_show_to_render(name, monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    plt.close("all")
    fig = FIGURES[name]()
    assert plt.get_fignums() == [] and fig.axes  # built, but not on pyplot: show() has nothing to draw
