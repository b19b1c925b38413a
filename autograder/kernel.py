"""The kernel side of a check: take answers out of the notebook as plain data.

A test cell does three things, in this order:
  1. take the answers out of the student's namespace as plain floats and lists
     (running the student's functions on fixed probe inputs where needed),
  2. publish that plain data as an output of the cell, so a grader process the
     student's code never touched can verify it again (autograder.recheck),
  3. verify it against references computed with autograd, and report.
"""

import contextlib
import sys
import warnings

from .compare import Unanswered, WrongType, as_float
from .identity import student_id

ANSWERS_MIME = "application/vnd.autograd-labs.answers+json"


class CheckFailed(AssertionError):
    """A graded answer is wrong; the message says what and, where we can tell, why."""


def take_values(namespace: dict, names: tuple[str, ...]) -> dict[str, float]:
    """The named answers as floats; a clear error for any that is missing or not a number."""
    __tracebackhide__ = True
    missing = [n for n in names if n not in namespace]
    if missing:
        listed = ", ".join(f"`{n}`" for n in missing)
        raise Unanswered(f"Define {listed} in the answer cell above and run it.")
    return {n: as_float(n, namespace[n]) for n in names}


def take_function(namespace: dict, name: str):
    """The student's function called `name`."""
    __tracebackhide__ = True
    fn = namespace.get(name)
    if fn is None:
        raise Unanswered(f"Define the function `{name}` in the answer cell above and run it.")
    if not callable(fn):
        raise WrongType(f"`{name}` should be a function, not {type(fn).__name__}.")
    return fn


@contextlib.contextmanager
def shielded():
    """Run student code with its warnings and stderr sent to stdout.

    nbgrader scores a test cell 0 if anything reaches stderr, so a harmless
    PyTorch UserWarning would cost a correct answer its points.
    """
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(sys.stdout):
        warnings.simplefilter("always")
        yield
    for w in caught:
        print(f"Note (does not cost points): your code raised {w.category.__name__}: {w.message}")


def publish(lab: str, item: str, data: dict) -> None:
    """Attach the plain answer data to the cell's outputs (invisible in the notebook)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is None:
        return
    display({ANSWERS_MIME: {"lab": lab, "item": item, "data": data}, "text/plain": ""}, raw=True)


def report(item: str, problems: list[str], success: str) -> None:
    """Print success, or raise CheckFailed listing every problem."""
    __tracebackhide__ = True
    if problems:
        raise CheckFailed("\n" + "\n".join(f"  - {p}" for p in problems))
    print(f"✔ {item}: {success}")


def take_list(name: str, values) -> list[float]:
    """A list, tuple or tensor of numbers as a flat list of floats."""
    __tracebackhide__ = True
    if hasattr(values, "detach"):
        values = values.detach().cpu().reshape(-1).tolist()
    try:
        return [as_float(f"{name}[{i}]", v) for i, v in enumerate(values)]
    except TypeError:
        raise WrongType(f"`{name}` should be a list of numbers, not {type(values).__name__}.") from None


def probe_set(hidden: bool) -> str:
    """Which probes a check uses: the hidden ones only in hidden tests."""
    return "hidden" if hidden else "visible"


def run_check(lab: str, item: str, data: dict, verify, success: str) -> None:
    """Publish the plain data, verify it for this notebook's student, report."""
    __tracebackhide__ = True
    publish(lab, item, data)
    report(item, verify(item, data, student_id()[0]), success)


def values_check(lab: str, item: str, names: tuple[str, ...], verify):
    """A test-cell function checking the named hand-computed values."""
    def check(namespace: dict) -> None:
        __tracebackhide__ = True
        run_check(lab, item, take_values(namespace, names), verify, f"all {len(names)} values are right.")
    check.__doc__ = f"Check {', '.join(names)} against autograd."
    return check
