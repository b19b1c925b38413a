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
# # The order in which backward runs
#
# For Lab 6, before students write `backward()`: PyTorch's own engine, watched from outside.
# A hook on a tensor (`tensor.register_hook`) is called when that tensor's gradient is complete,
# so the order in which hooks fire is the order in which autograd finishes each node. Ask the
# class to predict the order, and each gradient, before running a cell.

# %%
import matplotlib.pyplot as plt
import torch

from course.graphs import draw_graph


def leaf(value):
    return torch.tensor(value, dtype=torch.float64, requires_grad=True)


# %% [markdown]
# ## A shared node's gradient arrives once, complete
# t = a·b is used twice, by the square and by the sum: u = t² + t, and out = u·a. Its hook fires
# once, after both users have added their share: dout/dt = a·(2t + 1). With a = 2, b = −1:
# t = −2, so dout/dt = 2·(−3) = −6. An engine that ran t's rule once per path would pass on
# a partial gradient first and the full one again.

# %%
a, b = leaf(2.0), leaf(-1.0)
t = a * b
u = t * t + t
out = u * a
arrivals = []
for name, tensor in {"out": out, "u": u, "t": t}.items():
    tensor.register_hook(lambda grad, name=name: arrivals.append(f"d out/d {name} = {grad.item():g}"))
out.backward()
print("\n".join(arrivals))
print(f"a.grad = {a.grad.item():g} (u directly, plus the path through t: b·a·(2t + 1)), b.grad = {b.grad.item():g}")
draw_graph(out)
plt.show()

# %% [markdown]
# ## Every order that finishes a node's users first gives the same gradients
# Autograd does not run the graph in the order it was built, and it need not: any order in
# which each node comes after every node that uses it (a topological order, reversed) gives the
# same sums. Here the two uses of t are built in the other order: t's gradient still arrives
# once, complete, and every gradient is the same.

# %%
for build in ("square first", "sum first"):
    a, b = leaf(2.0), leaf(-1.0)
    t = a * b
    u = t * t + t if build == "square first" else t + t * t
    out = u * a
    arrivals = []
    t.register_hook(lambda grad: arrivals.append(f"t: {grad.item():g}"))
    out.backward()
    print(f"{build}: {arrivals}, a.grad = {a.grad.item():g}, b.grad = {b.grad.item():g}")

# %% [markdown]
# ## Running backward twice adds, as `+=` does
# The leaves' `.grad` is a sum: a second backward over the same graph (kept with
# `retain_graph=True`) adds the same gradients again. This is why a training loop resets them,
# and why a rule in an engine writes `+=`: within one backward, the shares of a node's users are
# added the same way.

# %%
a, b = leaf(2.0), leaf(-1.0)
out = (a * b + 3.0) * a
out.backward(retain_graph=True)
first = a.grad.item()
out.backward()
print(f"after one backward: a.grad = {first:g}; after two: a.grad = {a.grad.item():g}")
