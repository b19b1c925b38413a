"""The instructor pipeline through the real Makefile, nbgrader and kernels, on scratch courses."""

import csv as csv_module
import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import nbformat
import pytest

from autograder import verification
from autograder.pipeline import examples, gradebooks, notebooks, report
from course.protocol import ANSWERS_MIME

from helpers import REPO, hidden_input_spellings, make_course_root

pytestmark = pytest.mark.slow
LAB = "lab4"  # the lab the bad-input test uses
LABS = notebooks.labs()


def make(target: str, root, succeeds: bool = True, **env) -> subprocess.CompletedProcess:
    """`make target` on the course `root`, which must succeed, or fail (`succeeds=False`: grading
    that could not grade some submission exits non-zero, and make then exits 2)."""
    proc = subprocess.run(["make", "--no-print-directory", target, f"ROOT={root}", "JOBS=2"], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=900)
    assert proc.returncode == (0 if succeeds else 2), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def auto_scores(root, lab: str = LAB) -> dict[str, dict[str, float]]:
    autograded = {name for name, _ in gradebooks.graded_cells(root, lab)[0]}
    return {s: {k: v for k, v in cells.items() if k in autograded}
            for s, cells in gradebooks.cell_scores(root, lab).items()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`make demo` on a scratch copy of the course: release, examples, autograde."""
    root = make_course_root(tmp_path_factory.mktemp("demo"))
    return root, make("demo", root).stdout


def test_release_is_in_sync_with_its_source(demo):
    root, _ = demo
    for lab in notebooks.labs():
        name = f"release/{lab}/{lab}.ipynb"
        assert same_release(root / name, REPO / name), f"{name}: run `make release`"


def same_release(fresh, committed) -> bool:
    """Equal, but for the Python patch version in language_info (that of whoever released)."""
    texts = [re.sub(r'("version": "3\.11)\.\d+"', r'\1"', path.read_text()) for path in (fresh, committed)]
    return texts[0] == texts[1]


@pytest.mark.parametrize("lab", LABS)
def test_examples_get_exactly_their_expected_scores(demo, lab):
    root, _ = demo
    expected = {s: e["expected"] for s, e in examples.load(lab).items()}
    assert auto_scores(root, lab) == expected


def test_the_example_class_grades_the_same_with_every_speed_up_off(demo, tmp_path):
    root, out = demo
    stock = make_course_root(tmp_path)
    stock_out = make("demo", stock, FAST="0").stdout
    assert "speed-ups: OFF" in stock_out and "speed-ups: OFF" not in out and "patches of private APIs" in out
    for lab in LABS:
        ours = gradebooks.cell_scores(root, lab)
        assert gradebooks.cell_scores(stock, lab) == ours and len(ours) == len(examples.load(lab)), lab


@pytest.mark.parametrize("lab", LABS)
def test_no_feedback_page_or_export_shows_a_hidden_input(demo, lab):
    """Every probe the grader drew for any submission (formulas' and functions'), in every
    spelling a message could use, is in no feedback page, grade table or class report."""
    root, _ = demo
    spellings = hidden_input_spellings(lab, root)
    assert spellings
    for student in examples.load(lab):
        page = html.unescape((root / "feedback" / student / lab / f"{lab}.html").read_text())
        assert not [s for s in spellings if s in page], student
    for export in [root / "grades.csv", root / "grades-canvas.csv", root / "reports" / f"{lab}.txt"]:
        text = export.read_text()
        assert not [s for s in spellings if s in text], export


@pytest.mark.parametrize("lab", ["lab1", "lab2", "lab3", "lab4b"])  # Lab 5's train keeps fixed probes
def test_each_submissions_kernel_ran_its_own_draw_of_hidden_probes(demo, lab):
    """A function check with cases: the hidden test cell each kernel ran holds that submission's
    draw (course secret, student, timestamp), not the instructor notebook's, and the draws of two
    submissions differ; every example still gets the scores it expects (`test_examples_*`)."""
    from nbgrader.coursedir import CourseDirectory

    from autograder.labs import FunctionCheck, load
    from autograder.pipeline import draws

    root, _ = demo
    checks = [c for c in load(lab).checks.values() if isinstance(c, FunctionCheck) and c.drawn_for_the_kernel]
    assert checks
    directory, seen = CourseDirectory(root=str(root)), {}
    for student in examples.load(lab):
        stamp = directory.get_existing_timestamp(str(root / "submitted" / student / lab))
        seed = draws.submission_seed(root, lab, student, stamp)
        graded = nbformat.read(root / "autograded" / student / lab / f"{lab}.ipynb", as_version=4)
        cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in graded.cells}
        for check in checks:
            assert repr(check.hidden_probes(seed)) in cells[check.grade_id], (student, check.grade_id)
            assert repr(check.hidden_probes()) not in cells[check.grade_id], (student, check.grade_id)
            seen.setdefault(check.grade_id, set()).add(repr(check.hidden_probes(seed)))
    assert all(len(draws_seen) == len(examples.load(lab)) for draws_seen in seen.values()), seen


@pytest.mark.parametrize("lab", LABS)
def test_each_feedback_page_is_the_page_nbgrader_generate_feedback_writes(demo, lab, tmp_path):
    """Ours renders each page as its grade is saved, with one warm exporter for the whole run and
    no BeautifulSoup pass (`feedback.LeanHTMLExporter`); nbgrader's GenerateFeedback, run afresh
    for each student, writes the same page: parsed, ours serialises to stock's very bytes (only
    the whitespace between tags, which BeautifulSoup's pass drops, may differ)."""
    import logging

    from bs4 import BeautifulSoup
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    from autograder.pipeline import feedback

    root, _ = demo
    for student in examples.load(lab):
        config = Config(feedback.course_config(root))
        config.merge(Config({"CourseDirectory": {"root": str(root), "assignment_id": lab, "student_id": student,
                                                 "feedback_directory": str(tmp_path)}}))
        GenerateFeedback(coursedir=CourseDirectory(config=config), config=config, log=logging.getLogger("stock")).start()
        ours = (root / "feedback" / student / lab / f"{lab}.html").read_text()
        stock = (tmp_path / student / lab / f"{lab}.html").read_text()
        assert str(BeautifulSoup(ours, features="html.parser")) == stock, student


@pytest.mark.parametrize("lab", LABS)
def test_feedback_names_each_mistake(demo, lab):
    root, _ = demo
    for student, example in examples.load(lab).items():
        graded = nbformat.read(root / "autograded" / student / lab / f"{lab}.ipynb", as_version=4)
        text = json.dumps([c.get("outputs", []) for c in graded.cells], ensure_ascii=False)
        for phrase in example.get("feedback", []):
            assert phrase in text, (student, phrase)
        page = html.unescape((root / "feedback" / student / lab / f"{lab}.html").read_text())
        words = " ".join(page.split())  # a message is wrapped on screen
        for phrase in example.get("feedback", []):
            assert " ".join(phrase.split()) in words, (student, phrase)
        assert "BEGIN HIDDEN TESTS" not in page and ANSWERS_MIME not in page
        written = [k for k in example["answers"] if k.startswith("q_")]  # read by nobody in the demo
        assert ("Not graded yet." in page) == bool(written), student
        # in the list of scores at the top and above the answer, not "0.0 / 2.0" as if read and given nothing
        assert len(re.findall(r"\(Score: not read yet / [\d.]+\)", words)) == len(written), student
        assert len(re.findall(r"Score: not read yet / [\d.]+ <a href=\"#top\">\(Top\)", words)) == len(written)


def test_demo_prints_the_grade_table_and_writes_the_csv(demo):
    root, out = demo
    csv = (root / "grades.csv").read_text()
    for lab in LABS:
        table = out[out.index(f"{lab}: points per autograded cell"):]
        for student in examples.load(lab):
            assert any(line.startswith(student + " ") for line in table.splitlines()), (lab, student)
        assert csv.count(lab) >= len(examples.load(lab))
        full = sum(examples.load(lab)["ada"]["expected"].values())
        assert f"{full:g}/{full:<4g}" in table


def test_the_canvas_csv_has_canvas_columns_points_possible_and_each_examples_total(demo):
    root, out = demo
    assert "Canvas import:" in out
    with (root / "grades-canvas.csv").open(newline="") as file:
        rows = list(csv_module.reader(file))
    header, possible, students = rows[0], rows[1], rows[2:]
    assert header[:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert header[5:] == [f"Autograd Labs {lab}" for lab in LABS]
    assert possible[0] == "Points Possible"
    by_login = {row[3]: row for row in students}
    for column, lab in enumerate(LABS, start=5):
        auto, written = gradebooks.graded_cells(root, lab)
        assert float(possible[column]) == sum(p for _, p in auto + written)
        for student, example in examples.load(lab).items():
            # No written answer is read yet: the total is the autograded cells' expected points.
            assert float(by_login[student][column]) == sum(example["expected"].values()), (lab, student)


def test_make_formgrader_serves_the_gradebook_on_the_port_and_token_given(demo):
    root, _ = demo
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "formgrader-test"
    log = root / "formgrader.log"
    with log.open("w") as out:
        server = subprocess.Popen(["make", "--no-print-directory", "formgrader", f"ROOT={root}", f"PORT={port}",
                                   f"TOKEN={token}"], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        def get(path: str) -> bytes:
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(req, timeout=60) as response:
                return response.read()
        for _ in range(240):
            try:
                get("/api/status")
                break
            except OSError:
                time.sleep(0.5)
        assert b"formgrader" in get("/formgrader").lower()
        listed = json.loads(get("/formgrader/api/assignments"))
        assert sorted(a["name"] for a in listed) == LABS
        assert all(a["num_submissions"] == len(examples.load(a["name"])) for a in listed)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    complaints = [line for line in log.read_text().splitlines() if "Unwritable directory" in line
                  or "exchange" in line.lower() and any(word in line for word in ("WARN", "ERROR", "does not exist"))]
    assert not complaints, complaints


def test_the_class_report_reads_the_mistakes_the_audit_wrote_down_and_draws_only_what_changed(demo, tmp_path):
    """The audit records each lost cell's mistakes in the graded notebook; the report built from
    that record is the report worked out again from the answers. The histogram is drawn again
    only when the totals it shows changed."""
    root, _ = demo
    recorded = report.class_report(root, "lab4")
    again = tmp_path / "course"
    shutil.copytree(root, again, ignore=shutil.ignore_patterns("feedback", "submitted", ".grading"))
    for path in (again / "autograded").glob("*/lab4/lab4.ipynb"):
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata.pop(verification.MISTAKES_KEY) is not None
        nbformat.write(nb, path)
    assert report.class_report(again, "lab4") == recorded
    png, drawn = root / "reports" / "lab4-scores.png", root / "reports" / ".lab4-scores.drawn"
    before = png.stat().st_mtime_ns
    report.class_report(root, "lab4")
    assert png.stat().st_mtime_ns == before  # the same totals: not drawn again
    drawn.write_text("other totals")
    report.class_report(root, "lab4")
    assert png.stat().st_mtime_ns != before and drawn.read_text() != "other totals"


def test_each_lab_gets_a_class_report_naming_the_mistakes_made(demo):
    root, out = demo
    for lab in LABS:
        text = (root / "reports" / f"{lab}.txt").read_text().strip()
        assert text.startswith(f"{lab}: {len(examples.load(lab))} graded, autograded points: mean ") and text in out
        assert (root / "reports" / f"{lab}-scores.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    lab4 = report.class_report(root, "lab4")
    for mistake in ("worked on the practice numbers (student id 'anonymous')", "worked on another student's numbers",
                    "used m2·(1 − m2) for the sigmoid's derivative", "flipped the sign"):
        assert mistake in lab4, mistake
    # the code that was copied (copycat's all of ada's; rename_copy's and comment_copy's Task 2 formula,
    # renamed and commented) is grouped with ada's; the Task 2 formulas written independently are not
    shared = lab4[lab4.index("Work that looks shared"):]
    groups = [set(line.split(": ", 1)[1].split(" (")[0].split(", "))
              for line in shared.splitlines() if line.startswith("  t2_formula_answer: ")]
    (copied,) = [group for group in groups if "ada" in group]
    assert {"copycat", "rename_copy", "comment_copy"} <= copied, shared
    assert not copied & {"grace", "sigmoid_slip", "sign_slip", "mallory", "autograd", "lazy"}, shared
    assert "copycat's answers in t1_forward, t1_gradients, t1_two_paths, t2_forward, t2_gradients, t2_local " \
           "are right for ada's numbers" in shared
    page = (root / "reports" / "lab4-similar" / "t2_formula_answer-ada-rename_copy.html").read_text()
    assert "<mark>" in page and "delta" in page and "<script" not in page
    assert "t2_formula_answer-ada-rename_copy.html" in (root / "reports" / "lab4-similar" / "index.html").read_text()
    # tanh_slip's one slip, made in three answers of t1_gradients, is one student's mistake, not three
    assert "      1  used 1 − e² for tanh' (its input, not its output) (in `df_dx`, `df_dy`, `df_dz`)\n" in lab4
