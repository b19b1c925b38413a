"""Plant single changes in each lab's solution cells and see whether the lab's checks notice.

    python tests/mutate_solutions.py [LAB ...]

A mutant changes one numeric constant, one arithmetic operator or one comparison (the sites of
tests/mutate.py) in one solution code cell of source/<lab>/<lab>.ipynb. The notebook's code
cells then run in order, in this process, as student ada and, if it survives her, as student3,
student0 and student2 (whose numbers differ where ada's hide slips): a mutant is killed when a graded test
cell fails, in the notebook (the kit's check raises) or when the grader verifies what it
handed over (its hidden probes included), or, for a formula, the answer cell's code. Mutants listed in
tests/equivalent_solution_mutants.txt, as "lab | the line's code | change  # why", are left out.
Prints each survivor and the kill rate; exits 1 when a mutant survives that is not listed.
"""

import ast
import contextlib
import io
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot
import nbformat

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
matplotlib.use("Agg")

import course.checks  # noqa: E402
from autograder.labs import FunctionCheck, load  # noqa: E402
from autograder.pipeline import notebooks, sandbox  # noqa: E402
from course.identity import STUDENT_ENV  # noqa: E402
from helpers import SEED, run_cell  # noqa: E402
from mutate import sites  # noqa: E402

EQUIVALENT = REPO / "tests" / "equivalent_solution_mutants.txt"
# ada first; student3's numbers show what ada's hide (Lab 5: b ≠ 0), student0's Lab 1 rates hold
# the regime neither of theirs has (diverging) and their Lab 4 m1 is under 1, and student2's Lab 4
# target is y = 1 (ada's, student3's and student0's are 0).
STUDENTS = ("ada", "student3", "student0", "student2")
CELL_SECONDS = 10  # the grader's per-cell limit: a cell still running then scores 0


@dataclass(frozen=True)
class SolutionMutant:
    lab: str
    cell: int      # index of the solution cell in the notebook
    index: int     # which mutable node of the cell, in ast.walk order
    code: str      # the line's text, stripped
    change: str

    @property
    def identity(self) -> str:
        return f"{self.lab} | {self.code} | {self.change}"


def is_solution_code(cell) -> bool:
    return cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution", False)


def mutants(lab: str, nb) -> list[SolutionMutant]:
    found = []
    for number, cell in enumerate(nb.cells):
        if is_solution_code(cell):
            lines = cell.source.splitlines()
            found += [SolutionMutant(lab, number, index, lines[node.lineno - 1].strip(), change)
                      for index, (node, change, _) in enumerate(sites(ast.parse(cell.source)))]
    return found


def planted(source: str, index: int) -> str:
    tree = ast.parse(source)
    node, _, apply = list(sites(tree))[index]
    apply(node)
    return ast.unparse(tree)


def failed_test(lab: str, cells: list) -> str | None:
    """Run the cells as the notebook does; the grade id of the first test cell that loses points."""
    checks, namespace = load(lab), {"__name__": "__main__"}
    try:
        return _first_failure(lab, checks, namespace, cells)
    finally:
        matplotlib.pyplot.close("all")


def _first_failure(lab: str, checks, namespace: dict, cells: list) -> str | None:
    answers = {c.metadata.nbgrader["grade_id"]: c.source for c in cells if is_solution_code(c)}
    for number, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        grading = cell.metadata.get("nbgrader", {})
        source, check = cell.source, checks.checks.get(grading.get("grade_id"))
        if isinstance(check, FunctionCheck) and check.drawn_for_the_kernel:  # as the unit's gradebook has it
            source = notebooks.with_drawn_probes(source, check, SEED)
        payloads = []
        with contextlib.redirect_stdout(io.StringIO()), contextlib.ExitStack() as stack:
            stack.enter_context(_publishing_into(payloads))
            signal.alarm(CELL_SECONDS)
            try:
                run_cell(source, namespace, f"{lab} {number}")
            except Exception:
                if grading.get("grade") and not grading.get("solution"):
                    return grading["grade_id"]
                continue  # a broken answer cell: the test cells after it say so
            finally:
                signal.alarm(0)
        if grading.get("grade") and not grading.get("solution") and payloads:
            if checks.verify_cell(grading["grade_id"], payloads, os.environ[STUDENT_ENV], answers,
                                  sandbox.run_formulas, SEED):
                return grading["grade_id"]
    return None


@contextlib.contextmanager
def _publishing_into(payloads: list):
    original = course.checks.publish
    course.checks.publish = payloads.append
    try:
        yield
    finally:
        course.checks.publish = original


def out_of_time(signum, frame):
    raise TimeoutError(f"a cell ran over {CELL_SECONDS} s")


def listed_equivalent() -> set[str]:
    return {line.split("#")[0].strip() for line in EQUIVALENT.read_text().splitlines()
            if line.strip() and not line.startswith("#")} if EQUIVALENT.exists() else set()


def survivors(lab: str) -> tuple[list[SolutionMutant], int]:
    """The mutants of `lab`'s solution cells that lose no points for any of STUDENTS and are not
    listed; how many ran."""
    previous = signal.signal(signal.SIGALRM, out_of_time)
    student_before = os.environ.get(STUDENT_ENV)
    try:
        nb = notebooks.instructor_notebook(lab)  # from source/<lab>/<lab>.py
        equivalent = listed_equivalent()
        alive = [m for m in mutants(lab, nb) if m.identity not in equivalent]
        ran = len(alive)
        for student in STUDENTS:
            os.environ[STUDENT_ENV] = student
            if (failed := failed_test(lab, nb.cells)) is not None:
                raise AssertionError(f"{lab}'s solution itself fails {failed} for {student}")
            alive = [mutant for mutant in alive if failed_test(lab, planted_cells(nb, mutant)) is None]
        return alive, ran
    finally:
        signal.signal(signal.SIGALRM, previous)
        if student_before is None:
            os.environ.pop(STUDENT_ENV, None)
        else:
            os.environ[STUDENT_ENV] = student_before


def planted_cells(nb, mutant: SolutionMutant) -> list:
    cells = [nbformat.from_dict(c) for c in nb.cells]
    cells[mutant.cell].source = planted(cells[mutant.cell].source, mutant.index)
    return cells


def main(argv: list[str]) -> int:
    os.environ.pop("NBGRADER_EXECUTION", None)
    labs = argv or sorted(p.name for p in (REPO / "source").iterdir() if p.name.startswith("lab"))
    alive_all = []
    for lab in labs:
        alive, ran = survivors(lab)
        alive_all += alive
        for mutant in alive:
            print(f"SURVIVED {mutant.identity}", flush=True)
        print(f"{lab}: {ran - len(alive)}/{ran} solution mutants lose points", flush=True)
    return 1 if alive_all else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
