"""Grade a whole class: every submission alone, every result saved in one step.

One submission is one unit of work (`grade_submission`): its files are copied to a
private scratch course, stock `nbgrader autograde` runs there inside a bubblewrap sandbox
(`sandbox.py`) with a gradebook that holds the lab and no student, the answers each test cell
published are verified again in this process (which never runs student code), and only then
is the result moved into the course: the autograded folder's regular files by rename, the
scores by a single database transaction. Nothing the sandbox wrote is trusted as it is: the
scores kept are those of the autograder test cells (known from the course's own gradebook),
the timestamp is the submission's, and the verification has the last word. A
broken or hung submission, or a crash halfway through the class, therefore leaves
every grade already saved as it was, and running the grader again is always safe.
Units are independent, so they run in parallel (`--jobs`).
"""

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import (Comment, Grade, Gradebook, MissingEntry, Student, SubmittedAssignment,
                          SubmittedNotebook)

from .. import verification
from course.identity import STUDENT_ENV
from . import sandbox
from .layout import Layout
from .nbgrader_cmd import BIN, run_nbgrader

SCRATCH = ".grading"
UNIT_TIMEOUT_S = 900


@dataclass
class Outcome:
    """What happened to one submission."""

    student: str
    lab: str
    ok: bool
    message: str = ""
    seconds: float = 0.0
    overrides: list[str] = field(default_factory=list)


def lab_notebooks(root: Path, lab: str) -> list[str]:
    """The notebook names of a lab, from its released files."""
    return sorted(p.stem for p in Layout(root).folder("release", lab).glob("*.ipynb"))


def precheck(root: Path, lab: str, student: str) -> str | None:
    """A message if the submission cannot be graded as this lab, else None."""
    folder = Layout(root).folder("submitted", lab, student)
    names = lab_notebooks(root, lab)
    if not any((folder / f"{name}.ipynb").exists() for name in names):
        found = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        return f"no {' or '.join(n + '.ipynb' for n in names)} in {folder.relative_to(root)}/ (found: {found})"
    for name in names:
        path = folder / f"{name}.ipynb"
        if not path.exists():
            continue  # nbgrader scores a missing notebook 0 and says so
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as exc:  # invalid JSON, wrong format version, unreadable file
            return f"{path.relative_to(root)} is not a readable notebook ({type(exc).__name__}: {exc})"
        owner = nb.metadata.get("autograd_labs", {}).get("lab")
        if owner is not None and owner != lab:
            return f"{path.relative_to(root)} is the notebook of {owner}, not {lab}: ask the student to resubmit"
    return None


def snapshot_gradebook(src: Path, dest: Path) -> None:
    """A consistent copy of the SQLite gradebook, even while another process writes it."""
    with sqlite3.connect(src) as source, sqlite3.connect(dest) as target:
        source.backup(target)


def test_cells(db_url: str, lab: str) -> set[tuple[str, str]]:
    """(notebook, cell) of every autograder test cell of a lab: the only cells with an auto score."""
    with Gradebook(db_url) as gb:
        notebooks = gb.find_assignment(lab).notebooks
        return {(nb.name, c.name) for nb in notebooks for c in nb.grade_cells
                if c.name not in {s.name for s in nb.solution_cells}}


def read_result(db_url: str, lab: str, student: str, trusted: set[tuple[str, str]], timestamp) -> dict:
    """The auto scores of the `trusted` test cells of one submission, as plain data.

    The gradebook at `db_url` was within the sandbox's reach: only the scores of autograder test
    cells are read from it, never a score for a written answer; the timestamp is the one given.
    """
    with Gradebook(db_url) as gb:
        sub = gb.find_submission(lab, student)
        return {
            "timestamp": timestamp,
            "grades": {(nb.name, g.name): g.auto_score if (nb.name, g.name) in trusted else None
                       for nb in sub.notebooks for g in nb.grades},
            "comments": {(nb.name, c.name): c.auto_comment for nb in sub.notebooks for c in nb.comments},
        }


def lab_gradebook(root: Path, path: Path) -> Path:
    """Write at `path` a copy of the course's gradebook with every student taken out: the
    labs and their cells, for a sandboxed unit to use."""
    path.unlink(missing_ok=True)
    snapshot_gradebook(Layout(root).gradebook, path)
    with Gradebook(f"sqlite:///{path}") as gb:
        for student in list(gb.students):
            for submission in list(student.submissions):
                gb.remove_submission(submission.assignment.name, student.id)
            gb.remove_student(student.id)
    return path


def save_result(db_url: str, lab: str, student: str, result: dict) -> None:
    """Write one submission's autograder scores into the gradebook in one transaction.

    Manual scores and comments a grader already entered are kept, and so is their graded state;
    as nbgrader does, a cell with a manual score is flagged for review when its auto score changes.
    """
    with Gradebook(db_url) as gb:
        db = gb.db
        try:
            if db.get(Student, student) is None:
                db.add(Student(id=student))
            assignment = gb.find_assignment(lab)
            try:
                sub = gb.find_submission(lab, student)
            except MissingEntry:
                with db.no_autoflush:  # build the whole submission before SQLAlchemy flushes any of it
                    sub = SubmittedAssignment(assignment=assignment, student_id=student)
                    for notebook in assignment.notebooks:
                        nb = SubmittedNotebook(notebook=notebook, assignment=sub)
                        for cell in notebook.grade_cells + notebook.task_cells:
                            Grade(cell=cell, notebook=nb)
                        for cell in notebook.solution_cells + notebook.task_cells:
                            Comment(cell=cell, notebook=nb)
                    db.add(sub)
            sub.timestamp = result["timestamp"]
            for nb in sub.notebooks:
                for grade in nb.grades:
                    before, grade.auto_score = grade.auto_score, result["grades"].get((nb.name, grade.name))
                    if grade.manual_score is None:
                        grade.needs_manual_grade = grade.auto_score is None
                    elif grade.auto_score != before:  # a grader's score over an auto score that moved
                        grade.needs_manual_grade = True
                for comment in nb.comments:
                    comment.auto_comment = result["comments"].get((nb.name, comment.name))
            db.commit()
        except Exception:
            db.rollback()
            raise


def replace_dir(new: Path, final: Path) -> None:
    """Put `new` at `final`, replacing what was there, without a moment of half-written files."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = final.with_name(f".{final.name}.new")
    old = final.with_name(f".{final.name}.old")
    for leftover in (staged, old):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(new, staged, symlinks=True, ignore=not_regular)
    if final.exists():
        final.rename(old)
    staged.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def not_regular(folder: str, names: list[str]) -> list[str]:
    """The names in a folder that are neither regular files nor folders (links, pipes, devices)."""
    return [n for n in names if os.path.islink(os.path.join(folder, n))
            or not (os.path.isfile(os.path.join(folder, n)) or os.path.isdir(os.path.join(folder, n)))]


def run_autograde(root: Path, scratch: Path, lab: str, student: str, threads: int,
                  sandboxed: bool = True) -> subprocess.CompletedProcess:
    """Stock nbgrader autograde of one submission inside a scratch course (in the sandbox)."""
    env = {STUDENT_ENV: student, "OMP_NUM_THREADS": str(threads)}
    args = ["autograde", lab, "--student", student, "--force", f"--CourseDirectory.root={scratch}"]
    if not sandboxed:
        return run_nbgrader(*args, root=root, env=env, check=False, timeout=UNIT_TIMEOUT_S)
    shutil.copy2(root / "nbgrader_config.py", scratch / "nbgrader_config.py")
    return subprocess.run(sandbox.wrap([str(BIN / "nbgrader"), *args], scratch, env), cwd=scratch,
                          capture_output=True, text=True, timeout=UNIT_TIMEOUT_S, start_new_session=True)


def grade_submission(root: Path, lab: str, student: str, scratch: Path, threads: int = 1,
                     sandboxed: bool = True) -> tuple[Outcome, dict | None]:
    """Autograde one submission inside `scratch`; return its outcome and result, nothing saved."""
    start = time.monotonic()
    problem = precheck(root, lab, student)
    if problem:
        return Outcome(student, lab, False, problem), None
    course, private = Layout(root), Layout(scratch)
    template = root / SCRATCH / f"{lab}-gradebook.db"
    if template.exists():
        shutil.copy2(template, private.gradebook)
    else:
        lab_gradebook(root, private.gradebook)
    shutil.copytree(course.folder("submitted", lab, student), private.folder("submitted", lab, student),
                    symlinks=True, ignore=not_regular)
    private.folder("source", lab).mkdir(parents=True)
    try:
        proc = run_autograde(root, scratch, lab, student, threads, sandboxed)
    except subprocess.TimeoutExpired:
        return Outcome(student, lab, False, f"grading took over {UNIT_TIMEOUT_S} s and was stopped"), None
    graded = private.folder("autograded", lab, student)
    if proc.returncode != 0 or not graded.is_dir():
        errors = [line for line in proc.stdout.splitlines() + proc.stderr.splitlines() if "ERROR" in line]
        return Outcome(student, lab, False, "nbgrader could not grade it: "
                       + (errors[-1] if errors else f"exit status {proc.returncode}")), None
    timestamp = course.directory.get_existing_timestamp(str(course.folder("submitted", lab, student)))
    result = read_result(private.db_url, lab, student, test_cells(course.db_url, lab), timestamp)
    overrides = verification.audit(graded, lab, student, result)
    return Outcome(student, lab, True, seconds=time.monotonic() - start, overrides=overrides), result


def grade_and_save(root: Path, lab: str, student: str, threads: int, sandboxed: bool = True) -> Outcome:
    """One unit of work: grade in a private scratch course, then save in one step."""
    scratch = Path(tempfile.mkdtemp(prefix=f"{student}-{lab}-", dir=root / SCRATCH))
    try:
        outcome, result = grade_submission(root, lab, student, scratch, threads, sandboxed)
        if result is not None:
            course, private = Layout(root), Layout(scratch)
            replace_dir(private.folder("autograded", lab, student), course.folder("autograded", lab, student))
            save_result(course.db_url, lab, student, result)
        return outcome
    except Exception as exc:  # a bug or a full disk must not stop the class
        return Outcome(student, lab, False, f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def grade_lab(root: Path, lab: str, jobs: int, log=print, sandboxed: bool = True) -> list[Outcome]:
    """Grade every submission of one lab, `jobs` at a time; each result is saved as it finishes."""
    students = Layout(root).students("submitted", lab)
    if not students:
        log(f"{lab}: no submissions under submitted/*/{lab}/")
        return []
    (root / SCRATCH).mkdir(exist_ok=True)
    template = lab_gradebook(root, root / SCRATCH / f"{lab}-gradebook.db")
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    outcomes = []
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for future in as_completed([pool.submit(grade_and_save, root, lab, s, threads, sandboxed)
                                        for s in students]):
                outcome = future.result()
                note = f"graded ({outcome.seconds:.1f} s)" if outcome.ok else f"NOT GRADED: {outcome.message}"
                log(f"{lab} {outcome.student}: {note}")
                for line in outcome.overrides:
                    log(f"    {line}")
                outcomes.append(outcome)
    finally:
        template.unlink(missing_ok=True)
    return sorted(outcomes, key=lambda o: o.student)


def generate_feedback_and_export(root: Path, lab: str) -> None:
    """nbgrader's own feedback HTML and CSV export, from the saved results."""
    run_nbgrader("generate_feedback", lab, "--force", root=root)
    run_nbgrader("export", "--to", str(root / "grades.csv"), root=root)


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


def format_table(root: Path, lab: str, outcomes: list[Outcome]) -> str:
    """A plain-text grade table: one row per student, one column per autograded cell."""
    scores = cell_scores(root, lab)
    auto, manual = graded_cells(root, lab)
    manual_points = sum(m for _, m in manual)
    widths = [max(len(n), 5) for n, _ in auto]
    name_width = max([len(s) for s in scores] + [len(o.student) for o in outcomes] + [7])
    head = (f"{'student':<{name_width}}  " + "  ".join(f"{n:>{w}}" for (n, _), w in zip(auto, widths))
            + f"  {'auto':>9}  written")
    lines = [f"{lab}: points per autograded cell", head, "-" * len(head)]
    failures = {o.student: o.message for o in outcomes if not o.ok}
    for student in sorted(set(scores) | set(failures)):
        if student not in scores:
            lines.append(f"{student:<{name_width}}  NOT GRADED: {failures[student]}")
            continue
        got = [scores[student].get(n) for n, _ in auto]
        written = [scores[student].get(n) for n, _ in manual]
        to_read = sum(m for (_, m), v in zip(manual, written) if v is None)
        line = (f"{student:<{name_width}}  "
                + "  ".join(f"{'?' if v is None else f'{v:g}':>{w}}" for v, w in zip(got, widths))
                + f"  {sum(v or 0 for v in got):>4g}/{sum(m for _, m in auto):<4g}"
                + (f"  {to_read:g} pts to read" if to_read else f"  {sum(written):g}/{manual_points:g}"))
        if student in failures:
            line += f"  (newest submission NOT GRADED, earlier grades kept: {failures[student]})"
        lines.append(line)
    return "\n".join(lines)
