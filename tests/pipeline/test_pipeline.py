"""The instructor pipeline through the real Makefile, nbgrader and kernels, on scratch courses."""

import json
import os
import subprocess

import nbformat
import pytest

from autograder.pipeline import examples, grading, notebooks

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
