"""Grades where instructors need them: a CSV that Canvas imports, and Gradescope.

- `write_canvas_csv(root, labs, path)`: Canvas's gradebook import format. It has the columns
  Student, ID, SIS User ID, SIS Login ID and Section, then one column per lab, and a
  "Points Possible" row. The nbgrader student id goes in SIS Login ID; each lab's score is
  auto + manual points. A written answer nobody has read yet counts 0 and is listed in the
  console summary.
- `build_gradescope(root, lab, dest)`: a Gradescope autograder zip for one lab. Its root holds
  `setup.sh`, `run_autograder`, the grader, the kit, the lab's release and a gradebook that knows
  the lab. There are no instructor sources and no examples.
- `run_gradescope(base)`: what `run_autograder` runs on Gradescope. It grades the notebook in
  base/submission as the lab, as the course's id for the account's email where the zip was built
  with a roster (`read_roster`), else with the email as the student id, and writes
  base/results/results.json. That file has one test per autograded cell (name, score,
  max_score, what the cell showed), the total, and a note on the written answers, which are
  graded by hand.
"""

import csv
import json
import re
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins.export import CsvExportPlugin

from . import draws, gradebooks, grading, intake, notebooks, sandbox, saving, submission
from .layout import Layout, whole_file
from .nbgrader_cmd import run_nbgrader

CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MAX_OUTPUT = 4000  # characters of one test's output in results.json
# Gradescope shows every output as plain text (its default format turns some text into HTML):
# what a student's notebook printed is never markup on Gradescope's page.
AS_TEXT = {"output_format": "text", "test_output_format": "text"}

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu 22.04 or 24.04).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
echo "setup: package lists, bubblewrap and Python 3.11"
apt-get update -qq  # the image comes with no package lists
apt-get install -y -qq bubblewrap
# Python 3.11, a final release: torch cannot run on a release candidate (it calls
# sys.get_int_max_str_digits, new in 3.11.0rc2), and Ubuntu 22.04's archive has 3.11.0rc1;
# 24.04's has no 3.11 at all. Then it comes from the deadsnakes archive.
final_311() { python3.11 -c 'import sys; sys.exit(sys.version_info.releaselevel != "final")' 2>/dev/null; }
apt-get install -y -qq python3.11 python3.11-venv 2>/dev/null || true
if ! final_311; then
    echo "setup: the archive has $(python3.11 -V 2>/dev/null || echo 'no Python 3.11'), and torch needs a final" \\
        "3.11 release: adding the deadsnakes archive"
    apt-get install -y -qq software-properties-common
    add-apt-repository -y ppa:deadsnakes/ppa
    apt-get update -qq
    apt-get install -y -qq python3.11 python3.11-venv
fi
echo "setup: $(python3.11 -V); installing requirements.lock into /autograder/source/.venv"
python3.11 -m venv /autograder/source/.venv
/autograder/source/.venv/bin/pip install --quiet --extra-index-url https://download.pytorch.org/whl/cpu \\
    -r /autograder/source/requirements.lock
echo "setup: done"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission; it writes /autograder/results/results.json.
base="${1:-/autograder}"
cd "$base/source"
exec "${AUTOGRAD_LABS_PYTHON:-$base/source/.venv/bin/python}" -m autograder --root "$base/source" gradescope-run "$base"
"""


def lab_columns(gb: Gradebook, labs: list[str]) -> list[tuple[str, float]]:
    """(lab, points possible) for each lab the gradebook knows."""
    columns = []
    for lab in labs:
        try:
            columns.append((lab, gb.find_assignment(lab).max_score))
        except MissingEntry:
            continue
    return columns


def write_canvas_csv(root: Path, labs: list[str], path: Path) -> list[str]:
    """Write the Canvas import CSV at `path`. Returns one line for each student and lab whose
    written answers are still unread, because those count 0 until a grader scores them."""
    unread, rows = [], []
    with Gradebook(Layout(root).db_url) as gb:
        columns = lab_columns(gb, labs)
        for student in sorted(gb.students, key=lambda s: s.id):
            name = ", ".join(part for part in (student.last_name, student.first_name) if part) or student.id
            row = [name, "", "", student.id, ""]
            for lab, _ in columns:
                try:
                    sub = gb.find_submission(lab, student.id)
                except MissingEntry:
                    row.append("")
                    continue
                row.append(f"{sub.score:g}")
                if sub.needs_manual_grade:
                    unread.append(f"{student.id} {lab}: written answers not read yet, counted as 0")
            rows.append(row)
    with whole_file(path) as partial, partial.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CANVAS_COLUMNS + [f"Autograd Labs {lab}" for lab, _ in columns])
        writer.writerow(["Points Possible", "", "", "", ""] + [f"{points:g}" for _, points in columns])
        writer.writerows(rows)
    return unread


GRADES_CSV, CANVAS_CSV = "grades.csv", "grades-canvas.csv"


def write_class_exports(root: Path, labs: list[str]) -> list[str]:
    """nbgrader's grades.csv (its own CSV export, in this process) and the Canvas CSV, each from
    the gradebook and each replaced whole (a failure leaves the previous file); a database busy
    with the formgrader is waited for. Returns the unread written answers (`write_canvas_csv`)."""
    def grades_csv():
        with whole_file(root / GRADES_CSV) as partial, Gradebook(Layout(root).db_url) as gb:
            CsvExportPlugin(to=str(partial)).export(gb)

    patience = saving.Patience()
    patience.run(grades_csv, log=lambda line: None)
    return patience.run(lambda: write_canvas_csv(root, labs, root / CANVAS_CSV), log=lambda line: None)


UNSANDBOXED_FLAG = "grade-without-sandbox"  # in the zip: the instructor chose to grade without bubblewrap
ROSTER = "roster.csv"  # in the zip: the course's id of each Gradescope account's email
ROSTER_EMAIL, ROSTER_ID = {"email"}, {"id", "sid", "student id"}  # accepted column names, any case


def read_roster(path: Path) -> dict[str, str]:
    """{email, lower case: the course's student id} from a CSV with a column "email" and a column
    "id" (or "SID", as Gradescope's roster export names it). Raises ValueError saying what is wrong."""
    with path.open(newline="", encoding="utf-8-sig") as lines:
        rows = list(csv.reader(lines))
    header = [name.strip().lower() for name in rows[0]] if rows else []
    email = next((i for i, name in enumerate(header) if name in ROSTER_EMAIL), None)
    sid = next((i for i, name in enumerate(header) if name in ROSTER_ID), None)
    if email is None or sid is None:
        raise ValueError(f"{path}: the first row must name an 'email' column and an 'id' (or 'SID') column; "
                         f"it has {rows[0] if rows else 'nothing'}")
    roster = {}
    for number, row in enumerate(rows[1:], 2):
        if len(row) <= max(email, sid) or not row[email].strip():
            continue
        student = row[sid].strip()
        if not intake.STUDENT_ID.fullmatch(student):
            raise ValueError(f"{path}, row {number}: {student!r} is not a student id the grader takes "
                             "(letters, digits and . _ @ + -, up to 64)")
        roster[row[email].strip().lower()] = student
    return roster


def build_gradescope(root: Path, lab: str, dest: Path, unsandboxed: bool = False, roster: Path | None = None) -> Path:
    """Write `dest`, a Gradescope autograder zip for `lab`, and return it. With `unsandboxed`,
    submissions are graded even where bubblewrap cannot run (then only Gradescope's container
    separates the student's code from the grader's files). With a `roster` (`read_roster`),
    each account is graded as the course's id for its email."""
    with tempfile.TemporaryDirectory() as scratch:
        course = Path(scratch) / "course"
        course.mkdir()
        if roster is not None:
            read_roster(roster)  # refused here, at the instructor's desk, not on Gradescope
            shutil.copyfile(roster, course / ROSTER)
        if unsandboxed:
            (course / UNSANDBOXED_FLAG).write_text("bubblewrap is not required\n")
        for part in ("autograder", "course"):
            shutil.copytree(root / part, course / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name in ("nbgrader_config.py", "requirements.lock"):
            shutil.copy2(root / name, course / name)
        # The course's secret, so that Gradescope draws a submission's hidden probes as the course does.
        (course / draws.SECRET_FILE).write_bytes(draws.course_secret(root))
        text = Layout(root).folder("source", lab) / f"{lab}.py"
        (course / "source" / lab).mkdir(parents=True)
        shutil.copy2(text, course / "source" / lab / text.name)
        notebooks.build(lab, course)
        # The lab and its cells (test cells included), into the zip's own new gradebook.
        run_nbgrader("generate_assignment", lab, "--force", f"--CourseDirectory.root={course}", root=course)
        shutil.rmtree(course / "source")  # the instructor's solutions stay home
        shutil.rmtree(Layout(course).folder("release", lab))
        shutil.copytree(Layout(root).folder("release", lab), Layout(course).folder("release", lab))
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
                info = zipfile.ZipInfo(name)
                info.external_attr = 0o755 << 16
                archive.writestr(info, text)
            for path in sorted(course.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(course))
    return dest


def submitted_notebook(uploaded: Path, lab: str) -> Path | None:
    """The notebook to grade: `<lab>.ipynb` if uploaded, else the only notebook uploaded."""
    notebooks = sorted(p for p in uploaded.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    named = [p for p in notebooks if p.name == f"{lab}.ipynb"]
    return named[0] if named else notebooks[0] if len(notebooks) == 1 else None


def cell_output(cell) -> str:
    """What a test cell showed the student: its printed text and its error line, without colour
    codes or tracebacks."""
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}\n")
    text = ANSI.sub("", "".join(parts)).strip()
    return text if len(text) <= MAX_OUTPUT else text[:MAX_OUTPUT] + " [...]"


def gradescope_results(root: Path, lab: str, student: str, outcome: submission.Outcome, seconds: float) -> dict:
    """results.json for one graded (or refused) submission."""
    if not outcome.ok:
        return {"score": 0.0, "execution_time": round(seconds), **AS_TEXT,
                "output": f"Your notebook could not be graded: {outcome.message}"}
    auto, written = gradebooks.graded_cells(root, lab)
    scores = gradebooks.cell_scores(root, lab)[student]
    graded = nbformat.read(Layout(root).notebook("autograded", lab, student), as_version=4)
    cells = {c.metadata["nbgrader"]["grade_id"]: c for c in graded.cells if "nbgrader" in c.get("metadata", {})}
    tests = [{"name": name, "number": str(number), "score": scores.get(name) or 0.0, "max_score": points,
              "output": cell_output(cells[name]) if name in cells else "This test cell was deleted.",
              "visibility": "visible"} for number, (name, points) in enumerate(auto, 1)]
    notes = [outcome.fault] * bool(outcome.fault) + outcome.overrides
    notes.append(f"Written answers ({', '.join(name for name, _ in written)}: {sum(p for _, p in written):g} "
                 "points) are graded by hand and are not in this score." if written else "")
    return {"score": float(sum(t["score"] for t in tests)), "execution_time": round(seconds),
            "output": "\n".join(note for note in notes if note), **AS_TEXT, "visibility": "visible",
            "stdout_visibility": "hidden", "tests": tests}


def grade_one(root: Path, lab: str, student: str) -> submission.Outcome:
    """Grade the one submission in `root`, in the sandbox; without it only if the zip says so."""
    problem = sandbox.unavailable()
    if problem and not (root / UNSANDBOXED_FLAG).is_file():
        print(f"Not grading: {problem}. Build the autograder with --unsandboxed to grade without it.")
        return submission.Outcome(student, lab, False, "the grader's sandbox cannot run on this Gradescope "
                               "image; your instructor has been told (see the autograder output)")
    print("sandbox:", f"OFF ({problem}); only Gradescope's container separates this submission" if problem
          else "bubblewrap")
    (outcome,) = grading.grade_class(root, [lab], 1, submission.Settings(sandboxed=problem is None))[lab]
    return outcome


def run_gradescope(base: Path, root: Path) -> dict:
    """Grade base/submission as the lab in `root` (an unzipped autograder) and write
    base/results/results.json. Returns what it wrote."""
    start = time.monotonic()
    (lab,) = [p.name for p in (root / "release").iterdir() if p.is_dir()]
    metadata = json.loads((base / "submission_metadata.json").read_text())
    users = metadata.get("users") or [{}]
    email = str(users[0].get("email", "")).strip()
    roster = read_roster(root / ROSTER) if (root / ROSTER).is_file() else None
    student = roster.get(email.lower(), email) if roster is not None else email
    notebook = submitted_notebook(base / "submission", lab)
    if roster is not None and email.lower() not in roster:
        outcome = submission.Outcome(student, lab, False, f"the account's email {email!r} is not in the course's "
                                     "roster, so the grader cannot tell whose numbers to check: ask your instructor")
    elif notebook is None:
        outcome = submission.Outcome(student, lab, False, f"upload one notebook, named {lab}.ipynb")
    elif not intake.STUDENT_ID.fullmatch(student):
        why = f"the account's email {student!r} is not an id the grader takes"
        outcome = submission.Outcome(student, lab, False, why)
    else:
        target = Layout(root).notebook("submitted", lab, student)
        shutil.rmtree(target.parent, ignore_errors=True)
        target.parent.mkdir(parents=True)
        shutil.copyfile(notebook, target)
        submitted_at = str(metadata.get("created_at") or "")
        if submitted_at:  # each submission draws its own hidden probes; a rerun of it, the same
            (target.parent / "timestamp.txt").write_text(submitted_at)
        outcome = grade_one(root, lab, student)
    results = gradescope_results(root, lab, student, outcome, time.monotonic() - start)
    (base / "results").mkdir(parents=True, exist_ok=True)
    (base / "results" / "results.json").write_text(json.dumps(results, indent=2))
    return results
