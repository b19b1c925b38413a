"""A formula is a closed form: the rule (`course.closed_form`) passes every way of writing a
derivation down and refuses loops, containers, imports, helpers, complex numbers and finite
differences, with the same words in the kit and in the grader's sandbox."""

import pytest

from autograder.pipeline import sandbox
from course import formulas
from course.rules import BrokenRule, without_autograd
from course.rules import closed_form as check

CLOSED_FORMS = {
    "straight line": "import math\n\ndef f(x, y):\n    a = 2 * x\n    b = math.sin(y)\n    return a / b, -a * math.cos(y) / b ** 2\n",
    "piecewise with if": "def f(x, y):\n    if x > 0:\n        slope = 1.0\n    else:\n        slope = 0.0\n    return slope * y\n",
    "conditional expression": "def f(x, y):\n    return (y if x > 0 else 0.0), max(x, 0.0)\n",
    "from math import": "from math import exp, log\n\ndef f(x, y):\n    return log(1 + exp(x)) * y\n",
    "tuple unpacking": "import math\n\ndef f(x, y):\n    p, q = math.exp(x), math.exp(y)\n    return p / (p + q), q / (p + q)\n",
    "augmented assignment": "def f(x, y):\n    g = 2 * x\n    g *= y\n    return g\n",
    "a class index compared": "def f(x, y):\n    z = x if y == 0 else -x\n    return z - (y == 0)\n",
    "a stability epsilon": "import math\n\ndef f(x, y):\n    return math.log(y + 1e-12) + x\n",
    "a product of (1 − f)(1 + f), halved": "import math\n\ndef f(x, y):\n    t = math.tanh(x)\n"
                                           "    return (1 - t) * (t + 1) / 2, (y + 1) * (y - 3) / 2\n",
    "the released stub": "def f(x, y):\n    \"\"\"Doc.\"\"\"\n    # YOUR CODE HERE\n    raise NotImplementedError()\n",
    "docstrings and pass": "\"\"\"My formula.\"\"\"\n\ndef f(x, y):\n    \"\"\"Doc.\"\"\"\n    pass\n    return x\n",
}

NOT_CLOSED_FORMS = {
    "a loop": ("def f(x, y):\n    for _ in range(3):\n        x = 2 * x\n    return x\n", "a loop"),
    "a comprehension": ("def f(x, y):\n    return sum(v * v for v in (x, y))\n", "a comprehension"),
    "a list": ("def f(x, y):\n    v = [x, y]\n    return x\n", "a list"),
    "a dict lookup": ("def f(x, y):\n    return {0.25: 1.0}.get(x, 0.0)\n", "a dict"),
    "a subscript": ("def f(x, y):\n    t = x, y\n    return t[0]\n", "a tuple inside a computation"),
    "another import": ("import sympy\n\ndef f(x, y):\n    return x\n", "another import"),
    "cmath": ("import cmath\n\ndef f(x, y):\n    return cmath.sin(x + 1e-20j).imag / 1e-20\n", "another import"),
    "a complex step": ("import math\n\ndef f(x, y):\n    return (x + 1e-20j).imag\n", "a complex number"),
    "an import inside": ("def f(x, y):\n    import os\n    return x\n", "an import inside the function"),
    "a helper function": ("def g(x):\n    return x\n\ndef f(x, y):\n    return g(x)\n", "another function (`g`)"),
    "a nested function": ("def f(x, y):\n    def g(v):\n        return v\n    return x\n", "a nested function"),
    "a lambda": ("def f(x, y):\n    g = lambda v: v\n    return x\n", "a lambda"),
    "recursion": ("def f(x, y):\n    return f(x, y) if x > 0 else 0.0\n", "a call of `f`"),
    "a builtin other than abs min max float int": ("def f(x, y):\n    return round(x)\n", "a call of `round`"),
    "an attribute of something else": ("import math\n\ndef f(x, y):\n    return math.__loader__\n", "an attribute other than"),
    "an unknown name": ("def f(x, y):\n    return __builtins__\n", "the name `__builtins__`"),
    "a string": ("def f(x, y):\n    return float('nan')\n", "the constant 'nan'"),
    "a default argument": ("def f(x, y, h=1e-6):\n    return x\n", "plain parameters"),
    "star args": ("def f(*args):\n    return 1.0\n", "plain parameters"),
    "a raise of anything": ("def f(x, y):\n    raise exec('x')\n", "`raise` of something other"),
    "top-level code": ("import math\nTABLE = 3\n\ndef f(x, y):\n    return x\n", "not a Assign statement"),
    "no function": ("import math\n", "does not define the function `f`"),
    "a syntax error": ("def f(x, y)\n    return x\n", "does not parse"),
    "nested too deep": ("def f(x, y):\n    return " + "+".join(["x"] * 100_000) + "\n", "does not parse"),
}

NUMERICAL = {
    "centred difference with a named step": "import math\n\ndef f(x, y):\n    h = 1e-6\n"
                                            "    return (math.sin(x + h) - math.sin(x - h)) / (2 * h)\n",
    "literal steps": "import math\n\ndef f(x, y):\n    return (math.sin(x + 1e-6) - math.sin(x - 1e-6)) / 2e-6\n",
    "forward difference times 1/h": "import math\n\ndef f(x, y):\n    return (math.exp(x + 1e-7) - math.exp(x)) * 1e7\n",
    "reciprocal bound to a name": "import math\n\ndef f(x, y):\n    h = 1e-5\n    k = 1 / h\n"
                                  "    return (math.sin(y - h) - math.sin(y)) * -k\n",
    "relative step": "def f(x, y):\n    s = 1 + 1e-8\n    return ((x * s) ** 2 - x ** 2) / (x * 1e-8)\n",
    # a centred difference is exact for a square whatever its step: caught at any size of step
    "centred difference with a step of 1": "def f(x, y):\n    u = x + y\n    return ((u + 1) ** 2 - (u - 1) ** 2) / 2\n",
    "of a local constant, step 0.5 named": "def f(x, y):\n    h = 0.5\n    u = -10.0\n"
                                           "    return ((u + h) ** 2 - (u - h) ** 2) / (2 * h) * x\n",
    "of a local constant, step 1e-5": "def f(x, y):\n    h = 1e-5\n    u = -10.0\n"
                                      "    return ((u + h) ** 2 - (u - h) ** 2) / (2 * h) * x\n",
    "times a quarter, step 2": "def f(x, y):\n    return ((x + 2) ** 2 - (x - 2) ** 2) * 0.25\n",
}


@pytest.mark.parametrize("source", CLOSED_FORMS.values(), ids=CLOSED_FORMS)
def test_a_closed_form_passes(source):
    check(source, "f")


@pytest.mark.parametrize("source, words", NOT_CLOSED_FORMS.values(), ids=NOT_CLOSED_FORMS)
def test_what_is_not_a_closed_form_is_named(source, words):
    with pytest.raises(BrokenRule) as caught:
        check(source, "f")
    assert words in str(caught.value) and not caught.value.numerical


@pytest.mark.parametrize("source", NUMERICAL.values(), ids=NUMERICAL)
def test_a_finite_difference_is_named_a_numerical_derivative(source):
    with pytest.raises(BrokenRule) as caught:
        check(source, "f")
    assert caught.value.numerical and "numerical derivative" in str(caught.value)


@pytest.mark.parametrize("runner", [formulas.evaluate, sandbox.run_formulas], ids=["kit", "grader"])
def test_both_runners_apply_the_rule_before_running_anything(runner):
    jobs = [{"source": "def f(x):\n    exit(x)\n", "function": "f", "calls": [["f", [1]]]},  # run, it would end them
            {"source": NUMERICAL["literal steps"], "function": "f", "calls": [["f", [1, 2]]]},
            {"source": CLOSED_FORMS["piecewise with if"], "function": "f", "calls": [["f", [1, 2]], ["f", [-1, 2]]]}]
    refused, numerical, right = runner(jobs)
    assert refused["rule"] == "closed form" and "a call of `exit`" in refused["error"]
    assert numerical["rule"] == "numerical" and "values" not in numerical
    assert right == {"values": [[2.0], [0.0]]}


# ---------------------------------------------------------------- without autograd

RELU_AND_SIGMOID = ("def relu_grad(z):\n    return (z > 0).to(z.dtype)\n\n\n"
                    "def sigmoid_grad(z):\n    s = torch.sigmoid(z)\n    return s * (1 - s)\n")

WITHOUT_AUTOGRAD = {
    "tensor operations": RELU_AND_SIGMOID,
    "nn.functional and math": "import math\n\ndef relu_grad(z):\n    return torch.heaviside(z, torch.zeros_like(z))\n\n\n"
                              "def sigmoid_grad(z):\n    e = torch.exp(-z)\n    return e / (1 + e) ** 2 * math.e / math.e\n",
    "under no_grad": "@torch.no_grad()\ndef relu_grad(z):\n    return (z > 0).to(z.dtype)\n\n\n"
                     "def sigmoid_grad(z):\n    with torch.inference_mode():\n        return torch.sigmoid(z) * (1 - torch.sigmoid(z))\n",
    "local names with grad in them": "def relu_grad(z):\n    grad = (z > 0).to(z.dtype)\n    return grad\n\n\n"
                                     "def sigmoid_grad(z):\n    s = torch.sigmoid(z)\n    return s - s * s\n",
}

WITH_AUTOGRAD = {
    "backward": ("def relu_grad(z):\n    z = z.detach().requires_grad_()\n    torch.relu(z).sum().backward()\n"
                 "    return z.grad\n", "`.requires_grad_`"),
    "autograd.grad": ("def relu_grad(z):\n    return torch.autograd.grad(torch.relu(z).sum(), z)[0]\n", "`.autograd`"),
    "enable_grad": ("def relu_grad(z):\n    with torch.enable_grad():\n        return z\n", "`.enable_grad`"),
    "torch.func": ("from torch.func import grad\n\ndef relu_grad(z):\n    return z\n", "imports `torch.func`"),
    "an aten backward": ("def relu_grad(z):\n    return torch.ops.aten.threshold_backward(torch.ones_like(z), z, 0)\n",
                         "`.threshold_backward`"),
    "private parts": ("def relu_grad(z):\n    return torch._C._functions\n", "`._C`"),
    "getattr": ("def relu_grad(z):\n    return getattr(torch, 'auto' + 'grad')\n", "`getattr`, which it does not define"),
    "a helper elsewhere": ("def relu_grad(z):\n    return helper(z)\n", "`helper`, which it does not define"),
    "another module": ("import os\n\ndef relu_grad(z):\n    return z\n", "imports `os`"),
    "a dunder": ("def relu_grad(z):\n    return __builtins__\n", "`__builtins__`"),
}


@pytest.mark.parametrize("source", WITHOUT_AUTOGRAD.values(), ids=WITHOUT_AUTOGRAD)
def test_tensor_operations_are_without_autograd(source):
    without_autograd(source, ["relu_grad", "sigmoid_grad"])


@pytest.mark.parametrize("source, words", WITH_AUTOGRAD.values(), ids=WITH_AUTOGRAD)
def test_every_way_into_autograd_is_named(source, words):
    with pytest.raises(BrokenRule) as caught:
        without_autograd(source, ["relu_grad"])
    assert words in str(caught.value)


def test_only_the_tasks_own_functions_may_come_from_other_cells():
    source = "def manual_backward(x, W1, w2, y):\n    return relu_grad(x), sigmoid_grad(x)\n"
    without_autograd(source, ["manual_backward"], ["relu_grad", "sigmoid_grad"])
    with pytest.raises(BrokenRule, match="`sigmoid_grad`, which it does not define"):
        without_autograd(source, ["manual_backward"], ["relu_grad"])
    with pytest.raises(BrokenRule, match="does not define the function `manual_backward`"):
        without_autograd("x = 1\n", ["manual_backward"])


@pytest.mark.parametrize("runner", [formulas.evaluate, sandbox.run_formulas], ids=["kit", "grader"])
def test_the_runners_read_a_cell_for_the_rule_without_running_it(runner):
    jobs = [{"source": RELU_AND_SIGMOID + "exit(3)\n", "rule": "without autograd", "functions": ["relu_grad"],
             "may_call": [], "calls": []},
            {"source": WITH_AUTOGRAD["backward"][0], "rule": "without autograd", "functions": ["relu_grad"],
             "may_call": [], "calls": []}]
    fine, broken = runner(jobs)
    assert fine["rule"] == "autograd" and "`exit`, which it does not define" in fine["error"]  # read, never run
    assert broken == {"error": "line 2: the cell uses `.requires_grad_`", "rule": "autograd"}
