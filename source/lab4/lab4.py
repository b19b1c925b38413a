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
# In this lab you do that walk yourself, on paper, and then let autograd check you.
#
# **You will learn to**
# - follow the graph of a small model, node by node, and compute every node's value (the forward pass);
# - write the local derivative of every edge and chain them into dloss/dweight (the backward pass);
# - see why the sigmoid's derivative is ŷ(1 − ŷ) and why backprop can reuse forward values;
# - write the same backward pass in code for vectors and compare it with autograd.
#
# **How answers are graded.** Hand-computed values are numbers you type in. Give each to at
# least **4 significant digits** (for example `0.2403` or `-0.3857`); arithmetic such as
# `2 * 0.25` is fine too. Every grade is checked against values that `torch.autograd` computes
# when your notebook is graded. Cells marked *manually graded* are read by your instructor.
#
# **What earns the points.** The numbers you work out by hand and your tables of predictions are
# for checking yourself: their checks answer at once, and together they carry at most a third of
# the autograded points. The formulas, the functions and the written answers are the assessment.
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

from course.lab4 import check
from course.plots import plot_sigmoid_derivatives, plot_training

# %% [markdown]
# ## Your numbers
#
# Task 2 is graded on numbers that belong to you alone, made from your student id. The id is
# taken from the environment variable `AUTOGRAD_LABS_STUDENT` (`make lab STUDENT=<your id>`
# sets it), or else from JupyterHub's user name. When your notebook is graded, the id is taken
# from your submission — not from anything in this notebook — and your answers are checked on
# *your* numbers. If the cell below says it shows *practice numbers*, quit JupyterLab and start it again
# with `make lab STUDENT=<your id>`. Restarting the kernel is not enough: a kernel inherits
# the environment of the server that started it, so it would keep the old id. Do it before you start Task 2.

# %% nbgrader={"grade": false, "grade_id": "my_numbers", "locked": true, "schema_version": 3, "solution": false, "task": false}
mine = check.my_numbers()

# %% [markdown]
# ## Task 1 — One weight, one squared error
#
# The model predicts ŷ = x · w and is scored with the squared error. Name every intermediate
# result and the graph has three nodes after the inputs:
#
# ```
#  x ─┐
#     (×)── ŷ ──(−)── s ──(²)── loss
#  w ─┘          │
#          y ────┘
# ```
#
# so ŷ = x · w, s = ŷ − y and loss = s². Use **x = 4, y = 1, w = 0.5**.
#
# ### 1a. Forward pass
# Work out, by hand, the value at every node. Set `yhat`, `s` and `loss`.

# %% nbgrader={"grade": false, "grade_id": "t1_forward_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# yhat, s and loss for x = 4, y = 1, w = 0.5
### BEGIN SOLUTION
yhat = 4 * 0.5
s = yhat - 1
loss = s ** 2
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t1_forward", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "yhat", "s", "loss")

# %% [markdown]
# ### 1b. Backward pass
# Each edge of the graph has a local derivative (Lab 2, Task 3): how its output moves when its
# input moves, everything else held fixed. Write down the three local derivatives on the path
# from `loss` back to `w`, evaluate them at the forward values, then multiply them (the chain rule):
#
# dloss/dw = dloss/ds · ds/dŷ · dŷ/dw
#
# Set `dloss_ds`, `ds_dyhat`, `dyhat_dw` and `dloss_dw`.

# %% nbgrader={"grade": false, "grade_id": "t1_backward_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# dloss_ds, ds_dyhat, dyhat_dw and dloss_dw at x = 4, y = 1, w = 0.5
### BEGIN SOLUTION
dloss_ds = 2 * s
ds_dyhat = 1.0
dyhat_dw = 4.0
dloss_dw = dloss_ds * ds_dyhat * dyhat_dw
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t1_backward", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "dloss_ds", "ds_dyhat", "dyhat_dw", "dloss_dw")

# %% [markdown]
# ### 1c. The derivation as a formula
# Numbers from one input cannot show every mistake: here s = 1, so s, s² and 1/s are all the same
# number. Write `loss_and_gradient(x, y, w)`, returning the pair `(loss, dloss/dw)` for *any* x, y
# and w, by the steps you just took: the forward values first, then the product of the local
# derivatives. Plain Python and `math` only: the grader runs this cell by itself, without torch.

# %% nbgrader={"grade": false, "grade_id": "t1_formula_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
import math


def loss_and_gradient(x, y, w):
    """(loss, dloss/dw) of loss = (x·w − y)², from the chain rule; `math` only."""
    ### BEGIN SOLUTION
    s = x * w - y
    return s ** 2, 2 * s * x
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t1_formula", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
check.formula(globals(), "loss_and_gradient")

# %% [markdown]
# ### 1d. Let autograd check you
# Write `check_result(x, y, w)`: build the same graph from tensors, with `w` created with
# `requires_grad=True`, call `loss.backward()` once, and return the pair
# `(loss value, dloss/dw)` as Python floats (`.item()`). Do not write the derivative yourself:
# the point is that autograd finds it.

# %% nbgrader={"grade": false, "grade_id": "t1_check_result_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def check_result(x, y, w):
    """One forward and one backward pass of loss = (x·w − y)²; returns (loss, dloss/dw)."""
    ### BEGIN SOLUTION
    w = torch.tensor(float(w), requires_grad=True)
    loss = (torch.tensor(float(x)) * w - float(y)) ** 2
    loss.backward()
    return loss.item(), w.grad.item()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t1_check_result", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.function(globals(), "check_result")
### BEGIN HIDDEN TESTS
check.function(globals(), "check_result", hidden=GRADER_PROBES)
### END HIDDEN TESTS

# %% [markdown]
# Compare autograd's answer with yours. They should agree exactly here: every number in Task 1
# is a small integer or a half, which floating point represents without rounding.

# %%
autograd_loss, autograd_grad = check_result(4, 1, 0.5)
print(f"autograd: loss = {autograd_loss}, dloss/dw = {autograd_grad};  by hand: dloss/dw = {dloss_dw}")

# %% [markdown]
# ### 1e. Train w
# The gradient says which way is downhill. Gradient descent repeats three steps: compute the
# loss, compute dloss/dw with autograd, and move `w` a little against the gradient,
# w ← w − lr · dloss/dw.
#
# Write `train(x, y, w, lr, steps)`. It returns two lists of length `steps`, as Lab 1's loop
# did: `ws[k]` is `w` after update `k`, and `losses[k]` the loss computed before that update
# (so `losses[0]` is the starting loss, and `ws[k]` has the loss `losses[k + 1]`). Two details matter:
# - update `w` inside `with torch.no_grad():`, so the update itself is not recorded in the graph;
# - autograd *adds* each new gradient to `w.grad`; reset it (`w.grad.zero_()`) after every update.
#
# **Predict before you run the plot cell:** with x = 4 and y = 1, which value of `w` makes the
# loss zero? Will `w` overshoot it, creep up to it, or jump straight to it when lr = 0.01?

# %% nbgrader={"grade": false, "grade_id": "t1_train_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train(x, y, w, lr, steps):
    """Gradient descent on w for loss = (x·w − y)²; returns (ws, losses), one entry per step."""
    ### BEGIN SOLUTION
    w = torch.tensor(float(w), requires_grad=True)
    ws, losses = [], []
    for _ in range(steps):
        loss = (x * w - y) ** 2
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            w -= lr * w.grad
        ws.append(w.item())
        w.grad.zero_()
    return ws, losses
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t1_train", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.function(globals(), "train")
### BEGIN HIDDEN TESTS
check.function(globals(), "train", hidden=GRADER_PROBES)
### END HIDDEN TESTS

# %%
ws, losses = train(x=4, y=1, w=0.5, lr=0.01, steps=60)
plot_training(ws, losses, target_w=1 / 4)
plt.show()

# %% [markdown]
# Was your prediction right? The gradient is dloss/dw = 2x(x·w − y) = 2x²(w − y/x), so each
# step multiplies the distance to the target, w − y/x, by the same factor 1 − 2·lr·x². With
# x = 4 and lr = 0.01 that factor is 0.68: `w` creeps up to 0.25 without overshooting, and the
# loss (which scales with the distance squared) falls along a straight line on the log scale.
# Try `lr=0.05` in the cell above: the factor is −0.6, so `w` overshoots on every step but
# still converges. At `lr=0.1` it is −2.2 and training diverges.

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
# Use the numbers printed under *Your numbers* (they are also in the dictionary `mine`). Set
# `m1`, `r`, `m2`, `yhat_2`, `s_2` and `loss_2` (names that Task 1 already used get the
# suffix `_2`, so re-running a Task 1 cell never checks Task 2's values).

# %% nbgrader={"grade": false, "grade_id": "t2_forward_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# m1, r, m2, yhat_2, s_2 and loss_2 for your numbers
### BEGIN SOLUTION
import math

m1 = mine["x1"] * mine["w1"]
r = max(m1, 0.0)
m2 = r * mine["w2"]
yhat_2 = 1 / (1 + math.exp(-m2))
s_2 = yhat_2 - mine["y"]
loss_2 = s_2 ** 2
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t2_forward", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "m1", "r", "m2", "yhat_2", "s_2", "loss_2")

# %% [markdown]
# ### 2b. Local derivatives on your numbers
# Evaluate each edge's local derivative at your forward values: `dloss_ds_2`, `ds_dyhat_2`,
# `dyhat_dm2`, `dm2_dw2`, `dm2_dr`, `dr_dm1` and `dm1_dw1`.

# %% nbgrader={"grade": false, "grade_id": "t2_local_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# the seven local derivatives for your numbers
### BEGIN SOLUTION
dloss_ds_2 = 2 * s_2
ds_dyhat_2 = 1.0
dyhat_dm2 = yhat_2 * (1 - yhat_2)
dm2_dw2 = r
dm2_dr = mine["w2"]
dr_dm1 = 1.0 if m1 > 0 else 0.0
dm1_dw1 = mine["x1"]
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t2_local", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "dloss_ds_2", "ds_dyhat_2", "dyhat_dm2", "dm2_dw2", "dm2_dr", "dr_dm1", "dm1_dw1")

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
dloss_dm2 = dloss_ds_2 * ds_dyhat_2 * dyhat_dm2
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


# %% nbgrader={"grade": true, "grade_id": "t2_formula", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
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
# ### 2e. Local derivatives as functions
# Write `relu_grad(z)` and `sigmoid_grad(z)`: given a tensor `z` of any shape, return a tensor
# of the same shape holding ReLU'(z) and σ'(z) elementwise. Use tensor operations
# (`torch.sigmoid`, comparisons, `.to(z.dtype)`), not autograd, and follow PyTorch's choice of
# slope 0 at exactly z = 0.

# %% nbgrader={"grade": false, "grade_id": "t2_activation_grads_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def relu_grad(z):
    """Slope of ReLU at each element of z: 1 where z > 0, else 0."""
    ### BEGIN SOLUTION
    return (z > 0).to(z.dtype)
    ### END SOLUTION


def sigmoid_grad(z):
    """Slope of the sigmoid at each element of z."""
    ### BEGIN SOLUTION
    a = torch.sigmoid(z)
    return a * (1 - a)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t2_activation_grads", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
check.function(globals(), "activation_grads")
### BEGIN HIDDEN TESTS
check.function(globals(), "activation_grads", hidden=GRADER_PROBES)
### END HIDDEN TESTS

# %% [markdown]
# Look at the slip and the truth side by side. Where do z(1 − z) and σ'(z) nearly agree, and
# how far apart are they at your m2?

# %%
plot_sigmoid_derivatives(sigmoid_grad)
plt.show()

# %% [markdown]
# ### 2f. The same backward pass for vectors
# Widen the network: the input is a vector x with D features, the hidden layer has H ReLU
# units, and the output is still one sigmoid unit:
#
# m1 = W1 x (shape H), r = ReLU(m1), m2 = w2 · r (a scalar), ŷ = σ(m2), loss = (ŷ − y)².
#
# Write `manual_backward(x, W1, w2, y)` that returns `(dW1, dw2)`, the gradients of the loss
# with the shapes of `W1` (H × D) and `w2` (H), **without autograd**: run the forward pass,
# keep its values, then apply your local derivatives from the loss backwards. The same chain
# as in 2c appears, with one change: dloss/dW1 is an outer product, because W1[i, j] meets
# x[j] on its way into unit i (`torch.outer`). Create any new tensor on `x.device`.

# %% nbgrader={"grade": false, "grade_id": "t2_manual_backward_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def manual_backward(x, W1, w2, y):
    """Gradients (dW1, dw2) of (σ(w2 · ReLU(W1 x)) − y)², computed without autograd."""
    ### BEGIN SOLUTION
    m1 = W1 @ x
    r = torch.relu(m1)
    m2 = w2 @ r
    yhat = torch.sigmoid(m2)
    dloss_dm2 = 2 * (yhat - y) * sigmoid_grad(m2)
    dw2 = dloss_dm2 * r
    dloss_dm1 = dloss_dm2 * w2 * relu_grad(m1)
    return torch.outer(dloss_dm1, x), dw2
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t2_manual_backward", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
check.function(globals(), "manual_backward")
### BEGIN HIDDEN TESTS
check.function(globals(), "manual_backward", hidden=GRADER_PROBES)
### END HIDDEN TESTS

# %% [markdown]
# ### 2g. Another loss, derived on your own
# A sigmoid output that predicts a probability is usually trained with binary cross-entropy
# rather than the squared error:
#
# loss = −[y · ln ŷ + (1 − y) · ln(1 − ŷ)],  ŷ = σ(m2),  with a target y between 0 and 1.
#
# This time no local derivatives are listed. Derive dloss/dm2, simplify it as far as it goes,
# and write `bce_gradient(m2, y)` returning it, as a closed form in plain Python (`math` at
# most). The grader runs this cell by itself on inputs drawn for your submission, some with
# |m2| as large as 30.

# %% nbgrader={"grade": false, "grade_id": "t2_bce_formula_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
import math


def bce_gradient(m2, y):
    """dloss/dm2 of binary cross-entropy at the sigmoid's input m2, for the target y; `math` only."""
    ### BEGIN SOLUTION
    # dloss/dŷ = (ŷ − y) / (ŷ(1 − ŷ)) and dŷ/dm2 = ŷ(1 − ŷ): the sigmoid's slope cancels
    yhat = 1 / (1 + math.exp(-m2))
    return yhat - y
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t2_bce_formula", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
check.formula(globals(), "bce_gradient")

# %% [markdown]
# **Predict, then observe.** Take a confidently wrong output: target y = 1 but m2 = −6, so
# ŷ ≈ 0.0025. Which loss pushes m2 harder, the squared error or cross-entropy? Write down your
# guess, then run the cell, which asks autograd for both.

# %%
m2_wrong = torch.tensor(-6.0, dtype=torch.float64, requires_grad=True)
yhat_wrong = torch.sigmoid(m2_wrong)
losses = {"squared error": (yhat_wrong - 1) ** 2,
          "cross-entropy": -torch.log(yhat_wrong)}  # y = 1 keeps only the first term
for name, loss in losses.items():
    (slope,) = torch.autograd.grad(loss, m2_wrong, retain_graph=True)
    print(f"{name:>14}: dloss/dm2 = {slope.item():+.5f}")

# %% [markdown]
# The squared error's gradient carries the sigmoid's slope ŷ(1 − ŷ) as a factor, and that slope
# is nearly 0 wherever the sigmoid saturates: a unit that is confidently wrong barely learns.
# Cross-entropy's logarithm divides the same factor out again, so its gradient stays as large as
# the error itself. That is why classifiers pair a sigmoid (or softmax) output with
# cross-entropy, and why PyTorch offers `BCEWithLogitsLoss`, which takes m2 itself and never
# forms ln ŷ, where a saturated ŷ would round to 0 or 1.

# %% [markdown]
# ## Task 3 — Check a gradient numerically
#
# How do you trust a backward pass you wrote yourself, like `manual_backward`? Nudge each input
# and watch the output: for a small step h, the **centred difference**
#
# (f(x + h·eᵢ) − f(x − h·eᵢ)) / (2h)
#
# approaches ∂f/∂xᵢ (eᵢ is the vector with 1 at position i and 0 elsewhere). Its error shrinks
# like h², while the one-sided (f(x + h·eᵢ) − f(x)) / h is off by a term proportional to h. The
# difference quotient of a first calculus course is the one-sided version; for a line such as
# w·x + b it is exact, but only because a line has no curvature.
#
# ### 3a. The centred difference
# Write `numerical_gradient(f, x, h)`: `f` takes a 1-D float64 tensor and returns a scalar
# tensor; return a tensor shaped like `x` holding the centred difference for each coordinate,
# moving one coordinate at a time. Do not change `x` itself (work on copies, `x.clone()`;
# `torch.zeros_like(x)` makes a tensor on x's device), and do not use autograd: the point is a
# check that does not trust it.

# %% nbgrader={"grade": false, "grade_id": "t3_numerical_gradient_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def numerical_gradient(f, x, h):
    """Centred differences (f(x + h·eᵢ) − f(x − h·eᵢ)) / (2h), one coordinate i at a time."""
    ### BEGIN SOLUTION
    grad = torch.zeros_like(x)
    for i in range(x.numel()):
        step = torch.zeros_like(x)
        step[i] = h
        grad[i] = (f(x + step) - f(x - step)) / (2 * h)
    return grad
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t3_numerical_gradient", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check.function(globals(), "numerical_gradient")
### BEGIN HIDDEN TESTS
check.function(globals(), "numerical_gradient", hidden=GRADER_PROBES)
### END HIDDEN TESTS

# %% [markdown]
# ### 3b. Observe: relative error, float32 and the ReLU's kink
# A gradient check compares the two by their **relative error**, max |a − b| / max(|a|, |b|):
# around 1e-7 or below, the backward pass is right; above 1e-2, it is almost surely wrong. Here
# it checks autograd itself on Task 2's loss, as a function of (w1, w2), in float64 and in
# float32, for h from 1e-2 down to 1e-8. **Predict first:** does the error keep falling as h
# shrinks, and which precision fails the check?

# %%
def task2_loss(weights, x1=2.0, y=0.3):
    """Task 2's loss as a function of the tensor (w1, w2)."""
    return (torch.sigmoid(torch.relu(x1 * weights[0]) * weights[1]) - y) ** 2


def relative_error(a, b):
    return ((a - b).abs().max() / torch.maximum(a.abs().max(), b.abs().max())).item()


for dtype in (torch.float64, torch.float32):
    w = torch.tensor([0.7, -1.3], dtype=dtype, requires_grad=True)
    task2_loss(w).backward()
    for h in (1e-2, 1e-3, 1e-4, 1e-6, 1e-8):
        numeric = numerical_gradient(task2_loss, w.detach(), h)
        print(f"{str(dtype):14} h = {h:.0e}: relative error {relative_error(numeric, w.grad):.1e}")

# %% [markdown]
# Two errors pull against each other. The centred difference's own error, from the curvature
# it ignores, shrinks like h²: in float64, 1.5e-4 at h = 1e-2, 1.5e-6 at 1e-3, 1.5e-8 at 1e-4,
# a hundred times smaller for each tenth of h. But f is stored to a relative precision ε (about
# 2e-16 in float64, 1e-7 in float32), so f(x + h) − f(x − h) carries a rounding error of about
# ε·|f|, and dividing by 2h magnifies it to about ε/h, which grows as h shrinks. Their sum is
# smallest where the two meet, near h ≈ ε^⅓: about 6e-6 in float64, 5e-3 in float32. Below that
# a smaller h only makes things worse. In float64 the error bottoms out near 1e-10 at h = 1e-6
# and is back up to about 4e-9 at h = 1e-8; in float32 the best is about 3e-5 at h = 1e-3, it is
# about 3e-2 at h = 1e-6, and at h = 1e-8 the two values of f round to the same number, so the
# difference is 0 and the relative error 1. That is why gradient checks run in float64, with h
# near 1e-6 (`torch.autograd.gradcheck` insists on float64).
#
# At a kink the check fails for another reason. Put w1 at exactly 0, where the ReLU bends: the
# centred difference straddles the bend and averages the two slopes, while autograd reports
# PyTorch's choice, slope 0.

# %%
w = torch.tensor([0.0, -1.3], dtype=torch.float64, requires_grad=True)
task2_loss(w).backward()
print("autograd:             ", w.grad.tolist())
print("centred, h = 1e-4:    ", numerical_gradient(task2_loss, w.detach(), 1e-4).tolist())

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
# - A backward pass you wrote is checked numerically: centred differences in float64, compared by
#   relative error (about 1e-7 or less when right); float32 and kinks make the check fail.
# - `loss.backward()` fills `.grad` of the leaves; `.grad` accumulates, so a training loop resets
#   it after every update, and the update itself runs under `torch.no_grad()`.
