"""The command line and the example submissions, without running nbgrader."""

import subprocess

import nbformat
import pytest

from autograder.__main__ import COMMANDS, main
from autograder.pipeline import examples, notebooks

from helpers import REPO, make_course_root


def test_every_command_is_listed_and_build_succeeds(capsys, tmp_path):
    assert set(COMMANDS) == {"build", "release", "validate", "examples", "grade", "table", "report", "minutes", "student-bundle",
                             "gradescope", "gradescope-run", "hub", "on-submit", "recover", "restore-gradebook", "new-lab"}
    course = make_course_root(tmp_path)
    assert main(["--root", str(course), "build", "--lab", "lab4"]) == 0
    assert capsys.readouterr().out.strip() == "source/lab4/lab4.ipynb"
    assert nbformat.read(course / "source" / "lab4" / "lab4.ipynb", as_version=4) == notebooks.instructor_notebook("lab4")


def test_an_example_answer_for_a_cell_that_does_not_exist_is_refused():
    release = nbformat.read(REPO / "release" / "lab4" / "lab4.ipynb", as_version=4)
    with pytest.raises(KeyError, match="no_such_answer"):
        examples.fill(release, {"no_such_answer": "x = 1"})
    filled = examples.fill(release, {"t1_forward_answer": "\nyhat = 2\n"})
    (cell,) = [c for c in filled.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "t1_forward_answer"]
    assert cell.source == "yhat = 2"
    assert "YOUR CODE HERE" in [c for c in release.cells if c.id == "t1_forward_answer"][0].source


@pytest.mark.parametrize("lab", notebooks.labs())
def test_every_example_fills_only_answer_cells_of_its_lab(lab):
    release = nbformat.read(REPO / "release" / lab / f"{lab}.ipynb", as_version=4)
    answer_cells = {c.metadata["nbgrader"]["grade_id"] for c in release.cells
                    if c.metadata.get("nbgrader", {}).get("solution")}
    for student, example in examples.load(lab).items():
        assert set(example["answers"]) <= answer_cells, student
        assert set(example["expected"]) == {c.metadata["nbgrader"]["grade_id"] for c in release.cells if
                                            c.metadata.get("nbgrader", {}).get("grade")
                                            and not c.metadata["nbgrader"].get("solution")}, student


def test_a_notebook_is_written_only_when_its_text_changes(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    path = tmp_path / "lab.ipynb"
    assert notebooks.write_if_changed(nb, path) is True
    assert notebooks.write_if_changed(nb, path) is False
    nb.cells[0].source = "x = 2"
    assert notebooks.write_if_changed(nb, path) is True and "x = 2" in path.read_text()


@pytest.mark.parametrize("version", ["Python 3.12.3", None])
def test_setup_names_the_python_it_needs_before_installing_anything(tmp_path, version):
    python = tmp_path / "python3"
    if version:  # a Python of another version: it answers -V and refuses everything else
        python.write_text(f"#!/bin/sh\n[ \"$1\" = -V ] && echo '{version}' && exit 0\nexit 1\n")
        python.chmod(0o755)
    done = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "setup", f"VENV={tmp_path / 'venv'}",
                           f"PYTHON={python}"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and not (tmp_path / "venv").exists()
    assert "needs Python 3.11" in done.stderr and (version or "not found") in done.stderr, done.stderr
    assert "PYTHON=/path/to/python3.11" in done.stderr


def test_the_summary_line_counts_the_commands_start_up_in_all():
    """The interpreter's start and imports (seconds, before any grading) are a phase of their own."""
    import time

    import psutil

    from autograder.__main__ import Clock, seconds_since_start
    assert abs(seconds_since_start() - (time.time() - psutil.Process().create_time())) < 0.2
    clock = Clock()
    clock.lap("grading")
    line = clock.summary()
    start_up = float(line.split("start-up ")[1].split(" s")[0])
    assert line.startswith("time: ") and ", grading " in line and abs(start_up - seconds_since_start()) < 0.2
