"""Hostile code in a submission, graded through the real `make autograde` with the sandbox on.

The hostile notebook answers Lab 4 right and also tries, from an answer cell, to read the
course's sources and gradebook, write into the course, import the grader, reach the network,
give its written answers full marks in the gradebook it can reach, leave a process behind, and
leave a link to /dev/zero and a named pipe beside its notebook for the copy back to trip on.
(Writing into the course "succeeds" only into the sandbox's own throwaway file system.)
It must gain nothing, change nothing, and keep exactly the marks of its right answers, like the
honest submission graded in the same run.
"""

import json
import time

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.pipeline import examples, grading
from autograder.pipeline.layout import Layout

from conftest import REPO, make_course_root
from test_pipeline import make

pytestmark = pytest.mark.slow
FULL = {"t1_forward": 1, "t1_backward": 2, "t1_check_result": 1, "t1_train": 2, "t2_forward": 2, "t2_local": 2,
        "t2_gradients": 3, "t2_activation_grads": 2, "t2_manual_backward": 3}

HOSTILE = '''
import os, socket, sqlite3, subprocess, sys
ROOT = {root!r}
attempts = {{}}
def attempt(name, action):
    try:
        action()
        attempts[name] = "done"
    except BaseException as exc:
        attempts[name] = type(exc).__name__
def forge():
    db = sqlite3.connect("../../../gradebook.db")  # the gradebook within reach: its own unit's
    db.execute("update grade set auto_score = 2")  # written answers included
    db.commit()
attempt("read_source", lambda: open(ROOT + "/source/lab4/lab4.py").read())
attempt("read_gradebook", lambda: open(ROOT + "/gradebook.db", "rb").read())
attempt("write_course", lambda: open(ROOT + "/pwned", "w").write("x"))
attempt("import_grader", lambda: __import__("autograder.labs.lab4"))
attempt("network", lambda: socket.create_connection(("1.1.1.1", 80), timeout=3))
attempt("forge_grades", forge)
attempt("leave_a_process", lambda: subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(4); open(%r, 'w').write('x')" % (ROOT + "/late")],
    start_new_session=True))
attempt("link_to_a_device", lambda: os.symlink("/dev/zero", "zero"))  # beside its notebook
attempt("named_pipe", lambda: os.mkfifo("pipe"))
print("ATTEMPTS", sorted(attempts.items()))
yhat = 2
s = 1
loss = 1
'''


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = make_course_root(tmp_path_factory.mktemp("sandbox"))
    make("release", root)
    right = {student: example["answers"] for student, example in examples.load("lab4").items()}
    release = nbformat.read(Layout(root).notebook("release", "lab4"), as_version=4)
    hostile = {**right["ada"], "t1_forward_answer": HOSTILE.format(root=str(root))}
    for student, answers in (("grace", right["grace"]), ("ada", hostile)):
        path = Layout(root).notebook("submitted", "lab4", student)
        path.parent.mkdir(parents=True)
        nbformat.write(examples.fill(release, answers), path)
    out = make("autograde", root).stdout
    time.sleep(6)  # longer than the process the hostile notebook tried to leave behind would sleep
    return root, out


def test_the_report_says_the_sandbox_was_on(graded):
    _, out = graded
    assert "sandbox: bubblewrap" in out


def test_hostile_code_keeps_only_the_marks_of_its_right_answers(graded):
    root, _ = graded
    scores = grading.cell_scores(root, "lab4")
    auto = {s: {k: v for k, v in cells.items() if k in FULL} for s, cells in scores.items()}
    assert auto == {"ada": FULL, "grace": FULL}
    with Gradebook(Layout(root).db_url) as gb:
        for student in ("ada", "grace"):
            written = gb.find_grade("q_dead_relu", "lab4", "lab4", student)
            assert (written.auto_score, written.manual_score, written.needs_manual_grade) == (None, None, True)


def test_hostile_code_reached_nothing_outside_its_folder(graded):
    root, _ = graded
    assert not (root / "pwned").exists() and not (root / "late").exists()
    graded = Layout(root).folder("autograded", "lab4", "ada")
    assert sorted(p.name for p in graded.iterdir()) == ["lab4.ipynb"]  # only regular files come back
    nb = nbformat.read(Layout(root).notebook("autograded", "lab4", "ada"), as_version=4)
    (cell,) = [c for c in nb.cells if c.id == "t1_forward_answer"]
    text = "".join(o.get("text", "") for o in cell.outputs)
    attempts = dict(json.loads(text.split("ATTEMPTS", 1)[1].strip().replace("'", '"').replace("(", "[").replace(")", "]")))
    assert attempts["read_source"] == "FileNotFoundError"
    assert attempts["read_gradebook"] == "FileNotFoundError"
    assert attempts["link_to_a_device"] == attempts["named_pipe"] == "done"  # made, and left behind
    assert attempts["forge_grades"] == "done"  # it may write the gradebook it sees: a copy nobody trusts
    assert attempts["import_grader"] == "ModuleNotFoundError"
    assert attempts["network"] in ("OSError", "TimeoutError", "ConnectionError")
    assert (REPO / "source" / "lab4" / "lab4.py").exists()  # the files are there; the sandbox hides them
