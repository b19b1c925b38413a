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
# # Lab 5 — Training loops with `nn.Module` and optimizers
#
# Real training code rarely touches `.grad` directly. A model is an `nn.Module` that owns its
# parameters, a loss is an `nn` loss object, and an optimizer from `torch.optim` applies the update.
# The gradients still accumulate in `.grad` exactly as in Labs 1 and 3, and the optimizer does not
# clear them for you: that is what `optimizer.zero_grad()` is for.
#
# **You will learn to**
# - build a small network from `nn.Sequential`, `nn.Linear` and `nn.ReLU`;
# - write the standard loop: `zero_grad()`, forward, loss, `backward()`, `step()`;
# - see what happens without `zero_grad()` (the loss becomes `nan`) and why a ReLU unit can die;
# - compute one SGD step on an MSE loss and a cross-entropy loss and its gradient by hand;
# - compare SGD with Adam on the same problem.
#
# **Time.** About 85 minutes (Task 1 10, Task 2 14, Task 3 19, Task 4 17; the rest is reading,
# running and written answers), as `make minutes` estimates from what the lab asks. Not yet timed
# with students.
#
# **How answers are graded.** Hand-computed values need at least **4 significant digits**
# (natural logarithms). Grades are checked against what `torch.autograd` computes when your
# notebook is graded. Cells marked *manually graded* are read by your instructor.
#
# **What earns the points.** The numbers you work out by hand and your tables of predictions are
# for checking yourself: their checks answer at once, and together they carry at most a third of
# the autograded points. The formulas, the functions and the written answers are the assessment.
#
# **Formulas, not only numbers.** Autograd can fill in any number on your own values, so each
# hand computation (Tasks 3 and 4) is also graded as a *formula*: a Python function of the inputs
# written as a closed form (assignments of arithmetic and `math` functions, `if` for a choice; no
# loops, lists, comprehensions or finite differences). The grader runs that cell on its own,
# without torch or the course kit, on inputs drawn anew for each submission, and names the mistake
# if the formula has one.
# Check your work with autograd as much as you like after answering; the derivation earns the points.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import math

import matplotlib.pyplot as plt
import torch
from torch import nn

from course.data import thermometer
from course.lab5 import check
from course.plots import plot_loss_curves

# %% [markdown]
# ## Your numbers
#
# Tasks 3 and 4 are graded on numbers made from your student id.
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
# ## The data
# Eleven readings of the same temperatures on two thermometers: `t_c` in degrees Celsius and
# `t_u` on an unknown scale. The features `X` hold each `t_c` with a constant 1 beside it (shape
# (11, 2)); the targets `y` are the `t_u` readings (shape (11,)).

# %%
X, y = thermometer()
print(X.shape, y.shape)
print(X[:3], y[:3])

# %% [markdown]
# ## Task 1 — The model
# Write `make_model()` returning an `nn.Sequential` of `nn.Linear(2, 2)`, `nn.ReLU()` and
# `nn.Linear(2, 1)`: two inputs, a hidden layer of two ReLU units, one output.

# %% nbgrader={"grade": false, "grade_id": "t1_model_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_model():
    """Linear(2, 2) → ReLU → Linear(2, 1)."""
    ### BEGIN SOLUTION
    return nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t1_model", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.function(globals(), "make_model")

# %% [markdown]
# ## Task 2 — The training loop
# Write `train(model, X, y, optimizer, steps, zero_grad=True)`. Each step:
#
# 1. if `zero_grad` is true, call `optimizer.zero_grad()` — *before* `backward()`, or the
#    gradients you are about to use are erased;
# 2. compute the predictions `model(X)`, which have shape (11, 1): squeeze them to (11,) with
#    `.squeeze(1)` before comparing with `y`. (Left as (11, 1), broadcasting compares every
#    prediction with every target, and the model learns the wrong thing; `MSELoss` warns about
#    the size mismatch, but it runs, and a warning is easy to miss.)
# 3. compute `nn.MSELoss()` (or `nn.functional.mse_loss`), call `backward()` and then
#    `optimizer.step()`.
#
# Return the list of the losses, one per step, each taken before that step's update.

# %% nbgrader={"grade": false, "grade_id": "t2_train_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train(model, X, y, optimizer, steps, zero_grad=True):
    """Train `model` on (X, y) with MSE; returns the loss of every step."""
    ### BEGIN SOLUTION
    loss_fn = nn.MSELoss()
    losses = []
    for _ in range(steps):
        if zero_grad:
            optimizer.zero_grad()
        loss = loss_fn(model(X).squeeze(1), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t2_train", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check.function(globals(), "train")
### BEGIN HIDDEN TESTS
check.function(globals(), "train", hidden=GRADER_PROBES)
### END HIDDEN TESTS

# %% [markdown]
# ### Observe: with and without `zero_grad()`
# **Predict first:** SGD with lr = 0.001 for 250 steps from the same starting weights (seed 0),
# once with `zero_grad()` and once without. What will each loss curve do?

# %%
def fresh_model(seed):
    torch.manual_seed(seed)
    return make_model()


curves = {}
for zero_grad in (True, False):
    model = fresh_model(0)
    curves[f"zero_grad={zero_grad}"] = train(model, X, y, torch.optim.SGD(model.parameters(), lr=1e-3),
                                             250, zero_grad=zero_grad)
for label, losses in curves.items():
    first_nan = next((k for k, v in enumerate(losses) if math.isnan(v)), None)
    print(f"{label}: first loss {losses[0]:.0f}, last loss {losses[-1]:.2f}, first nan at step {first_nan}")
plot_loss_curves(curves, title="SGD on the thermometer data, seed 0")
plt.show()

# %% [markdown]
# With `zero_grad()` the loss falls from about 2,900 to about 370 (run on, it reaches about 26
# by step 5,000; we stop early to keep the lab quick). Without it, every step adds the
# new gradient to the sum of all earlier ones, so the steps grow without limit; the weights
# overflow to infinity and the loss becomes `nan` within about 200 steps (for this seed near step
# 200: the exact step can differ by one or two between processors, whose rounding differs).
# The optimizer is not keeping a buffer of gradients for you: `.grad` on each parameter is what
# accumulates, and `zero_grad()` is how you clear it.
#
# ### Observe: a ReLU unit that never wakes up
# From seed 3, the first hidden unit is on (its pre-activation is positive) for one reading and
# the second for none. **Predict first:** after 300 steps of the same SGD, how far will each
# unit's incoming weights and bias have moved?

# %%
model = fresh_model(3)
start = torch.cat([model[0].weight, model[0].bias[:, None]], dim=1).detach().clone()
print("readings each hidden unit is on for, before training:", (model[:2](X) > 0).sum(0).tolist())
stalled = train(model, X, y, torch.optim.SGD(model.parameters(), lr=1e-3), 300)
moved = (torch.cat([model[0].weight, model[0].bias[:, None]], dim=1) - start).abs().sum(1)
print("how far each unit's weights and bias moved (sum of |change|):", [f"{m:.4f}" for m in moved.tolist()])
print("readings each hidden unit is on for, after training: ", (model[:2](X) > 0).sum(0).tolist())
print(f"loss after 300 steps: {stalled[-1]:.0f}")

# %% [markdown]
# The second unit has not moved at all: 0.0000, exactly. Where a ReLU is off its slope is 0, so
# the chain rule multiplies every gradient that would reach its weights by 0. Its weights stay
# where they started, so it stays off for every reading, and no number of steps can wake it. The
# first unit learns from its one reading only. The network is left with one half-working unit:
# run on for 2,500 steps, this model's loss stalls near 168, where seed 0 goes on down to about
# 26. Initialisation can matter as much as the optimizer.
#
# ## Task 3 — One SGD step by hand
# A one-feature linear model ŷ = w·x + b on your two points (Task 3 under *Your numbers*), with
# the mean squared error MSE = ((ŷ₁ − y₁)² + (ŷ₂ − y₂)²) / 2. Compute `mse`, its gradients
# `dmse_dw` and `dmse_db`, and `w_next`, the value of w after one SGD step with your lr.

# %% nbgrader={"grade": false, "grade_id": "t3_sgd_step_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# mse, dmse_dw, dmse_db and w_next for your numbers
### BEGIN SOLUTION
points = [(mine["x1"], mine["y1"]), (mine["x2"], mine["y2"])]
residuals = [(mine["w"] * x_i + mine["b"] - y_i, x_i) for x_i, y_i in points]
mse = sum(r ** 2 for r, _ in residuals) / 2
dmse_dw = sum(2 * r * x_i for r, x_i in residuals) / 2
dmse_db = sum(2 * r for r, _ in residuals) / 2
w_next = mine["w"] - mine["lr"] * dmse_dw
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t3_sgd_step", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "mse", "dmse_dw", "dmse_db", "w_next")

# %% [markdown]
# ### The step as a formula
# Write `sgd_step(w, b, x1, y1, x2, y2, lr)`, returning `(mse, dmse_dw, dmse_db, w_next, b_next)`
# for *any* numbers, by the steps you just took: residuals first, then the averaged gradients,
# then one step for each parameter. Your own b may be 0, which hides how b enters; the grader's
# inputs do not. A closed form, `math` only: one residual per point, no list or loop.

# %% nbgrader={"grade": false, "grade_id": "t3_sgd_formula_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
import math


def sgd_step(w, b, x1, y1, x2, y2, lr):
    """(mse, dmse/dw, dmse/db, w after one SGD step, b after it) for ŷ = w·x + b on two points."""
    ### BEGIN SOLUTION
    r1 = w * x1 + b - y1
    r2 = w * x2 + b - y2
    mse = (r1 ** 2 + r2 ** 2) / 2
    dmse_dw = (2 * r1 * x1 + 2 * r2 * x2) / 2
    dmse_db = (2 * r1 + 2 * r2) / 2
    return mse, dmse_dw, dmse_db, w - lr * dmse_dw, b - lr * dmse_db
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t3_sgd_formula", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
check.formula(globals(), "sgd_step")

# %% [markdown]
# Observe the same kind of step with `nn.Linear`, `nn.MSELoss` and `torch.optim.SGD`, on numbers
# that are nobody's task: w = 0.8, b = 0.3, points (1.5, 2.5) and (−0.5, 0.2), lr = 0.2. Put them
# through your own steps above and compare. (`nn.MSELoss` averages over the points: the / 2.)

# %%
demo = {"w": 0.8, "b": 0.3, "x1": 1.5, "y1": 2.5, "x2": -0.5, "y2": 0.2, "lr": 0.2}
layer = nn.Linear(1, 1)
with torch.no_grad():
    layer.weight.fill_(demo["w"])
    layer.bias.fill_(demo["b"])
optimizer = torch.optim.SGD(layer.parameters(), lr=demo["lr"])
inputs = torch.tensor([[demo["x1"]], [demo["x2"]]])
targets = torch.tensor([[demo["y1"]], [demo["y2"]]])
loss = nn.MSELoss()(layer(inputs), targets)
loss.backward()
print(f"mse = {loss.item():.4f}, dmse/dw = {layer.weight.grad.item():.4f}, dmse/db = {layer.bias.grad.item():.4f}")
optimizer.step()
print(f"w after one step = {layer.weight.item():.4f}")

# %% [markdown]
# ## Task 4 — Cross-entropy by hand
# For classification, `nn.CrossEntropyLoss` takes raw scores (logits) z and the index of the right
# class. It applies the softmax itself: L = −z_target + ln(e^z₀ + e^z₁ + e^z₂). A classic bug is to
# apply softmax to the model's output *and then* pass it to `CrossEntropyLoss`, which applies it
# again.
#
# **Derive the gradient yourself** (no step is given here): differentiate each of L's two terms
# with respect to z_i, once for i the target and once for any other i, and write the result with
# the probabilities softmax(z)_i = e^z_i / Σ_j e^z_j. Then, with your logits and target (Task 4
# under *Your numbers*), compute `ce_loss` and the three gradients `ce_grad_0`, `ce_grad_1`,
# `ce_grad_2`.

# %% nbgrader={"grade": false, "grade_id": "t4_cross_entropy_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# ce_loss, ce_grad_0, ce_grad_1 and ce_grad_2 for your logits and target
### BEGIN SOLUTION
exps = [math.exp(v) for v in mine["logits"]]
probabilities = [v / sum(exps) for v in exps]
ce_loss = -mine["logits"][mine["target"]] + math.log(sum(exps))
ce_grad_0, ce_grad_1, ce_grad_2 = (p - (i == mine["target"]) for i, p in enumerate(probabilities))
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t4_cross_entropy", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "ce_loss", "ce_grad_0", "ce_grad_1", "ce_grad_2")

# %% [markdown]
# ### Cross-entropy as a formula
# Write `cross_entropy(z0, z1, z2, target)`, returning `(loss, dL/dz0, dL/dz1, dL/dz2)` for any
# three logits and a target class 0, 1 or 2, as a closed form with `math` only (pick z_target with
# a conditional expression; no list to index).

# %% nbgrader={"grade": false, "grade_id": "t4_ce_formula_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
import math


def cross_entropy(z0, z1, z2, target):
    """(loss, dL/dz0, dL/dz1, dL/dz2) of cross-entropy on the logits (z0, z1, z2) and a target class."""
    ### BEGIN SOLUTION
    total = math.exp(z0) + math.exp(z1) + math.exp(z2)
    z_target = z0 if target == 0 else z1 if target == 1 else z2
    loss = math.log(total) - z_target
    p0, p1, p2 = math.exp(z0) / total, math.exp(z1) / total, math.exp(z2) / total
    return loss, p0 - (target == 0), p1 - (target == 1), p2 - (target == 2)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t4_ce_formula", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
check.formula(globals(), "cross_entropy")

# %% [markdown]
# ## Observe: SGD versus Adam
# Adam keeps running averages of each parameter's gradient and of its square, and scales every
# step by them, so each parameter gets its own step size. **Predict first:** same model, same
# seed, 500 steps, and a learning rate five times the one above, lr = 0.005, for both. Which
# one copes?

# %%
curves = {}
for name in ("SGD", "Adam"):
    model = fresh_model(0)
    curves[name] = train(model, X, y, getattr(torch.optim, name)(model.parameters(), lr=5e-3), 500)
    first_nan = next((k for k, v in enumerate(curves[name]) if math.isnan(v)), None)
    print(f"{name}: last loss {curves[name][-1]:.2f}, first nan at step {first_nan}")
plot_loss_curves(curves, title="SGD and Adam, lr = 0.005, seed 0")
plt.show()

# %% [markdown]
# SGD's loss is `nan` within 40 steps; Adam ends near 25. SGD moves each weight by lr times its
# gradient, and the gradient of the weight on t_c is large (the readings go up to 28, the other
# input is the constant 1), so at this rate its first steps overshoot, and every overshoot makes
# the next gradient larger. Adam divides each gradient by a running average of its size, so
# every parameter moves by about lr per step whatever the scale of its gradient: one learning
# rate suits inputs of very different scales.
#
# ## Written answers (manually graded)
#
# **Q1.** Explain, step by step, why training without `optimizer.zero_grad()` ends in `nan`.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_nan", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# `backward()` adds each new gradient into `.grad`. Without clearing, the gradient used at step k
# is the sum of all gradients so far, so the steps keep growing even when each new gradient is
# small; the weights overshoot, the loss and its gradients grow, and the sum grows faster still.
# Within a few hundred steps the weights overflow to infinity, and inf − inf or 0 · inf gives nan,
# which then spreads to every value.
# ### END SOLUTION

# %% [markdown]
# **Q2.** Why did the second hidden unit from seed 3 not move at all, and why does its model's
# loss stall near 168? What could you change to avoid it?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_dead_relu", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# From that initialisation the hidden ReLUs are off for almost every reading. Where a ReLU is off
# its slope is 0, so no gradient reaches the weights feeding it and they do not change: the units
# stay off and the network is left with (nearly) only its output bias. Remedies: another
# initialisation or seed, more hidden units, standardised inputs, a leaky ReLU, or Adam.
# ### END SOLUTION

# %% [markdown]
# **Q3.** When would you pick `nn.MSELoss` and when `nn.CrossEntropyLoss`? What must the model
# output for each?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_losses", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# MSE for regression, where the target is a number (a temperature here): the model outputs the
# number itself, with the same shape as the target. Cross-entropy for classification: the model
# outputs one raw score per class (logits, no softmax) and the target is the class index; the loss
# applies log-softmax itself, which is also numerically safer.
# ### END SOLUTION

# %% [markdown]
# ## What you learned
# - `nn.Module`s own their parameters; `optimizer.step()` updates them from `.grad`.
# - The loop is `zero_grad()`, forward, loss, `backward()`, `step()`; without `zero_grad()` the
#   gradients pile up until the loss is `nan`.
# - Shapes matter: a (11, 1) prediction against a (11,) target broadcasts to (11, 11); the loss
#   only warns.
# - A dead ReLU passes no gradient; initialisation can stall training.
# - `CrossEntropyLoss` wants logits; its gradient is softmax minus one-hot. Adam adapts step sizes.
