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
# # Lab 1 — Gradient descent from scratch
#
# The smallest learning problem there is: find two numbers A and B whose sum is a target.
# We score a guess with loss = (A + B − target)², start from a guess, and let gradient descent
# improve it. Nothing here needs a neural network, which is exactly why every step of the
# algorithm is visible.
#
# **You will learn to**
# - compute a gradient by the chain rule and take one gradient-descent step by hand;
# - write the training loop PyTorch programs use: forward, `backward()`, update under
#   `torch.no_grad()`, reset the gradients;
# - predict from one formula how the learning rate changes training, then check your prediction;
# - explain what goes wrong when gradients are not reset;
# - unroll a loop that reuses one weight, and add up that weight's gradient over the steps.
#
# **Time.** About 90 minutes (Task 1 19, Task 2 13, Task 3 17, Task 4 14; the rest is reading,
# running and written answers), as `make minutes` estimates from what the lab asks. Not yet timed
# with students.
#
# **How answers are graded.** Type hand-computed values to at least **4 significant digits**.
# Every grade is checked against values `torch.autograd` computes when your notebook is graded.
# Cells marked *manually graded* are read by your instructor.
#
# **What earns the points.** The numbers you work out by hand and your tables of predictions are
# for checking yourself: their checks answer at once, and together they carry at most a third of
# the autograded points. The formulas, the functions and the written answers are the assessment.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import matplotlib.pyplot as plt
import torch

from course.lab1 import check
from course.plots import plot_loss_curves

# %% [markdown]
# ## Your numbers
#
# Tasks 1 and 3 are graded on numbers made from your student id.
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
# ## Task 1 — One step by hand
#
# Name the error u = A + B − target, so that loss = u². The chain rule gives
#
# dloss/dA = dloss/du · du/dA = 2u · 1 = 2(A + B − target),
#
# and the same for B. For the textbook start A = B = 0 with target 10, u = −10 and both
# gradients are −20: negative, so increasing A or B lowers the loss.
#
# A gradient-descent step moves each parameter against its gradient: A ← A − lr · dloss/dA.
#
# With **your** start A, B, target and learning rate lr (printed above), compute `u`, `loss`,
# `dloss_dA`, `dloss_dB` and `A_next`, the value of A after one step.

# %% nbgrader={"grade": false, "grade_id": "t1_step_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# u, loss, dloss_dA, dloss_dB and A_next for your numbers
### BEGIN SOLUTION
u = mine["A"] + mine["B"] - mine["target"]
loss = u ** 2
dloss_dA = 2 * u
dloss_dB = 2 * u
A_next = mine["A"] - mine["lr"] * dloss_dA
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t1_step", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "u", "loss", "dloss_dA", "dloss_dB", "A_next")

# %% [markdown]
# **The step as a formula.** Autograd could have filled in those numbers for you, so the step is
# also graded as a formula: write `one_step(A, B, target, lr)`, returning
# `(loss, dloss_dA, dloss_dB, A_next, B_next)` for *any* start, target and learning rate, in
# plain Python as a closed form (assignments of arithmetic, one after another; no torch, loops or
# finite differences). The grader runs this cell by itself on inputs drawn anew for each
# submission. Use autograd as much as you like to check your answers; the derivation earns the points.

# %% nbgrader={"grade": false, "grade_id": "t1_step_formula_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def one_step(A, B, target, lr):
    """The loss (A + B − target)², its two gradients, and A and B after one gradient-descent step."""
    ### BEGIN SOLUTION
    u = A + B - target
    dloss_dA = dloss_dB = 2 * u
    return u ** 2, dloss_dA, dloss_dB, A - lr * dloss_dA, B - lr * dloss_dB
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t1_step_formula", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
check.formula(globals(), "one_step")

# %% [markdown]
# ## Task 2 — The training loop
#
# Write `gradient_descent(A, B, target, lr, epochs, zero_grad=True)`. Make A and B tensors
# with `requires_grad=True`, then repeat `epochs` times:
#
# 1. compute the loss from A and B (the forward pass; autograd records the graph);
# 2. call `loss.backward()`, which fills `A.grad` and `B.grad`;
# 3. update both inside `with torch.no_grad():`, so the update is not itself recorded;
# 4. if `zero_grad` is true, reset both gradients (`A.grad.zero_()`), because `backward()`
#    *adds* to whatever `.grad` already holds.
#
# Return three lists of length `epochs`: `As[k]` and `Bs[k]` hold A and B *after* update k,
# and `losses[k]` the loss computed *before* it.
#
# The check and the cells below call it with Python ints (`gradient_descent(0, 0, 10, ...)`), and
# `torch.tensor(0, requires_grad=True)` raises an error: only floating-point tensors can require
# gradients, because a gradient is the effect of an arbitrarily small change and an integer cannot
# change by less than 1. Make A and B floats.

# %% nbgrader={"grade": false, "grade_id": "t2_descent_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def gradient_descent(A, B, target, lr, epochs, zero_grad=True):
    """Minimise (A + B − target)² from (A, B); returns (As, Bs, losses), one entry per epoch."""
    ### BEGIN SOLUTION
    A = torch.tensor(float(A), requires_grad=True)
    B = torch.tensor(float(B), requires_grad=True)
    As, Bs, losses = [], [], []
    for _ in range(epochs):
        loss = (A + B - target) ** 2
        loss.backward()
        for parameter in (A, B):
            with torch.no_grad():
                parameter.sub_(lr * parameter.grad)
            if zero_grad:
                parameter.grad.zero_()
        As.append(A.item())
        Bs.append(B.item())
        losses.append(loss.item())
    return As, Bs, losses
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t2_descent", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check.function(globals(), "gradient_descent")
### BEGIN HIDDEN TESTS
check.function(globals(), "gradient_descent", hidden=GRADER_PROBES)
### END HIDDEN TESTS

# %% [markdown]
# Run it on the textbook problem. After the first epoch A = B = 0.2 and the loss printed is the
# starting loss, 100; after 101 epochs both sit near 4.919 with the loss near 0.02846.

# %%
As, Bs, losses = gradient_descent(0, 0, 10, lr=0.01, epochs=101)
for k in (0, 50, 100):
    print(f"epoch {k:3d}: A = {As[k]:.4f}, B = {Bs[k]:.4f}, loss = {losses[k]:.4f}")

# %% [markdown]
# A and B stay exactly equal. They start equal, and dloss/dA = dloss/dB = 2u at every step, so
# every update moves them by the same amount. Training settles on A = B = 5, one point of a
# whole line of minima (every A + B = 10 has loss 0) picked out by the symmetric start.

# %% [markdown]
# ## Task 3 — Predict, then observe: the learning rate
#
# Follow one update through and you will find that it multiplies the error u = A + B − target by
# a factor that depends on the learning rate alone. Work that factor out yourself, for a slightly
# more general model, so that what you write down is the derivation: n parameters p1, …, pn that
# add up, loss = (p1 + … + pn − target)², every one updated with the same learning rate lr.
# A and B are the case n = 2.
#
# Write `shrink_factor(lr, n)`, returning u_next / u, as a closed form like `one_step` (plain
# Python, `math` at most). The grader runs this cell by itself on inputs drawn for your submission.

# %% nbgrader={"grade": false, "grade_id": "t3_factor_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def shrink_factor(lr, n):
    """The factor by which one update multiplies u = p1 + … + pn − target."""
    ### BEGIN SOLUTION
    # each parameter moves by −lr · 2u, so their sum moves by −2n · lr · u
    return 1 - 2 * n * lr
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t3_factor", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
check.formula(globals(), "shrink_factor")

# %% [markdown]
# **Predict before you plot.** For A and B the factor is `shrink_factor(lr, 2)`, and it decides
# everything. Between 0 and 1, the error shrinks and keeps its sign; exactly 0, training lands in
# one step; between −1 and 0, the error flips sign each step but shrinks; below −1, it flips and
# grows. For each of **your four learning
# rates** (printed under *Your numbers*), predict one of `"monotone"`, `"one step"`,
# `"oscillating"` or `"diverging"`, and put it in the dictionary `predictions`
# (for example `predictions = {0.1: "monotone", ...}`). Your rates were drawn at random: a regime
# may come up twice, or not at all, so work each one out from its factor.

# %% nbgrader={"grade": false, "grade_id": "t3_regimes_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# predictions = {learning rate: regime} for your four learning rates
### BEGIN SOLUTION
def classify(lr):
    factor = shrink_factor(lr, 2)
    if factor == 0:
        return "one step"
    if 0 < factor < 1:
        return "monotone"
    return "oscillating" if -1 < factor < 0 else "diverging"


predictions = {lr: classify(lr) for lr in mine["rates"]}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t3_regimes", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.table(globals(), "predictions")

# %% [markdown]
# Now observe. The plot shows the loss for each of your learning rates over 12 epochs (a loss
# of exactly 0 is drawn at the bottom of the axis). Do the curves do what you predicted?

# %%
curves = {f"lr = {lr:g}": gradient_descent(0, 0, 10, lr, epochs=12)[2] for lr in sorted(mine["rates"])}
plot_loss_curves(curves, title="Loss against epoch for four learning rates")
plt.show()

# %% [markdown]
# So the boundaries are lr = 0.25 (one step) and lr = 0.5 (beyond it the error grows), and a
# small learning rate is never trapped here: the loss is a convex bowl along A + B, so a small
# rate is only slow. Real losses are not this simple, but the same trade-off appears: too large
# and training oscillates or blows up, too small and it crawls.

# %% [markdown]
# ## Task 4 — Observe: forgetting to reset the gradients
#
# Run the same problem with `zero_grad=False`. Each `backward()` now adds the new gradient to all
# the earlier ones, so the step is driven by a running sum of past gradients. Before you run the
# cell: will the loss still reach 0, and will it stay there?

# %%
with_reset = gradient_descent(0, 0, 10, lr=0.01, epochs=60)[2]
without_reset = gradient_descent(0, 0, 10, lr=0.01, epochs=60, zero_grad=False)[2]
plot_loss_curves({"zero_grad=True": with_reset, "zero_grad=False": without_reset},
                 title="Resetting the gradients, or not")
plt.show()

# %% [markdown]
# ## Task 4 — One weight at every step: unrolling a loop
#
# A recurrent network applies the same weight at every time step. Take the smallest one:
# h_t = w · h_{t−1} + 1, run for three steps from h0. The program has a loop, but the graph
# autograd records has none: each step's `w * h + 1` is a new node, so the graph is the loop
# **unrolled**, three multiplications in a row, and all three read the same leaf `w`. When one
# value is used in several places its gradient is the sum of the gradients through each use
# (Lab 2 calls this *fan-out*), so dh3/dw adds one term per step. The term of step t is how h_t
# moves with w at that step, holding h_{t−1} fixed, carried forward to h3: each later step
# multiplies a change of its input by w.
#
# Write `unrolled_gradient(w, h0)`, returning `(h3, dh3/dw)` for any w and h0: run the three
# steps, then add the three terms. Plain Python and `math` only, one assignment after another (no
# loop: here the unrolling is yours to write down). The grader also runs it on w above 1,
# negative w and negative starts.

# %% nbgrader={"grade": false, "grade_id": "t4_unrolled_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
import math


def unrolled_gradient(w, h0):
    """(h3, dh3/dw) for h_t = w · h_{t−1} + 1, three steps from h0; `math` only."""
    ### BEGIN SOLUTION
    h1 = w * h0 + 1
    h2 = w * h1 + 1
    h3 = w * h2 + 1
    return h3, h2 + w * h1 + w * w * h0
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t4_unrolled", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check.formula(globals(), "unrolled_gradient")

# %% [markdown]
# Observe, on w = 1.25 and h0 = 2: autograd runs the loop, and `backward()` walks the unrolled
# graph. The printout compares autograd with your function, then lists the nodes from h3 back to
# `w`: one `MulBackward0` per step, each reaching the same `AccumulateGrad` of `w`, where the three
# terms are added.

# %%
shared_w = torch.tensor(1.25, dtype=torch.float64, requires_grad=True)
hs = [torch.tensor(2.0, dtype=torch.float64)]
for _ in range(3):
    hs.append(shared_w * hs[-1] + 1)
hs[-1].backward()
print(f"autograd: h3 = {hs[-1].item():g}, dh3/dw = {shared_w.grad.item():g}; yours:", unrolled_gradient(1.25, 2.0))
node = hs[-1].grad_fn
while node is not None:  # down the chain of steps; AccumulateGrad (w itself) has no next_functions
    print(type(node).__name__, "→", [type(child).__name__ for child, _ in node.next_functions if child is not None])
    node = next((child for child, _ in node.next_functions if child is not None and child.next_functions), None)

# %% [markdown]
# ## Written answers (manually graded)
#
# **Q1.** Why is lr = 0.01 a reasonable choice here, and what happens with a larger or smaller
# learning rate? Use your shrink factor. (Careful: some texts say a small rate can get stuck in
# a local minimum. Is there one in this problem?)

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_learning_rate", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# With lr = 0.01 each update multiplies the error by 0.96: steady, never overshooting, done to
# within 2% of the target in about 100 epochs. Larger rates shrink the error faster up to lr =
# 0.25 (one step); between 0.25 and 0.5 the error flips sign but still shrinks; above 0.5 it
# grows and training diverges. A smaller rate only makes the factor closer to 1, so training is
# slower. There is no local minimum to get stuck in: the loss is convex, and every point of the
# line A + B = 10 is a global minimum.
# ### END SOLUTION

# %% [markdown]
# **Q2.** Why must the gradients be reset after each update? Describe what your plot in Task 4
# shows and explain it.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_zero_grad", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# `backward()` adds into `.grad` rather than overwriting it (so that gradients from several
# losses can be combined). Without a reset, step k uses the sum of the gradients of steps 0..k,
# which behaves like momentum with no damping: A and B overshoot the target, and the loss swings
# back up to its starting value of about 100 again and again, never settling, as the
# zero_grad=False curve shows.
# ### END SOLUTION

# %% [markdown]
# **Q3.** What exactly does `loss.backward()` compute, and where does the result go?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_backward", "locked": false, "points": 1, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# It walks the graph recorded during the forward pass from the loss back to the leaves, applies
# the chain rule at every node, and adds dloss/dA and dloss/dB into `A.grad` and `B.grad`. It
# does not change A or B: the update is our own code.
# ### END SOLUTION

# %% [markdown]
# **Q4.** Your loop in Task 2 changes A and B every epoch, and the next forward pass uses the new
# values. Why does that not make the computation graph cyclic? And why must a graph be acyclic for
# backpropagation to work at all? (Task 4's recurrence loops too: say how its graph avoids a cycle.)

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_acyclic", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# Each forward pass records a new graph, from the leaves' current values to that epoch's loss;
# the update runs under `torch.no_grad()`, so it is not recorded and links no epoch's graph to the
# next. Backpropagation visits the nodes in reverse order of computation and needs a node's
# gradient complete (summed over everything that used it) before passing it on; a cycle has no
# such order, and a value would depend on itself. A recurrence is unrolled: each time step is a
# new node, so h3 depends on h2, which depends on h1, never on itself; the weight shared by the
# steps is one leaf used three times, and its gradient is the sum over the steps.
# ### END SOLUTION

# %% [markdown]
# ## What you learned
# - The gradient of a squared error is 2 · error · (derivative of the error); one step of
#   gradient descent subtracts lr times it.
# - A training loop is forward, `backward()`, update under `torch.no_grad()`, reset `.grad`.
# - On this problem one number, the factor each update multiplies the error by, predicts whether
#   training crawls, lands, oscillates or diverges; a small rate is slow, never stuck.
# - `.grad` accumulates by design; forgetting to reset it turns each step into a sum of old steps.
# - A loop in the program is a chain in the graph: each step is a new node, and a weight shared by
#   the steps gets the sum of one gradient term per step (backpropagation through time).
