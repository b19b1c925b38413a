"""What grading reads from the course's gradebook, and the gradebook each unit starts from: the
lab's test cells and their points, a lab's gradebook with no student in it, the scores per cell."""

import contextlib
import sqlite3
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook
from nbgrader.utils import compute_checksum

from ..labs import FunctionCheck, load
from . import notebooks
from .layout import Layout


def test_cells(db_url: str, lab: str) -> dict[tuple[str, str], float]:
    """{(notebook, cell): points} of every autograder test cell of a lab, from the course's gradebook."""
    with Gradebook(db_url) as gb:
        notebooks = gb.find_assignment(lab).notebooks
        return {(nb.name, c.name): c.max_score for nb in notebooks for c in nb.grade_cells
                if c.name not in {s.name for s in nb.solution_cells}}


def lab_template(scratch: Path, lab: str) -> Path:
    """Where a run keeps the lab's gradebook (`lab_gradebook`) that each of its units starts from."""
    return scratch / f"{lab}-gradebook.db"


def lab_gradebook(root: Path, lab: str, path: Path) -> Path:
    """Write at `path` a new gradebook that holds one lab (its notebooks and cells) and no student.

    Built afresh, not copied and pruned: a copy keeps deleted rows in its free pages, and this
    file goes inside the sandbox."""
    path.unlink(missing_ok=True)
    with Gradebook(Layout(root).db_url) as course:
        assignment = course.find_assignment(lab)
        with Gradebook(f"sqlite:///{path}", course_id=assignment.course_id) as gb:
            gb.add_assignment(lab, duedate=assignment.duedate)
            for nb in assignment.notebooks:
                gb.add_notebook(nb.name, lab, kernelspec=nb.kernelspec)
                for cell in nb.grade_cells:
                    gb.add_grade_cell(cell.name, nb.name, lab, max_score=cell.max_score, cell_type=cell.cell_type)
                for cell in nb.solution_cells:
                    gb.add_solution_cell(cell.name, nb.name, lab)
                for cell in nb.task_cells:
                    gb.add_task_cell(cell.name, nb.name, lab, max_score=cell.max_score, cell_type=cell.cell_type)
                for cell in nb.source_cells:
                    gb.add_source_cell(cell.name, nb.name, lab, cell_type=cell.cell_type, locked=cell.locked,
                                       source=cell.source, checksum=cell.checksum)
    return path


def draw_hidden_probes(path: Path, lab: str, seed: bytes) -> None:
    """In a unit's own lab gradebook (`lab_gradebook`'s copy), put the submission's draw of hidden
    probes in place of the notebook's in each hidden test cell whose check draws them, with the
    cell's new checksum: nbgrader's OverwriteCells then gives the kernel that code to run."""
    checks = [c for c in load(lab).checks.values() if isinstance(c, FunctionCheck) and c.drawn_for_the_kernel]
    if not checks:
        return
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        for check in checks:
            found = db.execute("SELECT source_cell.id, source_cell.source, source_cell.checksum, grade_cells.max_score "
                               "FROM source_cell JOIN base_cell ON base_cell.name = source_cell.name "
                               "AND base_cell.notebook_id = source_cell.notebook_id "
                               "JOIN grade_cells ON grade_cells.id = base_cell.id WHERE source_cell.name = ?",
                               (check.grade_id,)).fetchall()
            for cell_id, source, checksum, points in found:
                if checksum_of_test_cell(check.grade_id, source, points) != checksum:
                    raise ValueError(f"{lab}: the gradebook's {check.grade_id} does not match its checksum")
                drawn = notebooks.with_drawn_probes(source, check, seed)
                db.execute("UPDATE source_cell SET source = ?, checksum = ? WHERE id = ?",
                           (drawn, checksum_of_test_cell(check.grade_id, drawn, points), cell_id))


def checksum_of_test_cell(grade_id: str, source: str, points: float) -> str:
    """nbgrader's checksum of a locked autograder test cell with this code."""
    cell = nbformat.v4.new_code_cell(source, metadata={"nbgrader": {
        "grade": True, "solution": False, "locked": True, "task": False, "grade_id": grade_id, "points": points}})
    return str(compute_checksum(cell))


def known_students(layout: Layout) -> list[str]:
    with Gradebook(layout.db_url) as gb:
        return [student.id for student in gb.students]


def cell_scores(root: Path, lab: str) -> dict[str, dict[str, float | None]]:
    """{student: {grade cell: score}} for a lab; autograded cells get their auto score."""
    table = {}
    with Gradebook(Layout(root).db_url) as gb:
        for sub in gb.find_assignment(lab).submissions:
            table[sub.student.id] = {g.name: g.score if not g.needs_manual_grade else None
                                     for nb in sub.notebooks for g in nb.grades}
    return table


def graded_cells(root: Path, lab: str) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(autograded test cells, manually graded answer cells) of a lab, each as (name, points)."""
    with Gradebook(Layout(root).db_url) as gb:
        notebooks = gb.find_assignment(lab).notebooks
        written = {c.name for nb in notebooks for c in nb.solution_cells}
        cells = [(c.name, c.max_score) for nb in notebooks for c in nb.grade_cells]
    return [c for c in cells if c[0] not in written], [c for c in cells if c[0] in written]
