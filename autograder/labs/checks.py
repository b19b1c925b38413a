"""The four kinds of graded cell, one class each: what a cell hands over, how the grader verifies
it, its known mistakes and what the kit gets to check the visible part in the notebook.

| class | the kit's side (`course.checks`) | decides on |
| --- | --- | --- |
| `ValuesCheck` | `LabKit.values`, `Expected` | numbers worked out by hand, on the student's own numbers |
| `TableCheck` | `LabKit.table`, `Table` | a dict of predictions, against what PyTorch does now |
| `FunctionCheck` | `LabKit.function`, `Function` | a function's outputs on the grader's probes |
| `FormulaCheck` | `LabKit.formula`, `Formula` | a derivation's code, run by the grader with the standard library only |
| `EngineCheck` | `LabKit.engine`, `Engine` | an autograd engine's code (Lab 6), building graphs, run the same way |

A verdict is a list of `Problem`s: the sentence the student reads, the known mistake it matches
(the same words for every student who made it) and its kind. Code decides on the kind and the
slip, never on the wording.
"""

import copy
import hashlib
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable, ClassVar

from course.answers import (FUNCTION_ATOL, FUNCTION_RTOL, Expected, Plain, diagnose_all, hand_values, matches,
                            numbers_used)
from course.checks import (FORMULA_RULE, MATCHES, VALUES, Engine, Formula, Function, LabKit, Table, describe_call,
                           sealed)
from course.rules import AUTOGRAD_RULE, CLOSED_FORM, ENGINE_RULE

# Runs formula jobs (`course.formulas.evaluate`'s input) and returns their results.
FormulaRunner = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
# An output of a student's function, or a probe, as plain data; where an output is judged.
Judge = Callable[[Plain, Plain], bool]


# How a problem on a hidden probe begins, and what it says of an output of the wrong form there.
HIDDEN_CALL = "On one of the grader's hidden inputs"
HIDDEN_FORM = "the output has the wrong form (its length or shape); the visible inputs show the form expected."
# A formula's tolerance: it is code, computed in float64 as the reference is, so only rounding
# separates a right one from autograd; a numerical derivative is further off than this.
FORMULA_RTOL, FORMULA_ATOL = 1e-10, 1e-12
DRAWS_PER_CASE = 2  # hidden inputs drawn for each case of a check, per submission
MAX_REDRAWS = 100  # draws of a case before it is taken to draw only visible probes (a bug in the case)
MAX_OUTPUTS_KEPT = 10_000  # references and mistakes' outputs a check keeps for its grading process
NOTEBOOK_DRAW = b""  # the seed of the hidden probes written in the instructor's notebook (each unit draws its own)
NUMERICAL_WORDS = "a numerical derivative (finite differences), not a derivation"
AUTOGRAD_WORDS = "used autograd where the task says to work without it"


def hidden_call(case: str | None = None) -> str:
    """How a problem on a hidden input begins: the case it belongs to, in words, never the input."""
    return f"{HIDDEN_CALL}, {case}" if case else HIDDEN_CALL


class Kind(StrEnum):
    """What sort of problem a `Problem` is."""

    WRONG = "wrong"  # an answer is not right
    FORM = "form"  # an answer has the wrong form (length, shape, keys)
    MISSING = "missing"  # not the data its check hands over (its visible check failed first, or tampering)
    UNREADABLE = "unreadable"  # the handed-over data could not be read
    UNANSWERED = "unanswered"  # a formula still raises NotImplementedError
    RULE = "rule"  # a formula cell that is no closed form, or does not run with the standard library alone
    NUMERICAL = "numerical"  # a formula that differentiates numerically (scores 0 like any rule broken)


@dataclass(frozen=True)
class Problem:
    """One reason a graded cell is not right."""

    text: str  # what the student reads, with the call or the answer it is about
    slip: str | None = None  # the known mistake it matches, in words without the inputs
    kind: Kind = Kind.WRONG

    def to_json(self) -> dict[str, str | None]:
        return {"text": self.text, "slip": self.slip, "kind": str(self.kind)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Problem":
        return cls(str(data["text"]), data.get("slip"), Kind(data.get("kind", Kind.WRONG)))

    @property
    def in_words(self) -> str:
        """The problem as the class report and the summary name it: the same for every student."""
        if self.kind is Kind.UNANSWERED:
            return "not answered (the function still raises NotImplementedError)"
        if self.kind is Kind.NUMERICAL:
            return NUMERICAL_WORDS
        if self.kind is Kind.RULE:
            return self.slip or self.text.removesuffix(FORMULA_RULE).strip().rstrip(".")
        return self.slip or "wrong, no known mistake"


@dataclass(frozen=True)
class Mistake:
    """A known wrong way to write a graded function. `why` completes "it matches what you get if
    you ...". `gives(probe)` is the output that mistake gives (None where it gives no wrong one);
    `shows(probe, got, right)` recognises it where it is no single output, or comes in variants
    (the grader names those too; the kit, which holds outputs only, does not)."""

    why: str
    gives: Callable[[Plain], Plain] | None = None
    shows: Callable[[Plain, Plain, Plain], bool] | None = None

    def found(self, probe: Plain, got: Plain, right: Plain, same: Judge,
              outputs: Callable[[Callable[[Plain], Plain], Plain], Plain] | None = None) -> bool:
        """Whether `got` is this mistake's output on `probe`; `outputs(gives, probe)`, where given,
        works out `gives(probe)` (`FunctionCheck.output`: once per grading process)."""
        wrong = None if self.gives is None else outputs(self.gives, probe) if outputs else self.gives(probe)
        return (wrong is not None and same(got, wrong)) or bool(self.shows and self.shows(probe, got, right))


@dataclass(frozen=True)
class Case:
    """A kind of input a check's hidden probes must cover, in the words feedback uses ("when
    the ReLU is off, m1 < 0"), and how to draw one from a random generator."""

    words: str
    draw: Callable[[random.Random], Plain]


def uniform(rng: random.Random, low: float, high: float, digits: int = 3) -> float:
    """A number drawn between low and high, rounded as a person would write it."""
    return round(rng.uniform(low, high), digits)


def draw_until(rng: random.Random, draw: Callable[[random.Random], list[float]],
               holds: Callable[..., bool]) -> list[float]:
    """The first draw for which `holds(*draw)` (a case's condition), tried at most 10,000 times."""
    for _ in range(10_000):
        probe = draw(rng)
        if holds(*probe):
            return probe
    raise RuntimeError("no draw met the case's condition")


@dataclass
class Check:
    """One graded cell, keyed by the grade id of its test cell."""

    kind: ClassVar[str]  # what the kit publishes with the data (its spec class's `kind`)
    grade_id: str
    name: str
    kit: LabKit

    visible: list[Plain] = field(default_factory=list, kw_only=True)
    hidden: list[Plain] = field(default_factory=list, kw_only=True)

    def payloads_wanted(self) -> list[tuple[str, str, bool]]:
        """(kind, name, hidden) of each payload the cell must hand over, in order."""
        hidden = bool(self.hidden or getattr(self, "cases", None))
        return [(self.kind, self.name, False)] + ([(self.kind, self.name, True)] if hidden else [])

    def verify(self, payloads: list[Any], student: str, seed: bytes | None = None) -> list[Problem]:
        """Why the cell's handed-over data does not hold up (empty when it does); `seed`: the
        submission's, where hidden probes are drawn for each (None: the notebook's own draw)."""
        found = sorted((p.get("kind"), p.get("name"), p.get("hidden")) for p in payloads if isinstance(p, dict))
        if found != sorted(self.payloads_wanted()) or any(p.get("lab") != self.kit.lab for p in payloads):
            return [Problem(f"expected the notebook to hand over {sorted(self.payloads_wanted())}, found {found}",
                            kind=Kind.MISSING)]
        problems = []
        for payload in sorted(payloads, key=lambda p: p["hidden"]):
            try:
                problems += self.verify_data(payload["data"], student, payload["hidden"], seed)
            except Exception as exc:  # malformed data is a failed check, never a crash
                problems.append(Problem(f"unreadable answer data ({type(exc).__name__}: {exc})", kind=Kind.UNREADABLE))
        return problems

    def verify_data(self, data: Plain, student: str, hidden: bool = False, seed: bytes | None = None) -> list[Problem]:
        raise NotImplementedError(f"{type(self).__name__} verifies no handed-over data")

    def mistakes(self, payloads: list[Any], student: str, classmates: Iterable[str] = (),
                 seed: bytes | None = None) -> list[Problem]:
        """What went wrong, for the summary and the class report (`classmates`: the lab's other
        students, whose numbers a copied answer may be right for)."""
        return self.verify(payloads, student, seed)

    def verdict_lines(self, payloads: list[Any], student: str) -> list[str]:
        """What the grader adds to a failed cell's outputs for the feedback (the kit said less)."""
        return []

    def numbers_owner(self, payloads: list[Any], student: str, classmates: Iterable[str]) -> str | None:
        """The classmate whose numbers the cell's answers were worked on, where that is the case."""
        return None

    def kit_data(self) -> dict[str, Any] | None:
        """What the kit gets to check the visible part in the notebook (`course/expected/<lab>.json`)."""
        return None


@dataclass
class ValuesCheck(Check):
    """Numbers worked out by hand; the kit's `answers` hold their right values and slips."""

    kind: ClassVar[str] = VALUES
    names: tuple[str, ...] = ()
    answers_of: Callable[[str], dict[str, Expected]] = field(default=lambda student: {})  # the lab's cache

    def verify_data(self, data: Plain, student: str, hidden: bool = False, seed: bytes | None = None) -> list[Problem]:
        if sorted(data) != sorted(self.names):
            return [Problem(f"expected the values {list(self.names)}, found {sorted(data)}", kind=Kind.FORM)]
        expected = self.answers_of(student)
        given = hand_values(data, self.names, expected)
        return [Problem(text) for text in diagnose_all(given, [expected[n] for n in self.names], student,
                                                         self.kit.other_answers(student, self.names))]

    def numbers_owner(self, payloads: list[Any], student: str, classmates: Iterable[str]) -> str | None:
        """The classmate on whose numbers every answer is right while some are wrong on the
        student's own (work copied), else None."""
        if len(payloads) != 1:
            return None
        own = self.answers_of(student)
        try:
            answers = hand_values(payloads[0].get("data"), self.names, own)
        except (TypeError, ValueError, KeyError, AttributeError):
            return None
        if all_right(answers, own, self.names):
            return None
        return next((other for other in classmates
                     if other != student and all_right(answers, self.answers_of(other), self.names)), None)

    def mistakes(self, payloads: list[Any], student: str, classmates: Iterable[str] = (),
                 seed: bytes | None = None) -> list[Problem]:
        """The slip each wrong answer matches, or whose numbers they were worked on."""
        own = self.answers_of(student)
        try:
            answers = hand_values(payloads[0]["data"], self.names, own)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError):
            return [Problem("no readable answers", kind=Kind.UNREADABLE)]
        expected = [own[n] for n in self.names]
        elsewhere = numbers_used(answers, expected, self.kit.other_answers(student, self.names))
        if elsewhere is None and self.numbers_owner(payloads, student, classmates):
            elsewhere = "another student's numbers"
        if elsewhere:
            return [Problem(f"worked on {elsewhere}", slip=f"worked on {elsewhere}")]
        return [Problem(f"`{e.name}`: {slip or 'wrong, no known mistake'}", slip=slip or None) for e in expected
                if (slip := e.mistake(answers[e.name])) is not None]


def all_right(answers: dict[str, Any], expected: dict[str, Expected], names: tuple[str, ...]) -> bool:
    return all(expected[n].matches(answers[n], expected[n].value) for n in names)


@dataclass
class TableCheck(Check):
    """A dict of predictions; `truth(key)` is what PyTorch does, observed now. `explain(key,
    given)`, where given, says more about a wrong prediction than the table's own wording."""

    kind: ClassVar[str] = Table.kind
    truth: Callable[[str], Plain] = field(default=lambda key: None)
    explain: Callable[[str, Plain], str] | None = None

    @property
    def spec(self) -> Table:
        return self.kit.tables[self.name]

    def verify_data(self, data: Plain, student: str, hidden: bool = False, seed: bytes | None = None) -> list[Problem]:
        given = {self.spec.key(k): v for k, v in data}
        needed = self.spec.keys(self.kit.numbers(student))
        wrong_keys = self.spec.check_keys(self.name, given, needed)
        if wrong_keys:
            return [Problem(text, kind=Kind.FORM) for text in wrong_keys]
        return [Problem(self.explain(key, given[key]) if self.explain else self.spec.wrong(key, given[key]))
                for key in needed if self.truth(key) != given[key]]

    def verdict_lines(self, payloads: list[Any], student: str) -> list[str]:
        problems = self.verify(payloads, student) if payloads else []
        return ["The grader's verdict, entry by entry:", *[f"  - {p.text}" for p in problems]] if problems else []

    def kit_data(self) -> dict[str, Any]:
        return {key: sealed(self.kit.lab, self.name, key, self.truth(key)) for key in self.spec.all_keys}


@dataclass
class FunctionCheck(Check):
    """A function the student wrote, run on probes in the kernel; its outputs are compared here
    with `reference(probe)`, then with each known `Mistake`.

    `form(probe, got, right)` names an output of the wrong form (length, shape), looked at first;
    `same(got, right)` says whether an output of the right form is right (default: `matches`
    within rtol, atol); `detail(probe, got, right)` says what is off where no mistake matches
    (default: "does not give what autograd gives"), followed by the `hint`.
    """

    kind: ClassVar[str] = Function.kind
    reference: Callable[[Plain], Plain] = field(default=lambda probe: None)
    mistakes_known: list[Mistake] = field(default_factory=list)
    hint: str = ""
    rtol: float = FUNCTION_RTOL
    atol: float = FUNCTION_ATOL
    same: Judge | None = None
    form: Callable[[Plain, Plain, Plain], str | None] | None = None
    detail: Callable[[Plain, Plain, Plain], str] | None = None
    answer_cell: str = ""  # where the task says "without autograd": the cell the grader reads for it
    cases: list[Case] = field(default_factory=list)  # where hidden probes are drawn for each submission
    _draws: dict[bytes, list[tuple[str, Plain]]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _outputs: dict[tuple[int, str], Plain] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def called(self) -> str:
        """The name a probe is shown as a call of."""
        return self.kit.functions[self.name].takes[0]

    @property
    def cells(self) -> tuple[str, ...]:
        """The answer cells whose code decides the check, in the order they run."""
        return (self.answer_cell,)

    def read_job(self, code: str) -> dict[str, Any]:
        """The runner's job that reads the answer cell for the task's rule
        (`rules.without_autograd`): only the cell's code says how the outputs were computed."""
        spec = self.kit.functions[self.name]
        if spec.without_autograd is None:
            raise ValueError(f"{self.grade_id}: the task of `{self.name}` has no rule to read its cell for")
        return {"source": code, "rule": "without autograd", "functions": list(spec.takes),
                "may_call": list(spec.without_autograd), "calls": []}

    def judge_read(self, result: dict[str, Any]) -> list[Problem]:
        """The verdict of `read_job`'s run: a rule broken scores 0, like a wrong output."""
        if "error" not in result:
            return []
        return [Problem(f"{result['error']}. {AUTOGRAD_RULE}", slip=AUTOGRAD_WORDS, kind=Kind.RULE)]

    def is_right(self, got: Plain, right: Plain) -> bool:
        return self.same(got, right) if self.same else matches(got, right, self.rtol, self.atol)

    def right(self, probe: Plain) -> Plain:
        """`reference(probe)`, worked out once per grading process (`output`)."""
        return self.output(self.reference, probe)

    def output(self, compute: Callable[[Plain], Plain], probe: Plain) -> Plain:
        """`compute(probe)` for the reference or a mistake, kept for the grading process, which
        judges the same probes for every submission: Lab 5's trains a model on each. A copy is
        returned, so that no judge can change what the next one gets. Threads may work one out
        twice; both get the same."""
        key = (id(compute), json.dumps(probe, sort_keys=True, default=repr))
        if key not in self._outputs:
            if len(self._outputs) >= MAX_OUTPUTS_KEPT:  # drawn probes differ per submission
                self._outputs.clear()
            self._outputs[key] = compute(probe)
        return copy.deepcopy(self._outputs[key])

    def verify_data(self, data: Plain, student: str, hidden: bool = False, seed: bytes | None = None) -> list[Problem]:
        probes = self.hidden_probes(seed) if hidden else self.visible
        if not isinstance(data, list) or len(data) != len(probes):
            return [Problem(f"expected {len(probes)} outputs of `{self.name}`, found "
                            f"{len(data) if isinstance(data, list) else type(data).__name__}", kind=Kind.FORM)]
        return self.judge(probes, data, hidden, self.hidden_cases(seed) if hidden else None)

    def drawn(self, seed: bytes) -> list[tuple[str, Plain]]:
        """The hidden probes of one submission, each with its case's words: the same for the same
        seed (a regrade), unrelated for another (a resubmission, another student)."""
        if seed not in self._draws:  # a case may run a reference to test its draw: draw once per seed
            rng = random.Random(hashlib.sha256(seed + b"\0" + self.grade_id.encode()).digest())
            self._draws[seed] = [(case.words, self.unseen_draw(case, rng)) for case in self.cases
                                 for _ in range(DRAWS_PER_CASE)]
        return list(self._draws[seed])

    def unseen_draw(self, case: Case, rng: random.Random) -> Plain:
        """One draw of `case` that is none of the visible probes: a probe the kit shows (and a
        lookup table could answer) is not hidden."""
        for _ in range(MAX_REDRAWS):
            probe = case.draw(rng)
            if probe not in self.visible:
                return probe
        raise ValueError(f"{self.grade_id}: the case {case.words!r} drew only visible probes")

    @property
    def drawn_for_the_kernel(self) -> bool:
        """Whether each submission's kernel runs its own draw of hidden probes (written into its
        hidden test cell: `gradebooks.draw_hidden_probes`)."""
        return bool(self.cases)

    def hidden_probes(self, seed: bytes | None = None) -> list[Plain]:
        """The hidden probes: drawn from the submission's `seed` where the check declares cases
        (None: the draw the instructor's notebook holds, `NOTEBOOK_DRAW`), else the declared ones."""
        if not self.cases:
            return list(self.hidden)
        return [probe for _, probe in self.drawn(NOTEBOOK_DRAW if seed is None else seed)]

    def hidden_cases(self, seed: bytes | None = None) -> list[str] | None:
        """The case of each hidden probe, in words (None where the check declares no cases)."""
        return [words for words, _ in self.drawn(NOTEBOOK_DRAW if seed is None else seed)] if self.cases else None

    def judge(self, probes: list[Plain], outputs: list[Plain], hidden: bool = False,
              cases: list[str] | None = None) -> list[Problem]:
        """The problems with the outputs on `probes` (`cases`: the case of each hidden probe, in words)."""
        return [problem for index, (probe, got) in enumerate(zip(probes, outputs, strict=True))
                for problem in self.judge_each(probe, got, hidden, cases[index] if cases else None)]

    def judge_each(self, probe: Plain, got: Plain, hidden: bool = False, case: str | None = None) -> list[Problem]:
        """The problems with one output. Where the task's functions answer together ({name:
        output}), each wrong one is judged on its own, as if the others were right: its problem
        carries its name, and a mistake in each is named."""
        right = self.right(probe)
        takes = self.kit.functions[self.name].takes if self.name in self.kit.functions else ()
        if len(takes) < 2 or not (isinstance(got, dict) and isinstance(right, dict) and set(got) == set(takes)):
            return [problem] if (problem := self.judge_one(probe, got, hidden, case)) else []
        if self.form and self.form(probe, got, right):
            return [problem] if (problem := self.judge_one(probe, got, hidden, case)) else []
        return [problem for name in takes if (problem := self.judge_one(probe, {**right, name: got[name]}, hidden,
                                                                        case, called=name))]

    def judge_one(self, probe: Plain, got: Plain, hidden: bool = False, case: str | None = None,
                  called: str | None = None) -> Problem | None:
        """The problem with one output, or None. On a hidden probe, nothing of the probe is told
        (not its inputs, nor a detail worked out from them), only its case in words: what the
        student reads ends up in the feedback and the exports, and the hidden inputs are the
        grader's alone. `called`: the function the output is of, where not the check's first."""
        right = self.right(probe)
        if hidden:
            call = hidden_call(case) + (f" (`{called}`)" if called else "")
        else:
            call = describe_call(called or self.called, probe)
        if self.form and (wrong := self.form(probe, got, right)):
            return Problem(f"{call}: {HIDDEN_FORM if hidden else wrong}", kind=Kind.FORM)
        if self.is_right(got, right):
            return None
        for mistake in self.mistakes_known:
            if mistake.found(probe, got, right, self.is_right, self.output):
                return Problem(f"{call}: {MATCHES}{mistake.why}.", slip=mistake.why)
        what = " does not give what autograd gives."
        if self.detail is not None and not hidden:
            what = f": {self.detail(probe, got, right)}."
        return Problem(f"{call}{what} {self.hint}")

    def mistake_outputs(self, probe: Plain) -> dict[str, Plain]:
        """{why: output} of the known mistakes that are one output on `probe` (the kit's share)."""
        return {m.why: wrong for m in self.mistakes_known if m.gives and (wrong := m.gives(probe)) is not None}

    def kit_data(self) -> dict[str, Any]:
        return {"probes": self.visible, "rtol": self.rtol, "atol": self.atol, "hint": self.hint,
                "outputs": [{"right": self.reference(p), "mistakes": self.mistake_outputs(p)} for p in self.visible]}


@dataclass
class FormulaCheck(FunctionCheck):
    """A derivation written as a closed form (`math` only) in the answer cell `answer_cell`,
    decided by that cell's code alone: the grader runs it with the standard library only, on the
    visible probes and on hidden ones drawn for each submission, `DRAWS_PER_CASE` per case of
    `cases`, from the submission's seed (`draws.submission_seed`)."""

    kind: ClassVar[str] = Formula.kind
    rule: ClassVar[str] = CLOSED_FORM  # what a cell that breaks the rule is told
    rule_slip: ClassVar[str] = "not a closed form"
    runs_alone: ClassVar[str] = FORMULA_RULE  # what a cell that fails to run is told
    rtol: float = FORMULA_RTOL
    atol: float = FORMULA_ATOL

    @property
    def called(self) -> str:
        return self.kit.formulas[self.name].function

    @property
    def drawn_for_the_kernel(self) -> bool:
        return False  # a formula's inputs never enter the kernel

    def jobs(self, code: str, seed: bytes) -> dict[str, Any]:
        """The formula runner's job for this check: the answer cell's code, called on every probe."""
        hidden = [probe for _, probe in self.drawn(seed)]
        return {"source": code, "function": self.called, "calls": [[self.called, p] for p in self.visible + hidden]}

    def judge_run(self, result: dict[str, Any], seed: bytes) -> list[Problem]:
        """The verdict on one run of the answer cell (`course.formulas.evaluate`'s result)."""
        drawn = self.drawn(seed)
        if "error" in result:
            if result.get("rule") == "numerical":
                return [Problem(f"{result['error']} {self.rule}", kind=Kind.NUMERICAL)]
            if result.get("rule"):
                return [Problem(f"{result['error']}. {self.rule}", slip=self.rule_slip, kind=Kind.RULE)]
            where = ""
            if "call" in result:  # which probe raised: a visible one is shown, a hidden one by its case
                index = int(result["call"])
                where = (describe_call(self.called, self.visible[index]) if index < len(self.visible)
                         else hidden_call(drawn[index - len(self.visible)][0])) + " "
            if result.get("unanswered"):
                return [Problem(f"{where}{result['error']}.", kind=Kind.UNANSWERED)]
            return [Problem(f"{where}{result['error']}. {self.runs_alone}", kind=Kind.RULE)]
        outputs = result["values"]
        visible, hidden = outputs[:len(self.visible)], outputs[len(self.visible):]
        probes, cases = [p for _, p in drawn], [words for words, _ in drawn]
        problems = self.judge(self.visible, visible) + self.judge(probes, hidden, hidden=True, cases=cases)
        # The mistake that explains every wrong output is named on each of them.
        runs: list[tuple[Plain, Plain, str | None]] = [(p, got, None)
                                                       for p, got in zip(self.visible, visible, strict=True)]
        runs += [(p, got, words) for (words, p), got in zip(drawn, hidden, strict=True)]
        wrong = [(p, got, right, case) for p, got, case in runs
                 if not self.is_right(got, right := self.right(p))]
        everywhere = next((m for m in self.mistakes_known
                           if all(m.found(p, got, right, self.is_right, self.output) for p, got, right, _ in wrong)),
                          None)
        if everywhere is None:
            return problems
        return [Problem(f"{describe_call(self.called, p) if case is None else hidden_call(case)}: "
                        f"{MATCHES}{everywhere.why}.", slip=everywhere.why) for p, _, _, case in wrong]


@dataclass
class EngineCheck(FormulaCheck):
    """An autograd engine written in plain Python in the answer cells `answer_cells` (Lab 6),
    decided by their code alone, as a formula is: the grader runs it with the standard library
    only, the kit's harness building each probe's graph with it (visible ones, and hidden ones
    drawn per submission), and compares what it gives with `reference` (torch, float64)."""

    kind: ClassVar[str] = Engine.kind
    rule: ClassVar[str] = ENGINE_RULE
    rule_slip: ClassVar[str] = "not plain Python with `math` alone"
    runs_alone: ClassVar[str] = ENGINE_RULE
    answer_cells: tuple[str, ...] = ()

    @property
    def called(self) -> str:
        return self.kit.engines[self.name].call

    @property
    def cells(self) -> tuple[str, ...]:
        return self.answer_cells

    def jobs(self, code: str, seed: bytes) -> dict[str, Any]:
        """The runner's job: the cells' code, checked by the engine rule, and the harness called on every probe."""
        hidden = [probe for _, probe in self.drawn(seed)]
        return {"source": code, "rule": "engine", "harness": self.kit.engines[self.name].harness,
                "calls": [[self.called, [p]] for p in self.visible + hidden]}
