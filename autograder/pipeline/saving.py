"""A graded unit is saved whole or not at all: its notebooks in `autograded/`, its rows in the
gradebook and its page in `feedback/`.

`save_unit` does it in the grading process (the one writer), with SIGINT and SIGTERM held back:
1. the notebooks are staged in the run's scratch folder, and the unit's present rows noted;
2. a journal entry (`.grading/journal/<lab>+<student>.json`) names the stage and the rows to be;
3. one transaction writes the rows, tried again while the database cannot be reached (`Patience`);
4. the feedback is rendered from the staged notebooks and the committed rows;
5. the staged folders take the place of the live ones, by renames (the old ones kept aside);
6. the journal entry and the old folders go.
A failure at 3 changes nothing; at 4 or 5 the previous rows and folders are put back. A process
killed at any instant leaves its journal entry, and `recover` (run by the next grader under the
course lock, before it grades anything) finishes that save when its rows were committed and
undoes it when they were not: either the old result or the new one, never a mix.

The rules for a submission that replaces a graded one (`save_result`): an older submission never
replaces a newer grade; a written answer that changed is flagged for reading again, its previous
score kept in the comment; a grader's score over an auto score that moved is flagged for review,
as nbgrader does.
"""

import errno
import hashlib
import json
import os
import secrets
import shutil
import time
from datetime import datetime
from pathlib import Path

import nbformat
import sqlalchemy.exc
from nbgrader.api import Comment, Grade, Gradebook, MissingEntry, Student, SubmittedAssignment, SubmittedNotebook
from nbgrader.utils import is_grade, is_solution

from . import feedback, runs
from .layout import Layout

NO_SPACE = "No space left on device"  # how the system says the disk is full
# Free space under which a unit that failed is taken to have failed for the full disk: a write
# that ran out of room can surface as another error (a file cut short, then unreadable).
NEARLY_FULL_BYTES = 2 * 2**20
PATIENCE = [2, 4, 8, 15, 30]  # seconds between tries of a transaction the database refused (about a minute)
TARGETS = ("autograded", "feedback")  # the unit's folders, in the order they go live


class OlderSubmission(Exception):
    """A submission older than the one whose grade the gradebook holds."""


def journal(root: Path) -> Path:
    return root / runs.SCRATCH / runs.JOURNAL


def entry_path(root: Path, lab: str, student: str) -> Path:
    return journal(root) / f"{lab}+{student}.json"


def stamp(value) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def expected_rows(result: dict) -> dict:
    """What the gradebook holds for a unit once `result` is saved, in a form kept in the journal."""
    return {"timestamp": stamp(result["timestamp"]),
            "grades": {f"{nb}/{cell}": score for (nb, cell), score in sorted(result["grades"].items())},
            "comments": {f"{nb}/{cell}": text for (nb, cell), text in sorted(result["comments"].items())}}


def present_rows(gb: Gradebook, lab: str, student: str) -> dict | None:
    """The unit's rows as `expected_rows` writes them (None: no submission in the gradebook)."""
    try:
        sub = gb.find_submission(lab, student)
    except MissingEntry:
        return None
    return {"timestamp": stamp(sub.timestamp),
            "grades": {f"{nb.name}/{g.name}": g.auto_score for nb in sub.notebooks for g in nb.grades},
            "comments": {f"{nb.name}/{c.name}": c.auto_comment for nb in sub.notebooks for c in nb.comments}}


def committed(gb: Gradebook, entry: dict) -> bool:
    rows = present_rows(gb, entry["lab"], entry["student"])
    expected = entry["expect"]
    return rows is not None and rows["timestamp"] == expected["timestamp"] and all(
        rows["grades"].get(k) == v for k, v in expected["grades"].items()) and all(
        rows["comments"].get(k) == v for k, v in expected["comments"].items())


def snapshot(gb: Gradebook, lab: str, student: str) -> dict | None:
    """Every value of the unit's rows that a save changes, to put back (None: no submission)."""
    try:
        sub = gb.find_submission(lab, student)
        return {"timestamp": sub.timestamp,
                "grades": {(nb.name, g.name): (g.auto_score, g.manual_score, g.needs_manual_grade)
                           for nb in sub.notebooks for g in nb.grades},
                "comments": {(nb.name, c.name): (c.auto_comment, c.manual_comment)
                             for nb in sub.notebooks for c in nb.comments}}
    except MissingEntry:
        return None
    except Exception:
        gb.db.rollback()  # a lost connection: the session starts afresh on the next try
        raise


def put_back(gb: Gradebook, lab: str, student: str, before: dict | None) -> None:
    """Give the unit's rows the values `snapshot` noted, in one transaction."""
    db = gb.db
    try:
        if before is None:
            try:
                gb.remove_submission(lab, student)
            except MissingEntry:
                pass
            return
        sub = gb.find_submission(lab, student)
        sub.timestamp = before["timestamp"]
        for nb in sub.notebooks:
            for grade in nb.grades:
                grade.auto_score, grade.manual_score, grade.needs_manual_grade = before["grades"][(nb.name, grade.name)]
            for comment in nb.comments:
                comment.auto_comment, comment.manual_comment = before["comments"][(nb.name, comment.name)]
        db.commit()
    except Exception:
        db.rollback()
        raise


def save_result(gb: Gradebook, lab: str, student: str, result: dict, changed_answers=frozenset()) -> None:
    """Write one submission's autograder scores into the open gradebook `gb` in one transaction.

    Manual scores and comments a grader already entered are kept, and so is their graded state,
    but for a written answer in `changed_answers` ({(notebook, cell)}: its text changed since it
    was scored), which is flagged for reading again, its score moved into the comment. A cell
    with a manual score is flagged for review when its auto score changes, as nbgrader does.
    Refuses (OlderSubmission) a submission older than the one already graded.
    """
    db = gb.db
    try:
        if db.get(Student, student) is None:
            db.add(Student(id=student))
        assignment = gb.find_assignment(lab)
        try:
            sub = gb.find_submission(lab, student)
            if sub.timestamp and result["timestamp"] and result["timestamp"] < sub.timestamp:
                raise OlderSubmission(f"it was handed in at {result['timestamp']}, before the submission already "
                                      f"graded ({sub.timestamp}): that grade is kept")
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
            comments = {c.name: c for c in nb.comments}
            for grade in nb.grades:
                before, grade.auto_score = grade.auto_score, result["grades"].get((nb.name, grade.name))
                if grade.manual_score is not None and (nb.name, grade.name) in changed_answers:
                    previous = (f"Previous answer scored {grade.manual_score:g} of {grade.max_score:g}; "
                                "the answer changed.")
                    comment = comments.get(grade.name)
                    if comment is not None:
                        comment.manual_comment = "\n\n".join(filter(None, [previous, comment.manual_comment]))
                    grade.manual_score = None
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


class Patience:
    """How long a run waits, in all, for a database that refuses writes (a restart, a lock held by
    the formgrader): about a minute; once spent, every later write is tried once, so a database
    that stays down costs the class a minute, not a minute per submission."""

    def __init__(self, waits=PATIENCE):
        self.waits = list(waits)

    def run(self, transaction, log=print):
        """`transaction()`, tried again after each wait left while the database refuses it. A
        connection the database dropped (a restart) is replaced at once, without a wait: each
        connection the pool held fails once after a restart, and must not spend the budget."""
        replaced = False
        while True:
            try:
                return transaction()
            except sqlalchemy.exc.DBAPIError as error:
                if error.connection_invalidated and not replaced:
                    replaced = True  # the pool has dropped that connection; the next try opens a new one
                    continue
                if not self.waits or not unreachable(error):
                    raise
                wait = self.waits.pop(0)
                log(f"    the gradebook refused a write ({str(error.orig).strip()[:120]}); trying again in {wait} s")
                time.sleep(wait)


def unreachable(error: sqlalchemy.exc.DBAPIError) -> bool:
    """The database could not be reached or dropped the connection (worth waiting for), as
    opposed to refusing what was asked of it."""
    return isinstance(error, sqlalchemy.exc.OperationalError) or error.connection_invalidated


def written_answers(notebooks: dict[str, bytes]) -> dict[tuple[str, str], str]:
    """{(notebook, cell): digest of its text} of the manually graded answers in notebook files."""
    found = {}
    for name, content in notebooks.items():
        if name.endswith(".ipynb"):
            for cell in nbformat.reads(content.decode(), as_version=4).cells:
                if is_grade(cell) and is_solution(cell) and "grade_id" in cell.metadata.get("nbgrader", {}):
                    found[(name.removesuffix(".ipynb"), cell.metadata.nbgrader["grade_id"])] = \
                        hashlib.sha256(cell.source.encode()).hexdigest()
    return found


def live_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.glob("*.ipynb") if p.is_file()} if folder.is_dir() else {}


def save_unit(run: runs.Run, gb: Gradebook, outcome, result: dict, files: dict[str, bytes], patience: Patience,
              log=print):
    """Save one graded unit whole or not at all (see the module's text); its outcome, which says
    why not if it was not saved. Only the grading process's one writer calls this."""
    lab, student = outcome.lab, outcome.student
    live = {target: Layout(run.root).folder(target, lab, student) for target in TARGETS}
    entry = {"lab": lab, "student": student, "token": secrets.token_hex(8), "expect": expected_rows(result)}
    entry["stage"] = str(run.scratch / f"save-{entry['token']}")  # no student id: nbgrader reads the path as a regex
    try:
        unit = staged_unit(entry, "autograded")
        unit.mkdir(parents=True)
        for name, content in files.items():
            (unit / name).write_bytes(content)
        previous = written_answers(live_files(live["autograded"]))
        changed = {key for key, digest in written_answers(files).items() if previous.get(key, digest) != digest}
    except OSError as error:
        shutil.rmtree(entry["stage"], ignore_errors=True)
        return failed(outcome, f"not saved: {cause(error)}")
    with runs.signals_held():
        try:
            before = patience.run(lambda: snapshot(gb, lab, student), log)
            write_entry(run.root, entry)
            patience.run(lambda: save_result(gb, lab, student, result, changed), log)
        except Exception as error:
            forget(run.root, entry)
            return failed(outcome, str(error) if isinstance(error, OlderSubmission) else f"not saved: {cause(error)}")
        try:
            stage, started = Path(entry["stage"]), time.monotonic()
            feedback.render(run.root, lab, student, stage / "autograded", stage / "feedback")
            run.seconds["feedback"] += time.monotonic() - started
            go_live(entry, live)
        except Exception as error:
            try:
                come_back(entry, live)
                patience.run(lambda: put_back(gb, lab, student, before), log)
                forget(run.root, entry)
            except Exception:  # the journal entry stays: the next run's `recover` settles the unit
                pass
            return failed(outcome, f"not saved: {cause(error)}")
        forget(run.root, entry)
    return outcome


def failed(outcome, message: str):
    outcome.ok, outcome.message = False, message
    return outcome


def cause(error: Exception) -> str:
    """An infrastructure failure in the words an instructor can act on."""
    text = str(error)
    if isinstance(error, OSError) and error.errno == errno.ENOSPC or out_of_space(text):
        where = getattr(error, "filename", None) or "the course folder"
        return f"no space left on the disk ({where}); free some and grade again"
    if isinstance(error, sqlalchemy.exc.DBAPIError):
        return f"the gradebook could not be written ({str(error.orig).strip()[:200]}); grade again when it can"
    first = next((line for line in text.splitlines() if line.strip()), "")
    return first[:300] if isinstance(error, feedback.RenderFailed) else f"{type(error).__name__}: {first[:300]}"


def nearly_full(path: Path) -> bool:
    """Whether the file system that holds `path` has less than NEARLY_FULL_BYTES free."""
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize < NEARLY_FULL_BYTES


def out_of_space(text: str) -> bool:
    """Whether a message (an error's, a log's) says the disk is full, as the system or SQLite says it."""
    return NO_SPACE in text or "database or disk is full" in text


def write_entry(root: Path, entry: dict) -> None:
    journal(root).mkdir(parents=True, exist_ok=True)
    path = entry_path(root, entry["lab"], entry["student"])
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(entry))
    os.replace(temporary, path)


def forget(root: Path, entry: dict) -> None:
    """The save is settled: its journal entry, its stage and the folders it set aside go."""
    for target in TARGETS:
        shutil.rmtree(aside(live_folder(root, entry, target), entry), ignore_errors=True)
    shutil.rmtree(entry["stage"], ignore_errors=True)
    entry_path(root, entry["lab"], entry["student"]).unlink(missing_ok=True)


def live_folder(root: Path, entry: dict, target: str) -> Path:
    return Layout(root).folder(target, entry["lab"], entry["student"])


def aside(live: Path, entry: dict) -> Path:
    return live.with_name(f".{live.name}.before-{entry['token']}")


def staged_unit(entry: dict, target: str) -> Path:
    return Path(entry["stage"]) / target / entry["student"] / entry["lab"]


def go_live(entry: dict, live: dict[str, Path]) -> None:
    """Put each staged folder in place of the live one, which is set aside (again: nothing to do)."""
    for target, folder in live.items():
        new = staged_unit(entry, target)
        if not new.exists():
            continue  # already live
        folder.parent.mkdir(parents=True, exist_ok=True)
        if folder.exists() and not aside(folder, entry).exists():
            folder.rename(aside(folder, entry))
        elif folder.exists():
            shutil.rmtree(folder)  # a half-finished earlier attempt: the set-aside copy is the old one
        new.rename(folder)


def come_back(entry: dict, live: dict[str, Path]) -> None:
    """Undo `go_live`: each folder set aside takes its place back."""
    for folder in live.values():
        old = aside(folder, entry)
        if old.exists():
            shutil.rmtree(folder, ignore_errors=True)
            old.rename(folder)


def recover(root: Path, log=print) -> list[str]:
    """Settle every save a killed run left half-done (journal entries): finish it when its rows
    were committed, undo it when they were not. Returns one line per unit settled."""
    settled = []
    entries = sorted(journal(root).glob("*.json")) if journal(root).is_dir() else []
    if not entries:
        return settled
    with Gradebook(Layout(root).db_url) as gb:
        for path in entries:
            entry = json.loads(path.read_text())
            live = {target: live_folder(root, entry, target) for target in TARGETS}
            if committed(gb, entry):
                if staged_unit(entry, "autograded").exists():  # killed before its folders went live
                    shutil.rmtree(Path(entry["stage"]) / "feedback", ignore_errors=True)  # perhaps half rendered
                    feedback.render(root, entry["lab"], entry["student"], Path(entry["stage"]) / "autograded",
                                    Path(entry["stage"]) / "feedback")
                go_live(entry, live)
                settled.append(f"{entry['lab']} {entry['student']}: an interrupted save, finished")
            else:
                come_back(entry, live)
                settled.append(f"{entry['lab']} {entry['student']}: an interrupted save, undone (its grade as before)")
            forget(root, entry)
    for line in settled:
        log(line)
    return settled
