"""Lab 4b in the student kit: how your functions are run.

What they should return is not here: `check.function` compares with data in expected/lab4b.json,
and the grader compares again, on inputs of its own, with torch.autograd.
"""

import torch

from .answers import WrongType, as_float, as_floats
from .checks import Formula, Function, LabKit
from .device import grading_device

F64 = torch.float64


def backward_inputs(features: int, hidden: int, seed: int) -> dict[str, torch.Tensor]:
    """Seeded random x (D,), W1 (H, D), w2 (H,), y () in float64 on the grading device."""
    g = torch.Generator().manual_seed(1000 + seed)
    make = lambda *shape: torch.randn(*shape, generator=g, dtype=F64)  # noqa: E731
    # Scaled like a standard initialisation, so the sigmoid is not saturated and gradients are O(0.1).
    inputs = {"x": make(features), "W1": make(hidden, features) / features ** 0.5,
              "w2": make(hidden) / hidden ** 0.5, "y": torch.rand((), generator=g, dtype=F64)}
    return {k: v.to(grading_device()) for k, v in inputs.items()}


def _pair(result, what: str) -> tuple:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise WrongType(what)
    return result


def run_check_result(fns: dict, probe: list) -> list[float]:
    loss, grad = _pair(fns["check_result"](*probe), "check_result should return two numbers: (loss, dloss_dw).")
    return [as_float("loss", loss), as_float("dloss_dw", grad)]


def run_train(fns: dict, probe: dict) -> dict[str, list[float]]:
    ws, losses = _pair(fns["train"](**probe), "train should return two lists: (ws, losses).")
    return {"ws": as_floats("ws", ws), "losses": as_floats("losses", losses)}


def run_activation_grads(fns: dict, xs: list[float]) -> dict[str, list[float]]:
    outputs = {}
    for name in ("relu_grad", "sigmoid_grad"):
        z = torch.tensor(xs, dtype=F64, device=grading_device())
        out = fns[name](z)
        if not isinstance(out, torch.Tensor) or out.shape != z.shape:
            raise WrongType(f"`{name}` should return a tensor of the same shape as its input.")
        outputs[name] = as_floats(name, out)
    return outputs


def run_manual_backward(fns: dict, probe: list) -> dict[str, list]:
    with torch.no_grad():
        result = _pair(fns["manual_backward"](**backward_inputs(*probe)),
                       "manual_backward should return two tensors: (dW1, dw2).")
    outputs = {}
    for name, value in zip(("dW1", "dw2"), result, strict=True):
        if not isinstance(value, torch.Tensor):
            raise WrongType(f"`{name}` should be a tensor, not {type(value).__name__}.")
        outputs[name] = value.detach().to("cpu", F64).tolist()
    return outputs


def _bowl(x: torch.Tensor) -> torch.Tensor:
    return (x ** 2).sum() + x.prod()


def _wave(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(3 * x).sum() * torch.exp(x[0])


def _network(weights: torch.Tensor) -> torch.Tensor:
    """Lab 4 Task 2's loss at x1 = 2.5, y = 0.2, as a function of (w1, w2)."""
    return (torch.sigmoid(torch.relu(2.5 * weights[0]) * weights[1]) - 0.2) ** 2


# Functions a numerical gradient is tried on, each with its point (away from the ReLU's kink).
GRADCHECK_PROBLEMS = {"bowl": (_bowl, [0.5, -1.2, 2.0]), "wave": (_wave, [0.3, -0.8, 1.1, 0.2]),
                      "network": (_network, [0.6, -0.9])}


def gradcheck_point(name: str) -> torch.Tensor:
    return torch.tensor(GRADCHECK_PROBLEMS[name][1], dtype=F64, device=grading_device())


def run_numerical_gradient(fns: dict, probe: list) -> list[float]:
    name, h = probe
    x = gradcheck_point(name)
    out = fns["numerical_gradient"](GRADCHECK_PROBLEMS[name][0], x, h)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        raise WrongType("`numerical_gradient` should return a tensor shaped like x.")
    if not torch.equal(x, gradcheck_point(name)):
        raise WrongType("`numerical_gradient` changed x itself: nudge copies of it (x.clone()).")
    return as_floats("numerical_gradient", out)


check = LabKit(
    "lab4b",
    functions={
        "check_result": Function(("check_result",), run_check_result,
                                 "one forward and one backward pass agree with autograd."),
        "train": Function(("train",), run_train, "every step matches gradient descent done by autograd."),
        "activation_grads": Function(("relu_grad", "sigmoid_grad"), run_activation_grads,
                                     "relu_grad and sigmoid_grad agree with autograd at every probe point.",
                                     without_autograd=()),
        "manual_backward": Function(("manual_backward",), run_manual_backward, "dW1 and dw2 match autograd.",
                                    without_autograd=("relu_grad", "sigmoid_grad")),
        "numerical_gradient": Function(("numerical_gradient",), run_numerical_gradient,
                                       "every coordinate is the centred difference."),
    },
    formulas={"bce_gradient": Formula("bce_gradient", "dloss/dm2 matches autograd on the visible inputs.")})
