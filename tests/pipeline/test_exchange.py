"""nbgrader's exchange end to end, with the instructor and two students as separate Unix users,
each with its own HOME, as on a JupyterHub: release_assignment → fetch_assignment → the student
answers → submit → collect → our grader → release_feedback → fetch_feedback.

The students are named after two of Lab 4's examples (`ada` answers everything right,
`sigmoid_slip` takes σ′ of the sigmoid's input), so each one's numbers are those the example's
answers were worked on, and each must get exactly the example's expected scores. A third, `eve`,
attacks from her own account: she hands in a folder named for ada, and links the instructor's
solution notebook into her own hand-in. The permissions are `make hub`'s (`hub.lock_down`)."""

import grp
import html
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

import course.lab4
from autograder.pipeline import examples, gradebooks
from autograder.pipeline.hub import lock_down, unlock
from browser import browser, screenshot
from unix_users import accounts, as_user, base_interpreter, reachable_by_everyone, require_root

from helpers import REPO, make_course_root

pytestmark = pytest.mark.slow
LAB = "lab4"
COURSE = "autograd-labs"
INSTRUCTOR = "agl_instructor"
STUDENTS = ["ada", "sigmoid_slip"]  # honest
ATTACKER = "eve"  # hands in for ada and links the solution into her own hand-in; never graded


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The accounts, a world-writable exchange (mode 1777, as nbgrader asks), the instructor's
    course in their HOME, released with `python -m autograder release`; then `make hub`'s
    permissions (private HOMEs and course, the repository closed to students), undone afterwards."""
    require_root()
    top = tmp_path_factory.mktemp("hub")
    exchange = top / "exchange"
    exchange.mkdir(mode=0o1777)
    exchange.chmod(0o1777)
    with reachable_by_everyone(base_interpreter(), REPO, top), \
            accounts([INSTRUCTOR, *STUDENTS, ATTACKER], top / "home") as homes:
        course = make_course_root(homes[INSTRUCTOR] / "course")
        shutil.copytree(REPO / "release", course / "release")
        subprocess.run([sys.executable, "-m", "autograder", "--root", str(course), "release", "--lab", LAB],
                       check=True, capture_output=True)
        subprocess.run(["chown", "-R", f"{INSTRUCTOR}:", str(course)], check=True)
        changes = lock_down(INSTRUCTOR, homes, course, top)
        try:
            yield {"exchange": exchange, "homes": homes, "course": course}
        finally:
            unlock(changes)


def run(hub, user: str, *args: str, cwd=None, check: bool = True) -> subprocess.CompletedProcess:
    """`args` as `user`, in the course (instructor) or their HOME (students). Every user finds the
    exchange as a hub's users would: in their nbgrader configuration (here, by environment);
    students have the student configuration, as `per_role` in jupyterhub_config.py gives them."""
    home = hub["homes"][user]
    env = {"AUTOGRAD_LABS_EXCHANGE": str(hub["exchange"])}
    if user != INSTRUCTOR:
        env["JUPYTER_CONFIG_PATH"] = str(REPO / "jupyter" / "student")
    return as_user(user, home, list(args), cwd or (hub["course"] if user == INSTRUCTOR else home),
                   env=env, check=check)


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
    attack(hub, staged)
    log["collect"] = run(hub, INSTRUCTOR, "nbgrader", "collect", LAB)
    log["grade"] = run(hub, INSTRUCTOR, "python", "-m", "autograder", "grade", "--lab", LAB, "--jobs", "2",
                       check=False)  # eve's hand-in has no notebook: not graded, so the grader exits 1
    log["release_feedback"] = run(hub, INSTRUCTOR, "nbgrader", "release_feedback", LAB)
    for student in [*STUDENTS, ATTACKER]:
        log[f"fetch_feedback {student}"] = student_nbgrader(hub, student, "fetch_feedback", LAB,
                                                            check=student != ATTACKER)
    return log


def attack(hub, staged: Path) -> None:
    """eve, after ada has submitted: a folder in inbound named for ada, newer than ada's, with the
    blank release in it (and the two files nbgrader's submit adds); then her own hand-in,
    submitted as usual, with its notebook replaced by a link to the instructor's solution
    notebook, and a hard link to that notebook beside it (made here by root: Linux's
    protected_hardlinks stops a student making one to a file she cannot write)."""
    student_nbgrader(hub, ATTACKER, "fetch_assignment", LAB)
    student_nbgrader(hub, ATTACKER, "submit", LAB)
    forgery = staged / "forgery"
    forgery.mkdir(mode=0o755)
    shutil.copy(REPO / "release" / LAB / f"{LAB}.ipynb", forgery / f"{LAB}.ipynb")
    (forgery / "timestamp.txt").write_text(FORGED_TIME)
    (forgery / "submission_secret.txt").write_text(secrets.token_hex(64))
    for path in forgery.iterdir():
        path.chmod(0o644)
    run(hub, ATTACKER, "cp", "-r", str(forgery), str(inbox(hub) / f"ada+{LAB}+{FORGED_TIME}+forged"))
    own = own_hand_in(hub, ATTACKER)  # her submit printed its name
    run(hub, ATTACKER, "ln", "-sf", str(solution(hub)), str(own / f"{LAB}.ipynb"))
    os.link(solution(hub), own / "answers.ipynb")


FORGED_TIME = "2099-01-01 00:00:00.000000 UTC"  # newer than anything handed in


def inbox(hub) -> Path:
    return hub["exchange"] / COURSE / "inbound"


def own_hand_in(hub, student: str) -> Path:
    """The folder `student` handed in (not the one eve forged in ada's name)."""
    (folder,) = [p for p in inbox(hub).glob(f"{student}+{LAB}+*") if p.owner() == student]
    return folder


def solution(hub) -> Path:
    """The instructor's solution notebook (built from source/ by the release)."""
    return hub["course"] / "source" / LAB / f"{LAB}.ipynb"


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
    assert len(own_hand_in(hub, "ada").name.rsplit("+", 1)[1]) >= 12, own_hand_in(hub, "ada").name
    tamper = run(hub, "sigmoid_slip", "cp", "/dev/null", str(outbound / LAB / f"{LAB}.ipynb"), check=False)
    assert tamper.returncode != 0 and "Permission denied" in tamper.stderr, tamper


def test_collected_submissions_get_exactly_their_examples_scores(hub, round_trip):
    """ada and sigmoid_slip are graded on their own work; eve's hand-in arrives without its
    notebook (a link), so hers is not graded."""
    assert f"graded {len(STUDENTS)} of {len(STUDENTS) + 1} submission(s)" in round_trip["grade"].stdout
    assert round_trip["grade"].returncode == 1 and "1 submission(s) could not be graded" in round_trip["grade"].stderr
    scores = gradebooks.cell_scores(hub["course"], LAB)
    for student in STUDENTS:
        assert (hub["course"] / "submitted" / student / LAB / f"{LAB}.ipynb").owner() == INSTRUCTOR
        assert scores[student] == {**scores[student], **examples.load(LAB)[student]["expected"]}, student


def full_marks() -> int:
    """The lab's autograded points: what ada, right throughout, gets."""
    return sum(examples.load(LAB)["ada"]["expected"].values())


def test_each_student_fetches_their_own_feedback_and_no_one_elses(hub, round_trip):
    points = {student: sum(examples.load(LAB)[student]["expected"].values()) for student in STUDENTS}
    for student in STUDENTS:
        (html,) = (hub["homes"][student] / LAB / "feedback").glob(f"*/{LAB}.html")
        assert html.owner() == student
        page = html.read_text()
        assert f"Autograded: {points[student]} of {full_marks()} points" in page
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


def denied(hub, user: str, *args: str) -> None:
    attempt = run(hub, user, *args, check=False)
    assert attempt.returncode != 0 and "Permission denied" in attempt.stderr, (args, attempt.stdout, attempt.stderr)


def test_a_student_reads_nothing_of_the_instructors_classmates_or_the_graders(hub, round_trip):
    """As `make hub` lays it out: the instructor's course (solutions, gradebook, hidden tests),
    a classmate's HOME and hand-in (by its exact name), and the repository's solutions and grader
    are closed to a student; the kit and the student configuration stay open."""
    course, ada, handed_in = hub["course"], hub["homes"]["ada"], own_hand_in(hub, "ada")
    for args in (["ls", course], ["cat", course / "gradebook.db"], ["cat", solution(hub)],
                 ["ls", ada], ["cat", ada / LAB / f"{LAB}.ipynb"], ["ls", handed_in],
                 ["cat", handed_in / f"{LAB}.ipynb"], ["cp", "/dev/null", handed_in / f"{LAB}.ipynb"],
                 ["cat", REPO / "source" / LAB / f"{LAB}.py"], ["ls", REPO / "autograder"],
                 ["cat", REPO / "examples" / f"{LAB}.toml"], ["python", "-c", "import autograder.labs.lab4"]):
        denied(hub, ATTACKER, *map(str, args))
    run(hub, ATTACKER, "python", "-c", "import course.lab4")
    run(hub, ATTACKER, "cat", str(REPO / "jupyter" / "student" / "nbgrader_config.py"))


def test_a_hand_in_is_readable_by_its_student_and_the_instructor_only(hub, round_trip):
    instructors_group = pwd.getpwnam(INSTRUCTOR).pw_gid
    for student in STUDENTS:
        handed_in = own_hand_in(hub, student)
        for path in [handed_in, *handed_in.rglob("*")]:
            info = path.lstat()
            assert (info.st_uid, info.st_gid) == (pwd.getpwnam(student).pw_uid, instructors_group), path
            assert not info.st_mode & 0o007, f"{path}: mode {info.st_mode:o}"


def test_a_folder_handed_in_for_a_classmate_is_refused_and_named(hub, round_trip):
    """Her own work is what ada is graded on (her scores: the test above)."""
    forged = inbox(hub) / f"ada+{LAB}+{FORGED_TIME}+forged"
    assert f"Refused {forged}: it is owned by {ATTACKER}, not by ada" in round_trip["collect"].stderr
    collected = hub["course"] / "submitted" / "ada" / LAB
    assert (collected / "timestamp.txt").read_text() == (own_hand_in(hub, "ada") / "timestamp.txt").read_text()


def test_links_in_a_hand_in_are_not_collected_and_no_solution_reaches_feedback(hub, round_trip):
    own = own_hand_in(hub, ATTACKER)
    log = round_trip["collect"].stderr
    assert f"Skipped {own / f'{LAB}.ipynb'}: a link (links are never followed)" in log
    assert f"Skipped {own / 'answers.ipynb'}: owned by {INSTRUCTOR}, not by the submission's owner {ATTACKER}" in log
    collected = hub["course"] / "submitted" / ATTACKER / LAB
    assert sorted(p.name for p in collected.iterdir()) == ["submission_secret.txt", "timestamp.txt"]
    solutions = solution_lines(hub)
    seen = [hub["course"] / step / ATTACKER for step in ("submitted", "autograded", "feedback")]
    seen.append(hub["homes"][ATTACKER] / LAB / "feedback")
    for path in [p for folder in seen for p in folder.rglob("*") if p.is_file()]:
        leaked = [line for line in solutions if line in readable_text(path)]
        assert not leaked, (path, leaked[:3])


def solution_lines(hub) -> set[str]:
    """The lines of the instructor's solution notebook that the released notebook lacks (its
    solutions and hidden tests), leaving out short ones that could appear anywhere."""
    def lines(path):
        return {line.strip() for cell in nbformat.read(path, as_version=4).cells for line in cell.source.splitlines()}
    lines_of_release = lines(hub["course"] / "release" / LAB / f"{LAB}.ipynb")
    return {line for line in lines(solution(hub)) - lines_of_release if len(line) > 20}


def readable_text(path: Path) -> str:
    """What a person reading `path` sees: a notebook's cells, a page's text, else the file."""
    if path.suffix == ".ipynb":
        return "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
    text = path.read_text(errors="replace")
    return html.unescape(re.sub(r"<[^>]+>", "", text)) if path.suffix == ".html" else text


# The same term on a JupyterHub (`make hub`), driven in a browser: a student logs in, fetches
# Lab 4 from the Assignments tab, works, validates and submits; the instructor releases, collects
# and scores a written answer in the formgrader, and feedback goes back the same way.

HUB_INSTRUCTOR, HUB_STUDENT = "agl_teacher", "grace"
HOSTILE = "mallory"  # Lab 4's example who fools the kit in her kernel; she hands in from a terminal
HUB_PASSWORD = secrets.token_urlsafe(12)


def task2_forward(student: str, **changed: float) -> str:
    """Task 2's forward values for the student's numbers, typed as a student types them (but `changed`)."""
    n = course.lab4.student_numbers(student)
    right = course.lab4.task2_values(n["x1"], n["w1"], n["w2"], n["y"])
    values = {k: right[k] for k in ("m1", "r", "m2", "yhat", "s", "loss")} | changed
    return "\n".join(f"{name} = {value:.6g}" for name, value in values.items())


WRONG_FORWARD = task2_forward(HUB_STUDENT, loss=2.0)  # not s², and no slip's value: the check says so
RIGHT_FORWARD = task2_forward(HUB_STUDENT)


@pytest.fixture(scope="module")
def hub_server(tmp_path_factory):
    """`make hub` for one instructor and one student, Lab 4 only and graded on submission, on a free port."""
    require_root()
    if not shutil.which("npm"):
        message = "no npm (Debian: apt install npm): the hub's proxy, configurable-http-proxy, comes from npm"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    state = tmp_path_factory.mktemp("jupyterhub")
    port = free_port()
    log = (state.parent / "hub.log").open("w")
    command = ["make", "--no-print-directory", "hub", f"HUB_STATE={state}", f"HUB_PORT={port}", f"LAB={LAB}",
               f"ON_SUBMIT={LAB}",
               f"HUB_INSTRUCTOR={HUB_INSTRUCTOR}", f"HUB_STUDENTS={HUB_STUDENT},{HOSTILE}"]
    remove = ["make", "--no-print-directory", "hub-remove", f"HUB_STATE={state}", f"HUB_INSTRUCTOR={HUB_INSTRUCTOR}",
              f"HUB_STUDENTS={HUB_STUDENT},{HOSTILE}"]
    subprocess.run(remove, cwd=REPO, capture_output=True)  # accounts left by a run that was killed
    with reachable_by_everyone(base_interpreter(), REPO, state):
        server = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                  env={**os.environ, "HUB_PASSWORD": HUB_PASSWORD})
        try:
            wait_for(f"http://127.0.0.1:{port}/hub/login", server, state.parent / "hub.log")
            yield {"url": f"http://127.0.0.1:{port}", "state": state,
                   "course": state / "home" / HUB_INSTRUCTOR / "course"}
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
            subprocess.run(remove, cwd=REPO, capture_output=True)


def free_port() -> int:
    """A free port whose next two (the hub's API and the proxy's) are free too."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65000 and all(port_free(port + k) for k in (1, 2)):
            return port


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def wait_for(url: str, server: subprocess.Popen, log, seconds: int = 300) -> None:
    for _ in range(seconds * 2):
        if server.poll() is not None:
            raise AssertionError(f"make hub exited {server.returncode}:\n{log.read_text()[-4000:]}")
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"no hub at {url} after {seconds} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def browser_session():
    with browser() as launched:
        yield launched


def log_in(browser_session, hub_server, user: str):
    """A fresh browser context for `user`, logged in, on their JupyterLab."""
    page = browser_session.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{hub_server['url']}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", HUB_PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(f"**/user/{user}/lab**", timeout=180_000)
    page.locator(".jp-LabShell").wait_for()
    return page


@pytest.fixture(scope="module")
def instructor(browser_session, hub_server):
    return log_in(browser_session, hub_server, HUB_INSTRUCTOR)


@pytest.fixture(scope="module")
def student(browser_session, hub_server):
    return log_in(browser_session, hub_server, HUB_STUDENT)


def formgrader(page, hub_server, path: str = "manage_assignments"):
    page.goto(f"{hub_server['url']}/user/{HUB_INSTRUCTOR}/formgrader/{path}")
    return page


def assignments_tab(page):
    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
    page.locator(".lm-Menu-itemLabel", has_text="Assignment List").click()
    page.get_by_text("Released assignments").wait_for()
    return page


def notebook(page):
    """The notebook panel in front."""
    return page.locator(".jp-NotebookPanel:visible")


def cell(page, grade_id: str):
    index = [c.metadata.get("nbgrader", {}).get("grade_id") for c in
             nbformat.read(REPO / "release" / LAB / f"{LAB}.ipynb", as_version=4).cells].index(grade_id)
    return notebook(page).locator(".jp-Notebook .jp-Cell").nth(index)


def test_hub_keeps_its_secrets_to_root_and_the_solutions_to_the_staff(hub_server):
    """What `make hub` closed: the hub's database and cookie secret are root's alone, each HOME
    and the instructor's course their owner's, the repository's solutions and grader the staff
    group's."""
    for name in ("jupyterhub.sqlite", "jupyterhub_cookie_secret"):
        info = (hub_server["state"] / name).stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600), name
    for folder in [Path(pwd_home(user)) for user in (HUB_INSTRUCTOR, HUB_STUDENT, HOSTILE)] + [hub_server["course"]]:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for name in ("source", "autograder", "examples", ".git"):
        info = (REPO / name).stat()
        assert grp.getgrgid(info.st_gid).gr_name == "autograd-labs-staff" and not info.st_mode & 0o007, name
    assert HUB_INSTRUCTOR in grp.getgrnam("autograd-labs-staff").gr_mem


# Each step of the course's life on the hub is a fixture that needs the steps before it, so that
# every test runs in any order, or alone, and finds the hub in the state it asserts on.

@pytest.fixture(scope="module")
def released(instructor, hub_server):
    page = formgrader(instructor, hub_server)
    click_and_confirm(page, LAB, "release", f"Successfully released '{LAB}'.")
    screenshot(page, "hub-01-instructor-released")
    return hub_server["state"] / "exchange" / COURSE / "outbound" / LAB / f"{LAB}.ipynb"


def test_hub_instructor_releases_lab4_from_the_formgrader(released):
    assert released.is_file()


@pytest.fixture(scope="module")
def fetched(student, released):
    """The student's Nbgrader menu, then Fetch; the notebook it wrote."""
    page = student
    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
    items = page.locator(".lm-Menu-itemLabel").all_inner_texts()
    page.keyboard.press("Escape")
    assignments_tab(page)
    page.get_by_role("button", name="Fetch").click()
    page.get_by_role("button", name="Submit").wait_for()
    screenshot(page, "hub-02-student-fetched")
    return {"menu": items, "notebook": Path(pwd_home(HUB_STUDENT)) / LAB / f"{LAB}.ipynb"}


def test_hub_student_has_no_instructor_tools_and_fetches_lab4(fetched):
    items = fetched["menu"]
    assert "Assignment List" in items and not {"Formgrader", "Create Assignment", "Course List"} & set(items), items
    assert fetched["notebook"].owner() == HUB_STUDENT


def pwd_home(user: str) -> str:
    return pwd.getpwnam(user).pw_dir


@pytest.fixture(scope="module")
def opened(student, hub_server, fetched):
    """The student's answers go in (all but Task 2's forward pass, which is typed in the browser
    below); the notebook opens, and every cell above that answer runs."""
    notebook_file = fetched["notebook"]
    answers = dict(examples.load(LAB)[HUB_STUDENT]["answers"])
    answers["t2_forward_answer"] = "# m1, r, m2, yhat, s and loss for your numbers\n"
    staged = hub_server["state"] / "grace.ipynb"
    nbformat.write(examples.fill(nbformat.read(notebook_file, as_version=4), answers), staged)
    staged.chmod(0o644)
    as_user(HUB_STUDENT, notebook_file.parent.parent, ["cp", str(staged), str(notebook_file)],
            cwd=notebook_file.parent)
    page = student
    page.goto(f"{hub_server['url']}/user/{HUB_STUDENT}/lab/tree/{LAB}/{LAB}.ipynb?reset")
    notebook(page).locator(".jp-Notebook-ExecutionIndicator[data-status=idle]").wait_for(timeout=120_000)
    page.wait_for_timeout(2000)  # the kernel's language_info arrives after it is idle
    dirty = "jp-mod-dirty" in page.locator(".lm-TabBar-tab.jp-mod-current").get_attribute("class")
    cell(page, "t2_forward_answer").click()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Above Selected Cell").click()
    output = cell(page, "my_numbers").locator(".jp-OutputArea-output")
    output.first.wait_for(timeout=120_000)
    output.first.scroll_into_view_if_needed()  # JupyterLab renders no text of a cell off screen
    page.wait_for_timeout(500)
    screenshot(page, "hub-03-student-numbers")
    return {"dirty": dirty, "numbers": output.first.inner_text()}


def test_hub_student_opens_the_lab_unmodified_and_sees_their_numbers(opened):
    assert not opened["dirty"]
    assert f"Student id: '{HUB_STUDENT}' (from JUPYTERHUB_USER)" in opened["numbers"]


def type_and_run_answer(page, grade_id: str, text: str) -> str:
    """Replace the answer cell's code with `text`, run it and its check; the check's output."""
    answer = cell(page, grade_id)
    answer.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.type(text)
    page.keyboard.press("Shift+Enter")
    page.keyboard.press("Shift+Enter")
    check = cell(page, grade_id.removesuffix("_answer"))
    check.locator(".jp-InputArea-prompt:not(:has-text('*'))").wait_for()
    page.wait_for_timeout(500)
    return "\n".join(check.locator(".jp-OutputArea-output").all_inner_texts())


@pytest.fixture(scope="module")
def checked(student, opened):
    """A wrong forward pass typed in, run, saved and validated; then the right one."""
    page = student
    failed = type_and_run_answer(page, "t2_forward_answer", WRONG_FORWARD)
    screenshot(page, "hub-04-check-fails")
    save(page)
    report = validate(page, "The following cell failed:")
    screenshot(page, "hub-05-validate-names-the-mistake")
    close_dialog(page)
    passed = type_and_run_answer(page, "t2_forward_answer", RIGHT_FORWARD)
    screenshot(page, "hub-06-check-passes")
    save(page)
    return {"failed": failed, "report": report, "passed": passed}


def test_hub_student_sees_a_visible_check_fail_then_pass(checked):
    assert "`loss` = 2 is not right. loss = s²." in checked["failed"], checked["failed"]
    report = checked["report"]
    assert "`loss` = 2 is not right. loss = s²." in report, report
    assert "Traceback" not in report and "site-packages" not in report and str(REPO) not in report, report
    assert "✔ m1, r, m2, yhat, s, loss: all 6 values are right." in checked["passed"], checked["passed"]


def save(page) -> None:
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !document.querySelector('.lm-TabBar-tab.jp-mod-current').classList.contains('jp-mod-dirty')")


def validate(page, verdict: str) -> str:
    """Press Validate; the dialog's text once it shows `verdict` (the dialog stays open)."""
    notebook(page).get_by_role("button", name="Validate").click()
    dialog = page.locator(".jp-Dialog")
    dialog.get_by_text(verdict).first.wait_for(timeout=180_000)
    text = dialog.inner_text()
    return text


def close_dialog(page) -> None:
    page.locator(".jp-Dialog").get_by_role("button", name="OK").click()
    page.locator(".jp-Dialog").wait_for(state="detached")


@pytest.fixture(scope="module")
def validated(student, checked):
    text = validate(student, "Success! Your notebook passes all the tests.")
    screenshot(student, "hub-07-validate-dialog")
    close_dialog(student)
    return text


def test_hub_validate_button_says_the_notebook_passes(validated):
    assert "Validation Results" in validated, validated


@pytest.fixture(scope="module")
def submitted(student, hub_server, validated):
    page = assignments_tab(student)
    page.get_by_role("button", name="Submit").click()
    page.locator("#submitted_assignments_list").get_by_text(LAB).wait_for()
    clicked = time.monotonic()
    screenshot(page, "hub-08-submitted")
    inbound = hub_server["state"] / "exchange" / COURSE / "inbound"
    return {"at": clicked, "folders": [p.name for p in inbound.iterdir() if p.name.startswith(f"{HUB_STUDENT}+{LAB}+")]}


def test_hub_student_submits(submitted):
    assert submitted["folders"]


@pytest.fixture(scope="module")
def feedback_on_submit(student, hub_server, submitted):
    """Nobody else does anything: the Assignments tab says feedback is there to fetch, the
    student fetches it and opens it."""
    page = student
    submitted_list = page.locator("#submitted_assignments_list")
    available = submitted_list.get_by_text("(feedback available to fetch)")
    for _ in range(150):  # the student presses the list's refresh button now and then
        page.locator("#refresh_assignments_list").click()
        try:
            available.wait_for(timeout=2000)
            break
        except PlaywrightTimeout:
            continue
    seconds = time.monotonic() - submitted["at"]
    screenshot(page, "hub-08a-feedback-available")
    submitted_list.get_by_role("button", name="Fetch Feedback").click()
    submitted_list.get_by_text("(view feedback)").wait_for(timeout=60_000)
    (html,) = (Path(pwd_home(HUB_STUDENT)) / LAB / "feedback").glob(f"*/{LAB}.html")
    page.goto(f"{hub_server['url']}/user/{HUB_STUDENT}/files/{LAB}/feedback/{html.parent.name}/{LAB}.html")
    page.get_by_text("Graded on submission: attempt 1").wait_for()
    screenshot(page, "hub-08b-feedback-on-submit")
    page.goto(f"{hub_server['url']}/user/{HUB_STUDENT}/lab")
    page.locator(".jp-LabShell").wait_for()
    print(f"\nhub: submit to feedback available to fetch: {seconds:.1f} s")
    return {"seconds": seconds, "html": html.read_text(), "owner": html.owner(),
            "gradebook": gradebooks.cell_scores(hub_server["course"], LAB)[HUB_STUDENT]}


def test_hub_feedback_arrives_after_submit_with_no_instructor_action(feedback_on_submit):
    """The score at the top is the example's full marks: grace answered everything right."""
    feedback = feedback_on_submit["html"]
    assert f"Autograded: {full_marks()} of {full_marks()} points" in feedback
    assert "Graded on submission: attempt 1, handed in at" in feedback
    assert feedback_on_submit["owner"] == HUB_STUDENT
    scores = feedback_on_submit["gradebook"]  # what the instructor's formgrader shows
    assert scores == {**scores, **examples.load(LAB)[HUB_STUDENT]["expected"]}


def click_and_confirm(page, row_text: str, column: str, success: str) -> str:
    """Click a Manage Assignments button and return the log of its success dialog."""
    name = page.locator("td", has_text=re.compile(rf"^\s*{re.escape(row_text)}\s*$"))  # lab4, not lab4b
    page.locator("tr", has=name).locator(f"td.{column} a").click()
    dialog = page.locator(".modal-dialog:visible")
    dialog.get_by_text(success).wait_for(timeout=120_000)
    text = dialog.inner_text()
    dialog.get_by_role("button", name="OK").click()
    return text


@pytest.fixture(scope="module")
def terminal_hand_ins(hub_server, released):
    """A hub terminal has what the student's server has: the hub's environment and the student
    configuration, which names the course and the exchange. From it, mallory also puts a folder
    named for grace in inbound (the formgrader's Collect refuses it, below)."""
    home = Path(pwd_home(HOSTILE))
    env = {"AUTOGRAD_LABS_EXCHANGE": str(hub_server["state"] / "exchange"),
           "JUPYTER_CONFIG_PATH": str(REPO / "jupyter" / "student")}
    as_user(HOSTILE, home, ["nbgrader", "fetch_assignment", LAB], cwd=home, env=env)
    fetched = home / LAB / f"{LAB}.ipynb"
    staged = hub_server["state"] / f"{HOSTILE}.ipynb"
    nbformat.write(examples.fill(nbformat.read(fetched, as_version=4), examples.load(LAB)[HOSTILE]["answers"]),
                   staged)
    staged.chmod(0o644)
    as_user(HOSTILE, home, ["cp", str(staged), str(fetched)], cwd=home)
    handed_in = as_user(HOSTILE, home, ["nbgrader", "submit", LAB], cwd=home, env=env)
    # the hand-in for grace: the blank lab, newer than hers
    forgery = hub_server["state"] / "forgery"
    forgery.mkdir(mode=0o755)
    shutil.copy(REPO / "release" / LAB / f"{LAB}.ipynb", forgery / f"{LAB}.ipynb")
    (forgery / f"{LAB}.ipynb").chmod(0o644)
    as_user(HOSTILE, home, ["cp", "-r", str(forgery), str(forged_for_grace(hub_server))], cwd=home)
    return handed_in


def test_hub_student_can_also_fetch_and_submit_from_a_terminal(terminal_hand_ins):
    assert f"Submitted as: {COURSE} {LAB}" in terminal_hand_ins.stderr, terminal_hand_ins.stderr


def forged_for_grace(hub_server) -> Path:
    return hub_server["state"] / "exchange" / COURSE / "inbound" / f"{HUB_STUDENT}+{LAB}+2099-01-01 00:00:00 UTC+x"


def graded_on_submit(hub_server, student: str) -> None:
    """Wait until the hub's service has released a page for each of `student`'s hand-ins."""
    from nbgrader.utils import notebook_hash
    inbound = hub_server["state"] / "exchange" / COURSE / "inbound"
    pages = hub_server["state"] / "exchange" / COURSE / "feedback"
    for _ in range(600):
        keys = [(folder / "submission_secret.txt").read_text() for folder in inbound.glob(f"{student}+{LAB}+*")
                if (folder / "submission_secret.txt").exists()]
        if keys and all((pages / f"{notebook_hash(secret=key, notebook_id=LAB)}.html").exists() for key in keys):
            return
        time.sleep(0.5)
    raise AssertionError(f"no feedback for {student}'s hand-ins after 300 s")


@pytest.fixture(scope="module")
def collected(instructor, hub_server, submitted, terminal_hand_ins):
    for student in (HUB_STUDENT, HOSTILE):  # the service is done: the instructor's grading does not wait for it
        graded_on_submit(hub_server, student)
    page = formgrader(instructor, hub_server)
    log = click_and_confirm(page, LAB, "collect", f"Successfully collected submissions of '{LAB}'")
    screenshot(page, "hub-09-collected")
    return log


def test_hub_instructor_collects_in_the_formgrader(collected, hub_server):
    """mallory's hand-in for grace is refused, and the dialog says so (grace's own is graded
    below, with her example's scores)."""
    refused = f"Refused {forged_for_grace(hub_server)}: it is owned by {HOSTILE}, not by {HUB_STUDENT}"
    assert refused in collected, collected
    assert (hub_server["course"] / "submitted" / HUB_STUDENT / LAB / f"{LAB}.ipynb").owner() == HUB_INSTRUCTOR


def grade_as_instructor(hub_server) -> subprocess.CompletedProcess:
    course = hub_server["course"]
    return as_user(HUB_INSTRUCTOR, course.parent, ["python", "-m", "autograder", "grade", "--lab", LAB, "--jobs", "2"],
                   cwd=course, env={"AUTOGRAD_LABS_EXCHANGE": str(hub_server["state"] / "exchange")})


def written(hub_server, grade_id: str):
    """(manual score, needs manual grade, comment) of the student's written answer."""
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{hub_server['course'] / 'gradebook.db'}") as gb:
        grade = gb.find_grade(grade_id, LAB, LAB, HUB_STUDENT)
        comment = gb.find_comment(grade_id, LAB, LAB, HUB_STUDENT)
        return grade.manual_score, grade.needs_manual_grade, comment.manual_comment


def open_submission(page, hub_server, student: str):
    """The formgrader's page of `student`'s notebook (its link shows the name, not the number)."""
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{hub_server['course'] / 'gradebook.db'}") as gb:
        submission = gb.find_submission_notebook(LAB, LAB, student).id
    formgrader(page, hub_server, f"submissions/{submission}/")
    # the grades and comments arrive after the page; a field typed in before would be overwritten. (The
    # probes are functions: the page's content security policy forbids evaluating strings.)
    page.wait_for_function("() => window.formgrader && formgrader.grades && formgrader.grades.loaded"
                           " && formgrader.comments && formgrader.comments.loaded", timeout=180_000)  # a busy machine
    return page


COMMENT = "Right: with r = 0 the ReLU passes no gradient, so neither weight moves."


@pytest.fixture(scope="module")
def scored(instructor, hub_server, collected):
    """Our grader, as the instructor; then a written answer scored and commented in the formgrader."""
    graded = grade_as_instructor(hub_server)
    scores = {student: gradebooks.cell_scores(hub_server["course"], LAB)[student] for student in (HUB_STUDENT, HOSTILE)}
    before = written(hub_server, "q_dead_relu")
    page = open_submission(instructor, hub_server, HUB_STUDENT)
    page.fill("input.score#q_dead_relu", "2")
    page.press("input.score#q_dead_relu", "Tab")
    page.fill("textarea#q_dead_relu-comment", COMMENT)
    page.press("textarea#q_dead_relu-comment", "Tab")
    page.wait_for_function("() => document.querySelector('textarea#q_dead_relu-comment').value.length > 0")
    for _ in range(60):  # the formgrader saves each field as it loses focus
        if written(hub_server, "q_dead_relu") == (2, False, COMMENT):
            break
        time.sleep(0.5)
    page.locator("input.score#q_dead_relu").scroll_into_view_if_needed()
    screenshot(page, "hub-10-formgrader-scored")
    return {"log": graded.stdout, "scores": scores, "before": before, "after": written(hub_server, "q_dead_relu")}


def test_hub_autograde_then_a_written_answer_scored_and_commented_in_the_formgrader(scored):
    assert "graded 2 of 2 submission(s)" in scored["log"], scored["log"]
    for student, scores in scored["scores"].items():
        assert scores == {**scores, **examples.load(LAB)[student]["expected"]}, student
    assert scored["before"] == (None, True, None)
    assert scored["after"] == (2, False, COMMENT)


@pytest.fixture(scope="module")
def regraded(instructor, hub_server, scored):
    grade_as_instructor(hub_server)
    page = open_submission(instructor, hub_server, HUB_STUDENT)
    page.locator("input.score#q_dead_relu").scroll_into_view_if_needed()
    screenshot(page, "hub-11-formgrader-after-regrade")
    grade_box = page.locator(".nbgrader_cell", has=page.locator("input.score#q_dead_relu"))
    return {"written": written(hub_server, "q_dead_relu"), "score": page.input_value("input.score#q_dead_relu"),
            "comment": page.input_value("textarea#q_dead_relu-comment"),
            "resolve": grade_box.locator("button.mark-graded").is_visible()}


def test_hub_regrade_keeps_the_score_and_the_comment(regraded):
    assert regraded["written"] == (2, False, COMMENT)
    assert regraded["score"] == "2" and regraded["comment"] == COMMENT
    assert not regraded["resolve"]  # no "Resolve": nothing to re-read


def test_hub_formgrader_says_why_a_check_that_passed_in_the_notebook_scores_0(instructor, hub_server, scored):
    """mallory replaced the kit's check in her kernel, so her cells printed ✔; the grader's own
    verification overturned them, and the formgrader shows its reason under the cell."""
    page = open_submission(instructor, hub_server, HOSTILE)
    reason = page.get_by_text("Passed in the notebook, but not when the grader verified the answers again").first
    reason.scroll_into_view_if_needed()
    screenshot(page, "hub-12-formgrader-overturned-check")
    assert "  - `m1` = 1 is not right. m1 = x1 · w1." in reason.inner_text()  # one problem a line
    empty_boxes = page.evaluate("() => [...document.querySelectorAll('.output_area')]"
                                ".filter(e => !e.innerText.trim() && !e.querySelector('img, svg')).length")
    assert empty_boxes == 0


def test_hub_feedback_released_and_fetched_by_the_student(instructor, student, hub_server, regraded):
    page = formgrader(instructor, hub_server)
    click_and_confirm(page, LAB, "release-feedback", f"Successfully released feedback of '{LAB}'")
    page = assignments_tab(student)
    page.get_by_role("button", name="Fetch Feedback").click()
    # The button's own label says "Feedback", and the page fetched on submission is there already:
    # wait for the file the fetch rewrites to hold the instructor's comment.
    folder = Path(pwd_home(HUB_STUDENT)) / LAB / "feedback"
    for _ in range(240):
        if (found := list(folder.glob(f"*/{LAB}.html"))) and COMMENT in found[0].read_text():
            break
        time.sleep(0.5)
    (html,) = found
    assert html.owner() == HUB_STUDENT
    feedback = html.read_text()
    assert f"Autograded: {full_marks()} of {full_marks()} points" in feedback
    assert COMMENT in feedback and "Not graded yet" in feedback  # q_sigmoid_reuse is still unread
    page.goto(f"{hub_server['url']}/user/{HUB_STUDENT}/files/{LAB}/feedback/{html.parent.name}/{LAB}.html")
    screenshot(page, "hub-13-student-feedback")
