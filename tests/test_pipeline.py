"""The instructor pipeline through the real Makefile, nbgrader and kernels, on scratch courses."""

import json
import os
import shutil
import subprocess

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder import examples, grading, notebooks

from conftest import REPO, make_course_root

pytestmark = pytest.mark.slow
LAB = "lab4"


def make(target: str, root, **env) -> subprocess.CompletedProcess:
    proc = subprocess.run(["make", "--no-print-directory", target, f"ROOT={root}", "JOBS=2"], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def auto_scores(root) -> dict[str, dict[str, float]]:
    written = {"q_sigmoid_reuse", "q_dead_relu"}
    return {s: {k: v for k, v in cells.items() if k not in written}
            for s, cells in grading.cell_scores(root, LAB).items()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`make demo` on a scratch copy of the course: release, examples, autograde."""
    root = make_course_root(tmp_path_factory.mktemp("demo"))
    return root, make("demo", root).stdout


def test_release_is_in_sync_with_its_source(demo):
    root, _ = demo
    for lab in notebooks.labs():
        name = f"release/{lab}/{lab}.ipynb"
        assert (root / name).read_text() == (REPO / name).read_text(), f"{name}: run `make release`"


def test_examples_get_exactly_their_expected_scores(demo):
    root, _ = demo
    expected = {s: e["expected"] for s, e in examples.load(LAB).items()}
    assert auto_scores(root) == expected


def test_feedback_names_each_mistake(demo):
    root, _ = demo
    for student, example in examples.load(LAB).items():
        graded = nbformat.read(root / "autograded" / student / LAB / f"{LAB}.ipynb", as_version=4)
        text = json.dumps([c.get("outputs", []) for c in graded.cells], ensure_ascii=False)
        for phrase in example.get("feedback", []):
            assert phrase in text, (student, phrase)
        assert (root / "feedback" / student / LAB / f"{LAB}.html").is_file()


def test_demo_prints_the_grade_table_and_writes_the_csv(demo):
    root, out = demo
    for student in examples.load(LAB):
        assert any(line.startswith(student + " ") for line in out.splitlines()), student
    assert "ada " in out and "18/18" in out
    assert (root / "grades.csv").read_text().count(LAB) >= len(examples.load(LAB))


def write_submission(root, student: str, text: str | None = None, nb=None) -> None:
    folder = root / "submitted" / student / LAB
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if nb is not None:
        nbformat.write(nb, folder / f"{LAB}.ipynb")
    elif text is not None:
        (folder / f"{LAB}.ipynb").write_text(text)


def test_bad_submissions_are_reported_and_lose_nothing(tmp_path):
    root = make_course_root(tmp_path)  # `make autograde` releases it first
    release = nbformat.read(REPO / "release" / LAB / f"{LAB}.ipynb", as_version=4)
    ada = examples.fill(release, examples.load(LAB)["ada"]["answers"])
    write_submission(root, "ada", nb=ada)
    write_submission(root, "broken", text='{"cells": [')
    write_submission(root, "empty_folder")
    other = nbformat.from_dict(ada)
    other.metadata["autograd_labs"]["lab"] = "lab1"
    write_submission(root, "other_lab", nb=other)
    crasher = examples.fill(release, {"t1_forward_answer": "import os\nos._exit(1)"})
    write_submission(root, "crasher", nb=crasher)

    out = make("autograde", root).stdout
    assert "broken: NOT GRADED" in out and "not a readable notebook" in out
    assert "other_lab: NOT GRADED" in out and "notebook of lab1, not lab4" in out
    scores = auto_scores(root)
    full = examples.load(LAB)["ada"]["expected"]
    assert scores["ada"] == full
    assert "empty_folder: NOT GRADED: no lab4.ipynb" in out and "empty_folder" not in scores
    assert "crasher" not in scores or not any(scores["crasher"].values())

    # An instructor grades a written answer, then ada's resubmission turns out broken.
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        gb.find_grade("q_dead_relu", LAB, LAB, "ada").manual_score = 1.5
        gb.db.commit()
    write_submission(root, "ada", text="not a notebook")
    out = make("autograde", root).stdout
    assert "earlier grades kept" in out
    assert auto_scores(root)["ada"] == full

    # Grading again is safe: same scores, the manual grade kept.
    write_submission(root, "ada", nb=ada)
    make("autograde", root)
    assert auto_scores(root)["ada"] == full
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        assert gb.find_grade("q_dead_relu", LAB, LAB, "ada").manual_score == 1.5
    assert not list((root / grading.SCRATCH).iterdir())
