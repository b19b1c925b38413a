"""nbgrader's exchange end to end, with the instructor and two students as separate Unix users,
each with its own HOME, as on a JupyterHub: release_assignment → fetch_assignment → the student
answers → submit → collect → our grader → release_feedback → fetch_feedback.

The students are named after two of Lab 4's examples (`ada` answers everything right,
`sigmoid_slip` takes σ′ of the sigmoid's input), so each one's numbers are those the example's
answers were worked on, and each must get exactly the example's expected scores."""

import json
import shutil
import subprocess
import sys

import nbformat
import pytest

from autograder.pipeline import examples, grading
from unix_users import accounts, as_user, base_interpreter, reachable_by_everyone, require_root

from conftest import REPO, make_course_root

pytestmark = pytest.mark.slow
LAB = "lab4"
COURSE = "autograd-labs"
INSTRUCTOR = "agl_instructor"
STUDENTS = ["ada", "sigmoid_slip"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The accounts, a world-writable exchange (mode 1777, as nbgrader asks), the instructor's
    course in their HOME, released with `python -m autograder release`."""
    require_root()
    top = tmp_path_factory.mktemp("hub")
    exchange = top / "exchange"
    exchange.mkdir(mode=0o1777)
    exchange.chmod(0o1777)
    with reachable_by_everyone(base_interpreter(), REPO, top), \
            accounts([INSTRUCTOR, *STUDENTS], top / "home") as homes:
        course = make_course_root(homes[INSTRUCTOR] / "course")
        shutil.copytree(REPO / "release", course / "release")
        subprocess.run([sys.executable, "-m", "autograder", "--root", str(course), "release", "--lab", LAB],
                       check=True, capture_output=True)
        subprocess.run(["chown", "-R", f"{INSTRUCTOR}:", str(course)], check=True)
        yield {"exchange": exchange, "homes": homes, "course": course}


def run(hub, user: str, *args: str, cwd=None, check: bool = True) -> subprocess.CompletedProcess:
    """`args` as `user`, in the course (instructor) or their HOME (students). Every user finds the
    exchange as a hub's users would: in their nbgrader configuration (here, by environment)."""
    home = hub["homes"][user]
    return as_user(user, home, list(args), cwd or (hub["course"] if user == INSTRUCTOR else home),
                   env={"AUTOGRAD_LABS_EXCHANGE": str(hub["exchange"])}, check=check)


def student_nbgrader(hub, student: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(hub, student, "nbgrader", *args, f"--course={COURSE}", f"--Exchange.root={hub['exchange']}",
               check=check)


@pytest.fixture(scope="module")
def round_trip(hub, tmp_path_factory):
    """The whole term for one lab; returns what each step printed, by step."""
    log = {"release": run(hub, INSTRUCTOR, "nbgrader", "release_assignment", LAB)}
    answers = examples.load(LAB)
    staged = tmp_path_factory.mktemp("answers")
    staged.chmod(0o755)
    for student in STUDENTS:
        log[f"list {student}"] = student_nbgrader(hub, student, "list")
        log[f"fetch {student}"] = student_nbgrader(hub, student, "fetch_assignment", LAB)
        # The student's work: their answers typed into the notebook they fetched (staged by the
        # test, copied in by the student, so the file stays theirs).
        fetched = hub["homes"][student] / LAB / f"{LAB}.ipynb"
        filled = staged / f"{student}.ipynb"
        nbformat.write(examples.fill(nbformat.read(fetched, as_version=4), answers[student]["answers"]), filled)
        filled.chmod(0o644)
        run(hub, student, "cp", str(filled), str(fetched))
        log[f"submit {student}"] = student_nbgrader(hub, student, "submit", LAB)
    log["collect"] = run(hub, INSTRUCTOR, "nbgrader", "collect", LAB)
    log["grade"] = run(hub, INSTRUCTOR, "python", "-m", "autograder", "grade", "--lab", LAB, "--jobs", "2")
    log["release_feedback"] = run(hub, INSTRUCTOR, "nbgrader", "release_feedback", LAB)
    for student in STUDENTS:
        log[f"fetch_feedback {student}"] = student_nbgrader(hub, student, "fetch_feedback", LAB)
    return log


def test_students_see_and_fetch_the_release_as_their_own_files(hub, round_trip):
    for student in STUDENTS:
        assert f"{COURSE} {LAB}" in round_trip[f"list {student}"].stderr
        fetched = hub["homes"][student] / LAB / f"{LAB}.ipynb"
        assert fetched.owner() == student


def test_a_student_can_neither_find_anothers_submission_nor_change_the_release(hub, round_trip):
    """nbgrader's exchange model: inbound can be written but not listed, and each submission's
    folder ends in a random part, so no student learns where another's work is; outbound is the
    instructor's alone."""
    inbound, outbound = (hub["exchange"] / COURSE / box for box in ("inbound", "outbound"))
    listing = run(hub, "sigmoid_slip", "ls", str(inbound), check=False)
    assert listing.returncode != 0 and "Permission denied" in listing.stderr, listing
    (ada_submission,) = [p for p in inbound.iterdir() if p.name.startswith("ada+")]
    assert len(ada_submission.name.rsplit("+", 1)[1]) >= 12, ada_submission.name
    tamper = run(hub, "sigmoid_slip", "cp", "/dev/null", str(outbound / LAB / f"{LAB}.ipynb"), check=False)
    assert tamper.returncode != 0 and "Permission denied" in tamper.stderr, tamper


def test_collected_submissions_get_exactly_their_examples_scores(hub, round_trip):
    assert f"graded {len(STUDENTS)} of {len(STUDENTS)} submission(s)" in round_trip["grade"].stdout
    scores = grading.cell_scores(hub["course"], LAB)
    for student in STUDENTS:
        assert (hub["course"] / "submitted" / student / LAB / f"{LAB}.ipynb").owner() == INSTRUCTOR
        assert scores[student] == {**scores[student], **examples.load(LAB)[student]["expected"]}, student


def test_each_student_fetches_their_own_feedback_and_no_one_elses(hub, round_trip):
    points = {student: sum(examples.load(LAB)[student]["expected"].values()) for student in STUDENTS}
    for student in STUDENTS:
        (html,) = (hub["homes"][student] / LAB / "feedback").glob(f"*/{LAB}.html")
        assert html.owner() == student
        page = html.read_text()
        assert f"Autograded: {points[student]} of 25 points" in page
        assert f"student id <code>{student}</code>" in page
        other = next(s for s in STUDENTS if s != student)
        assert f"student id <code>{other}</code>" not in page


def test_feedback_keeps_the_submission_secret_nbgrader_releases_it_by(hub, round_trip):
    for student in STUDENTS:
        secret = hub["course"] / "submitted" / student / LAB / "submission_secret.txt"
        assert (hub["course"] / "autograded" / student / LAB / "submission_secret.txt").read_text() == \
            secret.read_text()
    released = json.dumps(sorted(p.name for p in (hub["exchange"] / COURSE / "feedback").iterdir()))
    assert released.count(".html") == len(STUDENTS), released
