"""The pipeline pieces on a temporary course: intake (precheck) and saving to a gradebook."""

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from nbgrader.utils import compute_checksum

from autograder.pipeline import feedback, gradebooks, intake, notebooks, saving, submission, terminal
from autograder.pipeline.layout import Layout
from course.protocol import IDENTITY_MIME

from helpers import REPO

LABS = notebooks.labs()


@pytest.fixture
def course(tmp_path):
    """A course root with every lab's release, and nothing submitted yet."""
    for lab in LABS:
        shutil.copytree(REPO / "release" / lab, tmp_path / "release" / lab)
    return tmp_path


def submit(course, student: str, lab: str, nb=None, name: str | None = None, text: str | None = None):
    folder = Layout(course).folder("submitted", lab, student)
    folder.mkdir(parents=True)
    path = folder / (name or f"{lab}.ipynb")
    if text is not None:
        path.write_text(text)
    elif nb is not None:
        nbformat.write(nb, path)
    return path


def release(lab: str):
    return nbformat.read(REPO / "release" / lab / f"{lab}.ipynb", as_version=4)


@pytest.mark.parametrize("lab", LABS)
def test_a_released_notebook_is_accepted(course, lab):
    submit(course, "ada", lab, release(lab))
    assert intake.precheck(course, lab, "ada") is None


@pytest.mark.parametrize("lab", LABS)
def test_the_notebook_of_another_lab_is_refused_by_name(course, lab):
    other = LABS[(LABS.index(lab) + 1) % len(LABS)]
    submit(course, "ada", lab, release(other), name=f"{lab}.ipynb")
    problem = intake.precheck(course, lab, "ada")
    assert problem and f"is the notebook of {other}, not {lab}" in problem


@pytest.mark.parametrize("lab", LABS)
def test_an_unreadable_or_missing_notebook_is_refused_with_the_reason(course, lab):
    submit(course, "ada", lab, text="{ not json")
    assert "is not a readable notebook" in intake.precheck(course, lab, "ada")
    submit(course, "bob", lab, release(lab), name="renamed.ipynb")
    problem = intake.precheck(course, lab, "bob")
    assert f"no {lab}.ipynb" in problem and "renamed.ipynb" in problem


@pytest.mark.parametrize("student", ["eve smith", ".hidden", "a..b", "x" * 65, "ada;rm"])
def test_a_student_id_that_is_not_a_plain_name_is_refused(course, student):
    submit(course, student, "lab4", release("lab4"))
    assert "is not a student id the grader takes" in intake.precheck(course, "lab4", student)


def test_links_and_pipes_are_refused_without_being_followed(course):
    target = submit(course, "ada", "lab4", release("lab4"))
    Layout(course).folder("submitted", "lab4", "eve").parent.mkdir(parents=True)
    Layout(course).folder("submitted", "lab4", "eve").symlink_to(target.parent)
    assert "submitted/eve/lab4 is a link, not a folder" in intake.precheck(course, "lab4", "eve")
    Layout(course).folder("submitted", "lab4", "bob").mkdir(parents=True)
    Layout(course).notebook("submitted", "lab4", "bob").symlink_to("/dev/zero")
    assert "lab4.ipynb is a link" in intake.precheck(course, "lab4", "bob")
    Layout(course).folder("submitted", "lab4", "cy").mkdir(parents=True)
    os.mkfifo(Layout(course).notebook("submitted", "lab4", "cy"))
    assert "is not a regular file" in intake.precheck(course, "lab4", "cy")  # and it did not hang


def test_oversized_submissions_are_refused_before_they_are_parsed(course, monkeypatch):
    many = release("lab4")
    many.cells += [nbformat.v4.new_code_cell("pass") for _ in range(intake.MAX_CELLS)]
    submit(course, "ada", "lab4", many)
    assert f"over the limit of {intake.MAX_CELLS}" in intake.precheck(course, "lab4", "ada")
    monkeypatch.setattr(intake, "MAX_NOTEBOOK_BYTES", 1000)
    submit(course, "bob", "lab4", release("lab4"))
    assert "over the limit of 0 MB: clear the outputs" in intake.precheck(course, "lab4", "bob")
    monkeypatch.setattr(intake, "MAX_FILES", 3)
    folder = submit(course, "cy", "lab4", text="{}").parent
    for i in range(4):
        (folder / f"data{i}.csv").write_text("1")
    assert "holds 5 files, over the limit of 3" in intake.precheck(course, "lab4", "cy")
    monkeypatch.setattr(intake, "MAX_FILES", 200)
    monkeypatch.setattr(intake, "MAX_FOLDER_BYTES", 2**20)
    (folder / "big.bin").write_bytes(b"0" * 3 * 2**20)
    assert "submitted/cy/lab4/ holds 3 MB, over the limit of 1 MB" in intake.precheck(course, "lab4", "cy")


def executed_test_cell(*outputs, points=2.0):
    cell = nbformat.v4.new_code_cell("check.values(globals(), 'x')", outputs=list(outputs))
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "points": points, "grade_id": "t1"}
    return cell


@pytest.mark.parametrize("outputs, metadata_points, score", [
    ([], 2, 2.0),
    ([nbformat.v4.new_output("stream", name="stdout", text="ok")], 2, 2.0),
    ([nbformat.v4.new_output("error", ename="AssertionError", evalue="", traceback=[])], 2, 0.0),
    ([nbformat.v4.new_output("stream", name="stderr", text="warning")], 2, 0.0),
    ([], 100, 2.0),  # points come from the course's gradebook, not the notebook's metadata
    ([nbformat.v4.new_output("execute_result", data={"text/plain": "1.5"})], 2, 1.5),  # nbgrader's partial credit
    ([nbformat.v4.new_output("execute_result", data={"text/plain": "9"})], 2, 0.0),  # over the points: none
    ([nbformat.v4.new_output("execute_result", data={"text/plain": "-3"})], 2, 2.0),  # nbgrader: not a score
])
def test_scores_are_worked_out_from_the_executed_test_cells(tmp_path, outputs, metadata_points, score):
    nb = nbformat.v4.new_notebook(cells=[executed_test_cell(*outputs, points=metadata_points)])
    nbformat.write(nb, tmp_path / "lab9.ipynb")
    executed = submission.read_executed([tmp_path / "lab9.ipynb"])
    result = submission.read_result(executed, {("lab9", "t1"): 2.0, ("lab9", "t2"): 1.0}, None)
    assert result["grades"] == {("lab9", "t1"): score, ("lab9", "t2"): 0.0}  # t2 deleted: 0


@pytest.fixture(scope="module")
def empty_gradebook(tmp_path_factory):
    """A gradebook with one lab: one autograded test cell and one written answer (made once)."""
    path = tmp_path_factory.mktemp("gradebook") / "gradebook.db"
    with Gradebook(f"sqlite:///{path}") as gb:
        gb.add_assignment("lab9")
        gb.add_notebook("lab9", "lab9")
        gb.add_grade_cell("t1", "lab9", "lab9", max_score=2, cell_type="code")
        gb.add_grade_cell("q1", "lab9", "lab9", max_score=3, cell_type="markdown")
        gb.add_solution_cell("q1", "lab9", "lab9")
    return path


@pytest.fixture
def gradebook(empty_gradebook, tmp_path):
    shutil.copy2(empty_gradebook, tmp_path / "gradebook.db")
    return f"sqlite:///{tmp_path / 'gradebook.db'}"


def result(t1, timestamp=None):
    return {"timestamp": timestamp, "grades": {("lab9", "t1"): t1, ("lab9", "q1"): None}, "comments": {}}


def save(url, student, t1):
    with Gradebook(url) as gb:
        saving.save_result(gb, "lab9", student, result(t1))


def grades(url, student="ada"):
    with Gradebook(url) as gb:
        return {g.name: (g.auto_score, g.manual_score, g.needs_manual_grade)
                for nb in gb.find_submission("lab9", student).notebooks for g in nb.grades}


def test_a_first_save_leaves_written_answers_to_grade_by_hand(gradebook):
    save(gradebook, "ada", 2.0)
    assert grades(gradebook) == {"t1": (2.0, None, False), "q1": (None, None, True)}


def test_regrading_keeps_manual_scores_and_their_graded_state(gradebook):
    save(gradebook, "ada", 2.0)
    with Gradebook(gradebook) as gb:
        written = gb.find_grade("q1", "lab9", "lab9", "ada")
        written.manual_score, written.needs_manual_grade = 2.5, False
        gb.db.commit()
    save(gradebook, "ada", 2.0)
    assert grades(gradebook)["q1"] == (None, 2.5, False)  # graded, and stays graded
    assert grades(gradebook)["t1"] == (2.0, None, False)


def test_a_changed_auto_score_under_a_manual_override_is_flagged_for_review(gradebook):
    save(gradebook, "ada", 2.0)
    with Gradebook(gradebook) as gb:
        override = gb.find_grade("t1", "lab9", "lab9", "ada")
        override.manual_score, override.needs_manual_grade = 1.0, False
        gb.db.commit()
    save(gradebook, "ada", 2.0)
    assert grades(gradebook)["t1"] == (2.0, 1.0, False)
    save(gradebook, "ada", 0.0)
    assert grades(gradebook)["t1"] == (0.0, 1.0, True)


def test_saving_one_student_leaves_the_others_alone(gradebook):
    save(gradebook, "ada", 2.0)
    save(gradebook, "bob", 0.0)
    assert grades(gradebook, "ada")["t1"] == (2.0, None, False)
    assert grades(gradebook, "bob")["t1"] == (0.0, None, False)


def test_make_work_copies_the_release_and_never_overwrites_a_students_copy(tmp_path):
    import subprocess

    work = tmp_path / "work"
    make = ["make", "--no-print-directory", "-C", str(REPO), "work", f"WORK={work}"]
    first = subprocess.run(make, capture_output=True, text=True, check=True).stdout
    assert all(f"to {work}/{lab}" in first for lab in LABS)
    mine = work / "lab4" / "lab4.ipynb"
    mine.write_text(mine.read_text().replace("YOUR CODE HERE", "my own work"))
    again = subprocess.run(make, capture_output=True, text=True, check=True).stdout
    assert f"{work}/lab4 exists: keeping your copy" in again
    assert "my own work" in mine.read_text()
    assert (REPO / "release" / "lab4" / "lab4.ipynb").read_text() != mine.read_text()


def test_the_grade_table_shows_scores_what_is_left_to_read_and_what_was_not_graded(gradebook):
    root = Path(gradebook.removeprefix("sqlite:///")).parent
    save(gradebook, "ada", 2.0)
    save(gradebook, "bob", 0.0)
    with Gradebook(gradebook) as gb:
        written = gb.find_grade("q1", "lab9", "lab9", "bob")
        written.manual_score, written.needs_manual_grade = 2.5, False
        gb.db.commit()
    outcomes = [submission.Outcome("bob", "lab9", False, "no lab9.ipynb"), submission.Outcome("cy", "lab9", False, "empty")]
    assert terminal.format_table(root, "lab9", outcomes).splitlines() == [
        "lab9: points per autograded cell",
        "student     t1       auto  written",
        "----------------------------------",
        "ada          2     2/2     3 pts to read",
        "bob          0     0/2     2.5/3  (newest submission NOT GRADED, earlier grades kept: no lab9.ipynb)",
        "cy       NOT GRADED: empty",
    ]


def test_grading_a_course_with_nothing_submitted_reports_it_and_succeeds(gradebook, capsys):
    from autograder.__main__ import main

    root = Path(gradebook.removeprefix("sqlite:///")).parent
    assert main(["--root", str(root), "grade", "--lab", "lab9", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "lab9: no submissions under submitted/*/lab9/" in out
    assert f"feedback: {root / 'feedback'}   grades CSV: {root / 'grades.csv'}" in out


def test_an_untouched_written_answer_is_commented_no_response(tmp_path):
    untouched, answered = (nbformat.v4.new_markdown_cell("YOUR ANSWER HERE") for _ in range(2))
    for cell, name in ((untouched, "q1"), (answered, "q2")):
        cell.metadata["nbgrader"] = {"grade": True, "solution": True, "points": 3, "grade_id": name}
        cell.metadata["nbgrader"]["checksum"] = compute_checksum(cell)  # as released
    answered.source = "Because backward adds."
    nbformat.write(nbformat.v4.new_notebook(cells=[untouched, answered]), tmp_path / "lab9.ipynb")
    result = submission.read_result(submission.read_executed([tmp_path / "lab9.ipynb"]), {}, None)
    assert result["comments"] == {("lab9", "q1"): "No response.", ("lab9", "q2"): None}


@pytest.mark.parametrize("student", ["", "ada"])
def test_make_lab_never_takes_the_login_name_for_the_student_id(student):
    import subprocess

    env = {**os.environ, "USER": "login-name", "LOGNAME": "login-name"}
    env.pop("AUTOGRAD_LABS_STUDENT", None)
    env.pop("STUDENT", None)
    dry_run = subprocess.run(["make", "--no-print-directory", "-n", "-C", str(REPO), "lab", f"STUDENT={student}"],
                             capture_output=True, text=True, check=True, env=env).stdout
    assert "login-name" not in dry_run
    if student:
        assert "AUTOGRAD_LABS_STUDENT=ada jupyter lab" in dry_run
    else:
        assert "AUTOGRAD_LABS_STUDENT" not in dry_run and "make lab STUDENT=<your id>" in dry_run


def test_a_database_that_cannot_be_reached_is_waited_for_and_one_that_refuses_is_not(tmp_path):
    """Patience tries a transaction again only while the database is out of reach (a refused
    connection, a dropped one), within one budget for the run; a refused write fails at once."""
    import sqlalchemy

    unreachable = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'missing' / 'gradebook.db'}")
    tries, waited = [], []
    patience = saving.Patience(waits=[0, 0])
    with pytest.raises(sqlalchemy.exc.OperationalError):
        patience.run(lambda: tries.append(1) or unreachable.connect(), log=waited.append)
    assert len(tries) == 3 and len(waited) == 2 and "trying again" in waited[0]
    with pytest.raises(sqlalchemy.exc.OperationalError):  # the budget is spent: tried once
        patience.run(lambda: tries.append(1) or unreachable.connect(), log=waited.append)
    assert len(tries) == 4

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'gradebook.db'}")
    with engine.begin() as db:
        db.execute(sqlalchemy.text("CREATE TABLE grade (id INTEGER PRIMARY KEY)"))
        db.execute(sqlalchemy.text("INSERT INTO grade VALUES (1)"))

    def duplicate():
        tries.append(1)
        with engine.begin() as db:
            db.execute(sqlalchemy.text("INSERT INTO grade VALUES (1)"))

    with pytest.raises(sqlalchemy.exc.IntegrityError):
        saving.Patience(waits=[0, 0]).run(duplicate, log=waited.append)
    assert len(tries) == 5


@pytest.mark.parametrize("said, found", [({"student": "ada"}, "ada"), ({"student": "anonymous"}, "anonymous"),
                                         ({"student": "<img src=x onerror=alert(1)>"}, None),
                                         ({"student": "../grace"}, None), ({"student": ["ada"]}, None),
                                         ("ada", None), (None, None)])
def test_the_id_a_notebook_was_worked_under_is_read_only_as_a_plain_id(tmp_path, said, found):
    """The kit records it in an output; a student can write anything there."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("mine = check.my_numbers()")])
    if said is not None:
        nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data={IDENTITY_MIME: said, "text/plain": ""})]
    nbformat.write(nb, tmp_path / "lab4.ipynb")
    (tmp_path / "lab2.ipynb").write_text("not a notebook")
    assert intake.worked_as(tmp_path, ["lab2", "lab3", "lab4"]) == found


def test_a_connection_the_database_dropped_is_replaced_at_once_without_spending_the_budget():
    """After a database restart, each pooled connection fails once as it is next used: trying
    again on a new connection must not wait, nor use up the run's patience."""
    import sqlalchemy

    dropped = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"),
                                              connection_invalidated=True)
    tries, waited = [], []
    patience = saving.Patience(waits=[])

    def once_dropped():
        tries.append(1)
        if len(tries) % 2:
            raise dropped
        return "saved"

    assert [patience.run(once_dropped, log=waited.append) for _ in range(3)] == ["saved"] * 3
    assert len(tries) == 6 and waited == []
    with pytest.raises(sqlalchemy.exc.OperationalError):  # dropped again on the new connection: the budget decides
        patience.run(lambda: (_ for _ in ()).throw(dropped), log=waited.append)


def test_a_feedback_page_that_cannot_be_written_says_why(gradebook, tmp_path):
    """nbgrader logs a failed page's traceback and raises only 'see above': the save's message
    must carry the cause itself (seen: a full disk reported as an unexplained NbGraderException)."""
    save(gradebook, "ada", 2.0)
    shutil.copy2(REPO / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    graded = tmp_path / "staged" / "autograded" / "ada" / "lab9"
    graded.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), graded / "lab9.ipynb")
    blocked = tmp_path / "staged" / "feedback"
    blocked.write_text("a file where the feedback folder should be")
    with pytest.raises(feedback.RenderFailed) as failure:
        feedback.render(tmp_path, "lab9", "ada", graded.parents[1], blocked)
    assert str(failure.value).startswith("feedback page not written: ") and "Error" in str(failure.value)
    assert saving.cause(failure.value) == str(failure.value)
    assert saving.cause(feedback.RenderFailed("feedback page not written: OSError: [Errno 28] No space left on "
                                              "device")).startswith("no space left on the disk")


def test_each_unit_starts_from_a_gradebook_of_its_lab_with_no_student_in_it(gradebook, tmp_path):
    """What goes into the sandbox: the lab's notebooks and cells, built afresh (no deleted rows of
    other students in free pages), one file per lab in the run's scratch folder. (The student's id
    has letters no hex id has: "ada" turns up by chance in the file's random UUIDs.)"""
    save(gradebook, "zoe_quill", 2.0)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    template = gradebooks.lab_template(scratch, "lab9")
    assert template.parent == scratch and template != gradebooks.lab_template(scratch, "lab8")
    assert gradebooks.lab_gradebook(tmp_path, "lab9", template) == template
    with Gradebook(f"sqlite:///{template}") as gb:
        (notebook,) = gb.find_assignment("lab9").notebooks
        assert {c.name: c.max_score for c in notebook.grade_cells} == {"t1": 2, "q1": 3}
        assert [c.name for c in notebook.solution_cells] == ["q1"] and gb.students == []
    assert b"zoe_quill" not in template.read_bytes()
