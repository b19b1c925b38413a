"""Grade a whole class: every submission alone, every result saved in one step.

One submission is one unit of work (`grade_submission`): intake checks its folder
(`intake.py`), its files are copied to a private scratch course, and nbgrader autograde
(`autograde_unit.py`, in a fork of the warm service: `service.py`) runs there inside a
bubblewrap sandbox (`sandbox.py`), within one time and disk limit, with a gradebook that holds
the lab and no student. Nothing the sandbox wrote
is trusted as it is: the scores are worked out here from the executed notebook's test cells
(known from the course's own gradebook), the answers each test cell published are verified
again in this process (which never runs student code), and the timestamp is the submission's.
Only then is the result saved into the course, by the grading thread alone (one writer), whole
or not at all: notebooks, gradebook rows and feedback (`saving.py`). One run holds the course at
a time (`runs.py`). A broken, hung or hostile submission, or a crash halfway through the class,
therefore leaves every grade already saved as it was, and running the grader again is always
safe. Units are independent, so they run in parallel (`--jobs`, threads or Dask workers:
`cluster.py`).
"""

import json
import math
import os
import shutil
import stat
import sys
import tempfile
import time
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook
from nbgrader.utils import compute_checksum, determine_grade, is_grade, is_solution

from .. import verification
from ..labs import load
from course import formulas
from course.formulas import TIME_LIMIT as FORMULA_SECONDS
from course.identity import STUDENT_ENV
from course.protocol import FAULT_CELL_ID, TIME_LIMITS_KEY
from . import intake, outputs, runs, sandbox, saving, service
from .autograde_unit import source_digest
from .layout import Layout
from .nbgrader_cmd import environment

# The notebook's cells together (each lab's solution runs in under 10 s, imports included);
# past it, the rest is not run and scores 0.
NOTEBOOK_TIMEOUT_S = 120
STARTUP_AND_SAVE_S = 60  # added for the rest of a unit: intake, the sandbox, verification
# A cell of the instructor's own, unchanged (imports, plots): on a loaded machine `import
# matplotlib` alone has taken over 10 s, which must not cost the student anything.
INSTRUCTOR_CELL_S = 60
OUT_OF_TIME = "the grader ran out of time"


def default_jobs() -> int:
    """Three units per core: while one waits (its kernel starting, answering, shutting down),
    the others keep the core busy (measured on 2 cores: 91% busy with two per core, 96% with
    three, no better with four). Every unit's student code runs on one thread."""
    return 3 * (os.cpu_count() or 1)


@dataclass(frozen=True)
class Settings:
    """How every submission runs: sandboxed or not, how long its notebook may run, its CPU threads."""

    sandboxed: bool = True
    notebook_seconds: int = NOTEBOOK_TIMEOUT_S
    threads: int = 1
    instructor_cell_seconds: int = INSTRUCTOR_CELL_S
    warm: bool = True  # as root, units are forks of the warm service; else each starts a new interpreter

    @property
    def unit_seconds(self) -> int:
        """The wall-clock limit of a whole unit: intake, the sandbox, verification."""
        return self.notebook_seconds + STARTUP_AND_SAVE_S


@dataclass
class Outcome:
    """What happened to one submission."""

    student: str
    lab: str
    ok: bool
    message: str = ""
    seconds: float = 0.0
    overrides: list[str] = field(default_factory=list)
    fault: str = ""
    timed_out: bool = False  # a time limit was hit: graded again alone before anything is recorded


def test_cells(db_url: str, lab: str) -> dict[tuple[str, str], float]:
    """{(notebook, cell): points} of every autograder test cell of a lab, from the course's gradebook."""
    with Gradebook(db_url) as gb:
        notebooks = gb.find_assignment(lab).notebooks
        return {(nb.name, c.name): c.max_score for nb in notebooks for c in nb.grade_cells
                if c.name not in {s.name for s in nb.solution_cells}}


def test_score(cell, points: float) -> float:
    """nbgrader's score for a test cell's outputs (an error or stderr: 0), worth `points` whatever
    the cell's own metadata says, and never outside 0..points."""
    if cell is None or cell.cell_type != "code":
        return 0.0  # a deleted test cell scores nothing
    trusted = nbformat.from_dict(cell)
    trusted.metadata["nbgrader"] = {"grade": True, "solution": False, "points": points}
    try:
        score = float(determine_grade(trusted)[0] or 0)
    except ValueError:  # an output claiming more than the cell's points: nbgrader gives up, so do we
        return 0.0
    return min(max(score, 0.0), points) if math.isfinite(score) else 0.0


def read_result(notebooks: list[Path], tests: dict[tuple[str, str], float], timestamp) -> dict:
    """One submission's auto scores and comments, worked out here from its executed notebooks.

    Nothing is read from the gradebook the sandbox had: the scores are those of the course's
    test cells, from their outputs; written answers get none (a person grades them).
    """
    grades, comments = dict.fromkeys(tests, 0.0), {}
    for path in notebooks:
        cells = {c.metadata["nbgrader"]["grade_id"]: c for c in nbformat.read(path, as_version=4).cells
                 if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")}
        for (notebook, name), points in tests.items():
            if notebook == path.stem:
                grades[(notebook, name)] = test_score(cells.get(name), points)
        for name, cell in cells.items():
            if is_solution(cell):
                unchanged = cell.metadata.nbgrader.get("checksum") == compute_checksum(cell)
                comments[(path.stem, name)] = "No response." if unchanged else None
    return {"timestamp": timestamp, "grades": grades, "comments": comments}


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


def returned_files(folder: Path, names: list[str]) -> dict[str, bytes]:
    """The regular files named `names` in `folder` (what the sandbox wrote there), read."""
    return {name: (folder / name).read_bytes() for name in names
            if (folder / name).is_file() and not (folder / name).is_symlink()}


def not_regular(folder: str, names: list[str]) -> list[str]:
    """The names in a folder that are neither regular files nor folders (links, pipes, devices)."""
    return [n for n in names if os.path.islink(os.path.join(folder, n))
            or not (os.path.isfile(os.path.join(folder, n)) or os.path.isdir(os.path.join(folder, n)))]


def instructor_cells(root: Path, lab: str) -> list[str]:
    """The `source_digest` of every code cell of the lab's release that is the instructor's own
    code: neither an answer cell nor a test cell (imports, setup, plots)."""
    return sorted({source_digest(cell.source) for path in Layout(root).folder("release", lab).glob("*.ipynb")
                   for cell in nbformat.read(path, as_version=4).cells
                   if cell.cell_type == "code" and not is_solution(cell) and not is_grade(cell)})


def run_autograde(root: Path, scratch: Path, lab: str, student: str, uid: int,
                  settings: Settings, seconds: float) -> sandbox.Finished:
    """Our nbgrader autograde (`autograde_unit.py`) of one submission in a scratch course, in the sandbox."""
    env = {STUDENT_ENV: student, "OMP_NUM_THREADS": str(settings.threads)}
    limits = {"notebook_seconds": settings.notebook_seconds, "instructor_cells": instructor_cells(root, lab),
              "instructor_cell_seconds": settings.instructor_cell_seconds}
    args = [json.dumps(limits), "autograde", lab, "--student", student, "--force", f"--CourseDirectory.root={scratch}"]
    shutil.copy2(root / "nbgrader_config.py", scratch / "nbgrader_config.py")
    if not settings.sandboxed:
        return sandbox.watched_run([sys.executable, str(sandbox.UNIT_PROGRAM), *args], scratch,
                                   seconds, environment(env))
    sandbox.give_folder(scratch, uid)
    if sandbox.as_root() and settings.warm:
        return service.shared().run(scratch, uid, env, args, seconds)
    # Not root: a fork cannot join all of bubblewrap's user-namespace sandbox (the kernel refuses
    # its cgroup namespace), so the unit starts afresh inside, as bubblewrap's own command.
    command = sandbox.wrap([str(sandbox.PYTHON), sandbox.UNIT_PROGRAM_INSIDE, *args], scratch, env, uid)
    return sandbox.watched_run(command, scratch, seconds)


def grade_submission(root: Path, lab: str, student: str, scratch: Path, tests: dict[tuple[str, str], float],
                     template: Path, settings: Settings = Settings()) -> tuple[Outcome, dict | None]:
    """Autograde one submission inside `scratch`, from the lab's gradebook `template`; return
    its outcome and result, nothing saved. `tests`: the lab's autograder test cells and their
    points (`test_cells`). Intake, the sandbox and verification share one deadline; past it, the
    unit is not graded (`timed_out`)."""
    start = time.monotonic()
    problem = intake.precheck(root, lab, student)
    if problem:
        return Outcome(student, lab, False, problem), None
    course, private = Layout(root), Layout(scratch)
    shutil.copy2(template, private.gradebook)
    shutil.copytree(course.folder("submitted", lab, student), private.folder("submitted", lab, student),
                    symlinks=True, ignore=not_regular)
    private.folder("source", lab).mkdir(parents=True)
    deadline = start + settings.unit_seconds
    with sandbox.unit_user() as uid:
        run = run_autograde(root, scratch, lab, student, uid, settings, deadline - time.monotonic())
    graded = private.folder("autograded", lab, student)
    if run.stopped:
        out_of_time = run.stopped.startswith("it ran over")
        why = f"{OUT_OF_TIME} ({run.stopped})" if out_of_time else f"grading was stopped: {run.stopped}"
        return Outcome(student, lab, False, why, timed_out=out_of_time), None
    if run.returncode != 0 or not graded.is_dir():
        if saving.NO_SPACE in run.log:
            return Outcome(student, lab, False, f"not graded: no space left on the disk of {root}; free some and "
                           "grade again"), None
        errors = [line for line in run.log.splitlines() if "ERROR" in line]
        return Outcome(student, lab, False, "nbgrader could not grade it: "
                       + (errors[-1] if errors else f"exit status {run.returncode}")), None
    notebooks = lab_notebooks(graded, intake.lab_notebooks(root, lab))  # only the lab's: the kernel may write others
    problem = returned_problem(notebooks)
    if problem:
        return Outcome(student, lab, False, problem), None
    limits_hit = keep_as_data(notebooks)
    if time.monotonic() + FORMULA_SECONDS > deadline:
        return Outcome(student, lab, False, f"{OUT_OF_TIME} (over {settings.unit_seconds} s before verifying "
                       "the answers)", timed_out=True), None
    timestamp = course.directory.get_existing_timestamp(str(course.folder("submitted", lab, student)))
    result = read_result(notebooks, tests, timestamp)
    run_formulas = sandbox.run_formulas if settings.sandboxed else formulas.evaluate
    overrides = verification.audit(notebooks, lab, student, result, run_formulas,
                                   course.students("submitted", lab), tests)
    return Outcome(student, lab, True, seconds=time.monotonic() - start, overrides=overrides,
                   fault=fault_note(notebooks), timed_out=limits_hit), result


def lab_notebooks(folder: Path, names: list[str]) -> list[Path]:
    """The lab's notebooks (by name) that are in `folder`, links included (`returned_problem` refuses them)."""
    return [folder / f"{name}.ipynb" for name in names if os.path.lexists(folder / f"{name}.ipynb")]


def returned_problem(notebooks: list[Path]) -> str | None:
    """Why what came back from the sandbox cannot be taken (None: it can)."""
    for path in notebooks:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > intake.MAX_NOTEBOOK_BYTES:
            return f"the executed {path.name} came back as a link or over {intake.MAX_NOTEBOOK_BYTES >> 20} MB"
    return None


def keep_as_data(notebooks: list[Path]) -> bool:
    """Make every output of the executed notebooks inert (`outputs.as_data`), in place; whether
    any of them hit a time limit (`TIME_LIMITS_KEY`)."""
    limits_hit = False
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        outputs.as_data(nb)
        limits_hit |= bool(nb.metadata.pop(TIME_LIMITS_KEY, None))
        path.chmod(0o644)  # nbgrader leaves it read-only; it is our scratch copy
        nbformat.write(nb, path)
    return limits_hit


SUBMISSION_SECRET = "submission_secret.txt"


def fault_note(notebooks: list[Path]) -> str:
    """What stopped a notebook early, from the note `autograde_unit.py` put at its top ('' if none)."""
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        if nb.cells and nb.cells[0].get("id") == FAULT_CELL_ID:
            return nb.cells[0].source.replace("**", "")
    return ""


def grade_unit(root: Path, lab: str, student: str, tests: dict[tuple[str, str], float],
               settings: Settings, run_scratch: Path) -> tuple[Outcome, dict | None, dict]:
    """One unit of work, run by a worker: grade in a private scratch course inside the run's
    scratch folder, which is then removed; nothing is saved. Returns the outcome, the result and
    the files to save."""
    load(lab)  # on this worker too: the grader's lab module before any student code runs
    try:
        scratch = Path(tempfile.mkdtemp(prefix=f"{student}-{lab}-", dir=run_scratch))
    except OSError as exc:
        return Outcome(student, lab, False, f"not graded: {saving.cause(exc)}"), None, {}
    try:
        outcome, result = grade_submission(root, lab, student, scratch, tests, lab_template(run_scratch, lab),
                                           settings)
        if result is None:
            return outcome, None, {}
        kept = [f"{name}.ipynb" for name in intake.lab_notebooks(root, lab)] + ["timestamp.txt"]
        files = returned_files(Layout(scratch).folder("autograded", lab, student), kept)
        # The exchange's key to the student's feedback (`nbgrader release_feedback` needs it in
        # autograded/, as stock autograde leaves it), taken from the submission, not the sandbox.
        files |= returned_files(Layout(root).folder("submitted", lab, student), [SUBMISSION_SECRET])
        return outcome, result, files
    except Exception as exc:  # a bug, a full disk, a sandbox that cannot start: never the class's end
        return Outcome(student, lab, False, f"not graded: {saving.cause(exc)}"), None, {}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class Stopped(KeyboardInterrupt):
    """Grading stopped by Ctrl-C or SIGTERM, once every grade saved so far was saved whole;
    `outcomes` says what was graded and what was not."""

    def __init__(self, outcomes: dict[str, list["Outcome"]]):
        super().__init__("grading was stopped")
        self.outcomes = outcomes


STOPPED = "not graded: grading was stopped (Ctrl-C or SIGTERM) before it was saved; grade again"


def grade_class(root: Path, labs: list[str], jobs: int, settings: Settings, log=print,
                executor: Executor | None = None, students: set[str] | None = None,
                run: runs.Run | None = None) -> dict[str, list[Outcome]]:
    """Grade every submission of `labs` (of `students` only, if given), `jobs` units at a time
    across all labs (or on `executor`, e.g. a Dask cluster's), in `run` (else in a run of its
    own: the course's lock, see `runs`). Workers only grade; this thread alone writes the course
    (one writer), saving each result whole as it comes (`saving`). A unit whose worker failed is
    reported, never half-saved. A unit that hit a time limit beside the others is graded again
    alone at the end, and only that second result counts: a busy machine costs time, never
    points. Ctrl-C or SIGTERM stops the units running and raises Stopped, every saved grade whole."""
    if run is None:
        with runs.course_run(root) as own:
            return grade_class(root, labs, jobs, settings, log, executor, students, own)
    layout = Layout(root)
    candidates = [(lab, student) for lab in labs for student in layout.students("submitted", lab)
                  if students is None or student in students]
    outcomes = {lab: [] for lab in labs}
    patience = saving.Patience()  # one budget for the run: a database restart is waited out, once
    clashes = intake.case_clashes([student for _, student in candidates],
                                  patience.run(lambda: known_students(layout), log))
    units = [unit for unit in candidates if unit[1] not in clashes]
    for lab in labs:
        if not any(unit_lab == lab for unit_lab, _ in candidates):
            log(f"{lab}: no submissions under submitted/*/{lab}/")
    report = Progress(len(candidates), log)
    for lab, student in candidates:
        if student in clashes:
            report.add(Outcome(student, lab, False, clashes[student]))
            outcomes[lab].append(report.done[-1])
    if not units:
        report.summary()
        return outcomes
    if executor is None and settings.sandboxed and settings.warm and sandbox.as_root():
        service.start()  # warms up while the lab gradebooks are built
    graded_labs = sorted({lab for lab, _ in units})
    for lab in graded_labs:
        load(lab)  # the grader's lab module, imported before any student code runs
        patience.run(lambda lab=lab: lab_gradebook(root, lab, lab_template(run.scratch, lab)), log)
    tests = patience.run(lambda: {lab: test_cells(layout.db_url, lab) for lab in graded_labs}, log)
    saved = set()
    with executor or ThreadPoolExecutor(max_workers=jobs) as pool, \
            patience.run(lambda: Gradebook(layout.db_url), log) as gb:
        def record(outcome: Outcome, result: dict | None, files: dict) -> None:
            if result is not None:
                outcome = saving.save_unit(run, gb, outcome, result, files, patience, log)
            saved.add((outcome.lab, outcome.student))
            outcomes[outcome.lab].append(outcome)
            report.add(outcome)

        def grade(lab: str, student: str):
            return pool.submit(grade_unit, root, lab, student, tests[lab], settings, run.scratch)

        try:
            futures = {grade(lab, student): (lab, student) for lab, student in units}
            again = []
            for future in as_completed(futures):
                outcome, result, files = unit_result(future, *futures[future])
                if outcome.timed_out:
                    report.later(outcome)
                    again.append(futures[future])
                else:
                    record(outcome, result, files)
            for lab, student in again:  # one at a time: nothing else of ours runs meanwhile
                record(*graded_alone(*unit_result(grade(lab, student), lab, student)))
        except KeyboardInterrupt:
            stop(pool)
            for lab, student in units:
                if (lab, student) not in saved:
                    record(Outcome(student, lab, False, STOPPED), None, {})
            report.summary()
            raise Stopped({lab: sorted(found, key=lambda o: o.student) for lab, found in outcomes.items()}) from None
    report.summary()
    return {lab: sorted(found, key=lambda o: o.student) for lab, found in outcomes.items()}


def stop(pool: Executor) -> None:
    """No unit starts any more, and the running ones end now (their sandboxes with them)."""
    try:
        pool.shutdown(wait=False, cancel_futures=True)
    except TypeError:  # an executor without cancel_futures (Dask's)
        pool.shutdown(wait=False)
    sandbox.end_all()


def known_students(layout: Layout) -> list[str]:
    with Gradebook(layout.db_url) as gb:
        return [student.id for student in gb.students]


def unit_result(future, lab: str, student: str) -> tuple[Outcome, dict | None, dict]:
    """What a unit's worker returned, or why it returned nothing."""
    try:
        return future.result()
    except Exception as exc:  # the worker died (Dask gave up retrying) or could not be reached
        return Outcome(student, lab, False, f"its worker failed: {type(exc).__name__}: {exc}"), None, {}


def graded_alone(outcome: Outcome, result: dict | None, files: dict) -> tuple[Outcome, dict | None, dict]:
    """A unit's second grading, alone: a time limit hit again is the notebook's own (the fault
    note says so), or, when the grader itself ran out of time, nothing is recorded."""
    if outcome.timed_out and outcome.ok and outcome.fault:
        outcome.fault += " (The same happened when it was graded again with nothing else running.)"
    elif outcome.timed_out and not outcome.ok:
        outcome.message += (", even graded alone: nothing recorded, earlier grades kept; grade it again on a less "
                            "busy machine")
    return outcome, result, files


class Progress:
    """What grading has done so far: a bar redrawn in place on a terminal, plain lines otherwise
    (CI, a log file); every unit's problems in full; a summary at the end."""

    def __init__(self, total: int, log=print):
        self.total, self.log, self.done, self.failed = total, log, [], []
        self.start = time.monotonic()
        self.bar = log is print and sys.stdout.isatty()

    def later(self, outcome: Outcome) -> None:
        """A unit that hit a time limit beside the others, to be graded again alone."""
        if self.bar:
            print("\r\033[K", end="")
        why = outcome.message if not outcome.ok else "a time limit was hit"
        self.log(f"{outcome.lab} {outcome.student}: {why} beside other units; graded again alone at the end")
        if self.bar:
            print(self.status(), end="", flush=True)

    def add(self, outcome: Outcome) -> None:
        self.done.append(outcome)
        if not outcome.ok:
            self.failed.append(outcome)
        note = f"graded ({outcome.seconds:.1f} s)" if outcome.ok else f"NOT GRADED: {outcome.message}"
        lines = [f"{outcome.lab} {outcome.student}: {note}"] * (not outcome.ok or not self.bar)
        lines += [f"    {outcome.fault}"] * bool(outcome.fault) + [f"    {line}" for line in outcome.overrides]
        if self.bar:
            print("\r\033[K", end="")
        for line in lines:
            self.log(f"{line}  [{len(self.done)}/{self.total}]" if line is lines[0] else line)
        if self.bar:
            print(self.status(), end="", flush=True)

    def status(self) -> str:
        """`[#####.....] 12/34 graded, 1 not graded, 2.1 per s, 10 s left`."""
        count, elapsed = len(self.done), time.monotonic() - self.start
        rate = count / elapsed if elapsed > 0 else 0.0
        filled = 30 * count // self.total
        left = (self.total - count) / rate if rate else 0.0
        return (f"[{'#' * filled}{'.' * (30 - filled)}] {count - len(self.failed)}/{self.total} graded, "
                f"{len(self.failed)} not graded, {rate:.1f} per s, {left:.0f} s left")

    def summary(self) -> None:
        if self.bar:
            print("\r\033[K", end="")
        elapsed = time.monotonic() - self.start
        graded = [o for o in self.done if o.ok]
        self.log(f"graded {len(graded)} of {self.total} submission(s) in {elapsed:.1f} s "
                 f"({elapsed / max(1, self.total):.2f} s per submission; each took "
                 f"{sum(o.seconds for o in graded) / max(1, len(graded)):.2f} s on its own)")
        reasons: dict[str, list[str]] = {}
        for outcome in self.failed:
            reasons.setdefault(outcome.message, []).append(f"{outcome.lab} {outcome.student}")
        for reason, units in reasons.items():
            self.log(f"not graded ({len(units)}): {reason}: {', '.join(units)}")


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
    head = (f"{'student':<{name_width}}  " + "  ".join(f"{n:>{w}}" for (n, _), w in zip(auto, widths, strict=True))
            + f"  {'auto':>9}  written")
    lines = [f"{lab}: points per autograded cell", head, "-" * len(head)]
    failures = {o.student: o.message for o in outcomes if not o.ok}
    for student in sorted(set(scores) | set(failures)):
        if student not in scores:
            lines.append(f"{student:<{name_width}}  NOT GRADED: {failures[student]}")
            continue
        got = [scores[student].get(n) for n, _ in auto]
        written = [scores[student].get(n) for n, _ in manual]
        to_read = sum(m for (_, m), v in zip(manual, written, strict=True) if v is None)
        line = (f"{student:<{name_width}}  "
                + "  ".join(f"{'?' if v is None else f'{v:g}':>{w}}" for v, w in zip(got, widths, strict=True))
                + f"  {sum(v or 0 for v in got):>4g}/{sum(m for _, m in auto):<4g}"
                + (f"  {to_read:g} pts to read" if to_read else f"  {sum(written):g}/{manual_points:g}"))
        if student in failures:
            line += f"  (newest submission NOT GRADED, earlier grades kept: {failures[student]})"
        lines.append(line)
    return "\n".join(lines)
