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
# # Lab 4b — Backpropagation in code
#
# Lab 4 ran the backward pass on paper, one number at a time. Here the same passes become code:
# first with autograd doing the work, then without it, for a whole layer of units at once, and
# finally with a check that trusts neither you nor autograd.
#
# **You will learn to**
# - let autograd compute a gradient you derived, and train a weight with it;
# - write local derivatives as elementwise functions of tensors;
# - run a backward pass for vectors by hand in code, with an outer product for a weight matrix;
# - derive the gradient of a new loss on your own, and see why classifiers use cross-entropy;
# - check any gradient numerically, and say which step size h to trust and why.
#
# **Time.** About 85 minutes (Task 1 12, Task 2 13, Task 3 12, Task 4 11, Task 5 13, Task 6 16;
# the rest is reading, running and written answers), as `make minutes` estimates from what the lab
# asks. Not yet timed with students.
#
# **How answers are graded.** Everything here is a function or a formula. Each is run on the
# visible inputs in your notebook, and again, when your notebook is graded, on inputs drawn anew
# for your submission; every result is compared with `torch.autograd`. Where a function must not
# use autograd, the task says so, and the grader checks that too.
#
# **Formulas, not only numbers.** Task 5's derivation is graded as a *formula*: a small Python
# function written as a closed form (assignments of arithmetic and `math` functions, `if` for a
# piecewise part; no loops, lists or finite differences). The grader runs that cell on its own,
# without torch or the course kit, and names the mistake if the formula has one.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import matplotlib.pyplot as plt
import torch

from course.lab4b import check
from course.plots import plot_sigmoid_derivatives, plot_training

# %% [markdown]
# ## Task 1 — Let autograd check you
#
# Lab 2's Task 4 graph: ŷ = x · w, s = ŷ − y, loss = s². By hand, at the textbook x = 4, y = 1,
# w = 0.5, that gives loss = 1 and dloss/dw = 8.
#
# Write `check_result(x, y, w)`: build that graph from tensors, with `w` created with
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
# Compare autograd's answer with yours. They should agree exactly here: every number in Lab 4's
# Task 1 is a small integer or a half, which floating point represents without rounding.

# %%
autograd_loss, autograd_grad = check_result(4, 1, 0.5)
print(f"autograd: loss = {autograd_loss}, dloss/dw = {autograd_grad};  by hand (Lab 4, 1b): dloss/dw = 8")

# %% [markdown]
# ## Task 2 — Train w
#
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

# %% nbgrader={"grade": false, "grade_id": "t2_train_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
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


# %% nbgrader={"grade": true, "grade_id": "t2_train_w", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
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
# ## Task 3 — Local derivatives as functions
#
# Lab 4 used the ReLU's and the sigmoid's slopes one number at a time. A backward pass for
# tensors needs them as functions, elementwise.
#
# Write `relu_grad(z)` and `sigmoid_grad(z)`: given a tensor `z` of any shape, return a tensor
# of the same shape holding ReLU'(z) and σ'(z) elementwise. Use tensor operations
# (`torch.sigmoid`, comparisons, `.to(z.dtype)`), not autograd, and follow PyTorch's choice of
# slope 0 at exactly z = 0.

# %% nbgrader={"grade": false, "grade_id": "t3_activation_grads_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
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


# %% nbgrader={"grade": true, "grade_id": "t3_activation_grads", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
check.function(globals(), "activation_grads")
### BEGIN HIDDEN TESTS
check.function(globals(), "activation_grads", hidden=GRADER_PROBES)
### END HIDDEN TESTS

# %% [markdown]
# Look at the slip and the truth side by side. Where do z(1 − z) and σ'(z) nearly agree, and
# how far apart are they at the worked example's m2 = 0.4, and at m2 = 3?

# %%
plot_sigmoid_derivatives(sigmoid_grad)
plt.show()

# %% [markdown]
# ## Task 4 — The backward pass for vectors
#
# Widen Lab 4's Task 2 network: the input is a vector x with D features, the hidden layer has H ReLU
# units, and the output is still one sigmoid unit:
#
# m1 = W1 x (shape H), r = ReLU(m1), m2 = w2 · r (a scalar), ŷ = σ(m2), loss = (ŷ − y)².
#
# Write `manual_backward(x, W1, w2, y)` that returns `(dW1, dw2)`, the gradients of the loss
# with the shapes of `W1` (H × D) and `w2` (H), **without autograd**: run the forward pass,
# keep its values, then apply your local derivatives from the loss backwards. The same chain
# as in Lab 4's 2c appears, with one change: dloss/dW1 is an outer product, because W1[i, j] meets
# x[j] on its way into unit i (`torch.outer`). Create any new tensor on `x.device`.

# %% nbgrader={"grade": false, "grade_id": "t4_manual_backward_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
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


# %% nbgrader={"grade": true, "grade_id": "t4_manual_backward", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
check.function(globals(), "manual_backward")
### BEGIN HIDDEN TESTS
check.function(globals(), "manual_backward", hidden=GRADER_PROBES)
### END HIDDEN TESTS

# %% [markdown]
# ## Task 5 — Another loss, derived on your own
#
# A sigmoid output that predicts a probability is usually trained with binary cross-entropy
# rather than the squared error:
#
# loss = −[y · ln ŷ + (1 − y) · ln(1 − ŷ)],  ŷ = σ(m2),  with a target y between 0 and 1.
#
# This time no local derivatives are listed. Derive dloss/dm2, simplify it as far as it goes,
# and write `bce_gradient(m2, y)` returning it, as a closed form in plain Python (`math` at
# most). The grader runs this cell by itself on inputs drawn for your submission, some with
# |m2| as large as 30.

# %% nbgrader={"grade": false, "grade_id": "t5_bce_formula_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
import math


def bce_gradient(m2, y):
    """dloss/dm2 of binary cross-entropy at the sigmoid's input m2, for the target y; `math` only."""
    ### BEGIN SOLUTION
    # dloss/dŷ = (ŷ − y) / (ŷ(1 − ŷ)) and dŷ/dm2 = ŷ(1 − ŷ): the sigmoid's slope cancels
    yhat = 1 / (1 + math.exp(-m2))
    return yhat - y
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t5_bce_formula", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
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
# ## Task 6 — Check a gradient numerically
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
# ### 6a. The centred difference
# Write `numerical_gradient(f, x, h)`: `f` takes a 1-D float64 tensor and returns a scalar
# tensor; return a tensor shaped like `x` holding the centred difference for each coordinate,
# moving one coordinate at a time. Do not change `x` itself (work on copies, `x.clone()`;
# `torch.zeros_like(x)` makes a tensor on x's device), and do not use autograd: the point is a
# check that does not trust it.

# %% nbgrader={"grade": false, "grade_id": "t6_numerical_gradient_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
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


# %% nbgrader={"grade": true, "grade_id": "t6_numerical_gradient", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check.function(globals(), "numerical_gradient")
### BEGIN HIDDEN TESTS
check.function(globals(), "numerical_gradient", hidden=GRADER_PROBES)
### END HIDDEN TESTS

# %% [markdown]
# ### 6b. Observe: relative error, float32 and the ReLU's kink
# A gradient check compares the two by their **relative error**, max |a − b| / max(|a|, |b|):
# around 1e-7 or below, the backward pass is right; above 1e-2, it is almost surely wrong. Here
# it checks autograd itself on Lab 4's Task 2 loss, as a function of (w1, w2), in float64 and in
# float32, for h from 1e-2 down to 1e-8. **Predict first:** does the error keep falling as h
# shrinks, and which precision fails the check?

# %%
def task2_loss(weights, x1=2.0, y=0.3):
    """Lab 4 Task 2's loss as a function of the tensor (w1, w2)."""
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
# ## Written answer (manually graded)
#
# **Q1.** A classmate checks `manual_backward` with h = 1e-10 "to be as exact as possible" and
# finds a relative error of 1e-5. Using what 6b printed, say which two errors a centred
# difference carries, how each depends on h, and which h you would use instead, in float64 and
# in float32.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_step_size", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# The centred difference ignores curvature, an error that shrinks like h², and it subtracts two
# values of f that are each rounded to a relative precision ε, an error of about ε/h that grows
# as h shrinks. At h = 1e-10 in float64 the rounding term, of order ε/h ≈ 2e-6, swamps the
# truncation term (about 1e-20), so the check looks worse than the code is. The sum is
# smallest near h ≈ ε^⅓: about 1e-5 to 1e-6 in float64 (6b's error bottoms out near 1e-10 at
# h = 1e-6), and about 5e-3 in float32, where even the best error, about 3e-5, is too large to
# tell a right backward pass from a slightly wrong one; so gradient checks run in float64.
# ### END SOLUTION

# %% [markdown]
# ## What you learned
# - `loss.backward()` fills `.grad` of the leaves; `.grad` accumulates, so a training loop resets
#   it after every update, and the update itself runs under `torch.no_grad()`.
# - A backward pass for tensors is the scalar chain rule applied elementwise, with an outer
#   product wherever a weight matrix meets its input.
# - Cross-entropy's gradient at the sigmoid's input is ŷ − y: the sigmoid's slope cancels, so a
#   confidently wrong unit still learns.
# - A backward pass you wrote is checked numerically: centred differences in float64, compared by
#   relative error (about 1e-7 or less when right). The step h trades truncation (∝ h²) against
#   rounding (∝ ε/h), best near ε^⅓; float32 and kinks make the check fail.
