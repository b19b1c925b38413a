"""Plots the labs show; each returns its matplotlib Figure.

While nbgrader autogrades, the figures are made off pyplot and never laid out, so the
notebook's `plt.show()` renders nothing: no score depends on a figure, and drawing one cost
more than a lab's checks. The student saw every plot while working.
"""

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from .identity import autograding

# A loss of exactly 0 cannot sit on a log axis; draw it at this floor instead.
LOG_FLOOR = 1e-16


def new_figure(ncols: int = 1, figsize=(6, 3.5)):
    """A figure and its axes: on pyplot while a student works, off it while autograding."""
    if autograding():
        fig = Figure(figsize=figsize)
        return fig, fig.subplots(1, ncols)
    return plt.subplots(1, ncols, figsize=figsize)


def finish(fig):
    """Lay the figure out for display (nothing to do while autograding: it is never shown)."""
    if not autograding():
        fig.tight_layout()
    return fig


def plot_training(ws, losses, target_w=None, title="Gradient descent on w"):
    """Loss (log scale) and w against the step number, side by side."""
    fig, (ax_loss, ax_w) = new_figure(2, figsize=(10, 3.5))
    steps = range(len(losses))
    ax_loss.semilogy(steps, [max(v, LOG_FLOOR) for v in losses], marker=".")
    ax_loss.set(xlabel="step", ylabel="loss (log scale)", title="loss")
    ax_w.plot(steps, ws, marker=".", label="w")
    if target_w is not None:
        ax_w.axhline(target_w, color="grey", linestyle="--", label=f"w = {target_w:g}")
    ax_w.set(xlabel="step (w after its update)", ylabel="w", title="w")
    ax_w.legend()
    fig.suptitle(title)
    return finish(fig)


def plot_sigmoid_derivatives(sigmoid_grad=None, lo=-4.0, hi=4.0):
    """σ'(z) by autograd, the mistaken z(1 − z), and optionally a student's sigmoid_grad."""
    z = torch.linspace(lo, hi, 201, dtype=torch.float64, requires_grad=True)
    torch.sigmoid(z).sum().backward()
    zs = z.detach()
    fig, ax = new_figure(figsize=(6, 3.5))
    ax.plot(zs, z.grad, label="σ'(z) by autograd", linewidth=3)
    ax.plot(zs, zs * (1 - zs), "--", label="z·(1 − z)  (the slip)")
    if sigmoid_grad is not None:
        ax.plot(zs, sigmoid_grad(zs), ":", label="your sigmoid_grad", linewidth=2)
    ax.set(xlabel="z", ylim=(-0.5, 0.35), title="The sigmoid's slope and a look-alike")
    ax.legend()
    return finish(fig)


def plot_loss_curves(curves, title="Loss per epoch"):
    """Several loss curves (label → list of losses) on one log-scale axis."""
    fig, ax = new_figure(figsize=(7, 4))
    for label, losses in curves.items():
        ax.semilogy(range(len(losses)), [max(v, LOG_FLOOR) for v in losses], marker=".", label=str(label))
    ax.set(xlabel="epoch", ylabel="loss (log scale)", title=title)
    ax.legend()
    return finish(fig)
