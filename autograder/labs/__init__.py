"""Per-lab references and verifiers: how each graded cell is decided, out of the student's kernel.

Each `labN.py` here declares its checks once, on a `Lab` (`lab.values`, `lab.table`,
`lab.function`): the grade id, what the notebook hands over (through the kit's `check`), the
probes (visible and hidden), the references computed with autograd, the known mistakes and the
verifier. From those declarations come the verification of every graded cell
(`Lab.verify_cell`) and the kit's data of expected visible outputs (`Lab.kit_data`).

A formula check (`lab.formula`) is decided from the notebook's answer cell itself: its code is
run on the visible and the hidden probes by the `FormulaRunner` the caller hands in (the
pipeline's: a sandbox with Python's standard library only, `sandbox.run_formulas`).

May import: torch, the student kit (`course`). Imported by: the grader (`autograder.verification`,
the pipeline, the CLI) and the tests; never by a student notebook.
"""

import importlib
from dataclasses import dataclass, field
from typing import Callable

from course.answers import FUNCTION_ATOL, FUNCTION_RTOL, diagnose_all, hand_values, matches, numbers_used
from course.checks import FORMULA_RULE, LabKit, output_problem, sealed

# Runs formula jobs (`course.formulas.evaluate`'s input) and returns their results.
FormulaRunner = Callable[[list[dict]], list[dict]]


@dataclass
class Check:
    """One graded cell: what it takes from the notebook and how its data is verified.

    `verify(data, student)` returns the problems (empty when right). For a function check,
    `data` is {"probes": the grader's own probes, "outputs": what the notebook returned}; for a
    formula check, the outputs are what the answer cell `answer_cell` returned in the sandbox.
    """

    grade_id: str
    kind: str
    name: str
    verify: Callable[[object, str], list[str]]
    visible: list = field(default_factory=list)
    hidden: list = field(default_factory=list)
    answer_cell: str | None = None

    def expected_payloads(self) -> list[bool]:
        """The `hidden` flags of the payloads this cell must publish, in order."""
        return [False] + ([True] if self.hidden else [])


HANDED_OVER = "expected the notebook to hand over"  # a cell whose data is not what its check publishes


class Lab:
    """One lab's checks, each declared once, keyed by the grade id of its test cell."""

    def __init__(self, kit: LabKit):
        self.kit = kit
        self.name = kit.lab
        self.checks: dict[str, Check] = {}
        self._kit_functions: dict[str, Callable[[], dict]] = {}
        self._kit_tables: dict[str, Callable] = {}
        self._answer_cache: dict[str, dict] = {}

    def _add(self, check: Check) -> Check:
        if check.grade_id in self.checks:
            raise ValueError(f"{self.name}: {check.grade_id} declared twice")
        self.checks[check.grade_id] = check
        return check

    def values(self, grade_id: str, *names: str) -> Check:
        """A cell checking hand-computed numbers; the kit's `answers` hold their right values and slips."""
        def verify(data: dict, student: str) -> list[str]:
            if sorted(data) != sorted(names):
                return [f"expected the values {list(names)}, found {sorted(data)}"]
            expected = self.kit.expected_answers(student)
            return diagnose_all(hand_values(data, names, expected), [expected[n] for n in names], student,
                                self.kit.other_answers(student, names))
        return self._add(Check(grade_id, "values", " ".join(names), verify))

    def numbers_owner(self, grade_id: str, payloads: list, student: str, classmates) -> str | None:
        """For a hand-values cell of `student`: the classmate on whose numbers every one of its
        answers is right while some are wrong on the student's own (work copied), else None."""
        check = self.checks.get(grade_id)
        if check is None or check.kind != "values" or len(payloads) != 1:
            return None
        names, data = check.name.split(), payloads[0].get("data")
        own = self._answers_of(student)
        try:
            answers = hand_values(data, names, own)
        except (TypeError, ValueError, KeyError, AttributeError):
            return None
        if all(own[n].matches(answers[n], own[n].value) for n in names):
            return None
        return next((other for other in classmates if other != student
                     and all(self._answers_of(other)[n].matches(answers[n], self._answers_of(other)[n].value)
                             for n in names)), None)

    def mistakes(self, grade_id: str, payloads: list, student: str, classmates=()) -> list[str]:
        """What went wrong in a test cell, in words that are the same for every student who made
        the mistake: for hand values, the slip each wrong answer matches (or whose numbers they
        were worked on); for functions and tables, the grader's verdict on each probe or entry."""
        check = self.checks.get(grade_id)
        if check is None or check.kind != "values":
            return self.verify_cell(grade_id, payloads, student)
        names = check.name.split()
        own = self._answers_of(student)
        try:
            answers = hand_values(payloads[0]["data"], names, own)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError):
            return ["no readable answers"]
        expected = [own[n] for n in names]
        elsewhere = numbers_used(answers, expected, self.kit.other_answers(student, names))
        if elsewhere is None and self.numbers_owner(grade_id, payloads, student, classmates):
            elsewhere = "another student's numbers"
        if elsewhere:
            return [f"worked on {elsewhere}"]
        return [f"`{e.name}`: {slip or 'wrong, no known mistake'}" for e in expected
                if (slip := e.mistake(answers[e.name])) is not None]

    def _answers_of(self, student: str) -> dict:
        """The kit's expected hand answers for `student`, worked out once per grading process."""
        if student not in self._answer_cache:
            self._answer_cache[student] = self.kit.expected_answers(student)
        return self._answer_cache[student]

    def table(self, grade_id: str, name: str, truth: Callable, verify: Callable | None = None) -> Check:
        """A cell checking a dict of predictions; `truth(key)` is what PyTorch does, observed now."""
        spec = self.kit.tables[name]

        def default_verify(data: list, student: str) -> list[str]:
            given = {str(k): v for k, v in data}
            return spec.problems(name, given, spec.keys(self.kit.numbers(student)),
                                 lambda key, value: truth(key) == value)
        self._kit_tables[name] = truth
        return self._add(Check(grade_id, "table", name, verify or default_verify))

    def function(self, grade_id: str, name: str, *, visible: list, hidden: list, reference: Callable,
                 mistakes: dict[str, Callable] | None = None, verify: Callable | None = None, hint: str,
                 rtol: float = FUNCTION_RTOL, atol: float = FUNCTION_ATOL) -> Check:
        """A cell running the student's function on probes.

        `reference(probe)` is the right output as plain data; `mistakes` map a description ("never
        reset w.grad") to the output that mistake gives. Without `verify`, an output is compared
        with the reference, then with each mistake.
        """
        mistakes = mistakes or {}
        takes = self.kit.functions[name].takes[0]

        def outputs(probe) -> tuple:
            return reference(probe), {why: mistake(probe) for why, mistake in mistakes.items()}

        def default_verify(data: dict, student: str) -> list[str]:
            return [problem for probe, got in zip(data["probes"], data["outputs"], strict=True)
                    if (problem := output_problem(takes, probe, got, *outputs(probe), hint, rtol, atol))]
        self._kit_functions[name] = lambda: {
            "probes": visible, "rtol": rtol, "atol": atol, "hint": hint,
            "outputs": [dict(zip(("right", "mistakes"), outputs(p), strict=True)) for p in visible]}
        return self._add(Check(grade_id, "function", name, verify or default_verify, list(visible), list(hidden)))

    def formula(self, grade_id: str, name: str, *, answer_cell: str, visible: list, hidden: list,
                reference: Callable, mistakes: dict[str, Callable], hint: str,
                rtol: float = FUNCTION_RTOL, atol: float = FUNCTION_ATOL) -> Check:
        """A cell grading a derivation written as a function (`math` only) in `answer_cell`.

        The grader runs that cell's code from the notebook, never the kernel's objects, with the
        standard library only, on `visible` and `hidden` probes (lists of arguments); `reference`
        and `mistakes` are as for `function`.
        """
        function = self.kit.formulas[name].function

        def verify(data: dict, student: str) -> list[str]:
            runs = [(probe, got, reference(probe), {why: m(probe) for why, m in mistakes.items()})
                    for probe, got in zip(data["probes"], data["outputs"], strict=True)]
            wrong = [run for run in runs if not matches(run[1], run[2], rtol, atol)]
            # The mistake that explains every wrong output is named on each of them.
            everywhere = [why for why in mistakes
                          if all(matches(got, slips[why], rtol, atol) for _, got, _, slips in wrong)]
            return [output_problem(function, probe, got, right, {why: slips[why] for why in [*everywhere, *slips]},
                                   hint, rtol, atol) for probe, got, right, slips in wrong]
        self._kit_functions[name] = lambda: {
            "probes": visible, "rtol": rtol, "atol": atol, "hint": hint,
            "outputs": [{"right": reference(p), "mistakes": {why: m(p) for why, m in mistakes.items()}}
                        for p in visible]}
        return self._add(Check(grade_id, "formula", name, verify, list(visible), list(hidden), answer_cell))

    def verify_cell(self, grade_id: str, payloads: list, student: str, answers: dict | None = None,
                    run_formulas: FormulaRunner | None = None) -> list[str]:
        """Why a test cell's published data does not hold up (empty when it does). `answers`:
        the notebook's answer cells' code by grade id (a formula check needs its own, and
        `run_formulas` to run it)."""
        check = self.checks.get(grade_id)
        if check is None:
            return [f"{grade_id} is not a check of {self.name}"]
        if check.kind == "formula":  # decided by the answer cell's code alone, whatever the kernel published
            if run_formulas is None:
                raise TypeError(f"{grade_id} is a formula check: verifying it needs run_formulas")
            return self.verify_formulas(answers or {}, student, run_formulas, only={grade_id})[grade_id]
        found = sorted((p.get("kind"), p.get("name"), p.get("hidden")) for p in payloads if isinstance(p, dict))
        wanted = sorted((check.kind, check.name, hidden) for hidden in check.expected_payloads())
        if found != wanted or any(p.get("lab") != self.name for p in payloads):
            return [f"{HANDED_OVER} {wanted}, found {found}"]
        problems = []
        for payload in sorted(payloads, key=lambda p: p["hidden"]):
            try:
                problems += self._verify_payload(check, payload, student)
            except Exception as exc:  # malformed data is a failed check, never a crash
                problems.append(f"unreadable answer data ({type(exc).__name__}: {exc})")
        return problems

    def verify_formulas(self, answers: dict, student: str, run_formulas: FormulaRunner,
                        only: set | None = None) -> dict[str, list[str]]:
        """{grade id: problems} of every formula check (or those in `only`), each answer cell's code
        from `answers` ({answer cell's grade id: code}), all run by one call of `run_formulas`."""
        checks = [c for c in self.checks.values() if c.kind == "formula" and (only is None or c.grade_id in only)]
        verdicts = {c.grade_id: [f"the answer cell {c.answer_cell} is not in the notebook"] for c in checks}
        present = [c for c in checks if c.answer_cell in answers]
        jobs = [{"source": answers[c.answer_cell],
                 "calls": [[self.kit.formulas[c.name].function, p] for p in c.visible + c.hidden]} for c in present]
        results = run_formulas(jobs) if jobs else []
        for check, result in zip(present, results, strict=True):
            verdicts[check.grade_id] = ([f"{result['error']}. {FORMULA_RULE}"] if "error" in result else
                                        check.verify({"probes": check.visible + check.hidden,
                                                      "outputs": result["values"]}, student))
        return verdicts

    @staticmethod
    def _verify_payload(check: Check, payload: dict, student: str) -> list[str]:
        data = payload["data"]
        if check.kind != "function":
            return check.verify(data, student)
        probes = check.hidden if payload["hidden"] else check.visible
        if not isinstance(data, list) or len(data) != len(probes):
            return [f"expected {len(probes)} outputs of `{check.name}`, found "
                    f"{len(data) if isinstance(data, list) else type(data).__name__}"]
        return check.verify({"probes": probes, "outputs": data}, student)

    def kit_data(self) -> dict:
        """The kit's data: visible probes with their expected outputs, and every table's truth, sealed."""
        functions = {name: entry() for name, entry in self._kit_functions.items()}
        tables = {name: {key: sealed(self.name, name, key, truth(key)) for key in self.kit.tables[name].all_keys}
                  for name, truth in self._kit_tables.items()}
        return {"functions": functions, "tables": tables}


def load(lab: str) -> Lab:
    """The declared checks of a lab (`autograder.labs.<lab>.LAB`)."""
    return importlib.import_module(f"{__name__}.{lab}").LAB
