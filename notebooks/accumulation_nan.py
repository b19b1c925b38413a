# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # How a missing `zero_grad()` ends in `nan`
#
# Lab 5's network (Linear(2, 2) → ReLU → Linear(2, 1)) on the thermometer data, trained with
# SGD (lr = 0.001) from the same start twice: once clearing the gradients every step and once
# never clearing them. Alongside the loss we plot the size of the gradient the optimizer actually
# uses, the norm of `.grad` over all parameters, which is where the story happens.

# %%
import math

import matplotlib.pyplot as plt
import torch
from torch import nn

from course.lab5 import seeded_model
from course.data import thermometer
from course.plots import LOG_FLOOR


def run(zero_grad, steps=400, seed=0):
    model = seeded_model(seed)
    X, y = thermometer()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    losses, grad_norms = [], []
    for _ in range(steps):
        if zero_grad:
            optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(X).squeeze(1), y)
        loss.backward()
        grad_norms.append(math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters())))
        optimizer.step()
        losses.append(loss.item())
    return losses, grad_norms


fig, (ax_loss, ax_grad) = plt.subplots(1, 2, figsize=(11, 4))
for zero_grad in (True, False):
    losses, norms = run(zero_grad)
    label = f"zero_grad={zero_grad}"
    ax_loss.semilogy([max(v, LOG_FLOOR) for v in losses], label=label)
    ax_grad.semilogy([max(v, LOG_FLOOR) for v in norms], label=label)
    first_nan = next((k for k, v in enumerate(losses) if math.isnan(v)), None)
    print(f"{label}: first nan at step {first_nan}")
ax_loss.set(xlabel="step", ylabel="loss (log scale)", title="loss")
ax_grad.set(xlabel="step", ylabel="norm of .grad (log scale)", title="the gradient the optimizer uses")
for ax in (ax_loss, ax_grad):
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# With `zero_grad()` the gradient the optimizer uses stays bounded: it zig-zags around 10³ while
# SGD bounces across a narrow valley, and the loss drifts down (it reaches about 26 after 5,000
# steps). Without it, `.grad` is the running sum of every gradient so far. It first swings with
# the overshoots, then each overshoot feeds a larger sum: the sum runs away by about ten
# orders of magnitude, the weights overflow, arithmetic such as inf − inf produces `nan` (near step
# 200 here) and the curves stop. Nothing was wrong with the data or the model: the only difference is
# one line.
