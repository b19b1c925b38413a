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
LAB = "lab4"  # the lab the bad-input test uses
LABS = notebooks.labs()


def make(target: str, root, **env) -> subprocess.CompletedProcess:
    proc = subprocess.run(["make", "--no-print-directory", target, f"ROOT={root}", "JOBS=2"], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def auto_scores(root, lab: str = LAB) -> dict[str, dict[str, float]]:
    autograded = {name for name, _ in grading.graded_cells(root, lab)[0]}
    return {s: {k: v for k, v in cells.items() if k in autograded}
            for s, cells in grading.cell_scores(root, lab).items()}


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


@pytest.mark.parametrize("lab", LABS)
def test_examples_get_exactly_their_expected_scores(demo, lab):
    root, _ = demo
    expected = {s: e["expected"] for s, e in examples.load(lab).items()}
    assert auto_scores(root, lab) == expected


@pytest.mark.parametrize("lab", LABS)
def test_feedback_names_each_mistake(demo, lab):
    root, _ = demo
    for student, example in examples.load(lab).items():
        graded = nbformat.read(root / "autograded" / student / lab / f"{lab}.ipynb", as_version=4)
        text = json.dumps([c.get("outputs", []) for c in graded.cells], ensure_ascii=False)
        for phrase in example.get("feedback", []):
            assert phrase in text, (student, phrase)
        assert (root / "feedback" / student / lab / f"{lab}.html").is_file()


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
