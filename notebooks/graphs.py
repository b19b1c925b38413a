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
# # Drawing the autograd graph of any tensor
#
# Every tensor computed from tensors that require gradients has a `grad_fn`: the node of the
# graph that made it. `course.graphs.draw_graph` follows `grad_fn.next_functions` down to the
# leaves and draws what it finds, with matplotlib only (no graphviz needed). Use it live: change
# an expression, run the cell, and ask the class what the new graph will look like first.

# %%
import matplotlib.pyplot as plt
import torch
from torch import nn

from course.graphs import draw_graph

# %% [markdown]
# ## A chain
# b = 2a, c = b + 5, d = c², out = d.sum(): one node per operation, and an `AccumulateGrad`
# node where the gradient of the leaf a is stored. The constant 5 needs no gradient, so it has no
# node.

# %%
a = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
draw_graph(((2 * a + 5) ** 2).sum())
plt.show()

# %% [markdown]
# ## A tensor used twice
# s = exp(a) is both inputs of the product s · s: `ExpBackward0` appears twice in the product's
# `next_functions` (the drawing shows one arrow). The graph is still acyclic, and backward adds
# the two contributions when it reaches s.

# %%
s = a.exp()
draw_graph((s * s).sum())
plt.show()

# %% [markdown]
# ## Lab 4's network
# m1 = x1·w1, r = ReLU(m1), m2 = r·w2, ŷ = σ(m2), loss = (ŷ − y)². Two leaves, two
# `AccumulateGrad` nodes; x1 and y are data and do not appear.

# %%
w1 = torch.tensor(0.5, requires_grad=True)
w2 = torch.tensor(0.2, requires_grad=True)
loss = (torch.sigmoid(torch.relu(4.0 * w1) * w2) - 1.0) ** 2
draw_graph(loss)
plt.show()

# %% [markdown]
# ## A layer
# Each `nn.Linear` becomes one `AddmmBackward0` node (a matrix product plus the bias) with the
# bias as a leaf and the weight behind a `TBackward0` node, because the layer multiplies by the
# transposed weight.

# %%
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
draw_graph(model(torch.randn(4, 3)).pow(2).mean())
plt.show()
