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
# # Learning-rate explorer
#
# Lab 1's problem: find A + B = 10 by minimising (A + B − 10)² from A = B = 0. Each update
# multiplies the error u = A + B − 10 by 1 − 4·lr. Move the slider and watch the four regimes:
# monotone (lr < 0.25), one step (lr = 0.25), oscillating (0.25 < lr < 0.5) and diverging
# (lr > 0.5). Ask the class to call the regime before each move.

# %%
import ipywidgets as widgets
import matplotlib.pyplot as plt


def show(lr=0.1, epochs=15):
    """Plot A + B and the loss per epoch for one learning rate, from A = B = 0.

    Each update multiplies u = A + B − 10 by 1 − 4·lr (Lab 1 derives it, and its tests check it
    against autograd runs), so u after k updates is −10 · (1 − 4·lr)^k.
    """
    u = [-10.0 * (1 - 4 * lr) ** k for k in range(epochs + 1)]
    sums = [10 + v for v in u[1:]]
    losses = [v * v for v in u[:-1]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.plot(range(1, epochs + 1), sums, marker="o")
    left.axhline(10, color="grey", linestyle="--")
    left.set(xlabel="epoch", ylabel="A + B", title=f"lr = {lr:.3f}: factor 1 − 4·lr = {1 - 4 * lr:+.2f}")
    right.semilogy(range(epochs), [max(v, 1e-16) for v in losses], marker="o")
    right.set(xlabel="epoch", ylabel="loss (log scale)", title="loss before each update")
    fig.tight_layout()
    plt.show()


# %% [markdown]
# Run the cell below in JupyterLab to get the sliders. (Executed without a browser, it draws the
# plot once for the default values.)

# %%
widgets.interact(show, lr=widgets.FloatSlider(value=0.1, min=0.005, max=0.6, step=0.005, readout_format=".3f"),
                 epochs=widgets.IntSlider(value=15, min=2, max=60))

# %% [markdown]
# The four regimes side by side, for the record:

# %%
for lr in (0.1, 0.25, 0.4, 0.55):
    show(lr, epochs=12)
