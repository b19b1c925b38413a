"""One submission graded alone: a unit of work (`grade_unit`), run by a worker thread or a Dask
worker, that saves nothing.

Intake checks the submission's folder (`intake.py`), its files are copied to a private scratch
course, and nbgrader autograde (`autograde_unit.py`, in a fork of the warm service: `service.py`)
runs there inside a bubblewrap sandbox (`sandbox.py`), within one time and disk limit, with a
gradebook that holds the lab and no student (`gradebooks.lab_gradebook`). Nothing the sandbox
wrote is trusted as it is: the scores are worked out here from the executed notebook's test
cells (known from the course's own gradebook), the answers each test cell published are verified
again in this process (which never runs student code), and the timestamp is the submission's.
"""

import json
import math
import os
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import nbformat
from nbgrader.utils import compute_checksum, determine_grade, is_grade, is_solution

from course import formulas
from course.formulas import TIME_LIMIT as FORMULA_SECONDS
from course.identity import STUDENT_ENV
from course.protocol import CPU_CLOCK, FAULT_CELL_ID, TIME_LIMITS_KEY, source_digest

from .. import verification
from ..labs import load
from . import draws, gradebooks, intake, outputs, sandbox, saving, service
from .gradebooks import lab_template
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
SUBMISSION_SECRET = "submission_secret.txt"


@dataclass(frozen=True)
class Settings:
    """How every submission runs: sandboxed or not, how long its notebook may run, its CPU threads."""

    sandboxed: bool = True
    notebook_seconds: int = NOTEBOOK_TIMEOUT_S
    threads: int = 1
    instructor_cell_seconds: int = INSTRUCTOR_CELL_S
    fast: bool = True  # the speed-ups (`speedups.py`), and, as root, units forked by the warm service

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


def read_result(executed: dict[Path, nbformat.NotebookNode], tests: dict[tuple[str, str], float],
                timestamp) -> dict:
    """One submission's auto scores and comments, worked out here from its executed notebooks
    ({path: notebook}, as `read_executed` read them).

    Nothing is read from the gradebook the sandbox had: the scores are those of the course's
    test cells, from their outputs; written answers get none (a person grades them).
    """
    grades, comments = dict.fromkeys(tests, 0.0), {}
    for path, nb in executed.items():
        cells = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
                 if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")}
        for (notebook, name), points in tests.items():
            if notebook == path.stem:
                grades[(notebook, name)] = test_score(cells.get(name), points)
        for name, cell in cells.items():
            if is_solution(cell):
                unchanged = cell.metadata.nbgrader.get("checksum") == compute_checksum(cell)
                comments[(path.stem, name)] = "No response." if unchanged else None
    return {"timestamp": timestamp, "grades": grades, "comments": comments}


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
    release = sorted(Layout(root).folder("release", lab).glob("*.ipynb"))
    return sorted(set().union(*(own_code_digests(str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in release)))


@lru_cache(maxsize=64)
def own_code_digests(path: str, mtime_ns: int, size: int) -> frozenset[str]:
    """`instructor_cells` of one release notebook, read once per process and version of the file."""
    return frozenset(source_digest(cell.source) for cell in nbformat.read(path, as_version=4).cells
                     if cell.cell_type == "code" and not is_solution(cell) and not is_grade(cell))


def run_autograde(root: Path, scratch: Path, lab: str, student: str, uid: int,
                  settings: Settings, seconds: float) -> sandbox.Finished:
    """Our nbgrader autograde (`autograde_unit.py`) of one submission in a scratch course, in the sandbox."""
    env = {STUDENT_ENV: student, "OMP_NUM_THREADS": str(settings.threads)}
    limits = {"notebook_seconds": settings.notebook_seconds, "instructor_cells": instructor_cells(root, lab),
              "instructor_cell_seconds": settings.instructor_cell_seconds, "fast": settings.fast}
    args = [json.dumps(limits), "autograde", lab, "--student", student, "--force", f"--CourseDirectory.root={scratch}"]
    shutil.copy2(root / "nbgrader_config.py", scratch / "nbgrader_config.py")
    if not settings.sandboxed:
        return sandbox.watched_run([sys.executable, str(sandbox.UNIT_PROGRAM), *args], scratch,
                                   seconds, environment(env))
    sandbox.give_folder(scratch, uid)
    if sandbox.as_root() and settings.fast:
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
    worked_as = intake.worked_as(course.folder("submitted", lab, student), intake.lab_notebooks(root, lab))
    shutil.copy2(template, private.gradebook)
    shutil.copytree(course.folder("submitted", lab, student), private.folder("submitted", lab, student),
                    symlinks=True, ignore=not_regular)
    private.folder("source", lab).mkdir(parents=True)
    timestamp = course.directory.get_existing_timestamp(str(course.folder("submitted", lab, student)))
    seed = draws.submission_seed(root, lab, student, timestamp)  # the hidden probes of this submission
    gradebooks.draw_hidden_probes(private.gradebook, lab, seed)
    deadline = start + settings.unit_seconds
    with sandbox.unit_user() as uid:
        run = run_autograde(root, scratch, lab, student, uid, settings, deadline - time.monotonic())
    graded = private.folder("autograded", lab, student)
    if run.stopped:
        out_of_time = run.stopped.startswith("it ran over")
        why = f"{OUT_OF_TIME} ({run.stopped})" if out_of_time else f"grading was stopped: {run.stopped}"
        return Outcome(student, lab, False, why, timed_out=out_of_time), None
    if run.returncode != 0 or not graded.is_dir():
        if saving.out_of_space(run.log) or saving.nearly_full(scratch):
            return Outcome(student, lab, False, f"not graded: no space left on the disk of {root}; free some and "
                           "grade again"), None
        errors = [line for line in run.log.splitlines() if "ERROR" in line]
        return Outcome(student, lab, False, "nbgrader could not grade it: "
                       + (errors[-1] if errors else f"exit status {run.returncode}")), None
    notebooks = lab_notebooks(graded, intake.lab_notebooks(root, lab))  # only the lab's: the kernel may write others
    problem = returned_problem(notebooks)
    if problem:
        return Outcome(student, lab, False, problem), None
    executed = read_executed(notebooks)  # read once: verified, then written back once by `audit`
    limits_hit = keep_as_data(executed)
    if time.monotonic() + FORMULA_SECONDS > deadline:
        return Outcome(student, lab, False, f"{OUT_OF_TIME} (over {settings.unit_seconds} s before verifying "
                       "the answers)", timed_out=True), None
    result = read_result(executed, tests, timestamp)
    run_formulas = sandbox.run_formulas if settings.sandboxed else formulas.evaluate
    overrides = verification.audit(executed, lab, student, result, run_formulas, seed,
                                   course.students("submitted", lab), tests, worked_as)
    return Outcome(student, lab, True, seconds=time.monotonic() - start, overrides=overrides,
                   fault=fault_note(executed), timed_out=limits_hit), result


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


def read_executed(notebooks: list[Path]) -> dict[Path, nbformat.NotebookNode]:
    """The executed notebooks that came back from the sandbox, read (and validated) once each."""
    return {path: nbformat.read(path, as_version=4) for path in notebooks}


def keep_as_data(executed: dict[Path, nbformat.NotebookNode]) -> bool:
    """Make every output of the executed notebooks inert (`outputs.as_data`), in memory (`audit`
    writes them); whether any of them hit a time limit on the clock (`TIME_LIMITS_KEY`), which a
    busy machine may have caused. A limit of CPU time spent is the notebook's own."""
    limits_hit = False
    for nb in executed.values():
        outputs.as_data(nb)
        limits_hit |= any(hit.get("clock") != CPU_CLOCK for hit in nb.metadata.pop(TIME_LIMITS_KEY, []))
    return limits_hit


def fault_note(executed: dict[Path, nbformat.NotebookNode]) -> str:
    """What stopped a notebook early, from the note `autograde_unit.py` put at its top ('' if none)."""
    for nb in executed.values():
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
