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
# # Lab 3 — Gradient accumulation
#
# `loss.backward()` does not *store* gradients in `.grad`; it *adds* them to whatever is there.
# That single design decision explains why training loops reset gradients, why a second
# backward pass doubles them, and how you can train on a batch that does not fit in memory.
#
# **You will learn to**
# - predict `.grad` after one and after two backward passes, and explain `retain_graph`;
# - tell from an expression whether its graph survives a second backward (saved tensors);
# - clear gradients three ways and know what each leaves behind;
# - reproduce a full-batch gradient from micro-batches, and read a layer's gradient.
#
# **Time.** About 65 minutes (Task 1 5, Task 2 7, Task 3 5, Task 4 13, Task 5 10, Task 6 10; the
# rest is reading, running and written answers), as `make minutes` estimates from what the lab
# asks. Not yet timed with students.
#
# **How answers are graded.** Hand-computed values need at least 4 significant digits. Every
# grade is checked against what `torch.autograd` does when your notebook is graded. Cells marked
# *manually graded* are read by your instructor.
#
# **What earns the points.** The numbers you work out by hand and your tables of predictions are
# for checking yourself: their checks answer at once, and together they carry at most a third of
# the autograded points. The functions and the written answers are the assessment.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import matplotlib.pyplot as plt
import torch
from torch import nn

from course.lab3 import check, problem_data
from course.plots import plot_loss_curves

# %% [markdown]
# ## Your numbers
#
# Tasks 1 and 2 are graded on numbers made from your student id.
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
# ## Task 1 — Backward twice
#
# Take a vector a that requires gradients and build b = 2a, c = b + k, d = c², out = d.sum().
# By the chain rule, dout/da_i = 2c_i · 2 = 4(2a_i + k). With the textbook a = [1, 2, 3, 4] and
# k = 5 that is [28, 36, 44, 52].
#
# Calling `out.backward()` a second time needs `retain_graph=True` on the first call (Task 2
# says why). **Predict**, for your a and k: the list `grad_once`, a.grad after one backward,
# and the list `grad_twice`, a.grad after a second backward through the same graph.

# %% nbgrader={"grade": false, "grade_id": "t1_accumulation_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# grad_once and grad_twice for your a and k
### BEGIN SOLUTION
grad_once = [4 * (2 * a_i + mine["k"]) for a_i in mine["a"]]
grad_twice = [2 * g for g in grad_once]
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t1_accumulation", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "grad_once", "grad_twice")

# %% [markdown]
# Observe it on the textbook a = [1, 2, 3, 4] and k = 5, then check your reasoning against what
# you see:

# %%
a = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
out = ((2 * a + 5) ** 2).sum()
out.backward(retain_graph=True)
print("after one backward: ", a.grad)
out.backward()
print("after two backwards:", a.grad)

# %% [markdown]
# ## Task 2 — Which graphs survive a second backward?
#
# To compute its gradient, an operation may need values from the forward pass: `x * x` needs x,
# `x.exp()` needs its own output. Autograd saves exactly those tensors on the graph, and the first
# `backward()` frees them to save memory. A second `backward()` then fails with "Trying to
# backward through the graph a second time", unless the first call kept them with
# `retain_graph=True`. An operation that saves no tensor (adding a constant, say) leaves nothing
# to free, and a second backward simply works — and adds to `.grad` again.
#
# For each of **your five expressions** (x requires grad, y is a constant vector), predict
# whether a second `out.backward()` fails without `retain_graph`. Put your answers in the
# dictionary `needs_retain`, from the expression text to `True` (fails) or `False` (works).

# %% nbgrader={"grade": false, "grade_id": "t2_retain_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# needs_retain = {"expression": True or False, ...} for your five expressions
### BEGIN SOLUTION
saves_nothing = {"(x + 2).sum()", "(x - y).sum()", "(-x).sum()"}
needs_retain = {e: e not in saves_nothing for e in mine["expressions"]}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t2_retain", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.table(globals(), "needs_retain")

# %% [markdown]
# Observe: four expressions that are nobody's task, each backpropagated twice. One result may
# surprise you: `x * 3` saves the 3 (wrapped as a tensor), since x's gradient is the upstream
# gradient times 3.

# %%
for text in ("x.sum()", "(x + y + 1).sum()", "(x * 3).sum()", "x.tanh().sum()"):
    x = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    y = torch.tensor([1.0, 2.0, 3.0])
    out = eval(text)  # the expression texts come from the lab, not from user input
    out.backward()
    try:
        out.backward()
        print(f"{text:<20} second backward works; x.grad = {x.grad}")
    except RuntimeError as error:
        print(f"{text:<20} second backward fails: {str(error)[:60]}...")

# %% [markdown]
# ## Task 3 — Clearing gradients
#
# Because gradients add up, a training loop clears them before each backward pass. There are
# several ways, and they do not all leave the same thing behind. For a parameter `p` whose
# `.grad` holds a gradient, predict what `p.grad` is after each of the four ways below:
# `"zeros"` (a tensor of zeros) or `"None"`. Put them in the dictionary `after_clear`.
#
# `optimizer` is `torch.optim.SGD([p], lr=0.1)`.

# %% nbgrader={"grade": false, "grade_id": "t3_clearing_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
after_clear = {
    "p.grad.zero_()": ...,
    "p.grad = None": ...,
    "optimizer.zero_grad()": ...,
    "optimizer.zero_grad(set_to_none=False)": ...,
}
### BEGIN SOLUTION
after_clear = {
    "p.grad.zero_()": "zeros",
    "p.grad = None": "None",
    "optimizer.zero_grad()": "None",
    "optimizer.zero_grad(set_to_none=False)": "zeros",
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t3_clearing", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.table(globals(), "after_clear")

# %% [markdown]
# `None` saves memory and lets the next backward write the gradient instead of adding to zeros.
# It also means code must not assume `p.grad` is a tensor right after `optimizer.zero_grad()`.

# %% [markdown]
# ## Task 4 — Accumulation as a technique: micro-batches
#
# Accumulation is also useful on purpose. The mean loss over a batch of n samples, split into k
# equal micro-batches, is the average of the k micro-batch means. So if each micro-batch loss is
# scaled by 1/k and backpropagated in turn, the gradients that add up in `.grad` are exactly
# the full-batch gradient — while only one micro-batch's activations are in memory at a time.
#
# Write `accumulate_gradients(model, X, y, k)`: clear the model's old gradients first (they
# may hold stale values), split `X` and `y` into `k` equal parts (`torch.chunk`), and for each
# part compute the mean squared error (`nn.functional.mse_loss`), scale it by 1/k and call
# `backward()`. Return a list with a copy (`.clone()`) of each parameter's gradient, in the
# order of `model.parameters()`. The check counts the batches your model is run on: k
# micro-batches, never the whole batch at once. (One of the grader's models also normalises over
# each batch, like `nn.BatchNorm1d`; there micro-batches and the full batch give different
# gradients, and the recipe above is what is graded.)

# %% nbgrader={"grade": false, "grade_id": "t4_micro_batches_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def accumulate_gradients(model, X, y, k):
    """Full-batch MSE gradients of `model`, computed from k micro-batches."""
    ### BEGIN SOLUTION
    model.zero_grad()
    for X_part, y_part in zip(torch.chunk(X, k), torch.chunk(y, k)):
        (nn.functional.mse_loss(model(X_part), y_part) / k).backward()
    return [p.grad.clone() for p in model.parameters()]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t4_micro_batches", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
check.function(globals(), "accumulate_gradients")
### BEGIN HIDDEN TESTS
check.function(globals(), "accumulate_gradients", hidden=GRADER_PROBES)
### END HIDDEN TESTS

# %% [markdown]
# Observe: train the same small network twice, once on the full batch and once with your
# micro-batch gradients. The two loss curves should lie on top of each other. (The grader does
# not compare curves: it compares your function's gradients with micro-batch ones from autograd,
# by relative error, at most 1e-6.)

# %%
def train(use_micro_batches, steps=60):
    model, X, y = problem_data(32, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        if use_micro_batches:
            grads = accumulate_gradients(model, X, y, k=4)
            for p, g in zip(model.parameters(), grads):
                p.grad = g
        else:
            nn.functional.mse_loss(model(X), y).backward()
        optimizer.step()
        with torch.no_grad():
            losses.append(nn.functional.mse_loss(model(X), y).item())
    return losses


full, micro = train(False), train(True)
print("same curve:", torch.allclose(torch.tensor(full), torch.tensor(micro)))
plot_loss_curves({"full batch": full, "4 micro-batches": micro}, title="Full batch vs. accumulated micro-batches")
plt.show()

# %% [markdown]
# ## Task 5 — Reading a layer's gradient
#
# After `loss.backward()`, every parameter of a model carries its gradient. In an
# `nn.Sequential`, `model[0]` is the first layer, so `model[0].weight.grad` is the gradient of
# the loss with respect to its weight matrix. Write `first_layer_grad(model, X, y)`: clear the
# old gradients, backpropagate the mean squared error of `model(X)` against `y` once, and return
# that gradient.

# %% nbgrader={"grade": false, "grade_id": "t5_layer_grad_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def first_layer_grad(model, X, y):
    """dloss/dW of the first layer for the mean squared error on (X, y)."""
    ### BEGIN SOLUTION
    model.zero_grad()
    nn.functional.mse_loss(model(X), y).backward()
    return model[0].weight.grad
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t5_layer_grad", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.function(globals(), "first_layer_grad")
### BEGIN HIDDEN TESTS
check.function(globals(), "first_layer_grad", hidden=GRADER_PROBES)
### END HIDDEN TESTS

# %% [markdown]
# ## Task 6 — Five traps, predicted then observed
#
# Each statement below is a mistake people make with autograd, or what follows from one. In the
# code, `x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)` and `w` is another leaf that
# requires grad; `A` is a parameter whose gradient `A.grad` has been computed. Predict `True` or
# `False` for each before running anything, and fill in `traps`. The cell after the check runs
# every one of them.

# %% nbgrader={"grade": false, "grade_id": "t6_traps_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
traps = {
    "w += 1 raises an error": ...,
    "y = x.exp(); y.add_(1); y.sum().backward() raises an error": ...,
    "y = x * 2; y.add_(1); y.sum().backward() raises an error": ...,
    "A = A - 0.1 * A.grad, outside torch.no_grad(), leaves A.grad as None": ...,
    "(s.detach() * s).backward() gives s.grad = 6 for s = tensor(3., requires_grad=True)": ...,
    "x.backward() raises an error (x has three elements)": ...,
    "torch.tensor(3, requires_grad=True) raises an error": ...,
}
### BEGIN SOLUTION
traps = {
    "w += 1 raises an error": True,
    "y = x.exp(); y.add_(1); y.sum().backward() raises an error": True,
    "y = x * 2; y.add_(1); y.sum().backward() raises an error": False,
    "A = A - 0.1 * A.grad, outside torch.no_grad(), leaves A.grad as None": True,
    "(s.detach() * s).backward() gives s.grad = 6 for s = tensor(3., requires_grad=True)": False,
    "x.backward() raises an error (x has three elements)": True,
    "torch.tensor(3, requires_grad=True) raises an error": True,
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t6_traps", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check.table(globals(), "traps")

# %% [markdown]
# Observe each trap, and what PyTorch says.

# %%
def attempt(label, action):
    try:
        print(f"{label}: runs, giving {action()}")
    except RuntimeError as error:
        print(f"{label}: RuntimeError: {str(error).splitlines()[0][:90]}")


def rebind_update():
    A = torch.tensor(1.0, requires_grad=True)
    (A * A).backward()
    A = A - 0.1 * A.grad  # a new tensor, computed from the leaf: not a leaf, and tracked
    return f"A.is_leaf = {A.is_leaf}, A.requires_grad = {A.requires_grad}"


def detached_product():
    s = torch.tensor(3.0, requires_grad=True)
    (s.detach() * s).backward()
    return f"s.grad = {s.grad.item()}"


x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
attempt("w += 1", lambda: torch.ones(2, requires_grad=True).add_(1))
attempt("exp, then add_", lambda: x.exp().add_(1).sum().backward())
attempt("x * 2, then add_", lambda: (x * 2).add_(1).sum().backward())
attempt("A = A - 0.1 * A.grad", rebind_update)
attempt("s.detach() * s", detached_product)
attempt("x.backward()", lambda: x.backward())
attempt("torch.tensor(3, requires_grad=True)", lambda: torch.tensor(3, requires_grad=True))

# %% [markdown]
# What each one teaches:
# - A leaf that requires grad cannot be changed in place. Autograd records every operation on a
#   tensor that requires grad, so `w += 1` would have to become a node of the graph with `w` as
#   its output: `w` would stop being a leaf, the tensor you asked gradients for, and there would be
#   no `w.grad` to collect them. An update of a parameter is not part of the function being
#   differentiated, so do it inside `torch.no_grad()`, where nothing is recorded and in-place
#   changes are allowed.
# - `exp` saves its *output* for backward (the derivative of eˣ is eˣ), so changing `y` in place
#   makes the saved value stale, and backward refuses ("modified by an inplace operation").
#   `x * 2` saves nothing of its output, so the same change is harmless.
# - `A = A - lr * A.grad` makes a *new* tensor computed from A: not a leaf, so its `.grad` stays
#   `None` and the next step has no gradient to use (reading it also warns). Update in place, under `no_grad`.
# - `detach()` returns the same value as a constant: the product's derivative is that constant, 3,
#   not 2·s = 6. It stops a gradient; it does not change a value.
# - `backward()` needs a scalar, or `gradient=` with one weight per element (the vector that
#   multiplies the Jacobian): `x.backward(gradient=torch.ones(3))` works.
# - Integer tensors cannot require gradients: a gradient measures the effect of an arbitrarily small
#   change, and an integer cannot change by less than 1.

# %% [markdown]
# ## Written answers (manually graded)
#
# **Q1.** Some tutorials say PyTorch accumulates gradients "in a buffer of the optimizer until it
# is full", to save memory. Where do gradients really accumulate, who clears them, and why is
# adding (rather than overwriting) a useful default?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_where_gradients_live", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# They accumulate in the `.grad` attribute of each leaf tensor (each parameter), not in the
# optimizer; `backward()` adds into it and nothing clears it automatically. The training loop
# clears it, with `optimizer.zero_grad()` or `model.zero_grad()` (both set `.grad` to None by
# default). Adding is useful because gradients of several losses, or of several micro-batches,
# combine into the gradient of their sum, as in Task 4. (A parameter used twice within one graph
# is a different case: in one backward the engine sums both paths' contributions before anything
# is written to `.grad`.)
# ### END SOLUTION

# %% [markdown]
# **Q2.** Why does `(x * x).sum()` need `retain_graph=True` for a second backward while
# `(x + 2).sum()` does not? What does "the graph is freed" free, and what does it not free?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_saved_tensors", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# The backward of x * x needs the value of x (d(x²)/dx = 2x), so the multiplication saves x on
# the graph; the backward of x + 2 needs nothing. After the first backward, autograd frees the
# saved tensors to reclaim memory, so the multiplication has nothing left to compute with and
# raises; the addition never had anything to free. Freeing drops the saved intermediate values,
# not the gradients already in `.grad`, and not the parameters.
# ### END SOLUTION

# %% [markdown]
# ## What you learned
# - `backward()` adds into `.grad`; a second backward through the same graph doubles it.
# - A graph keeps only the tensors its backward formulas need, and frees them after one
#   backward unless told `retain_graph=True`; graphs that saved nothing can be reused.
# - `zero_()` leaves zeros, `optimizer.zero_grad()` leaves `None` by default.
# - Scaled micro-batch losses accumulate to the full-batch gradient: large batches in small memory.
# - `model[0].weight.grad` is where a layer's gradient lives after `loss.backward()`.
