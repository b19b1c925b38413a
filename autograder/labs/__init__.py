"""Per-lab references and verifiers: how each graded cell is decided, out of the student's kernel.

Each `labN.py` here declares its checks once, on a `Lab` (`lab.values`, `lab.table`,
`lab.function`, `lab.formula`): the grade id, what the notebook hands over (through the kit's
`check`), the probes (visible and hidden), the references computed with autograd and the known
mistakes. Each declaration is an object of one of the four kinds of check (`checks.py`), which
verifies its cell and gives the kit its data (`Lab.kit_data`, `course/expected/<lab>.json`).

A formula check is decided from the notebook's answer cell itself: its code is checked to be a
closed form (`course.closed_form`) and run on the visible probes and on hidden ones drawn for the
submission, case by case (`Case`), by the `FormulaRunner` the caller hands in (the pipeline's: a
sandbox with Python's standard library only, `sandbox.run_formulas`).

May import: torch, the student kit (`course`). Imported by: the grader (`autograder.verification`,
the pipeline, the CLI) and the tests; never by a student notebook.
"""

import importlib
from typing import Any, Callable, TypeVar

from course.answers import Expected, Plain
from course.checks import LabKit

from .checks import (Case, Check, EngineCheck, FormulaCheck, FormulaRunner, FunctionCheck, Kind, Mistake, Problem,
                     TableCheck, ValuesCheck, draw_until, uniform)

__all__ = ["Case", "Check", "EngineCheck", "FormulaCheck", "FormulaRunner", "FunctionCheck", "Kind", "Lab", "Mistake",
           "Problem", "TableCheck", "ValuesCheck", "draw_until", "load", "uniform"]


AnyCheck = TypeVar("AnyCheck", bound=Check)


class Lab:
    """One lab's checks, each declared once, keyed by the grade id of its test cell."""

    def __init__(self, kit: LabKit):
        self.kit = kit
        self.name = kit.lab
        self.checks: dict[str, Check] = {}
        self._answer_cache: dict[str, dict[str, Expected]] = {}

    def _add(self, check: AnyCheck) -> AnyCheck:
        if check.grade_id in self.checks:
            raise ValueError(f"{self.name}: {check.grade_id} declared twice")
        self.checks[check.grade_id] = check
        return check

    def answers_of(self, student: str) -> dict[str, Expected]:
        """The kit's expected hand answers for `student`, worked out once per grading process."""
        if student not in self._answer_cache:
            self._answer_cache[student] = self.kit.expected_answers(student)
        return self._answer_cache[student]

    def values(self, grade_id: str, *names: str) -> ValuesCheck:
        """A cell checking hand-computed numbers; the kit's `answers` hold their right values and slips."""
        return self._add(ValuesCheck(grade_id, " ".join(names), self.kit, names=names, answers_of=self.answers_of))

    def table(self, grade_id: str, name: str, truth: Callable[[str], Plain],
              explain: Callable[[str, Plain], str] | None = None) -> TableCheck:
        """A cell checking a dict of predictions; `truth(key)` is what PyTorch does, observed now."""
        return self._add(TableCheck(grade_id, name, self.kit, truth=truth, explain=explain))

    def function(self, grade_id: str, name: str, *, visible: list[Plain], hidden: list[Plain] | None = None,
                 reference: Callable[[Plain], Plain], mistakes: list[Mistake] | None = None, hint: str,
                 **how: Any) -> FunctionCheck:
        """A cell running the student's function on probes: `hidden` ones, or hidden ones drawn for
        each submission from `cases` (`FunctionCheck`: `how` may set rtol, atol, same, form,
        detail, cases, and answer_cell where the task says "without autograd")."""
        if how.get("answer_cell") and self.kit.functions[name].without_autograd is None:
            raise ValueError(f"{self.name}: {grade_id} names an answer cell to read, but its task has no rule")
        return self._add(FunctionCheck(grade_id, name, self.kit, visible=list(visible), hidden=list(hidden or []),
                                       reference=reference, mistakes_known=list(mistakes or []), hint=hint, **how))

    def formula(self, grade_id: str, name: str, *, answer_cell: str, visible: list[Plain], cases: list[Case],
                reference: Callable[[Plain], Plain], mistakes: list[Mistake], hint: str, **how: Any) -> FormulaCheck:
        """A cell grading a derivation written as a closed form (`math` only) in `answer_cell`, on
        the visible probes and on hidden ones drawn per submission, for each of `cases`."""
        return self._add(FormulaCheck(grade_id, name, self.kit, visible=list(visible), reference=reference,
                                      mistakes_known=list(mistakes), hint=hint, answer_cell=answer_cell,
                                      cases=list(cases), **how))

    def engine(self, grade_id: str, name: str, *, answer_cells: tuple[str, ...], visible: list[Plain],
               cases: list[Case], reference: Callable[[Plain], Plain], mistakes: list[Mistake], hint: str,
               **how: Any) -> EngineCheck:
        """A cell grading an engine written in plain Python in `answer_cells` (their code, in
        order), on the visible graphs and on hidden ones drawn per submission, for each of `cases`."""
        return self._add(EngineCheck(grade_id, name, self.kit, visible=list(visible), reference=reference,
                                     mistakes_known=list(mistakes), hint=hint, answer_cell=answer_cells[-1],
                                     answer_cells=answer_cells, cases=list(cases), **how))

    def verify_cell(self, grade_id: str, payloads: list[Any], student: str, answers: dict[str, str] | None = None,
                    run_formulas: FormulaRunner | None = None, seed: bytes | None = None) -> list[Problem]:
        """Why a test cell's handed-over data does not hold up (empty when it does). `answers`:
        the notebook's answer cells' code by grade id (a formula check needs its own, `run_formulas`
        to run it and the submission's `seed` to draw its hidden probes)."""
        check = self.checks.get(grade_id)
        if check is None:
            return [Problem(f"{grade_id} is not a check of {self.name}", kind=Kind.MISSING)]
        if isinstance(check, FormulaCheck):  # decided by the answer cell's code alone
            if run_formulas is None or seed is None:
                raise TypeError(f"{grade_id} is a formula check: verifying it needs run_formulas and a seed")
            return self.verify_code(answers or {}, run_formulas, seed, only={grade_id})[grade_id]
        if isinstance(check, FunctionCheck) and check.answer_cell:  # its code first: the task's rule
            if run_formulas is None:
                raise TypeError(f"{grade_id} is read for its rule: verifying it needs run_formulas")
            broken = self.verify_code(answers or {}, run_formulas, seed or b"", only={grade_id})[grade_id]
            if broken:
                return broken
        return check.verify(payloads, student, seed)

    def verify_code(self, answers: dict[str, str], run_formulas: FormulaRunner, seed: bytes,
                    only: set[str] | None = None) -> dict[str, list[Problem]]:
        """{grade id: problems} of every check decided from its answer cell's code (or those in
        `only`): each formula, run on the visible probes and those drawn from the submission's
        `seed`, and each function that the task says to write without autograd, read for it.
        The code comes from `answers` ({answer cell's grade id: code}); one call of
        `run_formulas` runs every job."""
        checks = [c for c in self.checks.values() if isinstance(c, FunctionCheck) and c.answer_cell
                  and (only is None or c.grade_id in only)]
        verdicts = {c.grade_id: [Problem(f"the answer cell {cell} is not in the notebook", kind=Kind.MISSING)
                                 for cell in c.cells if cell not in answers] for c in checks}
        present = [c for c in checks if not verdicts[c.grade_id]]
        jobs = [c.jobs("\n\n".join(answers[cell] for cell in c.cells), seed) if isinstance(c, FormulaCheck)
                else c.read_job(answers[c.answer_cell]) for c in present]
        results = run_formulas(jobs) if present else []
        for check, result in zip(present, results, strict=True):
            verdicts[check.grade_id] = (check.judge_run(result, seed) if isinstance(check, FormulaCheck)
                                        else check.judge_read(result))
        return verdicts

    def kit_data(self) -> dict[str, Any]:
        """The kit's data: visible probes with their expected outputs, and every table's truth, sealed."""
        return {"functions": {c.name: c.kit_data() for c in self.checks.values() if isinstance(c, FunctionCheck)},
                "tables": {c.name: c.kit_data() for c in self.checks.values() if isinstance(c, TableCheck)}}


def load(lab: str) -> Lab:
    """The declared checks of a lab (`autograder.labs.<lab>.LAB`)."""
    lab_checks: Lab = importlib.import_module(f"{__name__}.{lab}").LAB
    return lab_checks
