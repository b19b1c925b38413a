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
# # Lab 2 — Tensors, `requires_grad` and the autograd graph
#
# A tensor created with `requires_grad=True` is a *leaf* of a graph. Every operation on it
# produces a tensor that remembers, in `grad_fn`, which operation made it and where its inputs
# came from. That chain of `grad_fn` objects is the graph `backward()` walks. In this lab you
# look at the graph directly, walk it with your own code and differentiate one by hand.
#
# **You will learn to**
# - predict `.grad` of the leaves of a small expression, and which dtypes can require gradients;
# - walk `grad_fn` / `next_functions` and draw the graph of any tensor;
# - compute a small graph forward and backward by hand, and write the derivation as a formula;
# - control the graph: `detach()`, `torch.no_grad()`, `is_leaf`, `retain_grad()`.
#
# **Time.** About 80 minutes (Task 1 6, Task 2 7, Task 3 18, Task 4 23, Task 5 9; the rest is
# reading, running and written answers), as `make minutes` estimates from what the lab asks. Not
# yet timed with students.
#
# **How answers are graded.** Hand-computed values need at least **4 significant digits**.
# Grades are checked against what `torch.autograd` computes when your notebook is graded. Cells
# marked *manually graded* are read by your instructor.
#
# **What earns the points.** The numbers you work out by hand and your tables of predictions are
# for checking yourself: their checks answer at once, and together they carry at most a third of
# the autograded points. The formulas, the functions and the written answers are the assessment.
#
# **Formulas, not only numbers.** Autograd can fill in any number on your own values, so the
# derivation of Task 4 is also graded as a *formula*: a Python function of the inputs written as a
# closed form (assignments of arithmetic and `math` functions, one after another; no loops, lists
# or finite differences). The grader runs that cell on its own, without torch or the course kit,
# on inputs drawn anew for each submission, and names the mistake if the formula has one. Check
# your work with autograd as much as you like after answering; the derivation earns the points.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import matplotlib.pyplot as plt
import torch

from course.lab2 import check
from course.graphs import draw_graph

# %% [markdown]
# ## Your numbers
#
# Tasks 1 and 4 are graded on numbers made from your student id.
# Where the id comes from depends on where you work:
#
# - **On the course JupyterHub** it is your login, set for you.
# - **With the student kit on your own computer**, start JupyterLab as
#   `AUTOGRAD_LABS_STUDENT=<your id> jupyter lab`. Restarting the kernel does not change it (a
#   kernel inherits the environment of the server that started it): quit JupyterLab and start
#   it again.
# - **If your course grades on Gradescope**, use the id your instructor says Gradescope grades
#   you as.
#
# The cell below prints the id it used; if it says *practice numbers*, set your id before you
# start. When your notebook is graded, your answers are checked on the numbers of the id it is
# graded as, whatever this notebook used; where the two differ, your feedback says so.

# %% nbgrader={"grade": false, "grade_id": "my_numbers", "locked": true, "schema_version": 3, "solution": false, "task": false}
mine = check.my_numbers()

# %% [markdown]
# ## Task 1 — Who gets a gradient?
#
# Take y = w · x + b, where w and b are created with `requires_grad=True` and x is plain data.
# With the textbook x = 3, w = 4, b = 5 you get y = 17; before any backward pass `w.grad` is
# `None`; after `y.backward()`, `w.grad` is 3 (dy/dw = x) and `b.grad` is 1, while x, which
# never asked for a gradient, has none.
#
# **Predict** for your own x, w and b (Task 1 under *Your numbers*): `y_value`, and the values
# of `w_grad` and `b_grad` after `y.backward()`.

# %% nbgrader={"grade": false, "grade_id": "t1_linear_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# y_value, w_grad and b_grad for your x, w, b
### BEGIN SOLUTION
y_value = mine["w"] * mine["x"] + mine["b"]
w_grad = mine["x"]
b_grad = 1.0
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t1_linear", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "y_value", "w_grad", "b_grad")

# %% [markdown]
# Observe, on numbers no student gets (x = 2.5, w = −1.5, b = 0.5): work out by your rule what
# y, `w.grad` and `b.grad` should be, then run the cell.

# %%
x = torch.tensor(2.5)
w = torch.tensor(-1.5, requires_grad=True)
b = torch.tensor(0.5, requires_grad=True)
y = w * x + b
print("y =", y, "  w.grad before backward:", w.grad)
y.backward()
print("w.grad =", w.grad, "  b.grad =", b.grad, "  x.grad =", x.grad)

# %% [markdown]
# ## Task 2 — Which tensors may require gradients?
#
# Gradients are limits of small changes, so they only make sense where values can change by
# small amounts. For each dtype below, predict whether `torch.zeros(2, dtype=..., requires_grad=True)`
# is allowed (`True`) or raises an error (`False`). Fill in `can_require_grad`.

# %% nbgrader={"grade": false, "grade_id": "t2_dtypes_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
can_require_grad = {
    "torch.int64": ...,
    "torch.float32": ...,
    "torch.bool": ...,
    "torch.float64": ...,
    "torch.complex64": ...,
    "torch.uint8": ...,
}
### BEGIN SOLUTION
can_require_grad = {name: name.startswith(("torch.float", "torch.complex")) for name in can_require_grad}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t2_dtypes", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.table(globals(), "can_require_grad")

# %% [markdown]
# Observe the error message PyTorch gives for an integer tensor:

# %%
try:
    torch.tensor([1, 2, 3, 4], requires_grad=True)
except RuntimeError as error:
    print("RuntimeError:", error)
print(torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True))  # floats are fine: still 4 elements, shape (4,)

# %% [markdown]
# ## Task 3 — Walk the graph
#
# Build a = [1, 2, 3, 4] (requires grad), b = 2a, c = b + 5, d = c², out = d.sum(). Each result
# carries a `grad_fn`: `out.grad_fn` is a `SumBackward0` node. Its `next_functions` is a tuple of
# `(node, index)` pairs, one per input of the operation, leading to the nodes that made the
# inputs: `PowBackward0`, then `AddBackward0`, then `MulBackward0`, and finally an
# `AccumulateGrad` node, which is where the gradient of the leaf a is deposited. Inputs that need
# no gradient (the constant 5, say) appear as `None`.

# %%
a = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
out = ((2 * a + 5) ** 2).sum()
print(out.grad_fn, "→", out.grad_fn.next_functions)
draw_graph(out)
plt.show()

# %% [markdown]
# Write `graph_walk(t)`: starting from `t.grad_fn`, return the list of node class names
# (`type(node).__name__`) in **depth-first** order — a node, then everything reachable through
# its first entry of `next_functions`, then its second, and so on. Skip `None` entries, and list
# a node reached twice (a tensor used twice) only once. For `out` above the answer is
# `['SumBackward0', 'PowBackward0', 'AddBackward0', 'MulBackward0', 'AccumulateGrad']`. That
# graph is a chain, where any order of visiting looks the same, so the check below also walks
# `(torch.tanh(a * b) + k * torch.sin(a)).sum()`: it branches, reaches `a` by two paths and holds
# the constant `k`. The grader also walks graphs you have not seen.

# %% nbgrader={"grade": false, "grade_id": "t3_walk_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def graph_walk(t):
    """Names of the graph's nodes from t.grad_fn, depth first, each node once."""
    ### BEGIN SOLUTION
    seen, names = set(), []

    def visit(node):
        if node is None or node in seen:
            return
        seen.add(node)
        names.append(type(node).__name__)
        for child, _ in node.next_functions:
            visit(child)

    visit(t.grad_fn)
    return names
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t3_walk", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.function(globals(), "graph_walk")
### BEGIN HIDDEN TESTS
check.function(globals(), "graph_walk", hidden=GRADER_PROBES)
### END HIDDEN TESTS

# %% [markdown]
# By hand, dout/da = dout/dd · dd/dc · dc/db · db/da = 1 · 2c · 1 · 2 = 4(2a + 5), which is
# [28, 36, 44, 52] for a = [1, 2, 3, 4]. Each factor is a *local derivative*: the derivative of
# one node's output with respect to one of its inputs, the others held fixed, taken at the
# values the forward pass computed (dd/dc = 2c needs c). The chain rule multiplies the local
# derivatives along the path from the output to the input. Check it against autograd:

# %%
out.backward()
print("autograd:", a.grad, "  by hand:", 4 * (2 * a.detach() + 5))

# %% [markdown]
# ### Draw it before you run it
#
# Reading a graph off code is what the rest of the course asks of you, so draw two before
# autograd does. `a` is the tensor above and `b = [0.5, −1, 2, 1]`, both requiring gradients;
# `k = [1, 1, 2, 2]` does not. `a.detach()` is `a`'s values cut off from its history: like `k`,
# it needs no gradient. On paper, draw each graph with one node per operation whose result
# needs a gradient, an `AccumulateGrad` node per leaf that needs one, and an edge from each node
# to the nodes that made its inputs. Then write the list `graph_walk` would return for it, without
# running anything. It carries one point: `graph_walk` could answer it, so the practice is the drawing.

# %% nbgrader={"grade": false, "grade_id": "t3_draw_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
predicted_walks = {
    "(a * b + torch.exp(a)).sum()": ...,
    "(a.detach() * b + k * torch.sin(a)).mean()": ...,
}
### BEGIN SOLUTION
predicted_walks = {
    "(a * b + torch.exp(a)).sum()":
        ["SumBackward0", "AddBackward0", "MulBackward0", "AccumulateGrad", "AccumulateGrad", "ExpBackward0"],
    "(a.detach() * b + k * torch.sin(a)).mean()":
        ["MeanBackward0", "AddBackward0", "MulBackward0", "AccumulateGrad", "MulBackward0", "SinBackward0",
         "AccumulateGrad"],
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t3_draw", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.table(globals(), "predicted_walks")

# %% [markdown]
# Now observe: your walk and autograd's graph side by side. In the second drawing, `a.detach()`
# and `k` enter their multiplications as nothing at all: no node, no edge.

# %%
b = torch.tensor([0.5, -1.0, 2.0, 1.0], requires_grad=True)
k = torch.tensor([1.0, 1.0, 2.0, 2.0])
for text, drawn in predicted_walks.items():
    graph = eval(text)
    print(f"{text}\n  graph_walk: {graph_walk(graph)}\n  you drew:   {drawn}")
    draw_graph(graph)
    plt.show()

# %% [markdown]
# ## Task 4 — One weight, one squared error, by hand
#
# Training walks the graph backwards from a loss to a weight, one local derivative per edge. The
# smallest such graph: the model predicts ŷ = x · w and is scored with the squared error. Name
# every intermediate result and the graph has three nodes after the inputs:
#
# ```
#  x ─┐
#     (×)── ŷ ──(−)── s ──(²)── loss
#  w ─┘          │
#          y ────┘
# ```
#
# so ŷ = x · w, s = ŷ − y and loss = s². On the textbook numbers x = 4, y = 1, w = 0.5 that is
# ŷ = 2, s = 1 and loss = 1. Your numbers are under *Your numbers* (Task 4).
#
# **Forward.** Work out, by hand, the value at every node for your x, y and w. Set `yhat`, `s`
# and `loss`.

# %% nbgrader={"grade": false, "grade_id": "t4_forward_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# yhat, s and loss for your x, y, w
### BEGIN SOLUTION
yhat = mine["x4"] * mine["w4"]
s = yhat - mine["y4"]
loss = s ** 2
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t4_forward", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "yhat", "s", "loss")

# %% [markdown]
# **Backward.** Write down the local derivative of each edge on the path from `loss` back to `w`
# (Task 3 defined the term), evaluate it at your forward values, then multiply them, as the
# chain rule says:
#
# dloss/dw = dloss/ds · ds/dŷ · dŷ/dw
#
# Set `dloss_ds`, `ds_dyhat`, `dyhat_dw` and `dloss_dw`.

# %% nbgrader={"grade": false, "grade_id": "t4_backward_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# dloss_ds, ds_dyhat, dyhat_dw and dloss_dw for your x, y, w
### BEGIN SOLUTION
dloss_ds = 2 * s
ds_dyhat = 1.0
dyhat_dw = mine["x4"]
dloss_dw = dloss_ds * ds_dyhat * dyhat_dw
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t4_backward", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "dloss_ds", "ds_dyhat", "dyhat_dw", "dloss_dw")

# %% [markdown]
# **The derivation as a formula.** Numbers on your own x, y, w earn one point each above;
# autograd could fill them in. The derivation earns fourteen: write `loss_and_gradient(x, y, w)`,
# returning the pair `(loss, dloss/dw)` for *any* x, y and w, by the steps you just took (the
# forward values first, then the product of the local derivatives). Plain Python and `math` only:
# the grader runs this cell by itself, without torch, on inputs you never see, with the
# prediction above the target and below it.

# %% nbgrader={"grade": false, "grade_id": "t4_formula_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
import math


def loss_and_gradient(x, y, w):
    """(loss, dloss/dw) of loss = (x·w − y)², from the chain rule; `math` only."""
    ### BEGIN SOLUTION
    s = x * w - y
    return s ** 2, 2 * s * x
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t4_formula", "locked": true, "points": 14, "schema_version": 3, "solution": false, "task": false}
check.formula(globals(), "loss_and_gradient")

# %% [markdown]
# Observe, on the textbook numbers (nobody's task): autograd's graph of the loss and its
# gradient. Before running it, say which sign dloss/dw takes: ŷ = 2 is above y = 1, so should
# w grow or shrink?

# %%
wt = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
loss_t = (4 * wt - 1) ** 2
loss_t.backward()
print(f"loss = {loss_t.item():g}, dloss/dw = {wt.grad.item():g}")
draw_graph(loss_t)
plt.show()

# %% [markdown]
# ## Task 5 — Controlling the graph
#
# `requires_grad` spreads: anything computed from a tensor that requires gradients requires them
# too and joins the graph. Three tools stop that: `t.detach()` returns the same values cut off
# from the graph (use it before plotting or storing a tensor); inside `with torch.no_grad():`
# nothing is recorded (use it for parameter updates and evaluation); and `is_leaf` tells apart
# tensors you created from tensors computed from them. Autograd fills `.grad` only for leaves,
# unless you call `retain_grad()` on an intermediate before `backward()`.
#
# With `w = torch.tensor(2.0, requires_grad=True)` and `h = w * 3`, predict whether each
# statement below is `True` or `False`, and fill in `statements`.

# %% nbgrader={"grade": false, "grade_id": "t5_statements_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
statements = {
    "w.is_leaf": ...,
    "h.is_leaf": ...,
    "h.requires_grad": ...,
    "h.detach().requires_grad": ...,
    "(w * 3).requires_grad inside torch.no_grad()": ...,
    "h.grad is None after h.sum().backward()": ...,
    "h.grad is None after h.retain_grad(); h.sum().backward()": ...,
}
### BEGIN SOLUTION
statements = {
    "w.is_leaf": True,
    "h.is_leaf": False,
    "h.requires_grad": True,
    "h.detach().requires_grad": False,
    "(w * 3).requires_grad inside torch.no_grad()": False,
    "h.grad is None after h.sum().backward()": True,
    "h.grad is None after h.retain_grad(); h.sum().backward()": False,
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t5_statements", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.table(globals(), "statements")

# %% [markdown]
# Observe. Reading `.grad` of a non-leaf that did not call `retain_grad()` gives `None` *and*
# a UserWarning, PyTorch's hint that you probably meant to. The cell catches the warning to print
# it (uncaught, it would go to stderr), then asks again with `retain_grad()`.

# %%
import warnings

w = torch.tensor(2.0, requires_grad=True)
h = w * 3
h.sum().backward()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    print("without retain_grad(): h.grad =", h.grad)
print("the warning:", caught[0].category.__name__, "-", str(caught[0].message).split(". ")[0])
h = w * 3
h.retain_grad()
h.sum().backward()
print("with retain_grad():    h.grad =", h.grad, " (w.grad =", w.grad, "after two backward calls)")
print("w.is_leaf:", w.is_leaf, " h.is_leaf:", h.is_leaf)
with torch.no_grad():
    print("inside no_grad, (w * 3).requires_grad =", (w * 3).requires_grad)

# %% [markdown]
# ## Written answers (manually graded)
#
# **Q1.** You train a model and want to plot its predictions with matplotlib, and to keep a list
# of the loss after every step. Why should you call `.detach()` (or `.item()`) on those tensors
# first, and what can go wrong if you do not?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_detach", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# Predictions and losses computed from parameters require gradients, so each one holds its whole
# graph, with every saved intermediate tensor. Keeping a list of them keeps all those graphs
# alive: memory grows with every step. Plotting libraries call `.numpy()`, which refuses tensors
# that require grad. `.detach()` gives the same values without the graph (and `.item()` a plain
# number), so nothing is kept alive and nothing is accidentally backpropagated through.
# ### END SOLUTION

# %% [markdown]
# **Q2.** In Task 4, every local derivative was written with values from the forward pass
# (dloss/ds = 2s needs s, dŷ/dw = x needs the input x). Why does autograd work this way, and what
# does it cost?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_forward_values", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# Each local derivative depends on where the function is evaluated, and the forward pass has just
# computed exactly those values; reusing them means the backward pass recomputes nothing (2s
# reads s; it does not run the model again) and costs a small constant multiple of the forward
# pass (about twice, for a matrix product: one product for each input's gradient). The cost is memory:
# the graph must keep these saved tensors until backward runs, which is why a graph is freed after
# one backward and why `no_grad()` saves memory during evaluation.
# ### END SOLUTION

# %% [markdown]
# ## What you learned
# - Leaves you create with `requires_grad=True` receive `.grad`; plain data and integer tensors
#   do not, and gradients exist only for floating-point and complex dtypes.
# - `grad_fn` and `next_functions` are the graph; `AccumulateGrad` nodes are where leaf gradients
#   land. You can walk and draw it.
# - A gradient is the product of the local derivatives along the path from the output to an
#   input (the chain rule); those derivatives reuse forward values.
# - `detach()`, `torch.no_grad()` and `retain_grad()` decide what is recorded and what is kept.
