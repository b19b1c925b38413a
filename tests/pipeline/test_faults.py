"""Faults an instructor's server meets, each with the grader's promise (docs/RELIABILITY.md): a
grade is saved whole or not at all, one grader holds a course at a time, every failure is loud
and never blamed on a student, and grading again finishes the class with the clean run's scores.

Every test grades Lab 4's examples in a course of its own (copied from one released course), and
after each fault checks every unit across `autograded/`, the gradebook, `feedback/` and the CSVs
(`assert_whole`)."""

import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.pipeline import examples, gradebooks, gradebook_guard, runs, submission
from autograder.pipeline.layout import DB_URL_ENV, Layout

from helpers import REPO, make_course_root

pytestmark = pytest.mark.slow
LAB = "lab4"
EXAMPLES = examples.load(LAB)
EXPECTED = {student: example["expected"] for student, example in EXAMPLES.items()}
STUDENTS = sorted(EXPECTED)


def autograder(root, *args: str, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "--root", str(root), *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def grade(root, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return autograder(root, "grade", "--lab", LAB, "--jobs", "2", *args, env=env)


def start_grading(root, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "autograder", "--root", str(root), "grade", "--lab", LAB,
                             "--jobs", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """Lab 4 released, its examples handed in: copied by each test (`course`)."""
    root = make_course_root(tmp_path_factory.mktemp("released"))
    assert autograder(root, "release", "--lab", LAB).returncode == 0
    assert autograder(root, "examples", "--lab", LAB).returncode == 0
    return root


def copy_course(released, where: Path) -> Path:
    shutil.copytree(released, where, symlinks=True)
    return where


@pytest.fixture
def course(released, tmp_path):
    return copy_course(released, tmp_path / "course")


def auto_scores(root) -> dict:
    autograded = {name for name, _ in gradebooks.graded_cells(root, LAB)[0]}
    return {s: {k: v for k, v in cells.items() if k in autograded} for s, cells in gradebooks.cell_scores(root, LAB).items()}


def assert_whole(root) -> dict:
    """Every unit is in step everywhere: the scores its graded notebook shows are the gradebook's,
    its feedback page and both CSVs say the same total, and no save is left half-done. Returns
    the autograded scores."""
    layout = Layout(root)
    tests = gradebooks.test_cells(layout.db_url, LAB)
    scores = auto_scores(root)
    assert set(layout.students("autograded", LAB)) == set(scores)
    with Gradebook(layout.db_url) as gb:
        totals = {student: gb.find_submission(LAB, student).score for student in scores}
    grades_csv = {row["student_id"]: float(row["score"]) for row in csv.DictReader((root / "grades.csv").open())
                  if row["assignment"] == LAB}
    canvas = {row["SIS Login ID"]: row[f"Autograd Labs {LAB}"] for row in csv.DictReader((root / "grades-canvas.csv").open())
              if row["Student"] != "Points Possible"}
    for student, cells in scores.items():
        notebook = layout.notebook("autograded", LAB, student)
        from_notebook = submission.read_result(submission.read_executed([notebook]), tests, None)["grades"]
        assert {name: from_notebook[(LAB, name)] for _, name in tests} == cells, student
        total, possible = sum(cells.values()), sum(tests.values())
        page = (root / "feedback" / student / LAB / f"{LAB}.html").read_text()
        assert f"Autograded: {total:g} of {possible:g} points" in page, student
        assert grades_csv[student] == totals[student] and canvas[student] == f"{totals[student]:g}", student
    journal = root / runs.SCRATCH / runs.JOURNAL
    assert not journal.exists() or not list(journal.iterdir())
    for step in ("autograded", "feedback"):
        assert not list((root / step).glob(f"*/.{LAB}.*")), step  # nothing set aside and forgotten
    return scores


def hand_in(root, answers_of: dict[str, str]) -> None:
    """Each student hands in the answers of the example named for them in `answers_of`."""
    release = nbformat.read(Layout(root).notebook("release", LAB), as_version=4)
    for student, source in answers_of.items():
        nbformat.write(examples.fill(release, EXAMPLES[source]["answers"]), Layout(root).notebook("submitted", LAB, student))


def rotated(shift: int) -> dict[str, str]:
    """Every student hands in the answers of the student `shift` places on: each unit's new result
    differs from the one it has, so a unit saved by halves would show."""
    return {student: STUDENTS[(i + shift) % len(STUDENTS)] for i, student in enumerate(STUDENTS)}


# --- a grader stopped at any moment -------------------------------------------------------------

STOPS = [("SIGKILL", 4.5), ("SIGINT", 7.0), ("SIGTERM", 9.5), ("SIGKILL", 12.0), ("SIGINT", 14.5),
         ("SIGKILL", 17.0), ("SIGTERM", 19.5)]


def test_a_grader_stopped_at_any_moment_leaves_every_unit_whole_and_grading_again_finishes(course):
    """SIGKILL, SIGINT to the grader alone and SIGTERM, at moments spread over a run (start-up,
    grading, saving), each time with every student's work changed since the last run."""
    assert grade(course).returncode == 0
    assert assert_whole(course) == EXPECTED
    jitter = random.Random(23)
    for shift, (name, at) in enumerate(STOPS, 1):
        hand_in(course, rotated(shift))
        grader = start_grading(course)
        time.sleep(at + jitter.uniform(-1, 1))
        grader.send_signal(getattr(signal, name))
        out, err = grader.communicate(timeout=300)
        if name == "SIGKILL":
            settled = autograder(course, "recover")
            assert settled.returncode == 0, settled.stderr
        elif grader.returncode < 0:  # the signal came before Python had loaded the grader (it never began),
            # or after the run had printed its last line, while the interpreter shut down
            assert "sandbox:" not in out or "\nfeedback: " in out, out + err
        else:
            assert grader.returncode in (0, 130), err  # 0: it had just finished
            assert grader.returncode == 0 or "Grading was stopped" in err
        assert_whole(course)
    hand_in(course, {student: student for student in STUDENTS})
    again = grade(course)
    assert again.returncode == 0, again.stderr[-2000:]
    assert assert_whole(course) == EXPECTED


# A grader killed inside a save, at the moments in between its steps (in a wrapper that patches
# the step; the grader is unchanged): before the rows are written, after they are committed and
# before the feedback is rendered, and after the first folder went live.
KILLED_INSIDE = {
    "before the rows are written": ("autograder.pipeline.saving", "save_result", "before"),
    "after the rows are committed": ("autograder.pipeline.feedback", "render", "before"),
    "after the first folder went live": ("pathlib", "Path.rename", "after"),
}
WRAPPER = '''
import importlib, os, pathlib, signal, sys
module = importlib.import_module({module!r})
owner, name = (module.Path, "rename") if {attribute!r} == "Path.rename" else (module, {attribute!r})
real = getattr(owner, name)

def killed(*args, **kwargs):
    target = ("/save-" in str(args[0]) and "/autograded/{student}/" in str(args[0])) if {attribute!r} == "Path.rename" \
        else args[2] == {student!r}
    if target and {when!r} == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    value = real(*args, **kwargs)
    if target and {when!r} == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return value

setattr(owner, name, killed)
from autograder.__main__ import main
sys.exit(main(sys.argv[1:]))
'''
# The unit killed mid-save: rotated(1) hands it `blank`'s answers, so its new rows surely differ from
# its old ones (an unchanged unit, such as `copycat` handed `grace`'s, would read as finished either way).
KILLED_STUDENT = "autograd"


@pytest.mark.parametrize("moment", KILLED_INSIDE)
def test_a_grader_killed_inside_a_save_leaves_the_old_result_or_the_new_one(course, tmp_path, moment):
    assert grade(course).returncode == 0
    hand_in(course, rotated(1))
    module, attribute, when = KILLED_INSIDE[moment]
    wrapper = tmp_path / "wrapper" / "killed_grader.py"  # not beside the course folder, which `import course` would find
    wrapper.parent.mkdir()
    wrapper.write_text(WRAPPER.format(module=module, attribute=attribute, when=when, student=KILLED_STUDENT))
    killed = subprocess.run([sys.executable, str(wrapper), "--root", str(course), "grade", "--lab", LAB, "--jobs", "2"],
                            capture_output=True, text=True, timeout=900, cwd=REPO)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    settled = autograder(course, "recover")
    word = "undone" if moment == "before the rows are written" else "finished"
    assert settled.returncode == 0 and f"an interrupted save, {word}" in settled.stdout, settled.stdout
    assert_whole(course)
    hand_in(course, {student: student for student in STUDENTS})
    assert grade(course).returncode == 0
    assert assert_whole(course) == EXPECTED


# --- two graders ---------------------------------------------------------------------------------

def test_a_second_grader_is_told_who_holds_the_course_and_changes_nothing(course):
    first = start_grading(course)
    lock = course / runs.SCRATCH / runs.LOCK
    for _ in range(600):
        if lock.exists() and f"pid {first.pid}" in lock.read_text():
            break
        time.sleep(0.1)
    second = grade(course)
    assert second.returncode == 2, second.stderr
    assert f"another grading run holds {course} (pid {first.pid}" in second.stderr
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert assert_whole(course) == EXPECTED


# --- a full disk ---------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 64 MB file system of its own (tmpfs, mounted as root), so that it can be filled."""
    if os.geteuid() != 0:
        message = "filling a disk needs a small file system of its own: mounting a tmpfs needs root"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Fill `disk` until only `leave` bytes are free; the filler file."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        while (free := os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize) > leave:
            out.write(b"\0" * min(free - leave, 1 << 20))
            out.flush()
    return filler


# Space left on the disk, and where a run of Lab 4's examples then runs out (seen): with none, at
# the gradebook's backup before any unit; with 256 kB, building the lab's gradebook for the
# units; with 640 kB, midway, saving units (their feedback pages: one of ten saved, the rest not).
# With 1 MB the run fits (it did not before Lab 4b took half of Lab 4's cells).
@pytest.mark.parametrize("leave", [0, 256 * 1024, 640 * 1024])
def test_a_full_disk_is_reported_as_such_and_costs_no_grade(released, small_disk, leave):
    """Filled while nothing runs, so the disk runs out at whichever step needs the last bytes:
    the run says so, exits non-zero, and every grade stays as the clean run left it."""
    course = copy_course(released, small_disk / "course")
    assert grade(course).returncode == 0
    clean = assert_whole(course)
    filler = fill(small_disk, leave)
    full = grade(course)
    assert full.returncode in (1, 2), full.stdout[-2000:]
    said = full.stdout + full.stderr
    assert "no space left on the disk" in said and "nbgrader could not grade it" not in said, said[-3000:]
    filler.unlink()
    if (course / runs.SCRATCH / runs.JOURNAL).is_dir() and list((course / runs.SCRATCH / runs.JOURNAL).iterdir()):
        assert autograder(course, "recover").returncode == 0
    assert assert_whole(course) == clean
    assert grade(course).returncode == 0
    assert assert_whole(course) == EXPECTED


# --- the database goes away ----------------------------------------------------------------------

SERVERS = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))


class Postgres:
    """A private PostgreSQL server that the test can stop and start again."""

    def __init__(self):
        self.bin = SERVERS[-1].parent
        self.data = Path(tempfile.mkdtemp(prefix="autograd-labs-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
        self.server(str(self.bin / "initdb"), "-D", str(self.data), "-U", "grader", "-A", "trust")
        self.start()
        subprocess.run([str(self.bin / "createdb"), "-h", str(self.data), "-U", "grader", "gradebook"], check=True,
                       capture_output=True)
        self.url = f"postgresql+psycopg2://grader@/gradebook?host={self.data}"

    def server(self, *command: str) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_postgres, *command], check=True, capture_output=True)

    def start(self) -> None:
        self.server(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.data / "log"), "-o",
                    f"-k {self.data} -c listen_addresses=''", "start")

    def stop(self) -> None:
        self.server(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def remove(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.data), "-m",
                        "immediate", "stop"] if os.geteuid() == 0 else [], capture_output=True)
        shutil.rmtree(self.data, ignore_errors=True)


@pytest.fixture
def postgres():
    if not SERVERS:
        message = "PostgreSQL is not installed (apt-get install postgresql; .ci/run installs it)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    server = Postgres()
    try:
        yield server
    finally:
        server.remove()


def started_saving(root, env: dict) -> tuple[subprocess.Popen, list[str]]:
    """A grader (stdout and stderr together) that has saved its first unit; its lines so far."""
    grader = subprocess.Popen([sys.executable, "-m", "autograder", "--root", str(root), "grade", "--lab", LAB,
                               "--jobs", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, **env, "PYTHONUNBUFFERED": "1"})
    lines = []
    for line in grader.stdout:
        lines.append(line)
        if line.startswith(f"{LAB} ") and "graded (" in line:
            return grader, lines
    raise AssertionError("the grader ended before it saved a unit:\n" + "".join(lines)[-3000:])


def test_a_database_outage_mid_run_is_waited_out_or_reported_and_costs_no_grade(tmp_path, postgres, monkeypatch):
    """PostgreSQL stopped for 16 s once the first unit is saved: the grader waits and saves
    everything. Stopped for the rest of a run: every unit it could not save is reported, the run
    exits 1, and the next run, with the server back, finishes the class."""
    env = {DB_URL_ENV: postgres.url}
    monkeypatch.setenv(DB_URL_ENV, postgres.url)
    root = make_course_root(tmp_path / "course")
    assert autograder(root, "release", "--lab", LAB, env=env).returncode == 0
    assert autograder(root, "examples", "--lab", LAB, env=env).returncode == 0
    for outage in (16, None):
        grader, lines = started_saving(root, env)
        postgres.stop()
        if outage:
            time.sleep(outage)
            postgres.start()
        said = "".join(lines) + grader.communicate(timeout=900)[0]
        if outage:
            reasons = [line for line in said.splitlines() if "NOT GRADED" in line or "refused a write" in line]
            assert grader.returncode == 0, "\n".join(reasons) + said[-3000:]
            assert assert_whole(root) == EXPECTED
        else:
            assert grader.returncode == 1, said[-3000:]
            assert "NOT GRADED: not saved: the gradebook could not be" in said, said[-3000:]
            postgres.start()
            assert autograder(root, "recover", env=env).returncode == 0
            assert_whole(root)
    again = grade(root, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert assert_whole(root) == EXPECTED


# --- a damaged gradebook -------------------------------------------------------------------------

def damage(path: Path, how: str) -> None:
    if how == "emptied":
        path.write_bytes(b"")
    elif how == "deleted":
        path.unlink()
    else:  # a page in the middle overwritten
        with path.open("r+b") as db:
            db.seek(3 * 4096)
            db.write(os.urandom(4 * 4096))


@pytest.mark.parametrize("how", ["emptied", "corrupted", "deleted"])
def test_a_damaged_gradebook_is_refused_with_its_backup_named_and_restored_by_one_command(course, how):
    assert grade(course).returncode == 0
    with Gradebook(Layout(course).db_url) as gb:
        gb.find_grade("q_dead_relu", LAB, LAB, "ada").manual_score = 2
        gb.db.commit()
    assert grade(course).returncode == 0  # its backup at the end holds the manual score
    gradebook = Layout(course).gradebook
    damage(gradebook, how)
    refused = grade(course)
    assert refused.returncode == 2
    assert str(gradebook) in refused.stderr and "restore-gradebook" in refused.stderr, refused.stderr
    assert not gradebook.exists() or gradebook.stat().st_size == 0 or gradebook_guard.damage(gradebook)  # as it was
    restored = autograder(course, "restore-gradebook")
    assert restored.returncode == 0 and "restored" in restored.stdout, restored.stderr
    assert grade(course).returncode == 0
    assert assert_whole(course) == EXPECTED
    with Gradebook(Layout(course).db_url) as gb:
        assert gb.find_grade("q_dead_relu", LAB, LAB, "ada").manual_score == 2


# --- resubmissions and odd hand-ins ---------------------------------------------------------------

def stamp(root, student: str, when: str) -> None:
    (Layout(root).folder("submitted", LAB, student) / "timestamp.txt").write_text(when)


def test_a_resubmission_follows_rules_an_instructor_can_predict(course):
    for student in STUDENTS:
        stamp(course, student, "2026-11-01 10:00:00.000000 UTC")
    assert grade(course).returncode == 0
    with Gradebook(Layout(course).db_url) as gb:
        for student, score in (("ada", 2), ("grace", 1.5)):
            gb.find_grade("q_dead_relu", LAB, LAB, student).manual_score = score
            gb.find_grade("q_dead_relu", LAB, LAB, student).needs_manual_grade = False
        gb.find_comment("q_dead_relu", LAB, LAB, "ada").manual_comment = "Good."
        gb.db.commit()
    # ada rewrites her written answer; grace hands in again unchanged; sigmoid_slip's newest hand-in
    # turns out older than the one graded (a restored backup of her folder, say).
    notebook = Layout(course).notebook("submitted", LAB, "ada")
    nb = nbformat.read(notebook, as_version=4)
    (answer,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q_dead_relu"]
    answer.source = "Rewritten: with r = 0 the ReLU's local derivative is 0, so no gradient reaches w1."
    nbformat.write(nb, notebook)
    for student in ("ada", "grace"):
        stamp(course, student, "2026-11-02 10:00:00.000000 UTC")
    stamp(course, "sigmoid_slip", "2026-10-01 10:00:00.000000 UTC")
    regraded = grade(course)
    assert regraded.returncode == 1
    (line,) = [line for line in regraded.stdout.splitlines() if line.startswith(f"{LAB} sigmoid_slip:")]
    assert "NOT GRADED" in line and "before the submission already graded" in line, line
    with Gradebook(Layout(course).db_url) as gb:
        ada = gb.find_grade("q_dead_relu", LAB, LAB, "ada")
        assert (ada.manual_score, ada.needs_manual_grade) == (None, True)
        comment = gb.find_comment("q_dead_relu", LAB, LAB, "ada").manual_comment
        assert comment.startswith("Previous answer scored 2 of 2") and comment.endswith("Good.")
        grace = gb.find_grade("q_dead_relu", LAB, LAB, "grace")
        assert (grace.manual_score, grace.needs_manual_grade) == (1.5, False)
        assert str(gb.find_submission(LAB, "sigmoid_slip").timestamp).startswith("2026-11-01 10:00:00")
    assert assert_whole(course) == EXPECTED


def test_a_notebook_without_its_metadata_and_ids_differing_in_case_are_refused_with_the_reason(course):
    assert grade(course).returncode == 0
    ada = Layout(course).notebook("submitted", LAB, "ada")
    twin = Layout(course).notebook("submitted", LAB, "Ada")
    twin.parent.mkdir(parents=True)
    shutil.copy2(ada, twin)
    bare = nbformat.read(Layout(course).notebook("submitted", LAB, "grace"), as_version=4)
    for cell in bare.cells:
        cell.metadata.pop("nbgrader", None)  # copied cell by cell into a new notebook
    nbformat.write(bare, Layout(course).notebook("submitted", LAB, "grace"))
    refused = grade(course)
    assert refused.returncode == 1
    lines = {line.split(":")[0]: line for line in refused.stdout.splitlines() if "NOT GRADED" in line}
    assert "differ only in letter case" in lines[f"{LAB} Ada"] and "differ only in letter case" in lines[f"{LAB} ada"]
    assert "lost the nbgrader metadata" in lines[f"{LAB} grace"]
    assert assert_whole(course) == EXPECTED  # every earlier grade kept


def test_the_sandbox_starts_from_a_venv_reached_through_a_link(tmp_path):
    link = tmp_path / "venv"
    link.symlink_to(Path(sys.prefix).resolve(), target_is_directory=True)
    proc = subprocess.run([str(link / "bin" / "python"), "-c",
                           "from autograder.pipeline import sandbox; print(sandbox.unavailable())"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.stdout.strip() == "None", proc.stdout + proc.stderr
