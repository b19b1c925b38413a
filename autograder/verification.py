"""The authority for every graded cell: verify the published answers outside the student's kernel.

Each test cell publishes the plain data its check took from the notebook (course.checks). After
nbgrader has scored a submission, `audit` verifies that data again in the grading process,
with the lab's declared checks (autograder.labs), the grader's own probes and the student id
taken from the submission's folder. A cell that passed in the kernel but fails here (its check
was tampered with, its probes were changed, its data is missing or malformed) loses its points,
and the notebook says why. A prediction table that failed gets the grader's verdict on each
entry in its feedback: in the notebook, the kit only says how many entries are right.
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeAlias

import nbformat
from nbgrader.utils import is_grade, is_solution

from course.answers import Explained
from course.identity import ANONYMOUS
from course.protocol import ANSWERS_MIME, CELL_TIMEOUT, FAULT_CELL_ID, FORMULA_VERDICT_MIME, SUMMARY_CELL_ID

from .labs import Check, FormulaCheck, FormulaRunner, Kind, Lab, Problem, load

# A notebook cell, a notebook, as nbformat reads them (nbformat.NotebookNode: a dict with
# attribute access; nbformat has no type annotations).
Cell: TypeAlias = Any
Notebook: TypeAlias = Any


KIT_ERRORS = {"CheckFailed", "WrongType", "Unanswered"}  # the kit's own verdicts (course.answers.Explained)
NOT_ANSWERED = "no answer reached the check (the cell raised before it, e.g. not answered yet)"
STOPPED = {CELL_TIMEOUT: "ran over its time limit and was stopped",
           "NotRun": "not run: grading stopped early (see the note at the top)"}
SEED_KEY = "autograd_labs_seed"  # notebook metadata: the seed the submission's hidden probes were drawn from
# notebook metadata: {test cell: its mistakes in words}, for each cell that lost points, as the
# summary names them; the class report reads them instead of verifying every answer again
MISTAKES_KEY = "autograd_labs_mistakes"
WORKED_AS_KEY = "autograd_labs_worked_as"  # notebook metadata: the id it was worked under, where not the graded one
COPIED_KEY = "autograd_labs_copied"  # notebook metadata: {test cell: the classmate whose numbers its answers fit}
COPIED = ("The grader's note: these answers are right for another student's numbers, not for yours. "
          "Every number here is graded on your own numbers (see 'Your numbers' at the top).\n")


def published(cell: Cell) -> list[dict[str, Any]]:
    """The answer payloads a test cell's outputs carry."""
    return [out["data"][ANSWERS_MIME] for out in cell.get("outputs", [])
            if out.get("output_type") == "display_data" and ANSWERS_MIME in out.get("data", {})]


def answer_sources(nb: Notebook) -> dict[str, str]:
    """The code of each answer cell of a notebook, by grade id (what a formula check runs)."""
    return {c.metadata.nbgrader["grade_id"]: c.source for c in nb.cells
            if c.cell_type == "code" and is_solution(c) and "grade_id" in c.metadata.get("nbgrader", {})}


def audit(executed: dict[Path, Notebook], lab: str, student: str, result: dict[str, Any],
          run_formulas: FormulaRunner, seed: bytes, classmates: Iterable[str] = (),
          tests: dict[tuple[str, str], float] | None = None, worked_as: str | None = None) -> list[str]:
    """In the lab's executed notebooks (`executed`: {path: notebook}, no other: a kernel may leave
    any number beside them), zero every passed test cell whose answers fail out-of-kernel verification, add the
    verdict on each entry to every failed prediction table, and say so where a failed cell's hand
    answers are right for one of `classmates` (the other students of the lab). Every formula is
    run once, from its answer cell's code, by `run_formulas` (the pipeline's runs it in a sandbox), on
    hidden probes drawn from the submission's `seed`, and its verdict kept in the test cell
    (`FORMULA_VERDICT_MIME`); so is the reading of each function the task says to write without
    autograd, where it finds the rule broken. With `tests`
    ({(notebook, test cell): points}), each notebook then starts with a summary (`add_summary`),
    which says so where the notebook was worked under another id than `student` (`worked_as`,
    `intake.worked_as`).

    Updates `result["grades"]` and the notebooks in place, and writes each to its path; returns
    one line for the instructor per overturned or copied cell.
    """
    checks = load(lab)
    notes = [] if worked_as in (None, student) else [other_id(worked_as, student)]
    for path, nb in executed.items():
        code_verdicts = checks.verify_code(answer_sources(nb), run_formulas, seed)
        copied = {}
        for cell in nb.cells:
            if cell.cell_type != "code" or not is_grade(cell) or is_solution(cell):
                continue
            grade_id = cell.metadata.nbgrader["grade_id"]
            key = (path.stem, grade_id)
            check = checks.checks.get(grade_id)
            verdict = code_verdicts.get(grade_id)
            if verdict is not None and (isinstance(check, FormulaCheck) or verdict):  # kept for the summary
                cell.outputs.append(nbformat.v4.new_output("display_data", data={
                    FORMULA_VERDICT_MIME: {"problems": [p.to_json() for p in verdict]}, "text/plain": ""}))
            if isinstance(check, FormulaCheck):
                problems = verdict or []
                if not result["grades"].get(key):
                    continue
            elif not result["grades"].get(key):
                add_verdict(cell, check, student)
                owner = check.numbers_owner(published(cell), student, classmates) if check else None
                if owner is not None:
                    cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=COPIED))
                    notes.append(f"{grade_id}: the answers are right for {owner}'s numbers, not {student}'s")
                    copied[grade_id] = owner
                continue
            elif verdict is not None and check is not None:  # its code (the task's rule), then its outputs
                problems = verdict or check.verify(published(cell), student, seed)
            else:
                problems = checks.verify_cell(grade_id, published(cell), student, seed=seed)
            if problems:
                result["grades"][key] = 0.0
                reason = RecheckFailed("Passed in the notebook, but not when the grader verified the answers "
                                       "again:\n" + "\n".join(f"  - {problem.text}" for problem in problems))
                # The traceback is what notebooks, the formgrader and feedback show of an error: the
                # reason, wrapped as the kit's own failures are, not nothing.
                cell.outputs.append(nbformat.v4.new_output(
                    "error", ename="RecheckFailed", evalue=str(reason), traceback=reason._render_traceback_()))
                notes.append(f"{grade_id}: overturned by the out-of-kernel check: {problems[0].text}")
        nb.metadata.pop(MISTAKES_KEY, None)  # whatever the kernel left there is not the grader's
        if tests is not None:
            nb.metadata[MISTAKES_KEY] = add_summary(nb, path.stem, checks, student, result, tests, classmates, seed,
                                                    worked_as)
        nb.metadata[SEED_KEY] = seed.hex()  # for the class report; set here, whatever the kernel left
        nb.metadata.pop(WORKED_AS_KEY, None)
        if worked_as not in (None, student):
            nb.metadata[WORKED_AS_KEY] = worked_as
        nb.metadata.pop(COPIED_KEY, None)
        if copied:  # for the class report, which names the classmate; the notebook does not
            nb.metadata[COPIED_KEY] = copied
        path.chmod(0o644)  # nbgrader leaves it read-only; it is our scratch copy
        nbformat.write(nb, path)
    return notes


def add_verdict(cell: Cell, check: Check | None, student: str) -> None:
    """For a failed cell: append, as output, what the grader says beyond the kit (for a
    prediction table, which entries are wrong and why)."""
    payloads = published(cell)
    lines = check.verdict_lines(payloads, student) if check is not None and payloads else []
    if lines:
        text = "".join(f"{line}\n" for line in lines)
        cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=text))


def cell_mistakes(cell: Cell | None, checks: Lab, student: str, classmates: Iterable[str] = (),
                  seed: bytes | None = None) -> list[str]:
    """What cost a graded test cell its points, in words that are the same for every student
    (`seed`: the submission's, which its hidden probes were drawn from)."""
    if cell is None:
        return [NOT_ANSWERED]
    verdicts = [out["data"][FORMULA_VERDICT_MIME]["problems"] for out in cell.get("outputs", [])
                if out.get("output_type") == "display_data" and FORMULA_VERDICT_MIME in out.get("data", {})]
    if verdicts:  # a formula: the verdict the audit recorded
        words = [Problem.from_json(problem).in_words for problem in verdicts[-1]]
        return list(dict.fromkeys(words)) or ["failed in the notebook, though the grader found the formula right"]
    payloads = published(cell)
    stopped = [out for out in cell.get("outputs", [])
               if out.get("output_type") == "error" and out.get("ename") in (CELL_TIMEOUT, "NotRun")]
    if stopped and not payloads:  # not the student's mistake: the grader stopped or never ran the cell
        return [STOPPED[stopped[-1]["ename"]]]
    if not payloads:
        return [NOT_ANSWERED]
    grade_id = cell.metadata.nbgrader["grade_id"]
    check = checks.checks.get(grade_id)
    if check is None:
        return [f"{grade_id} is not a check of {checks.name}"]
    found = check.mistakes(payloads, student, classmates, seed)
    if found and found[0].kind is Kind.MISSING:  # the visible check failed before the hidden ones ran
        return kit_verdict(cell) or [problem.text for problem in found]
    return [problem.text for problem in found] or ["lost its points, for no reason the grader can name"]


class RecheckFailed(Explained):
    """An answer the kit's check passed in the kernel and the grader's own verification did not."""


def kit_verdict(cell: Cell) -> list[str]:
    """The problems the kit's check printed in a cell (its CheckFailed message), one per line."""
    lines = [line.strip().removeprefix("- ") for out in cell.get("outputs", [])
             if out.get("output_type") == "error" and out.get("ename") in KIT_ERRORS
             for line in out.get("evalue", "").splitlines()]
    return [line for line in lines if line and not line.startswith("(Your numbers")]


def other_id(worked_as: str, student: str) -> str:
    """What it means that a notebook was worked under another id than the one it is graded as."""
    worked = "with no student id set (practice numbers)" if worked_as == ANONYMOUS else f"as `{worked_as}`"
    return f"worked {worked}, graded as `{student}`: hand values were checked against `{student}`'s numbers"


def add_summary(nb: Notebook, notebook: str, checks: Lab, student: str, result: dict[str, Any],
                tests: dict[tuple[str, str], float], classmates: Iterable[str] = (),
                seed: bytes | None = None, worked_as: str | None = None) -> dict[str, list[str]]:
    """Put first in a graded notebook (after a note that grading stopped early), so first in its
    feedback: the autograded score, the numbers it was graded on, and what cost points, cell by
    cell, as named mistakes; returns those mistakes, {test cell: words}. `tests`: {(notebook,
    test cell): points}."""
    numbers = [line.removeprefix("Your numbers: ") for line in checks.kit.show_numbers(checks.kit.numbers(student))]
    points = {name: p for (where, name), p in tests.items() if where == notebook}
    got = {name: result["grades"].get((notebook, name)) or 0.0 for name in points}
    cells = {c.metadata.nbgrader["grade_id"]: c for c in nb.cells if c.cell_type == "code" and is_grade(c)
             and not is_solution(c) and "grade_id" in c.metadata.get("nbgrader", {})}
    lines = [f"**Autograded: {sum(got.values()):g} of {sum(points.values()):g} points.** Written answers are "
             "read and scored by your instructor.", "",
             f"Graded on the numbers of student id `{student}`:", *[f"- {line}" for line in numbers], ""]
    if worked_as not in (None, student):
        lines[-1:-1] = ["", f"**Note:** this notebook was {other_id(worked_as, student)} (listed above)."]
    lost = {name: cell_mistakes(cells.get(name), checks, student, classmates, seed)
            for name in points if got[name] < points[name]}
    lines += ["What cost points:"] if lost else ["Every autograded check passed."]
    lines += [f"- `{name}` ({got[name]:g} of {points[name]:g}): " + "; ".join(words) for name, words in lost.items()]
    at = 1 if nb.cells and nb.cells[0].get("id") == FAULT_CELL_ID else 0
    nb.cells.insert(at, nbformat.v4.new_markdown_cell("\n".join(lines), id=SUMMARY_CELL_ID))
    return lost
