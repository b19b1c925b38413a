"""Broken, empty, foreign and crashing submissions through the real `make autograde`: reported, nothing lost."""

import shutil

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.pipeline import examples, runs

from helpers import REPO, make_course_root
from test_pipeline import LAB, auto_scores, make

pytestmark = pytest.mark.slow


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

    proc = make("autograde", root, succeeds=False)  # some submissions could not be graded: it says so
    out = proc.stdout
    assert "3 submission(s) could not be graded or saved" in proc.stderr
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
    out = make("autograde", root, succeeds=False).stdout
    assert "earlier grades kept" in out
    assert auto_scores(root)["ada"] == full

    # Grading again is safe: same scores, the manual grade kept.
    write_submission(root, "ada", nb=ada)
    make("autograde", root, succeeds=False)  # broken, empty_folder and other_lab are still there
    assert auto_scores(root)["ada"] == full
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        assert gb.find_grade("q_dead_relu", LAB, LAB, "ada").manual_score == 1.5
    assert {p.name for p in (root / runs.SCRATCH).iterdir()} == {runs.LOCK, runs.JOURNAL}  # no scratch left
    assert not list((root / runs.SCRATCH / runs.JOURNAL).iterdir())  # every save settled
