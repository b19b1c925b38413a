"""Turning answers into plain numbers and comparing them with expected values.

An answer's type is never trusted: ints, floats, numpy scalars and one-element tensors (on any
device, with or without grad) all become floats before any comparison. Known mistakes
("slips") are the values a misconception would produce; when an answer matches one, the
message names it.
"""

import math
import textwrap
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import torch


# A value worked out by hand and rounded to 4 significant digits is within 5e-4 relative of
# the truth; rounding intermediate values can double that.
HAND_RTOL = 2e-3
HAND_ATOL = 1e-6
# Functions written by students run in float32 or float64; references are float64.
FUNCTION_RTOL = 1e-4
FUNCTION_ATOL = 1e-6
# Slips must sit this many tolerances away from the right value, or grading could not tell
# them apart (per-student numbers are drawn until they do).
SEPARATION = 10.0
SIGN_SLIP = "flipped the sign"
# A wrong value within this many tolerances of the truth (2 %) that matches no slip is a near miss:
# too few digits typed, not a misconception. Every slip sits further away than that (SEPARATION),
# and an answer is matched against the slips first, so a slip typed to 4 digits is still named.
NEAR_TOLERANCES = 10.0
NEAR_MISS = "typed too few digits (close, but outside the tolerance)"
# A hand-computed answer: one number, or a list of them.
Value = float | list[float]
# Plain data as answers and probes travel: numbers, strings, booleans, lists and dicts of them.
Plain = Any


# nbgrader's Validate dialog indents each line of an error by 4 and cuts it past 87 characters
LINE_WIDTH = 83


class Explained(Exception):
    """A kit error whose message says all: IPython (the notebook, the Validate dialog, the
    feedback) shows the message, wrapped to be read whole, and no traceback through the kit's
    code and install path, which would tell the student nothing and cost ~10 ms to format."""

    def _render_traceback_(self) -> list[str]:
        lines = [f"\x1b[31m{type(self).__name__}\x1b[39m:"]
        for line in str(self).strip("\n").splitlines():
            indent = " " * (len(line) - len(line.lstrip(" -")))
            lines += textwrap.wrap(line, LINE_WIDTH, subsequent_indent=indent, break_on_hyphens=False) or [""]
        return lines


class Unanswered(Explained, NotImplementedError):
    """An answer the student has not given yet (the answer cell still raises)."""


class WrongType(Explained, AssertionError):
    """An answer that cannot be read as the kind of value asked for."""


def as_float(name: str, value: object) -> float:
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


def as_floats(name: str, values: object) -> list[float]:
    """A list, tuple or tensor of numbers as a flat list of floats."""
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).reshape(-1).tolist()
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise WrongType(f"`{name}` should be a list of numbers, not {type(values).__name__}.")
    return [as_float(f"{name}[{i}]", v) for i, v in enumerate(values)]


def four_digits(value: float) -> float:
    """A value as a student writes it down: 4 significant digits."""
    return float(f"{value:.4g}")


def survives_rounding(answers: dict[str, float], expected: list["Expected"]) -> bool:
    """True when answers worked out from intermediates written to 4 digits all still pass."""
    return all(e.diagnose(answers[e.name]) is None for e in expected if e.name in answers)


def close(answer: float, reference: float, rtol: float = HAND_RTOL, atol: float = HAND_ATOL) -> bool:
    """True when answer is within rtol (relative) + atol (absolute) of reference."""
    return abs(answer - reference) <= rtol * abs(reference) + atol


def lists_close(a: list[float], b: list[float], rtol: float = FUNCTION_RTOL, atol: float = FUNCTION_ATOL) -> bool:
    """Same length and every pair close."""
    return len(a) == len(b) and all(close(p, q, rtol, atol) for p, q in zip(a, b, strict=True))


def matches(got: Plain, want: Plain, rtol: float = FUNCTION_RTOL, atol: float = FUNCTION_ATOL) -> bool:
    """True when plain data `got` has the shape of `want` and every number in it is close.

    Dicts need the same keys, lists the same length; strings and booleans must be equal.
    """
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(
            matches(got[k], want[k], rtol, atol) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(
            matches(g, w, rtol, atol) for g, w in zip(got, want, strict=True))
    if isinstance(want, (str, bool)) or want is None:
        return type(got) is type(want) and got == want
    return (isinstance(got, (int, float)) and not isinstance(got, bool) and math.isfinite(got)
            and close(got, want, rtol, atol))


def relative_error(a: Plain, b: Plain, floor: float = 1e-8) -> float:
    """CS231n-style relative error max|a - b| / max(floor, |a| + |b|), elementwise max."""
    a = torch.as_tensor(a, dtype=torch.float64).cpu()
    b = torch.as_tensor(b, dtype=torch.float64).cpu()
    return float(((a - b).abs() / (a.abs() + b.abs()).clamp_min(floor)).max().item())


@dataclass
class Expected:
    """The right value of one hand-computed answer, the slips that give other values, a hint.

    `value` is a number or a list of numbers; `uses` names the numbers it was computed from
    (shown with a wrong answer, so a student can see which numbers the grader used).
    """

    name: str
    value: Value
    hint: str
    slips: dict[str, Value] = field(default_factory=dict)
    uses: str = ""

    def matches(self, answer: Plain, value: Value) -> bool:
        return matches(answer, value, HAND_RTOL, HAND_ATOL)

    def mistake(self, answer: Plain) -> str | None:
        """None if the answer is right, else the slip it matches, NEAR_MISS, SIGN_SLIP, or "" (none known)."""
        if self.matches(answer, self.value):
            return None
        for slip, wrong in self.slips.items():
            if self.matches(answer, wrong):
                return slip
        if matches(answer, self.value, NEAR_TOLERANCES * HAND_RTOL, NEAR_TOLERANCES * HAND_ATOL):
            return NEAR_MISS
        negated = [-v for v in self.value] if isinstance(self.value, list) else -self.value
        return SIGN_SLIP if self.matches(answer, negated) else ""

    def diagnose(self, answer: Plain) -> str | None:
        """Return None if the answer is right, else a message naming the likely mistake."""
        slip = self.mistake(answer)
        if slip is None:
            return None
        shown = f"{answer:.6g}" if isinstance(answer, float) else str(answer)
        if slip == NEAR_MISS:
            return (f"`{self.name}` = {shown} is close, but not within the tolerance: type at least 4 significant "
                    "digits, and keep more for the intermediate values you work it out from.")
        if slip == SIGN_SLIP:
            return f"`{self.name}` = {shown} has the wrong sign. {self.hint}"
        if slip:
            return f"`{self.name}` = {shown} is what you get if you {slip}. {self.hint}"
        return f"`{self.name}` = {shown} is not right. {self.hint}"

    def separated(self) -> bool:
        """True when the right value, its negative and every slip are pairwise far apart,
        so that a rounded answer matches at most one of them and feedback is unambiguous."""
        given = [self.value, *self.slips.values()]
        if any(isinstance(v, list) for v in given):
            raise TypeError(f"`{self.name}`: separation is worked out for single numbers")
        values: list[float] = [float(v) for v in given if not isinstance(v, list)]
        if -values[0] not in values:  # a slip may already be the sign error, by name
            values.append(-values[0])
        return all(abs(a - b) > SEPARATION * (HAND_RTOL * max(abs(a), abs(b)) + HAND_ATOL)
                   for i, a in enumerate(values) for b in values[i + 1:])


def hand_values(found: Plain, names: tuple[str, ...] | list[str], expected: dict[str, Expected]) -> dict[str, Value]:
    """The answers `names` in `found` as plain floats, or lists of them where `expected` has a list."""
    return {n: as_floats(n, found[n]) if isinstance(expected[n].value, list) else as_float(n, found[n]) for n in names}


def diagnose_all(answers: dict[str, Value], expected: list[Expected], student: str,
                 others: list[tuple[str, list[Expected]]] | None = None) -> list[str]:
    """Messages for every wrong answer, in the order `expected` lists them, then (once) the
    student's numbers they were checked on. `others` holds the same answers on other numbers
    (the practice numbers, the lab's worked example), each with a description: when every wrong
    answer is its value on one of those, a first message says whose numbers they are."""
    problems = [msg for e in expected if (msg := e.diagnose(answers[e.name])) is not None]
    elsewhere = numbers_used(answers, expected, others or [])
    if elsewhere:
        problems.insert(0, f"These are the answers for {elsewhere}, not for yours: your grade uses your "
                           "own numbers (see 'Your numbers' at the top).")
    uses = next((e.uses for e in expected if e.uses), "")
    if problems and uses:
        problems.append(f"(Your numbers, for student id {student!r}: {uses}.)")
    return problems


def numbers_used(answers: dict[str, Value], expected: list[Expected],
                 others: list[tuple[str, list[Expected]]]) -> str | None:
    """The description of the first of `others` (answers on other numbers) on which every wrong
    answer is right; None when no answer is wrong or no such numbers explain them."""
    for description, elsewhere in others:
        wrong = [(e, o) for e, o in zip(expected, elsewhere, strict=True) if not e.matches(answers[e.name], e.value)]
        if wrong and all(o.matches(answers[e.name], o.value) for e, o in wrong):
            return description
    return None
