"""Grading on submission, run as the hub runs it (`python -m autograder on-submit`), on a real
exchange, gradebook and sandbox: each hand-in gets exactly its example's scores and a feedback
page in the exchange, where the student's `nbgrader fetch_feedback` finds it; the attempt limit
and a hand-in named with an earlier time are judged by arrival; a service killed mid-round loses
nothing. (Hand-ins here are the collecting user's own folders, which collect accepts for a
course where one account does everything; the hub test covers students' own accounts.)"""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import nbformat
import pytest
from nbgrader.utils import notebook_hash

from autograder.pipeline import examples, gradebooks
from autograder.pipeline.on_submit import POLICY_FILE
from helpers import REPO, make_course_root

pytestmark = pytest.mark.slow
LAB = "lab4"
COURSE_ID = "autograd-labs"


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = make_course_root(tmp_path_factory.mktemp("on-submit") / "course")
    shutil.copytree(REPO / "release", root / "release")
    subprocess.run([sys.executable, "-m", "autograder", "--root", str(root), "release", "--lab", LAB],
                   check=True, capture_output=True)
    exchange = root.parent / "exchange"
    (exchange / COURSE_ID / "inbound").mkdir(parents=True)
    return {"root": root, "exchange": exchange}


def switch_on(course, attempts: int = 0, cooldown: float = 0) -> None:
    (course["root"] / POLICY_FILE).write_text(f'labs = ["{LAB}"]\nattempts = {attempts}\n'
                                              f"cooldown_minutes = {cooldown}\n")


def hand_in(course, student: str, answers_of: str | None = None, stamp: str | None = None,
            notebook: str | None = None) -> str:
    """A hand-in as nbgrader's submit writes it: the notebook with `answers_of`'s example answers
    (the student's own by default), timestamp.txt and the secret. Returns the secret."""
    stamp = stamp or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f %Z")  # as nbgrader's submit
    folder = course["exchange"] / COURSE_ID / "inbound" / f"{student}+{LAB}+{stamp}+{secrets.token_hex(4)}"
    folder.mkdir()
    release = nbformat.read(REPO / "release" / LAB / f"{LAB}.ipynb", as_version=4)
    nbformat.write(examples.fill(release, examples.load(LAB)[answers_of or student]["answers"]),
                   folder / f"{LAB}.ipynb")
    if notebook is not None:
        (folder / f"{LAB}.ipynb").write_text(notebook)
    (folder / "timestamp.txt").write_text(stamp)
    secret = secrets.token_hex(16)
    (folder / "submission_secret.txt").write_text(secret)
    time.sleep(0.05)  # arrivals are told apart by the folder's ctime
    return secret


def on_submit(course, *args: str, **kwargs):
    command = [sys.executable, "-m", "autograder", "--root", str(course["root"]), "on-submit",
               "--exchange", str(course["exchange"]), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)


def page(course, secret: str) -> str | None:
    path = course["exchange"] / COURSE_ID / "feedback" / f"{notebook_hash(secret=secret, notebook_id=LAB)}.html"
    return path.read_text() if path.exists() else None


def expected(student: str) -> dict:
    return examples.load(LAB)[student]["expected"]


def scores(course, student: str) -> dict:
    found = gradebooks.cell_scores(course["root"], LAB)[student]
    return {cell: found[cell] for cell in expected(student)}


def test_each_hand_in_is_graded_and_its_feedback_released_at_once(course):
    switch_on(course, attempts=2)
    ada, slip = hand_in(course, "ada"), hand_in(course, "sigmoid_slip")
    done = on_submit(course, "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    for student, secret in (("ada", ada), ("sigmoid_slip", slip)):
        assert scores(course, student) == expected(student)
        text = page(course, secret)
        assert text and "Graded on submission: attempt 1 of 2" in text and "at most 2 graded attempt(s)" in text
    assert f"{LAB} ada: feedback released" in done.stdout, done.stdout
    print(done.stdout)
    again = on_submit(course, "--once")  # nothing new: nothing graded again
    assert again.stdout.splitlines()[1:] == [], again.stdout


def test_past_the_limit_a_hand_in_gets_a_page_not_a_grade(course):
    switch_on(course, attempts=2)
    second = hand_in(course, "sigmoid_slip", answers_of="ada")
    third = hand_in(course, "sigmoid_slip")
    done = on_submit(course, "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "attempt 2 of 2" in page(course, second)
    assert "Not graded: you had used all 2 graded attempts" in page(course, third)
    assert scores(course, "sigmoid_slip") != expected("sigmoid_slip")  # attempt 2 (ada's answers, slip's numbers)


def test_hand_ins_are_judged_by_arrival_and_the_instructors_collect_takes_the_graded_one(course):
    """With one graded attempt allowed, grace hands in twice: the second gets a page saying the
    limit is reached, and a third named with a time before her first (to be taken for an earlier
    attempt) is refused as misnamed. The instructor's collect takes the attempt that was graded,
    not the newest folder."""
    switch_on(course, attempts=1)
    first = hand_in(course, "grace", answers_of="sigmoid_slip")
    second = hand_in(course, "grace", answers_of="ada")
    third = hand_in(course, "grace", answers_of="ada", stamp="1999-01-01 00:00:00.000000 UTC")
    done = on_submit(course, "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "attempt 1 of 1" in page(course, first), done.stdout
    assert "Not graded: you had used all 1 graded attempts" in page(course, second)
    assert "named with an earlier time" in page(course, third)
    submitted = course["root"] / "submitted" / "grace" / LAB / "submission_secret.txt"
    shutil.rmtree(submitted.parent)
    collect = subprocess.run(["nbgrader", "collect", LAB, f"--Exchange.root={course['exchange']}"],
                             cwd=course["root"], capture_output=True, text=True)
    assert collect.returncode == 0, collect.stderr
    assert submitted.read_text() == first


def test_a_service_killed_mid_round_loses_nothing(course):
    """Killed (SIGKILL) while it grades a burst, then started again: every hand-in has its page
    and its example's scores."""
    switch_on(course)
    secrets_of = {student: hand_in(course, student) for student in ("tanh_slip", "sign_slip", "rename_copy", "lazy")}
    log = (course["root"].parent / "killed.log").open("w")
    service = subprocess.Popen([sys.executable, "-m", "autograder", "--root", str(course["root"]), "on-submit",
                                "--exchange", str(course["exchange"])], stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        for _ in range(1200):  # until the first hand-in is graded and saved, the others not yet released
            if ": graded (" in (course["root"].parent / "killed.log").read_text():
                break
            time.sleep(0.1)
        else:
            raise AssertionError((course["root"].parent / "killed.log").read_text())
        os.killpg(service.pid, signal.SIGKILL)
    finally:
        service.wait()
    released = [student for student, secret in secrets_of.items() if page(course, secret)]
    assert len(released) < len(secrets_of), released
    done = on_submit(course, "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    for student, secret in secrets_of.items():
        assert page(course, secret) and scores(course, student) == expected(student), student


def test_a_hand_in_that_cannot_be_graded_gets_a_page_that_says_why(course):
    """A notebook that is not JSON: tried twice by the running service, then a page with the reason."""
    switch_on(course)
    secret = hand_in(course, "broken", answers_of="ada", notebook="{ not a notebook")
    log = course["root"].parent / "broken.log"
    service = subprocess.Popen([sys.executable, "-m", "autograder", "--root", str(course["root"]), "on-submit",
                                "--exchange", str(course["exchange"])], stdout=log.open("w"),
                               stderr=subprocess.STDOUT)
    try:
        for _ in range(1800):
            if page(course, secret):
                break
            time.sleep(0.2)
    finally:
        service.terminate()
        service.wait(timeout=60)
    text = page(course, secret)
    assert text and "Not graded automatically:" in text, log.read_text()
    assert log.read_text().count("broken: not graded") == 2, log.read_text()
