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
# # Lab 4 — Computation graphs and backpropagation by hand
#
# Every time PyTorch evaluates an expression on tensors that require gradients, it records a
# **computation graph**: one node per operation, with the values each operation will need later.
# `loss.backward()` walks that graph from the loss back to the weights and multiplies local
# derivatives together — the chain rule, applied mechanically.
#
# In this lab you do that walk yourself, on paper, and compare each step with autograd.
#
# **You will learn to**
# - follow a graph with named intermediates, node by node, and compute every node's value (the forward pass);
# - write the local derivative of every edge and chain them into a gradient (the backward pass),
#   adding the products of the paths when an input reaches the output by more than one;
# - see why the sigmoid's derivative is ŷ(1 − ŷ) and why backprop can reuse forward values.
#
# Lab 4b turns these passes into code: autograd checks, training, vectors and numerical checks.
#
# **Time.** About 85 minutes (Task 1 30, Task 2 38; the rest is reading, running and written
# answers), as `make minutes` estimates from what the lab asks. Not yet timed with students.
#
# **How answers are graded.** Hand-computed values are numbers you type in. Give each to at
# least **4 significant digits** (for example `0.2403` or `-0.3857`); arithmetic such as
# `2 * 0.25` is fine too; angles are in radians. Every grade is checked against values that
# `torch.autograd` computes when your notebook is graded. Cells marked *manually graded* are read
# by your instructor.
#
# **What earns the points.** The numbers you work out by hand and your tables of predictions are
# for checking yourself: their checks answer at once, and together they carry at most a third of
# the autograded points. The formulas and the written answers are the assessment.
#
# **Formulas, not only numbers.** Autograd can fill in any number on your own values, so each
# derivation is also graded as a *formula*: a small Python function of the inputs written as a
# closed form (assignments of arithmetic and `math` functions, `if` for a piecewise part; no loops,
# lists or finite differences). The grader runs that cell on its own, without torch or the course
# kit, on inputs drawn anew for each submission, and names the mistake if the formula has one. Use autograd as
# much as you like to *check* your work after you have answered; what earns the points is the
# derivation.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import matplotlib.pyplot as plt
import torch

from course.graphs import draw_graph
from course.lab4 import check

# %% [markdown]
# ## Your numbers
#
# Tasks 1 and 2 are graded on numbers that belong to you alone, made from your student id.
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
# ## Task 1 — A graph with named intermediates
#
# Lab 2's Task 4 walked a three-node graph backwards from a loss to a weight. Real graphs are
# longer, and an input can reach the output by more than one path. Take
# f(x, y, z) = tanh(ln(1 + z · 2x / sin(y))) and give every intermediate a name:
#
# a = 2x, b = sin(y), c = a / b, d = 1 + z · c, e = ln(d), f = tanh(e).
#
# **Forward.** With your x, y, z (Task 1 under *Your numbers*; y in radians), compute `a`, `b`,
# `c`, `d`, `e` and `f`.

# %% nbgrader={"grade": false, "grade_id": "t1_forward_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
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

# %% nbgrader={"grade": true, "grade_id": "t1_forward", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "a", "b", "c", "d", "e", "f")

# %% [markdown]
# **Backward.** Each edge's local derivative can be written with values the forward pass
# already has. For tanh that takes one identity: tanh'(e) = 1 − tanh²(e) = 1 − f², a slope in
# terms of the node's *output*. Work out the other edges yourself from the rules you know (the
# logarithm, a product, a quotient with respect to each of its two parts, sine, and 2x), each
# written with forward values. A gradient is the sum, over every path from f to the input, of
# the product of the local derivatives along it. Here each input has exactly one path; get
# `df_dx`, `df_dy` and `df_dz`.

# %% nbgrader={"grade": false, "grade_id": "t1_gradients_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# df_dx, df_dy and df_dz for your x, y, z
### BEGIN SOLUTION
df_dd = (1 - f ** 2) / d
df_dx = df_dd * mine["gz"] / b * 2
df_dy = df_dd * mine["gz"] * (-a / b ** 2) * math.cos(mine["gy"])
df_dz = df_dd * c
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t1_gradients", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "df_dx", "df_dy", "df_dz")

# %% [markdown]
# **The same chain as a formula.** Numbers on your own x, y, z earn one point each above;
# autograd could fill them in. The derivation earns eight: write `f_gradients(x, y, z)`, returning
# `(df_dx, df_dy, df_dz)` for *any* inputs where d > 0, by the steps you just took (the forward
# values, then the local derivatives multiplied along each path). Plain Python and `math` only:
# the grader runs this cell by itself, without torch, on inputs you never see, some with y above
# π where sin(y) is negative.

# %% nbgrader={"grade": false, "grade_id": "t1_formula_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
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


# %% nbgrader={"grade": true, "grade_id": "t1_formula", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
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
# added into `x.grad` while the backward pass runs. With your x and z from Task 1, compute
# `dg_dx` by hand.

# %% nbgrader={"grade": false, "grade_id": "t1_two_paths_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# dg_dx for your x and z
### BEGIN SOLUTION
dg_dx = 1 * mine["gz"] + 1 * 3
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t1_two_paths", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
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
# ## Task 2 — A hidden ReLU unit and a sigmoid output
#
# Now the input goes through a hidden unit with a ReLU and then an output unit with a sigmoid,
# σ(z) = 1 / (1 + e^(−z)):
#
# ```
#  x1 ─┐               w2 ─┐
#      (×)── m1 ──(ReLU)── r ──(×)── m2 ──(σ)── ŷ ──(−)── s ──(²)── loss
#  w1 ─┘                                             │
#                                              y ────┘
# ```
#
# m1 = x1 · w1, r = ReLU(m1) = max(m1, 0), m2 = r · w2, ŷ = σ(m2), s = ŷ − y, loss = s².
#
# ### The local derivatives you need
# - ReLU: slope 1 where its input is positive, 0 elsewhere (PyTorch uses 0 at exactly 0).
# - Sigmoid: σ'(z) = σ(z) · (1 − σ(z)). At the node, σ(m2) is ŷ, so **dŷ/dm2 = ŷ(1 − ŷ)** —
#   a value the forward pass already computed. That reuse is what makes backprop cheap.
#
# A slip to watch for: σ' is often written as "a(1 − a)" with a standing for the sigmoid's
# *output*. Put the input in its place and you get m2(1 − m2), which is a different function.
# The classic textbook numbers (x1 = 4, w1 = 0.5, w2 = 0.2, y = 1) hide the slip: there
# m2 = 0.4, and the wrong formula gives 0.24 against the right 0.2403. Your numbers do not hide
# it, and the grader can tell the two apart.

# %% [markdown]
# ### 2a. Forward pass on your numbers
# Use the numbers printed under *Your numbers* (Task 2; they are also in the dictionary `mine`).
# Set `m1`, `r`, `m2`, `yhat`, `s` and `loss`.

# %% nbgrader={"grade": false, "grade_id": "t2_forward_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# m1, r, m2, yhat, s and loss for your numbers
### BEGIN SOLUTION
import math

m1 = mine["x1"] * mine["w1"]
r = max(m1, 0.0)
m2 = r * mine["w2"]
yhat = 1 / (1 + math.exp(-m2))
s = yhat - mine["y"]
loss = s ** 2
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t2_forward", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "m1", "r", "m2", "yhat", "s", "loss")

# %% [markdown]
# ### 2b. Local derivatives on your numbers
# Evaluate each edge's local derivative at your forward values: `dloss_ds`, `ds_dyhat`,
# `dyhat_dm2`, `dm2_dw2`, `dm2_dr`, `dr_dm1` and `dm1_dw1`.

# %% nbgrader={"grade": false, "grade_id": "t2_local_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# the seven local derivatives for your numbers
### BEGIN SOLUTION
dloss_ds = 2 * s
ds_dyhat = 1.0
dyhat_dm2 = yhat * (1 - yhat)
dm2_dw2 = r
dm2_dr = mine["w2"]
dr_dm1 = 1.0 if m1 > 0 else 0.0
dm1_dw1 = mine["x1"]
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t2_local", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "dloss_ds", "ds_dyhat", "dyhat_dm2", "dm2_dw2", "dm2_dr", "dr_dm1", "dm1_dw1")

# %% [markdown]
# ### 2c. Chain them
# dloss/dw2 follows the path loss → s → ŷ → m2 → w2. dloss/dw1 leaves that path at m2 and
# continues through r and m1: loss → s → ŷ → m2 → r → m1 → w1. The two paths share their first
# four nodes, so they share their first three factors, dloss/ds · ds/dŷ · dŷ/dm2 = dloss/dm2:
# backprop computes dloss/dm2 once and hands it on to both.
# Set `dloss_dw1` and `dloss_dw2` (this lab always puts w1 first, as 2d's formula returns them).

# %% nbgrader={"grade": false, "grade_id": "t2_gradients_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# dloss_dw1 and dloss_dw2 for your numbers
### BEGIN SOLUTION
dloss_dm2 = dloss_ds * ds_dyhat * dyhat_dm2
dloss_dw1 = dloss_dm2 * dm2_dr * dr_dm1 * dm1_dw1
dloss_dw2 = dloss_dm2 * dm2_dw2
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t2_gradients", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "dloss_dw1", "dloss_dw2")

# %% [markdown]
# ### 2d. The chain as a formula
# Write `gradients(x1, w1, w2, y)`, returning `(dloss/dw1, dloss/dw2)` for any inputs: run the
# forward pass inside the function, then multiply 2b's local derivatives along each weight's
# path, as in 2c. Your own numbers keep the ReLU switched on; the grader's inputs do not, so
# the ReLU's slope must follow the sign of m1 (0 at exactly 0, as PyTorch does). Plain Python and
# `math` only.

# %% nbgrader={"grade": false, "grade_id": "t2_formula_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
import math


def gradients(x1, w1, w2, y):
    """(dloss/dw1, dloss/dw2) of Task 2's network at these inputs, from the chain rule; `math` only."""
    ### BEGIN SOLUTION
    m1 = x1 * w1
    r = max(m1, 0.0)
    m2 = r * w2
    yhat = 1 / (1 + math.exp(-m2))
    dloss_dm2 = 2 * (yhat - y) * yhat * (1 - yhat)
    relu_slope = 1.0 if m1 > 0 else 0.0
    return dloss_dm2 * w2 * relu_slope * x1, dloss_dm2 * r
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t2_formula", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
check.formula(globals(), "gradients")

# %% [markdown]
# ### Observe: the whole graph by autograd
# Here is the graph on the textbook numbers (x1 = 4, w1 = 0.5, w2 = 0.2, y = 1), built by
# autograd; put them through your own steps above and compare. `retain_grad()` asks PyTorch to
# keep the gradient of an intermediate node, which it otherwise discards. Before running it,
# predict the sign of dloss/dw2: the output ŷ is below the target y = 1, so should w2 grow or
# shrink?

# %%
def show_graph(x1, w1, w2, y):
    """Print every node value and gradient of the Task 2 graph, computed by autograd."""
    w1 = torch.tensor(float(w1), requires_grad=True)
    w2 = torch.tensor(float(w2), requires_grad=True)
    m1 = x1 * w1
    r = torch.relu(m1)
    m2 = r * w2
    yhat = torch.sigmoid(m2)
    s = yhat - y
    loss = s ** 2
    nodes = {"m1": m1, "r": r, "m2": m2, "yhat": yhat, "s": s, "loss": loss}
    for node in nodes.values():
        node.retain_grad()
    loss.backward()
    for name, node in nodes.items():
        print(f"{name:>4} = {node.item():+.6f}    dloss/d{name} = {node.grad.item():+.6f}")
    print(f"dloss/dw1 = {w1.grad.item():+.6f},  dloss/dw2 = {w2.grad.item():+.6f}")


show_graph(x1=4, w1=0.5, w2=0.2, y=1)

# %% [markdown]
# dloss/dw2 is negative, so gradient descent *increases* w2, which raises m2 and pushes ŷ
# towards 1. Notice also that dloss/dm1 equals dloss/dr: the ReLU is active, so it passes the
# gradient through unchanged. **Predict again:** with the target y = 0 instead, ŷ ≈ 0.6 is
# above it. Which signs do dloss/dw1 and dloss/dw2 take now?

# %%
show_graph(x1=4, w1=0.5, w2=0.2, y=0)

# %% [markdown]
# ## Written answers (manually graded)
#
# **Q1.** Lab 2 asked why backward reads values the forward pass left behind. Here dŷ/dm2 =
# ŷ(1 − ŷ) needs only the sigmoid's *output*, and the ReLU's slope can be read off its output
# r as well as off m1. Build Task 2's graph on the textbook numbers and look at what each node
# keeps: the attributes of `yhat.grad_fn`, `r.grad_fn` and `m2.grad_fn` whose names start with
# `_saved`. What does each keep, and why is that enough for its backward? Then use Lab 3's
# `exp` trap to say what would happen if you changed ŷ or r in place before calling backward.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_sigmoid_reuse", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# `SigmoidBackward0` keeps `_saved_result`, its output ŷ: σ'(m2) = ŷ(1 − ŷ), so m2 itself is not
# needed. `ReluBackward0` keeps `_saved_result` too, r: the slope is 1 where r > 0 and 0 elsewhere,
# which r tells as well as m1 does. `MulBackward0` (m2 = r · w2) keeps both factors,
# `_saved_self` and `_saved_other`, because each factor's gradient is the other one. Since the
# sigmoid and ReLU nodes hold their outputs, changing ŷ or r in place before backward changes a
# saved value: autograd's version counter notices, and backward refuses ("modified by an inplace
# operation"), exactly as with y = x.exp(); y.add_(1) in Lab 3.
# ### END SOLUTION

# %% [markdown]
# **Q2.** Suppose w1 were negative, so that m1 < 0 for this input. What would dloss/dw1 and
# dloss/dw2 be, and what would that mean for training this hidden unit by gradient descent?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_dead_relu", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# With m1 < 0 the ReLU outputs r = 0 and its local slope is 0. Then dloss/dw1 contains the
# factor dr/dm1 = 0, and dloss/dw2 contains the factor dm2/dw2 = r = 0: both gradients are
# exactly zero, whatever the loss is. Gradient descent would never change w1 or w2, so the unit
# stays switched off for this input (a "dead" ReLU) unless other inputs make m1 positive.
# ### END SOLUTION

# %% [markdown]
# ## What you learned
# - A computation graph stores each intermediate value; the backward pass multiplies the local
#   derivatives along each path from the loss to a weight and adds the products of all paths
#   (here every weight has one path; a value used twice has two).
# - Paths share their first factors (dloss/dm2 here), so backprop computes them once.
# - Local derivatives are often cheapest in terms of forward values: σ' = ŷ(1 − ŷ), ReLU' from
#   the sign of m1. Mixing up a function's input and output gives a plausible but wrong number.
