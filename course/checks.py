"""The checks behind a lab's test cells, as the student's kernel runs them.

Each lab module of the kit builds one `LabKit`, and its notebook calls it as `check`:

    check.values(globals(), "m1", "r")    numbers worked out by hand, on the student's own numbers
    check.table(globals(), "statements")  a dict of predictions
    check.function(globals(), "train")    a function the student wrote, run on the visible probes
    check.formula(globals(), "gradients") a derivation written as a function, run with `math` only

A check takes the answers out of the notebook as plain data, publishes that data as an
invisible output of the cell, and prints a verdict for the student. The verdict is a courtesy:
the grade is decided by the grader, in a process the student's code never ran in, from the
published data. A hidden test passes its own probes (`hidden=[...]`); their outputs are
published without a verdict, because the kit knows nothing about them.

Expected outputs for the visible probes are data (`course/expected/<lab>.json`), written by
the grader and checked by a test; nothing here computes what a graded function should return.
The truths of prediction tables are kept sealed (`sealed`): the data confirms a right
prediction without printing the answers.
"""

import contextlib
import hashlib
import inspect
import json
import linecache
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

from . import formulas
from .rules import AUTOGRAD_RULE, CLOSED_FORM, ENGINE_RULE, BrokenRule, without_autograd
from .answers import Expected, Explained, Plain, Unanswered, WrongType, diagnose_all, hand_values, matches
from .identity import ANONYMOUS, HOW_TO_SET_ID, student_id
from .protocol import ANSWERS_MIME, IDENTITY_MIME

EXPECTED_DIR = Path(__file__).resolve().parent / "expected"


class CheckFailed(Explained, AssertionError):
    """A graded answer is wrong; the message says what and, where it can tell, why."""


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Run student code with its warnings and stderr sent to stdout.

    nbgrader scores a test cell 0 if anything reaches stderr, so a harmless PyTorch
    UserWarning would cost a correct answer its points.
    """
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(sys.stdout):
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for line in notes(caught):
                print(line)


def notes(caught: list[warnings.WarningMessage]) -> list[str]:
    """One line per distinct warning, with how often it came: a training loop that warns at every
    step says so once, not above the verdict fifty times."""
    counts = Counter(f"{w.category.__name__}: {w.message}" for w in caught)
    return [f"Note (does not cost points): your code raised {text}" + (f" ({count} times)" if count > 1 else "")
            for text, count in counts.items()]


# Errors of student code whose message says what but not why, and the why.
PRACTICE_NUMBERS = ("No student id is set, so these are practice numbers: your grade uses the numbers of your "
                    f"real id. {HOW_TO_SET_ID}")

EXPLANATIONS = {
    "Only Tensors of floating point and complex dtype can require gradients":
        "Integer tensors cannot require gradients: a gradient is the effect of an arbitrarily small change, "
        "and an integer cannot change by less than 1. The tensor was made from Python ints (the check passes "
        "some, as the lab does); make it a float, e.g. torch.tensor(float(A), requires_grad=True).",
}


@contextlib.contextmanager
def explained(name: str, probe: Plain) -> Iterator[None]:
    """Run student code; an error with a known cause becomes a CheckFailed that says why."""
    try:
        yield
    except Unanswered:
        raise
    except NotImplementedError as error:
        if str(error):  # torch's own ("Could not run ... with arguments from the ... backend")
            raise
        raise Unanswered(f"`{raising_function(error)}` still raises NotImplementedError: write its body "
                         "in the answer cell above and run it.") from None
    except RuntimeError as error:
        why = next((text for key, text in EXPLANATIONS.items() if key in str(error)), None)
        if why is None:
            raise
        raise CheckFailed(f"{describe_call(name, probe)} raised RuntimeError: {error}\n{why}") from None


def raising_function(error: BaseException) -> str:
    """The name of the function in which an error was raised."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_name if tb is not None else "a function"


def take_function(namespace: dict[str, Any], name: str) -> Callable[..., Any]:
    """The student's function called `name`."""
    __tracebackhide__ = True
    fn: object = namespace.get(name)
    if fn is None:
        raise Unanswered(f"Define the function `{name}` in the answer cell above and run it.")
    if not callable(fn):
        raise WrongType(f"`{name}` should be a function, not {type(fn).__name__}.")
    return fn


def publish(payload: dict[str, Any]) -> None:
    """Attach plain answer data to the cell's outputs (invisible in the notebook)."""
    attach(ANSWERS_MIME, payload)


def record_identity(student: str) -> None:
    """Keep in the notebook the id its numbers were drawn for: when it is graded under another id
    (an account's email, a typo), the feedback says so, because the hand values are then checked
    against the other id's numbers."""
    attach(IDENTITY_MIME, {"student": student})


def attach(mime: str, payload: dict[str, Any]) -> None:
    """Add `payload` to the running cell's outputs as `mime` data, which nothing shows."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is None:
        return
    display({mime: payload, "text/plain": ""}, raw=True)


def report(what: str, problems: list[str], success: str) -> None:
    """Print success, or raise CheckFailed listing every problem."""
    __tracebackhide__ = True
    if problems:
        raise CheckFailed("\n" + "\n".join(f"  - {p}" for p in problems))
    print(f"✔ {what}: {success}")


def shown(value: Plain) -> str:
    """One argument as a call shows it: 0.5, 'bowl', 3."""
    return f"{value:g}" if isinstance(value, float) else repr(value) if isinstance(value, str) else str(value)


def describe_call(name: str, probe: Plain) -> str:
    """How a probe reads as a call: train(x=4, lr=0.01), f(2, 3), f(0.5), or `walk on <expression>`."""
    if isinstance(probe, str):
        return f"{name} on {probe}"
    if isinstance(probe, dict):
        args = ", ".join(f"{k}={shown(v)}" for k, v in probe.items())
    elif isinstance(probe, (list, tuple)):
        args = ", ".join(shown(v) for v in probe)
    else:
        args = shown(probe)
    return f"{name}({args})"


MATCHES = "it matches what you get if you "


def output_problem(name: str, probe: Plain, got: Plain, right: Plain, mistakes: dict[str, Plain], hint: str,
                   rtol: float, atol: float) -> str | None:
    """What is wrong with a function's output on one probe (None when it matches `right`): the
    known mistake it matches, else the hint."""
    if matches(got, right, rtol, atol):
        return None
    named = [why for why, wrong in mistakes.items() if matches(got, wrong, rtol, atol)]
    call = describe_call(name, probe)
    return (f"{call}: {MATCHES}{named[0]}." if named
            else f"{call} does not give what autograd gives. {hint}")


def each_function(takes: tuple[str, ...], got: Plain, right: Plain) -> list[tuple[str, Plain]]:
    """(function, output to judge) for an output of the task's functions: where they answer
    together ({name: output}), each one's part with the others' right, so that a problem names
    the function it is in and a known mistake in each is recognised; else the whole output."""
    if len(takes) > 1 and isinstance(got, dict) and isinstance(right, dict) and set(got) == set(right) == set(takes):
        return [(name, {**right, name: got[name]}) for name in takes]
    return [(takes[0], got)]


VALUES = "values"  # the kind of check of numbers worked out by hand (`LabKit.values`)


@dataclass
class Function:
    """A graded function: the names it is defined under, and how one probe runs it.

    `run(functions, probe)` calls the student's functions (a dict by name) on one probe and
    returns the result as plain data (floats, strings, lists, dicts), raising WrongType when
    the result has the wrong form.
    """

    kind: ClassVar[str] = "function"
    takes: tuple[str, ...]
    run: Callable[[dict[str, Callable[..., Any]], Plain], Plain]
    success: str
    # Where the task says "without autograd": the other functions the cell may call (the rule is
    # `rules.without_autograd`); None where autograd is allowed.
    without_autograd: tuple[str, ...] | None = None


@dataclass
class Formula:
    """A graded derivation: one function of the inputs, written with `math` only, called on each
    probe's arguments; it returns a number or a tuple of numbers."""

    kind: ClassVar[str] = "formula"
    function: str
    success: str


@dataclass
class Engine:
    """A graded engine (Lab 6): the classes and functions named in `defines`, written in plain
    Python in the notebook's cells, run with the standard library only by the kit's `harness`,
    whose function `call` builds each probe's graph with them and returns what it measures."""

    kind: ClassVar[str] = "engine"
    defines: tuple[str, ...]
    call: str
    harness: str
    success: str


FORMULA_RULE = ("A formula cell must run on its own with Python's standard library: the grader runs it "
                "without torch or the course kit, on inputs you do not see, drawn anew for each submission. "
                "Define the function in that cell, with `def`, as a closed form: `math` and plain arithmetic only.")


def follows_autograd_rule(functions: dict[str, Callable[..., Any]], may_call: tuple[str, ...]) -> None:
    """Raise CheckFailed where the cell that defined a function reaches autograd (as the grader
    reads the answer cell, `rules.without_autograd`)."""
    __tracebackhide__ = True
    functions = {name: inspect.unwrap(fn) for name, fn in functions.items()}  # a decorator's own code is not the cell
    for name, fn in functions.items():
        source = defining_cell(fn)
        if source is None:
            raise WrongType(f"`{name}` was not defined with `def` in a notebook cell. {AUTOGRAD_RULE}")
        cell = [other for other, f in functions.items() if defining_cell(f) == source]
        try:
            without_autograd(source, cell, list(may_call))
        except BrokenRule as broken:
            raise CheckFailed(f"{broken}.\n{AUTOGRAD_RULE}") from None


def defining_cell(obj: object) -> str | None:
    """The code of the notebook cell that defined a function, or a class (by its methods, its
    own or, for a subclass made elsewhere, its bases')."""
    if not isinstance(obj, type):
        return cell_source(obj)
    for cls in obj.__mro__:
        if cls is object or cls.__module__.split(".")[0] == "torch":
            continue  # torch.autograd.Function's own methods: no cell
        for value in vars(cls).values():
            if (source := cell_source(inspect.unwrap(getattr(value, "__func__", value)))) is not None:
                return source
    return None


def cell_source(fn: object) -> str | None:
    """The whole code of the notebook cell that defined `fn` (IPython keeps each cell's code
    in linecache under the filename its functions carry), or None."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    return "".join(linecache.getlines(code.co_filename)) or None


@dataclass
class Table:
    """A dict of predictions: its possible keys, the values allowed, the keys a student needs."""

    kind: ClassVar[str] = "table"
    all_keys: tuple[str, ...]
    choices: tuple[Any, ...]
    chosen: Callable[[dict[str, Any]], list[str]] | None = None
    key: Callable[[Any], str] = str
    describe: Callable[[Any], str] = str
    success: str = "every prediction matches PyTorch."

    def keys(self, numbers: dict[str, Any]) -> list[str]:
        """The keys this student's table needs (all of them unless the lab chooses per student)."""
        return list(self.chosen(numbers)) if self.chosen else list(self.all_keys)

    def refuse(self, name: str, key: str, value: Any) -> str | None:
        """Why `value` cannot be a prediction at `key` (None: it can): it must be one of the choices."""
        if isinstance(value, bool) is not isinstance(self.choices[0], bool) or value not in self.choices:
            return f"{name}[{key!r}] = {value!r}: use one of {', '.join(map(repr, self.choices))}."
        return None

    def check_keys(self, name: str, given: dict[str, Any], needed: list[str]) -> list[str]:
        """What is wrong with the table's keys (empty when they are the ones needed)."""
        return [] if sorted(given) == sorted(needed) else [f"`{name}` needs exactly these keys: {needed}."]

    def tally(self, name: str, given: dict[str, Any], needed: list[str],
              holds: Callable[[str, Any], bool]) -> list[str]:
        """What the notebook says before grading: how many predictions are right, not which
        (naming them would answer the table by trial and error)."""
        wrong = [key for key in needed if key in given and not holds(key, given[key])]
        return self.check_keys(name, given, needed) or [
            f"{len(needed) - len(wrong)} of {len(needed)} predictions are right. Which ones are wrong is "
            "in your feedback once your notebook is graded; until then, test your reasoning against "
            "what PyTorch does."] * bool(wrong)

    def wrong(self, key: str, given: Plain) -> str:
        """How the grader's verdict names a wrong prediction: with two choices the right one is the other."""
        if len(self.choices) == 2:
            (other,) = [c for c in self.choices if c != given]
            return f"{key}: {self.describe(other)}, not {self.describe(given)}."
        return f"{key}: you predicted {self.describe(given)}, which is not what happens."


def sealed(lab: str, table: str, key: str, value: Plain) -> str:
    """A digest standing for "`value` is the truth at `key`": the kit's data can confirm a
    prediction without spelling out the answers of a table."""
    return hashlib.sha256(json.dumps([lab, table, key, value]).encode()).hexdigest()[:16]


@dataclass
class LabKit:
    """Everything one lab's notebook checks with."""

    lab: str
    numbers: Callable[[str], dict[str, Any]] = lambda student: {}
    show_numbers: Callable[[dict[str, Any]], list[str]] = lambda numbers: []
    answers: Callable[[dict[str, Any]], dict[str, Expected]] = lambda numbers: {}
    functions: dict[str, Function] = field(default_factory=dict)
    formulas: dict[str, Formula] = field(default_factory=dict)
    engines: dict[str, Engine] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)
    # The numbers of the lab's own worked example (its prose and observe cells), by name: answers
    # worked on them, instead of the student's, are named as such.
    example: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def expected(self) -> dict[str, Any]:
        """Visible probes, their expected outputs and the truth of every table (data)."""
        data: dict[str, Any] = json.loads((EXPECTED_DIR / f"{self.lab}.json").read_text())
        return data

    def my_numbers(self) -> dict[str, Any]:
        """Show and return this student's numbers."""
        student, source = student_id()
        numbers = self.numbers(student)
        print(f"Student id: {student!r} (from {source})")
        for line in self.show_numbers(numbers):
            print(line)
        if student == ANONYMOUS:
            print(PRACTICE_NUMBERS)
        record_identity(student)
        return numbers

    def other_answers(self, student: str, names: tuple[str, ...] | list[str]) -> list[tuple[str, list[Expected]]]:
        """The answers `names` on numbers that are not this student's, each with a description:
        the practice numbers (unless they are the student's) and the lab's worked example (its
        numbers in place of the student's, where it has them)."""
        others = []
        if student != ANONYMOUS:
            practice = self.expected_answers(ANONYMOUS)
            others.append((f"the practice numbers (student id {ANONYMOUS!r})", [practice[n] for n in names]))
        if self.example:
            example = self.answers({**self.numbers(student), **self.example})
            shown = ", ".join(f"{k} = {v}" if isinstance(v, list) else f"{k} = {v:g}" for k, v in self.example.items())
            others.append((f"the lab's worked example ({shown})", [example[n] for n in names]))
        return others

    def expected_answers(self, student: str) -> dict[str, Expected]:
        """The hand-computed answers this student should give, by name."""
        return self.answers(self.numbers(student))

    def _publish(self, kind: str, name: str, data: Plain, hidden: bool = False) -> None:
        publish({"lab": self.lab, "kind": kind, "name": name, "hidden": hidden, "data": data})

    def values(self, namespace: dict[str, Any], *names: str) -> None:
        """Check numbers worked out by hand against autograd, on this student's numbers."""
        __tracebackhide__ = True
        student = student_id()[0]
        expected = self.expected_answers(student)
        missing = [n for n in names if n not in namespace]
        if missing:
            raise Unanswered("Define " + ", ".join(f"`{n}`" for n in missing) + " in the answer cell above and run it.")
        data = hand_values(namespace, names, expected)
        self._publish(VALUES, " ".join(names), data)
        report(", ".join(names), diagnose_all(data, [expected[n] for n in names], student,
                                              self.other_answers(student, names)),
               f"all {len(names)} values are right.")

    def table(self, namespace: dict[str, Any], name: str) -> None:
        """Check a dict of predictions against what PyTorch does."""
        __tracebackhide__ = True
        spec = self.tables[name]
        answer = namespace.get(name)
        if not isinstance(answer, dict) or not answer:
            raise Unanswered(f"Fill in `{name}` in the answer cell above and run it.")
        pairs: list[list[Any]] = []
        for key, value in answer.items():
            if value is Ellipsis:
                raise Unanswered(f"{name}[{key!r}] is still `...`: fill in your prediction.")
            refused = spec.refuse(name, key, value)
            if refused:
                raise WrongType(refused)
            pairs.append([spec.key(key), list(value) if isinstance(value, tuple) else value])
        self._publish(spec.kind, name, pairs)
        truth = self.expected["tables"][name]
        needed = spec.keys(self.numbers(student_id()[0]))
        problems = spec.tally(name, {key: value for key, value in pairs}, needed,
                              lambda key, value: sealed(self.lab, name, key, value) == truth.get(key))
        report(name, problems, spec.success)

    def function(self, namespace: dict[str, Any], name: str, hidden: list[Plain] | None = None) -> None:
        """Run the student's function on the visible probes (or a hidden test's) and check it."""
        __tracebackhide__ = True
        spec = self.functions[name]
        functions = {n: take_function(namespace, n) for n in spec.takes}
        if spec.without_autograd is not None:
            follows_autograd_rule(functions, spec.without_autograd)
        visible = self.expected["functions"][name]
        probes = visible["probes"] if hidden is None else hidden
        outputs = []
        with shielded():  # its warnings counted over every probe
            for probe in probes:
                with explained(spec.takes[0], probe):
                    outputs.append(spec.run(functions, probe))
        self._publish(spec.kind, name, outputs, hidden=hidden is not None)
        if hidden is not None:
            print(f"✔ {name}: ran on {len(probes)} more inputs; the grader checks the results.")
            return
        problems = [problem for probe, got, want in zip(probes, outputs, visible["outputs"], strict=True)
                    for called, output in each_function(spec.takes, got, want["right"])
                    if (problem := output_problem(called, probe, output, want["right"], want["mistakes"],
                                                  visible["hint"], visible["rtol"], visible["atol"]))]
        report(name, problems, spec.success)

    def formula(self, namespace: dict[str, Any], name: str) -> None:
        """Run the cell that defines the student's formula as the grader will (a fresh interpreter,
        standard library only) on the visible probes, and check what it returns."""
        __tracebackhide__ = True
        spec = self.formulas[name]
        fn = take_function(namespace, spec.function)
        source = cell_source(fn)
        if source is None:
            raise WrongType(f"`{spec.function}` was not defined with `def` in a notebook cell. {FORMULA_RULE}")
        visible = self.expected["functions"][name]
        (result,) = formulas.evaluate([{"source": source, "function": spec.function,
                                        "calls": [[spec.function, p] for p in visible["probes"]]}])
        self._judge_run(spec.kind, name, spec.function, result, CLOSED_FORM, FORMULA_RULE, spec.success)

    def engine(self, namespace: dict[str, Any], name: str) -> None:
        """Run the cells that define the student's engine as the grader will (a fresh interpreter,
        standard library only), building each visible graph with it, and check what it gives."""
        __tracebackhide__ = True
        spec = self.engines[name]
        sources = []
        for defined in spec.defines:
            if defined not in namespace:
                raise Unanswered(f"Run the cell that defines `{defined}` first.")
            source = defining_cell(namespace[defined])
            if source is None:
                raise WrongType(f"`{defined}` was not defined in a notebook cell. {ENGINE_RULE}")
            if source not in sources:
                sources.append(source)
        visible = self.expected["functions"][name]
        (result,) = formulas.evaluate([{"source": "\n\n".join(sources), "rule": "engine", "harness": spec.harness,
                                        "calls": [[spec.call, [p]] for p in visible["probes"]]}])
        self._judge_run(spec.kind, name, spec.call, result, ENGINE_RULE, ENGINE_RULE, spec.success)

    def _judge_run(self, kind: str, name: str, called: str, result: dict[str, Any], rule: str, runs_alone: str,
                   success: str) -> None:
        """Report one run of student code by the formula runner on the visible probes of `name`."""
        __tracebackhide__ = True
        visible = self.expected["functions"][name]
        if result.get("unanswered"):
            raise Unanswered(f"Write `{called}` in the answer cell above and run it." if kind == Formula.kind
                             else "Fill in every `raise NotImplementedError` of the answer cells above and run them.")
        if result.get("rule"):
            raise CheckFailed(f"{result['error']}{'' if result['rule'] == 'numerical' else '.'}\n{rule}")
        if "error" in result:
            where = f"{describe_call(called, visible['probes'][result['call']])} " if "call" in result else ""
            raise CheckFailed(f"{where}{result['error']}.\n{runs_alone}")
        self._publish(kind, name, result["values"])
        runs = zip(visible["probes"], result["values"], visible["outputs"], strict=True)
        problems = [problem for probe, got, want in runs
                    if (problem := output_problem(called, probe, got, want["right"], want["mistakes"],
                                                  visible["hint"], visible["rtol"], visible["atol"]))]
        report(name, problems, success + " The grader also tries it on inputs you have not seen.")
