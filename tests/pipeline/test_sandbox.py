"""Hostile, faulty and odd submissions, graded through the real `make autograde` with the sandbox on.

One course, one run: an honest submission (grace) and one submission per threat, each of which
answers Lab 4 right (on its own student's numbers) and then does one bad thing. Each must get
exactly the marks its right answers earn before the bad thing, or be refused with a clear reason,
and cost nobody else anything. docs/THREATS.md lists the threats and points here.
"""

import json
import os
import re
import subprocess
import sys
import time

import nbformat
import pytest
from nbgrader.api import Gradebook

import course.lab4
from autograder.pipeline import examples, gradebooks, intake, sandbox
from autograder.pipeline.layout import Layout

from helpers import REPO, make_course_root
from test_pipeline import make

pytestmark = pytest.mark.slow
FULL = examples.load("lab4")["ada"]["expected"]  # every autograded cell's points: ada is right throughout
TASK1 = {name: points for name, points in FULL.items() if name.startswith("t1_")}
TASK2 = {name: points for name, points in FULL.items() if name not in TASK1}  # Task 2 and every cell after it
ONLY_TASK1 = {**TASK1, **dict.fromkeys(TASK2, 0)}
CELL_SECONDS, NOTEBOOK_SECONDS = 10, 60

HOSTILE = '''
import json, os, socket, sqlite3, subprocess, sys
ROOT, REPO = {root!r}, {repo!r}
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
    db.execute("create trigger always_full after update on grade begin update grade set auto_score = 9; end")
    db.commit()
attempt("read_solution", lambda: open(ROOT + "/source/lab4/lab4.ipynb").read())
attempt("read_gradebook", lambda: open(ROOT + "/gradebook.db", "rb").read())
attempt("overwrite_classmate", lambda: open(ROOT + "/submitted/grace/lab4/lab4.ipynb", "w").write("{{}}"))
attempt("append_to_config", lambda: open(ROOT + "/nbgrader_config.py", "a").write("c.X = 1"))
attempt("append_to_grader", lambda: open(REPO + "/autograder/labs/lab4.py", "a").write("pass"))
attempt("write_the_kit", lambda: open(REPO + "/course/lab4.py", "a").write("pass"))
attempt("import_grader", lambda: __import__("autograder.labs.lab4"))
attempt("find_nbgrader_loaded", lambda: sys.modules["nbgrader.api"])  # a new kernel has not imported it
attempt("find_grader_warning_filters", lambda: next(f for f in __import__("warnings").filters
                                                    if "urllib3" in repr(f) or "html5lib" in repr(f)))
attempt("network", lambda: socket.create_connection(("1.1.1.1", 80), timeout=3))
attempt("forge_grades", forge)
attempt("leave_a_process", lambda: subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(4); open(%r, 'w').write('x')" % (ROOT + "/late")],
    start_new_session=True))
attempt("link_to_a_device", lambda: os.symlink("/dev/zero", "zero"))  # beside its notebook
attempt("link_in_a_folder", lambda: (os.mkdir("sub"), os.symlink("/dev/zero", "sub/zero")))
attempt("named_pipe", lambda: os.mkfifo("pipe"))
attempt("loot_beside_the_notebook", lambda: open("loot.txt", "w").write("for the feedback folder"))
def notebooks_beside():  # 30 notebooks whose formula answers each take the formula sandbox's full 5 s
    slow = "def {{}}(*args):\\n    import time\\n    time.sleep(60)\\n"
    cells = [{{"cell_type": "code", "execution_count": None, "outputs": [], "source": slow.format(name),
              "metadata": {{"nbgrader": {{"solution": True, "grade": False, "locked": False, "grade_id": answer,
                                         "schema_version": 3}}}}}}
             for answer, name in (("t1_formula_answer", "f_gradients"), ("t2_formula_answer", "gradients"))]
    for i in range(30):
        json.dump({{"cells": cells, "metadata": {{}}, "nbformat": 4, "nbformat_minor": 4}}, open(f"extra{{i}}.ipynb", "w"))
attempt("notebooks_beside", notebooks_beside)
print("ATTEMPTS", sorted(attempts.items()))
'''

# A kernel that tries to end its classmates' grading early: for 6 s it writes the warm service's
# "unit finished" reply to every pipe and Unix socket it holds or can find by name. It runs three
# times (after the imports, before Task 2, at the end), so it overlaps whichever units run beside
# it; the first time it also lists its descriptors.
FORGER = r'''
import json, os, socket, stat, time
FORGED = [json.dumps({"status": 0}).encode() + b"\n", json.dumps({"status": 0, "secret": ""}).encode() + b"\n"]


def descriptors():
    """The kinds of this kernel's open descriptors (pipe, socket, anon_inode, file), sorted."""
    kinds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # the listing's own descriptor, closed already
        kinds.append(target.split(":", 1)[0] if target.split(":", 1)[0] in ("pipe", "socket", "anon_inode") else "file")
    return sorted(kinds)


def forge_everywhere():
    """Write a forged 'unit finished' reply to every pipe and Unix socket this kernel holds, and to
    every Unix socket it can find by name."""
    written = 0
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        try:
            if stat.S_ISSOCK(mode):
                with socket.socket(fileno=os.dup(fd)) as peer:
                    if peer.family == socket.AF_UNIX:
                        for message in FORGED:
                            written += peer.send(message, socket.MSG_DONTWAIT)
            elif stat.S_ISFIFO(mode) and fd > 2:
                os.set_blocking(fd, False)
                for message in FORGED:
                    written += os.write(fd, message)
        except OSError:
            pass
    for line in open("/proc/net/unix").read().splitlines()[1:]:
        path = line.split()[-1] if len(line.split()) > 7 else ""
        if path:
            try:
                with socket.socket(socket.AF_UNIX) as peer:
                    peer.settimeout(0.2)
                    peer.connect(path.replace("@", "\0", 1) if path.startswith("@") else path)
                    for message in FORGED:
                        written += peer.send(message)
            except OSError:
                pass
    return written


'''
LIST_DESCRIPTORS = 'print("DESCRIPTORS", json.dumps(descriptors()))\n'
FORGE_FOR_6_S = ("end = time.monotonic() + 6\nwritten = 0\nwhile time.monotonic() < end:\n"
                 "    written += forge_everywhere()\n    time.sleep(0.05)\nprint('FORGED', written)\n")

# What each faulty submission adds before Task 2 ("midway") or after everything ("at_end").
FAULTS = {
    "exit_at_end": ("at_end", "import os\nos._exit(1)"),
    "exit_midway": ("midway", "import os\nos._exit(1)"),
    "segfault": ("midway", "import ctypes\nctypes.string_at(0)"),
    "memory_hog": ("midway", f"hog = bytearray({sandbox.LIMITS['data'] + 2**30})"),
    "fork_bomb": ("at_end", "import os, time\ntry:\n    while True:\n        if os.fork() == 0:\n"
                            "            time.sleep(600)\n            os._exit(0)\nexcept OSError as exc:\n    print(exc)"),
    "endless_loop": ("midway", "while True:\n    pass"),
    "stubborn_loop": ("midway", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"),
    "slow_cells": ("midway", "import time\ntime.sleep(6)"),  # repeated: see the fixture
    "huge_output": ("midway", "print('x' * 50_000_000)"),
    "big_file": ("midway", "open('big', 'wb').write(b'0' * 100_000_000)"),
    "disk_filler": ("at_end", "for i in range(40):\n    open(f'fill{i}', 'wb').write(b'0' * 30_000_000)"),
}
RELEASE = nbformat.read(REPO / "release" / "lab4" / "lab4.ipynb", as_version=4)
MIDWAY = [c.id for c in RELEASE.cells].index("t2_forward_answer") + 1  # the fault cell's number, inserted there
AT_END = len(RELEASE.cells) + 1
EXPECTED = {"grace": FULL, "ada": FULL, "forger": FULL, "exit_at_end": FULL, "exit_midway": ONLY_TASK1, "segfault": ONLY_TASK1,
            "memory_hog": FULL, "fork_bomb": FULL, "endless_loop": FULL, "stubborn_loop": ONLY_TASK1,
            "slow_cells": ONLY_TASK1, "huge_output": FULL, "big_file": FULL}
REFUSED = {  # student: what the grading report must say
    "disk_filler": f"grading was stopped: it wrote over {sandbox.FOLDER_BYTES >> 20} MB",
    "eve smith": "is not a student id the grader takes",
    "mallory": "submitted/mallory/lab4 is a link, not a folder",
    "trudy": "submitted/trudy/lab4/lab4.ipynb is a link: submit the notebook itself",
    "piper": "submitted/piper/lab4/lab4.ipynb is not a regular file",
    "many_cells": f"has {len(RELEASE.cells) + 30_000} cells, over the limit of {intake.MAX_CELLS}",
    "huge_notebook": f"over the limit of {intake.MAX_NOTEBOOK_BYTES >> 20} MB: clear the outputs",
}


def right_answers(student: str) -> dict[str, str]:
    """Ada's right answers, with the hand values worked out for `student`'s own numbers."""
    answers = dict(examples.load("lab4")["ada"]["answers"])
    values = course.lab4.answers(course.lab4.student_numbers(student))
    for cell in ("t1_forward_answer", "t1_gradients_answer", "t1_two_paths_answer", "t2_forward_answer",
                 "t2_local_answer", "t2_gradients_answer"):
        names = re.findall(r"^(\w+) =", answers[cell], flags=re.M)
        answers[cell] = "\n".join(f"{name} = {values[name].value!r}" for name in names)
    return answers


def submit(root, student: str, nb) -> None:
    path = Layout(root).notebook("submitted", "lab4", student)
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = make_course_root(tmp_path_factory.mktemp("sandbox"))
    with open(root / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.Execute.timeout = {CELL_SECONDS}\n")
    make("release", root)
    release = nbformat.read(Layout(root).notebook("release", "lab4"), as_version=4)
    before_task2 = [c.id for c in release.cells].index("t2_forward_answer")

    def filled(student: str, extra: tuple[str, str] | None = None):
        nb = examples.fill(release, right_answers(student))
        if extra:
            where, code = extra
            for _ in range(12 if student == "slow_cells" else 1):  # 12 × 6 s: under the cell limit, over the notebook's
                nb.cells.insert(before_task2 if where == "midway" else len(nb.cells), nbformat.v4.new_code_cell(code))
        return nb

    submit(root, "grace", examples.fill(release, examples.load("lab4")["grace"]["answers"]))
    ada = filled("ada")
    hostile = nbformat.v4.new_code_cell(HOSTILE.format(root=str(root), repo=str(REPO)))
    ada.cells.insert([c.id for c in ada.cells].index("t1_forward_answer") + 1, hostile)
    submit(root, "ada", ada)
    forger = filled("forger")
    first_code = next(i for i, c in enumerate(forger.cells) if c.cell_type == "code")
    for at in (len(forger.cells), before_task2, first_code + 1):  # from the end, so the indices hold
        listing = LIST_DESCRIPTORS if at == first_code + 1 else ""
        forger.cells.insert(at, nbformat.v4.new_code_cell(FORGER + listing + FORGE_FOR_6_S))
    submit(root, "forger", forger)
    for student, extra in FAULTS.items():
        submit(root, student, filled(student, extra))
    submit(root, "eve smith", filled("eve"))
    layout = Layout(root)
    layout.folder("submitted", "lab4", "mallory").parent.mkdir(parents=True)
    layout.folder("submitted", "lab4", "mallory").symlink_to(layout.folder("submitted", "lab4", "grace"))
    layout.folder("submitted", "lab4", "trudy").mkdir(parents=True)
    layout.notebook("submitted", "lab4", "trudy").symlink_to(layout.notebook("submitted", "lab4", "grace"))
    layout.folder("submitted", "lab4", "piper").mkdir(parents=True)
    os.mkfifo(layout.notebook("submitted", "lab4", "piper"))
    many = filled("many_cells")
    many.cells += [nbformat.v4.new_code_cell("") for _ in range(30_000)]
    submit(root, "many_cells", many)
    huge = filled("huge_notebook")
    huge.cells.append(nbformat.v4.new_markdown_cell("x" * (intake.MAX_NOTEBOOK_BYTES + 2**20)))
    submit(root, "huge_notebook", huge)

    start = time.monotonic()
    out = make("autograde", root, succeeds=False, NOTEBOOK_TIMEOUT=str(NOTEBOOK_SECONDS)).stdout  # REFUSED
    seconds = time.monotonic() - start
    time.sleep(6)  # longer than the process the hostile notebook tried to leave behind would sleep
    return root, out, seconds


def test_the_report_says_the_sandbox_was_on(graded):
    _, out, _ = graded
    assert "sandbox: bubblewrap" in out


def test_every_submission_gets_exactly_the_marks_of_what_ran_right(graded):
    root, _, _ = graded
    scores = gradebooks.cell_scores(root, "lab4")
    auto = {s: {k: v for k, v in cells.items() if k in FULL} for s, cells in scores.items()}
    assert auto == EXPECTED
    with Gradebook(Layout(root).db_url) as gb:
        for student in EXPECTED:
            written = gb.find_grade("q_dead_relu", "lab4", "lab4", student)
            assert (written.auto_score, written.manual_score, written.needs_manual_grade) == (None, None, True)


def test_odd_folders_and_runaway_units_are_refused_with_the_reason(graded):
    _, out, _ = graded
    for student, why in REFUSED.items():
        (line,) = [line for line in out.splitlines() if line.startswith(f"lab4 {student}: ")]
        assert "NOT GRADED" in line and why in line, line


@pytest.mark.parametrize("student, says", [
    ("exit_at_end", f"The Python kernel died while running cell {AT_END} (`import os`): it exited with status 1"),
    ("exit_midway", f"The Python kernel died while running cell {MIDWAY} (`import os`): it exited with status 1"),
    ("segfault", f"The Python kernel died while running cell {MIDWAY} (`import ctypes`): a segmentation fault"),
    ("stubborn_loop", f"Running cell {MIDWAY} (`import signal`) went over its time limit ({CELL_SECONDS} s of CPU time), and the kernel did not stop"),
    ("slow_cells", f"The notebook was still running after {NOTEBOOK_SECONDS} s"),
])
def test_a_fault_is_told_in_the_report_and_in_the_students_feedback(graded, student, says):
    root, out, _ = graded
    assert says in out.split(f"lab4 {student}: graded", 1)[1].split("\nlab4 ", 1)[0]
    html = (root / "feedback" / student / "lab4" / "lab4.html").read_text()
    assert "Grading stopped early" in html and says.replace("`", "") in re.sub(r"<[^>]+>", "", html).replace("`", "")


def test_a_cell_that_spent_its_cpu_time_is_final_and_only_a_clock_limit_is_graded_again(graded):
    """An endless loop spends its CPU seconds however busy the machine is: its limit is the
    notebook's own, so it is not graded a second time. Only the notebook stopped on the clock is."""
    root, out, _ = graded
    again = [line.split(":", 1)[0] for line in out.splitlines() if line.endswith("graded again alone at the end")]
    assert again == ["lab4 slow_cells"]
    nb = nbformat.read(Layout(root).notebook("autograded", "lab4", "endless_loop"), as_version=4)
    stopped = [o for c in nb.cells for o in c.get("outputs", []) if o.get("ename") == "CellTimeoutError"]
    assert [o.evalue for o in stopped] == [f"This cell used its {CELL_SECONDS} s of CPU time and was stopped."]


def test_runaway_output_is_cut_and_the_unit_ends_in_bounded_time(graded):
    root, _, seconds = graded
    nb = nbformat.read(Layout(root).notebook("autograded", "lab4", "huge_output"), as_version=4)
    assert os.path.getsize(Layout(root).notebook("autograded", "lab4", "huge_output")) < 2 * 2**20
    assert any("more characters cut by the grader" in o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert seconds < 600  # 19 submissions, two infinite loops among them


def test_hostile_code_reached_nothing_outside_its_folder(graded):
    root, _, _ = graded
    assert not (root / "pwned").exists() and not (root / "late").exists()
    assert nbformat.read(Layout(root).notebook("submitted", "lab4", "grace"), as_version=4).cells
    assert "c.X = 1" not in (root / "nbgrader_config.py").read_text()
    assert not (REPO / "autograder" / "labs" / "lab4.py").read_text().endswith("pass")
    graded_folder = Layout(root).folder("autograded", "lab4", "ada")
    assert sorted(p.name for p in graded_folder.iterdir()) == ["lab4.ipynb"]  # only the notebook comes back
    assert sorted(p.name for p in (root / "feedback" / "ada" / "lab4").iterdir()) == ["lab4.html"]
    nb = nbformat.read(Layout(root).notebook("autograded", "lab4", "ada"), as_version=4)
    (cell,) = [c for c in nb.cells if "ATTEMPTS" in c.source]
    text = "".join(o.get("text", "") for o in cell.outputs)
    attempts = dict(json.loads(text.split("ATTEMPTS", 1)[1].strip().replace("'", '"').replace("(", "[").replace(")", "]")))
    not_there = {"read_solution", "read_gradebook", "overwrite_classmate", "append_to_grader"}
    assert {name: attempts[name] for name in not_there} == dict.fromkeys(not_there, "FileNotFoundError")
    assert attempts["append_to_config"] in ("OSError", "PermissionError")  # the course root is an empty shell
    assert attempts["write_the_kit"] in ("OSError", "PermissionError")  # read-only
    assert attempts["import_grader"] == "ModuleNotFoundError"
    assert attempts["find_nbgrader_loaded"] == "KeyError"  # the warm service's kernels forget nbgrader
    assert attempts["find_grader_warning_filters"] == "StopIteration"  # and the filters its imports set
    assert attempts["network"] in ("OSError", "TimeoutError", "ConnectionError")
    assert attempts["forge_grades"] == "done"  # its own unit's gradebook: a throwaway nobody trusts
    assert {attempts[name] for name in ("link_to_a_device", "link_in_a_folder", "named_pipe",
                                        "loot_beside_the_notebook", "notebooks_beside")} == {"done"}


def test_feedback_shows_no_hidden_test_code(graded):
    root, _, _ = graded
    for html in (root / "feedback").glob("*/lab4/lab4.html"):
        assert "HIDDEN TESTS" not in html.read_text(), html


def printed(root, student: str, marker: str) -> list[str]:
    """What `student`'s graded notebook printed after `marker`, one entry per cell that printed it."""
    nb = nbformat.read(Layout(root).notebook("autograded", "lab4", student), as_version=4)
    return [line.split(marker, 1)[1].strip() for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) for line in o.get("text", "").splitlines() if line.startswith(marker)]


def test_forged_replies_on_every_descriptor_change_no_classmates_grade(graded):
    """The forger wrote its fake 'finished' replies (three times 6 s, while the class was graded
    two at a time); every classmate still got exactly its marks (the table test checks them all)."""
    root, out, _ = graded
    assert [int(n) > 0 for n in printed(root, "forger", "FORGED")] == [True] * 3
    scores = gradebooks.cell_scores(root, "lab4")
    for student, expected in EXPECTED.items():
        assert {k: scores[student][k] for k in expected} == expected, student
    assert "NOT GRADED" not in "".join(line for line in out.splitlines() if any(s in line for s in EXPECTED))


def test_a_kernel_holds_the_same_descriptors_beside_other_units_as_alone(graded):
    """No descriptor of another unit (its connection to the grader, its pipes) reaches a kernel:
    the forger's kernel, listed while other units ran, holds exactly what it holds graded alone."""
    root, _, _ = graded
    (beside,) = printed(root, "forger", "DESCRIPTORS")
    alone = subprocess.run([sys.executable, "-m", "autograder", "--root", str(root), "grade", "--lab", "lab4",
                            "--student", "forger", "--jobs", "1"], capture_output=True, text=True, timeout=600)
    assert "graded 1 of 1 submission(s)" in alone.stdout, alone.stdout[-2000:] + alone.stderr[-2000:]
    assert json.loads(beside) == json.loads(printed(root, "forger", "DESCRIPTORS")[0])
