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
# - compute a graph with named intermediates forward and backward by hand;
# - control the graph: `detach()`, `torch.no_grad()`, `is_leaf`, `retain_grad()`.
#
# **Time.** About 85 minutes (Task 1 6, Task 2 7, Task 3 18, Task 4 30, Task 5 9; the rest is
# reading, running and written answers), as `make minutes` estimates from what the lab asks. Not
# yet timed with students.
#
# **How answers are graded.** Hand-computed values need at least **4 significant digits**; angles
# are in radians. Grades are checked against what `torch.autograd` computes when your notebook is
# graded. Cells marked *manually graded* are read by your instructor.
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
# Tasks 1 and 4 use numbers made from your student id (from `AUTOGRAD_LABS_STUDENT`, set by
# `make lab STUDENT=<your id>`, or from JupyterHub; when graded, from your submission). If the
# cell below says it shows *practice numbers*, quit JupyterLab and start it again
# with `make lab STUDENT=<your id>`. Restarting the kernel is not enough: a kernel inherits
# the environment of the server that started it, so it would keep the old id.

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
# ## Task 4 — A graph with named intermediates, by hand
#
# f(x, y, z) = tanh(ln(1 + z · 2x / sin(y))). Give every intermediate a name:
#
# a = 2x, b = sin(y), c = a / b, d = 1 + z · c, e = ln(d), f = tanh(e).
#
# **Forward.** With your x, y, z (Task 4 under *Your numbers*; y in radians), compute `a`, `b`,
# `c`, `d`, `e` and `f`.

# %% nbgrader={"grade": false, "grade_id": "t4_forward_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# a, b, c, d, e and f for your x, y, z
### BEGIN SOLUTION
import math

a = 2 * mine["gx"]
b = math.sin(mine["gy"])
c = a / b
d = 1 + mine["gz"] * c
e = math.log(d)
f = math.tanh(e)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t4_forward", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "a", "b", "c", "d", "e", "f")

# %% [markdown]
# **Backward.** Each edge's local derivative can be written with values the forward pass
# already has. For tanh that takes one identity: tanh'(e) = 1 − tanh²(e) = 1 − f², a slope in
# terms of the node's *output*. Work out the other edges yourself from the rules you know (the
# logarithm, a product, a quotient with respect to each of its two parts, sine, and 2x), each
# written with forward values. A gradient is the sum, over every path from f to the input, of
# the product of the local derivatives along it. Here each input has exactly one path; get
# `df_dx`, `df_dy` and `df_dz`.

# %% nbgrader={"grade": false, "grade_id": "t4_gradients_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# df_dx, df_dy and df_dz for your x, y, z
### BEGIN SOLUTION
df_dd = (1 - f ** 2) / d
df_dx = df_dd * mine["gz"] / b * 2
df_dy = df_dd * mine["gz"] * (-a / b ** 2) * math.cos(mine["gy"])
df_dz = df_dd * c
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t4_gradients", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "df_dx", "df_dy", "df_dz")

# %% [markdown]
# **The same chain as a formula.** Numbers on your own x, y, z earn one point each above;
# autograd could fill them in. The derivation earns four: write `f_gradients(x, y, z)`, returning
# `(df_dx, df_dy, df_dz)` for *any* inputs where d > 0, by the steps you just took (the forward
# values, then the local derivatives multiplied along each path). Plain Python and `math` only:
# the grader runs this cell by itself, without torch, on inputs you never see, some with y above
# π where sin(y) is negative.

# %% nbgrader={"grade": false, "grade_id": "t4_formula_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
import math


def f_gradients(x, y, z):
    """(df/dx, df/dy, df/dz) of f = tanh(ln(1 + z · 2x / sin(y))), from the chain rule; `math` only."""
    ### BEGIN SOLUTION
    a = 2 * x
    b = math.sin(y)
    c = a / b
    d = 1 + z * c
    f = math.tanh(math.log(d))
    df_dc = (1 - f ** 2) / d * z
    return df_dc / b * 2, df_dc * (-a / b ** 2) * math.cos(y), (1 - f ** 2) / d * c
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t4_formula", "locked": true, "points": 16, "schema_version": 3, "solution": false, "task": false}
check.formula(globals(), "f_gradients")

# %% [markdown]
# Observe: autograd on the same graph, at x = 0.25, y = 0.3, z = 0.4 (below every student's
# range, so nobody's task). Put these numbers through your own steps above and compare: if your
# formulas agree with autograd here too, you trust them for a reason, not because of one number.

# %%
gx, gy, gz = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.25, 0.3, 0.4))
out_f = torch.tanh(torch.log(1 + gz * (2 * gx) / torch.sin(gy)))
out_f.backward()
print(f"f = {out_f.item():.6f}; df/dx = {gx.grad.item():.6f}, df/dy = {gy.grad.item():.6f}, "
      f"df/dz = {gz.grad.item():.6f}")
draw_graph(out_f)
plt.show()

# %% [markdown]
# **Fan-out: one input, two paths.** In f every input had one path to the output. Now let x feed
# two nodes: u = x · z and v = 3x, then g = u + v. A change in x moves g through u *and* through
# v, so the chain rule gives one product per path, and the products add:
# dg/dx = dg/du · du/dx + dg/dv · dv/dx. Autograd does the same: each path's contribution is
# added into `x.grad` while the backward pass runs. With your x and z from Task 4, compute
# `dg_dx` by hand.

# %% nbgrader={"grade": false, "grade_id": "t4_fan_out_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# dg_dx for your x and z
### BEGIN SOLUTION
dg_dx = 1 * mine["gz"] + 1 * 3
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t4_fan_out", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "dg_dx")

# %% [markdown]
# Observe, at x = 0.25 and z = 0.4 (outside every student's range): autograd's `x.grad` next to
# each path's product on its own. Neither path alone is the gradient; their sum is.

# %%
px = torch.tensor(0.25, dtype=torch.float64, requires_grad=True)
g = px * 0.4 + 3 * px
g.backward()
print(f"x.grad = {px.grad.item():g}; the path through u alone gives z = 0.4, through v alone 3")

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
# (1 − f², 1/d, −a/b², ...). Why does autograd work this way, and what does it cost?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_forward_values", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# Each local derivative depends on where the function is evaluated, and the forward pass has just
# computed exactly those values; reusing them means the backward pass recomputes nothing (tanh'
# from f needs no new exponential) and costs a small constant multiple of the forward pass (about
# twice, for a matrix product: one product for each input's gradient). The cost is memory:
# the graph must keep these saved tensors until backward runs, which is why a graph is freed after
# one backward and why `no_grad()` saves memory during evaluation.
# ### END SOLUTION

# %% [markdown]
# ## What you learned
# - Leaves you create with `requires_grad=True` receive `.grad`; plain data and integer tensors
#   do not, and gradients exist only for floating-point and complex dtypes.
# - `grad_fn` and `next_functions` are the graph; `AccumulateGrad` nodes are where leaf gradients
#   land. You can walk and draw it.
# - A gradient is a sum over the paths from the output to an input of the products of local
#   derivatives along them; those derivatives reuse forward values.
# - `detach()`, `torch.no_grad()` and `retain_grad()` decide what is recorded and what is kept.
