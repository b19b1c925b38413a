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
# # Lab 6 — Your own autograd
#
# Five labs have used `backward()` and taken it apart by hand. This one builds it. A `Value`
# holds one number; every operation on Values makes a new Value that remembers its inputs and
# one small rule, its *local derivative* times the gradient that arrives from above. `backward()`
# puts the graph in order and runs those rules from the output back to the inputs. That is all
# reverse-mode autograd is; PyTorch does the same with tensors and a few thousand rules.
#
# **You will learn to**
# - predict, by hand, the gradient of an input that reaches the output along two paths;
# - write each operation's forward value and local rule, and see why rules *add* into `.grad`;
# - order a graph topologically and run backward through it, checked on graphs you never saw;
# - train a small network with your engine and watch it follow PyTorch step for step;
# - teach PyTorch a new operation: a `torch.autograd.Function` with a stable forward and a
#   hand-written backward, checked by `torch.autograd.gradcheck`.
#
# **Time.** About 80 minutes (Task 1 7, Task 2 27, Task 3 27, Task 4 2, Task 5 13; the rest is
# reading, running and written answers), as `make minutes` estimates from what the lab asks. Not
# yet timed with students.
#
# **How answers are graded.** Task 1's numbers need at least 4 significant digits. Your engine
# is plain Python: the grader runs its cells on their own, with Python's standard library and
# nothing else (no torch, no course kit), on graphs drawn anew for each submission, and compares
# every gradient with what `torch.autograd` gives in float64. It names the mistake when it
# recognises one.
#
# **What earns the points.** Task 1's numbers are for checking yourself: autograd could give
# them, and they carry at most a third of the autograded points (2 of 18). Your engine and your
# Function are the assessment.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import math

import matplotlib.pyplot as plt
import torch

from course.data import T_C, T_U
from course.lab6 import check

# %% [markdown]
# ## Your numbers
#
# Task 1 is graded on numbers made from your student id.
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
# ## Task 1 — Predict a fan-out
#
# Take out = (a·b + c)·a, with the intermediates t = a·b and u = t + c, so out = u·a. The
# input `a` is used twice: once inside t and once in the last product. When an input *fans
# out* like this, its gradient is the sum over every path from it to the output, each path
# contributing the product of its local derivatives (Lab 4 Task 1 did the same with
# u = x · z and v = 3x). For a = 2, b = −1, c = 3: t = −2, u = 1, out = 2, and
# dout/da = u · 1 (the direct path) + a · 1 · b (through u and t) = 1 − 2 = −1.
#
# Work out `out`, `dout_da`, `dout_db` and `dout_dc` for your a, b and c.

# %% nbgrader={"grade": false, "grade_id": "t1_fan_out_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
# out, dout_da, dout_db, dout_dc for your numbers
### BEGIN SOLUTION
a, b, c = mine["a"], mine["b"], mine["c"]
u = a * b + c
out = u * a
dout_da = u + a * b
dout_db = a * a
dout_dc = a
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "t1_fan_out", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
check.values(globals(), "out", "dout_da", "dout_db", "dout_dc")

# %% [markdown]
# ## Task 2 — A Value and its local rules
#
# Each operation below does two things. Forward, it computes the new number and makes a
# `Value` that keeps its inputs in `_prev`. Backward, it leaves a closure `out._backward` that,
# once `out.grad` holds d(final output)/d(out), adds each input's share into that input's
# `.grad`: local derivative × `out.grad`.
#
# Two details decide whether an engine is right:
# - **Add, never assign.** An input used twice (as `a` in Task 1, or `a * a`) receives one share
#   per use. `self.grad += ...` sums them; `self.grad = ...` keeps only the last.
# - **Evaluate at this forward pass.** A local derivative is taken at the values the forward
#   pass computed: tanh′ is 1 − t² with t the *output* tanh(x), and the sigmoid's is s(1 − s)
#   with s = σ(x). (Some texts write σ′(x) = x(1 − x); that is wrong unless x is already σ's
#   output.) At exactly 0 the ReLU has no derivative; PyTorch uses 0 there, and so do we.
#
# Fill in `__add__`, `__mul__`, `__pow__` (k is a plain number), `exp`, `log`, `tanh`, `relu`
# and `sigmoid`. The rest of the class is written for you from those: a − b is a + (−1)·b and
# a / b is a · b⁻¹, so their gradients come from the rules you write. Use `math` only: this cell
# is graded on its own, without torch.
#
# The check (`one_rule` in its messages) builds a one-operation graph, sets `out.grad = 2.5`
# and calls `out._backward()` once: only your rule runs. The program after `one_rule on` in a
# message is Python you can paste into a cell to see for yourself.

# %% nbgrader={"grade": false, "grade_id": "t2_value_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
import math


class Value:
    """One number in a computation graph, with its gradient and the rule that passes it on."""

    def __init__(self, data, children=()):
        self.data = float(data)
        self.grad = 0.0
        self._prev = tuple(children)  # the Values this one was computed from
        self._backward = lambda: None  # adds this node's share into its inputs' .grad

    def __repr__(self):
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other))

        def _backward():
            ### BEGIN SOLUTION
            self.grad += out.grad
            other.grad += out.grad
            ### END SOLUTION
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other))

        def _backward():
            ### BEGIN SOLUTION
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
            ### END SOLUTION
        out._backward = _backward
        return out

    def __pow__(self, k):
        out = Value(self.data ** k, (self,))

        def _backward():
            ### BEGIN SOLUTION
            self.grad += k * self.data ** (k - 1) * out.grad
            ### END SOLUTION
        out._backward = _backward
        return out

    def exp(self):
        ### BEGIN SOLUTION
        out = Value(math.exp(self.data), (self,))

        def _backward():
            self.grad += out.data * out.grad
        out._backward = _backward
        return out
        ### END SOLUTION

    def log(self):
        ### BEGIN SOLUTION
        out = Value(math.log(self.data), (self,))

        def _backward():
            self.grad += out.grad / self.data
        out._backward = _backward
        return out
        ### END SOLUTION

    def tanh(self):
        ### BEGIN SOLUTION
        out = Value(math.tanh(self.data), (self,))

        def _backward():
            self.grad += (1 - out.data ** 2) * out.grad
        out._backward = _backward
        return out
        ### END SOLUTION

    def relu(self):
        ### BEGIN SOLUTION
        out = Value(self.data if self.data > 0 else 0.0, (self,))

        def _backward():
            self.grad += (1.0 if self.data > 0 else 0.0) * out.grad
        out._backward = _backward
        return out
        ### END SOLUTION

    def sigmoid(self):
        ### BEGIN SOLUTION
        out = Value(1 / (1 + math.exp(-self.data)), (self,))

        def _backward():
            self.grad += out.data * (1 - out.data) * out.grad
        out._backward = _backward
        return out
        ### END SOLUTION

    # Written for you, from the operations above.
    def __neg__(self):
        return self * -1

    def __radd__(self, other):
        return self + other

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return other + (-self)

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        return self * other ** -1

    def __rtruediv__(self, other):
        return other * self ** -1

    def backward(self):
        raise NotImplementedError("Task 3 writes backward()")


# %% nbgrader={"grade": true, "grade_id": "t2_rules", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
check.engine(globals(), "rules")

# %% [markdown]
# ## Task 3 — backward()
#
# A rule may run only once `out.grad` is complete: after every node that uses `out` has added
# its share. An order with that property is a *topological order* of the graph, reversed. One
# way to get it: visit the output, and before listing a node, visit (once) every node it was
# made from; the list then has each node after all of its inputs, so read it backwards.
#
# Write `backward(self)`: build that order, set the output's own gradient to 1 (d out/d out),
# and run each node's `_backward()` from the output down. The check (`gradients on <program>`
# in its messages) runs your whole engine on graphs with shared nodes and a ReLU at 0; the
# grader adds deep chains and every operation at once, on graphs drawn for your submission.

# %% nbgrader={"grade": false, "grade_id": "t3_backward_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def backward(self):
    """Fill in every .grad of the graph that ends at self with d self / d (that node)."""
    ### BEGIN SOLUTION
    order, seen = [], set()

    def visit(node):
        if node not in seen:
            seen.add(node)
            for child in node._prev:
                visit(child)
            order.append(node)
    visit(self)
    self.grad = 1.0
    for node in reversed(order):
        node._backward()
    ### END SOLUTION


Value.backward = backward

# %% nbgrader={"grade": true, "grade_id": "t3_backward", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
check.engine(globals(), "backward")

# %% [markdown]
# **Observe.** Your engine on Task 1's graph, with your numbers: are these your predictions?

# %% nbgrader={"grade": false, "grade_id": "t3_observe", "locked": true, "schema_version": 3, "solution": false, "task": false}
va, vb, vc = Value(mine["a"]), Value(mine["b"]), Value(mine["c"])
vout = (va * vb + vc) * va
vout.backward()
print(f"out = {vout.data:.6g}; dout/da = {va.grad:.6g}, dout/db = {vb.grad:.6g}, dout/dc = {vc.grad:.6g}")

# %% [markdown]
# ## Task 4 — Train with your engine
#
# Nothing to write: run the cells and compare. A network with one input, two tanh units and
# one output is fitted to the thermometer readings of Lab 5 (Celsius in, the unknown scale
# out, both divided by 10), once with your `Value`s and once with PyTorch, from the same
# starting weights and with the same learning rate. If your engine is right, the two loss
# curves lie on top of each other: PyTorch runs the same rules, in float64 here as yours do.

# %% nbgrader={"grade": false, "grade_id": "t4_train", "locked": true, "schema_version": 3, "solution": false, "task": false}
torch.manual_seed(0)
start = {"w1": torch.randn(2).tolist(), "b1": torch.randn(2).tolist(), "w2": torch.randn(2).tolist(), "b2": 0.0}
xs, ys = [t / 10 for t in T_C], [t / 10 for t in T_U]
STEPS, LR = 60, 0.05


def train_engine(start):
    w1, b1, w2 = ([Value(v) for v in start[k]] for k in ("w1", "b1", "w2"))
    b2 = Value(start["b2"])
    params, losses = [*w1, *b1, *w2, b2], []
    for _ in range(STEPS):
        loss = Value(0.0)
        for x, y in zip(xs, ys):
            hidden = [(w * x + b).tanh() for w, b in zip(w1, b1)]
            prediction = hidden[0] * w2[0] + hidden[1] * w2[1] + b2
            loss = loss + (prediction - y) ** 2
        loss = loss / len(xs)
        for p in params:
            p.grad = 0.0
        loss.backward()
        for p in params:
            p.data -= LR * p.grad
        losses.append(loss.data)
    return losses


def train_torch(start):
    w1, b1, w2 = (torch.tensor(start[k], dtype=torch.float64, requires_grad=True) for k in ("w1", "b1", "w2"))
    b2 = torch.tensor(start["b2"], dtype=torch.float64, requires_grad=True)
    x, y = torch.tensor(xs, dtype=torch.float64), torch.tensor(ys, dtype=torch.float64)
    losses = []
    for _ in range(STEPS):
        loss = ((torch.tanh(x[:, None] * w1 + b1) @ w2 + b2 - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            for p in (w1, b1, w2, b2):
                p -= LR * p.grad
                p.grad = None
        losses.append(loss.item())
    return losses


ours, theirs = train_engine(start), train_torch(start)
print(f"largest difference between the two loss curves: {max(abs(p - q) for p, q in zip(ours, theirs)):.1e}")
plt.plot(ours, label="your engine", linewidth=3)
plt.plot(theirs, "--", label="PyTorch")
plt.yscale("log")
plt.xlabel("step")
plt.ylabel("mean squared error")
plt.title("The same network and start, trained by your engine and by PyTorch")
plt.legend()
plt.show()

# %% [markdown]
# ## Task 5 — Teach PyTorch a new operation
#
# PyTorch's rules are written the way yours are: a forward computation and a backward rule per
# operation. You can add your own with `torch.autograd.Function`: `forward(ctx, x)` computes the
# output and saves what the rule will need (`ctx.save_for_backward`), `backward(ctx,
# grad_output)` returns d(final)/dx = local derivative × `grad_output`.
#
# Write `LogSigmoid`, for log σ(x) = −log(1 + e^(−x)). Written as `torch.log(torch.sigmoid(x))`,
# it fails far from 0: for x = −800, σ(x) rounds to 0 and the log gives −inf. Use the form
# min(x, 0) − log(1 + e^(−|x|)) (`torch.log1p` keeps digits when e^(−|x|) is tiny), which takes
# no log of a rounded-away number. Its derivative is 1 − σ(x) = σ(−x). Save the *input*: from
# the output you would compute 1 − exp(log σ(x)), which rounds to 0 for x above about 37.
#
# Write the backward rule yourself, without autograd: the grader reads this cell, and a
# backward that asks autograd (`torch.autograd.grad`, `.backward()`, `enable_grad`) scores
# nothing. The check compares values and gradients with `torch.nn.functional.logsigmoid` at
# every input, including x = ±800.

# %% nbgrader={"grade": false, "grade_id": "t5_log_sigmoid_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
class LogSigmoid(torch.autograd.Function):
    """log σ(x), computed stably, with its derivative σ(−x) written by hand."""

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        ctx.save_for_backward(x)
        return torch.clamp(x, max=0) - torch.log1p(torch.exp(-x.abs()))
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        (x,) = ctx.saved_tensors
        return grad_output * torch.sigmoid(-x)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "t5_log_sigmoid", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
check.function(globals(), "log_sigmoid")
### BEGIN HIDDEN TESTS
check.function(globals(), "log_sigmoid", hidden=GRADER_PROBES)
### END HIDDEN TESTS

# %% [markdown]
# **Observe.** `torch.autograd.gradcheck` compares your backward with centred differences of
# your forward, in float64, at random inputs (Lab 4b, Task 6 wrote the same check by hand). It
# returns True or raises with the two Jacobians side by side.

# %% nbgrader={"grade": false, "grade_id": "t5_gradcheck", "locked": true, "schema_version": 3, "solution": false, "task": false}
probe = torch.randn(6, dtype=torch.float64, requires_grad=True) * 4
print("gradcheck:", torch.autograd.gradcheck(LogSigmoid.apply, (probe.detach().requires_grad_(),)))
