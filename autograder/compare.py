"""Turning answers into plain numbers and comparing them with references.

A check never trusts the type of an answer: ints, floats, numpy scalars and
one-element tensors (on any device, with or without grad) all become floats
before any comparison. Known mistakes ("slips") are values a misconception
would produce; when an answer matches one, the feedback names it.
"""

import math
from dataclasses import dataclass, field
from numbers import Real

import torch

# A value worked out by hand and rounded to 4 significant digits is within
# 5e-4 relative of the truth; rounding intermediate values can double that.
HAND_RTOL = 2e-3
HAND_ATOL = 1e-6
# Functions written by students run in float32 or float64; references are float64.
FUNCTION_RTOL = 1e-4
FUNCTION_ATOL = 1e-6
# Slips must sit this many tolerances away from the right value, or grading
# could not tell them apart (see autograder.lab4.student_numbers).
SEPARATION = 10.0


class Unanswered(NotImplementedError):
    """An answer the student has not given yet (the answer cell still raises)."""


class WrongType(AssertionError):
    """An answer that cannot be read as a number."""


def as_float(name: str, value) -> float:
    """Coerce one answer to a Python float, or raise with a message that helps."""
    if value is None or value is Ellipsis:
        raise Unanswered(f"`{name}` has no value yet: replace the placeholder with your answer.")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise WrongType(f"`{name}` should be a single number, not a tensor of shape {tuple(value.shape)}.")
        value = value.detach().to("cpu", torch.float64).item()
    elif hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars and 0-d arrays
    if isinstance(value, bool) or not isinstance(value, Real):
        raise WrongType(f"`{name}` should be a number, not {type(value).__name__} ({value!r}).")
    value = float(value)
    if not math.isfinite(value):
        raise WrongType(f"`{name}` is {value}: a finite number is expected.")
    return value


def close(answer: float, reference: float, rtol: float = HAND_RTOL, atol: float = HAND_ATOL) -> bool:
    """True when answer is within rtol (relative) + atol (absolute) of reference."""
    return abs(answer - reference) <= rtol * abs(reference) + atol


def lists_close(a: list[float], b: list[float], rtol: float = FUNCTION_RTOL, atol: float = FUNCTION_ATOL) -> bool:
    """Same length and every pair close."""
    return len(a) == len(b) and all(close(p, q, rtol, atol) for p, q in zip(a, b))


def relative_error(a, b) -> float:
    """CS231n-style relative error max|a - b| / max(1e-8, |a| + |b|), elementwise max."""
    a = torch.as_tensor(a, dtype=torch.float64).cpu()
    b = torch.as_tensor(b, dtype=torch.float64).cpu()
    return ((a - b).abs() / (a.abs() + b.abs()).clamp_min(1e-8)).max().item()


@dataclass
class Expected:
    """The right value of one named answer, the slips that would give other values, and a hint."""

    name: str
    value: float
    hint: str
    slips: dict[str, float] = field(default_factory=dict)

    def diagnose(self, answer: float) -> str | None:
        """Return None if the answer is right, else a message naming the likely mistake."""
        if close(answer, self.value):
            return None
        for slip, wrong in self.slips.items():
            if close(answer, wrong):
                return f"`{self.name}` = {answer:.6g} is what you get if you {slip}. {self.hint}"
        if close(-answer, self.value):
            return f"`{self.name}` = {answer:.6g} has the wrong sign. {self.hint}"
        return f"`{self.name}` = {answer:.6g} is not right. {self.hint}"

    def separated(self) -> bool:
        """True when the right value, its negative and every slip are pairwise far apart,
        so that a rounded answer matches at most one of them and feedback is unambiguous."""
        values = [self.value, *self.slips.values()]
        if -self.value not in values:  # a slip may already be the sign error, by name
            values.append(-self.value)
        return all(abs(a - b) > SEPARATION * (HAND_RTOL * max(abs(a), abs(b)) + HAND_ATOL)
                   for i, a in enumerate(values) for b in values[i + 1:])


def diagnose_all(answers: dict[str, float], expected: list[Expected]) -> list[str]:
    """Messages for every wrong answer, in the order expected lists them."""
    return [msg for e in expected if (msg := e.diagnose(answers[e.name])) is not None]
