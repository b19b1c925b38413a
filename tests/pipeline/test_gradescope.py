"""The Gradescope autograder zip, run as Gradescope runs it, against Gradescope's results format."""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile

import nbformat
import pytest

from autograder.pipeline import examples, exports, notebooks
from course.protocol import IDENTITY_MIME

from helpers import REPO, hidden_input_spellings

pytestmark = pytest.mark.slow
LAB = "lab2"
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def solution_lines() -> set[bytes]:
    """Every line of the lab's solutions that its release does not show, as bytes."""
    release = (REPO / "release" / LAB / f"{LAB}.ipynb").read_text()
    begin, end = notebooks.SOLUTION_MARKERS
    text = (REPO / "source" / LAB / f"{LAB}.py").read_text()
    return {line.strip().encode() for block in re.findall(re.escape(begin) + "(.*?)" + re.escape(end), text, re.S)
            for line in block.splitlines() if len(line.strip()) >= 12 and json.dumps(line.strip())[1:-1] not in release}


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory):
    return exports.build_gradescope(REPO, LAB, tmp_path_factory.mktemp("zip") / f"{LAB}.zip")


def test_the_zip_has_gradescopes_two_scripts_at_its_root_and_no_solutions(autograder_zip):
    with zipfile.ZipFile(autograder_zip) as archive:
        names = archive.namelist()
        for script in ("setup.sh", "run_autograder"):
            assert script in names
            assert archive.getinfo(script).external_attr >> 16 & stat.S_IXUSR
            assert archive.read(script).startswith(b"#!/usr/bin/env bash\n")
        setup = archive.read("setup.sh").decode()
        assert subprocess.run(["bash", "-n"], input=setup, text=True).returncode == 0
        assert setup.index("apt-get update") < setup.index("apt-get install")  # the image has no package lists
        assert "python3.11 -m venv" in setup and "download.pytorch.org/whl/cpu" in setup
        assert "gradebook.db" in names and f"release/{LAB}/{LAB}.ipynb" in names
        assert not any(name.startswith(("source/", "examples/", "tests/")) for name in names)
        solutions = solution_lines()
        assert len(solutions) > 10  # the search has something to find
        data = [name for name in names if not name.startswith(("autograder/", "course/"))]  # the code: below
        found = [(name, line) for name in data for line in solutions if line in archive.read(name)]
        assert not found  # the gradebook holds the test cells (hidden ones too), no solution
        assert exports.UNSANDBOXED_FLAG not in names  # grading without bubblewrap is opt-in
        for name in names:  # the grader and kit that run on Gradescope are this repository's
            if name.startswith(("autograder/", "course/")):
                assert archive.read(name) == (REPO / name).read_bytes(), name


@pytest.fixture(scope="module")
def roster_zip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("roster")
    (folder / "roster.csv").write_text("First Name,Last Name,SID,Email\nAda,Lovelace,ada,Ada@Uni.edu\n")
    return exports.build_gradescope(REPO, LAB, folder / f"{LAB}.zip", roster=folder / "roster.csv")


def run_autograder(autograder_zip, tmp_path, student: str, notebook_name: str, email: str | None = None,
                   worked_as: str | None = None) -> dict:
    """Unzip as Gradescope does, put one example submission in submission/ (uploaded by the account
    `email`, default the example's name; run by the kit as `worked_as`, if given), run run_autograder
    (with this environment's Python, where the grader is installed: the same code as the zip's)."""
    base = tmp_path / "autograder"
    with zipfile.ZipFile(autograder_zip) as archive:
        archive.extractall(base / "source")
    release = nbformat.read(REPO / "release" / LAB / f"{LAB}.ipynb", as_version=4)
    (base / "submission").mkdir()
    nb = examples.fill(release, examples.load(LAB)[student]["answers"])
    if worked_as is not None:  # what the kit's my_numbers() leaves in its cell's output
        (cell,) = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "my_numbers"]
        cell.outputs = [nbformat.v4.new_output("display_data", data={IDENTITY_MIME: {"student": worked_as},
                                                                      "text/plain": ""})]
    nbformat.write(nb, base / "submission" / notebook_name)
    (base / "submission_metadata.json").write_text(json.dumps(
        {"id": 1, "created_at": "2026-12-01T14:22:32.365935-07:00",
         "users": [{"email": email or student, "id": 7, "name": student.title()}]}))
    proc = subprocess.run(["bash", str(base / "source" / "run_autograder"), str(base)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "AUTOGRAD_LABS_PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((base / "results" / "results.json").read_text())


def check_format(results: dict) -> None:
    """The fields and types of Gradescope's results.json specification."""
    assert isinstance(results["score"], float) and isinstance(results["execution_time"], int)
    assert isinstance(results["output"], str) and results["visibility"] in VISIBILITY
    assert results["stdout_visibility"] in VISIBILITY
    for test in results["tests"]:
        assert set(test) == {"name", "number", "score", "max_score", "output", "visibility"}
        assert isinstance(test["name"], str) and isinstance(test["output"], str)
        assert isinstance(test["score"], float) and isinstance(test["max_score"], float)
        assert 0 <= test["score"] <= test["max_score"] and test["visibility"] in VISIBILITY
    assert results["score"] == sum(test["score"] for test in results["tests"])


@pytest.mark.parametrize("student, notebook_name", [("ada", f"{LAB}.ipynb"), ("square_slip", "my work (2).ipynb")])
def test_each_test_scores_as_the_example_expects_and_says_why(autograder_zip, tmp_path, student, notebook_name):
    results = run_autograder(autograder_zip, tmp_path, student, notebook_name)
    check_format(results)
    example = examples.load(LAB)[student]
    assert {test["name"]: test["score"] for test in results["tests"]} == example["expected"]
    outputs = "\n".join(test["output"] for test in results["tests"])
    for phrase in example.get("feedback", []):
        assert phrase in outputs
    assert "\x1b[" not in outputs and "Traceback" not in outputs
    assert "graded by hand" in results["output"]
    spellings = hidden_input_spellings(LAB, tmp_path / "autograder" / "source")  # as drawn for this submission
    assert spellings and not [s for s in spellings if s in json.dumps(results, ensure_ascii=False)]


def test_a_submission_without_the_notebook_gets_a_reason_and_zero(autograder_zip, tmp_path):
    base = tmp_path / "autograder"
    with zipfile.ZipFile(autograder_zip) as archive:
        archive.extractall(base / "source")
    (base / "submission").mkdir()
    (base / "submission" / "notes.txt").write_text("forgot the notebook")
    (base / "submission_metadata.json").write_text(json.dumps({"users": [{"email": "ada@example.edu"}]}))
    results = exports.run_gradescope(base, base / "source")
    assert results["score"] == 0.0 and f"named {LAB}.ipynb" in results["output"]


def test_a_notebook_worked_under_another_id_is_graded_on_the_accounts_numbers_and_says_so(autograder_zip, tmp_path):
    results = run_autograder(autograder_zip, tmp_path, "ada", f"{LAB}.ipynb", email="ada@uni.edu", worked_as="ada")
    check_format(results)
    expected = examples.load(LAB)["ada"]["expected"]
    scores = {test["name"]: test["score"] for test in results["tests"]}
    assert results["score"] < sum(expected.values()) and scores["t4_forward"] == 0  # ada's hand values
    assert "worked as `ada`, graded as `ada@uni.edu`: hand values were checked against `ada@uni.edu`'s numbers" \
        in results["output"]


def test_the_roster_maps_the_accounts_email_to_the_course_id(roster_zip, tmp_path):
    results = run_autograder(roster_zip, tmp_path, "ada", f"{LAB}.ipynb", email="ada@uni.EDU", worked_as="ada")
    assert {test["name"]: test["score"] for test in results["tests"]} == examples.load(LAB)["ada"]["expected"]
    assert "worked as" not in results["output"]


def test_an_email_missing_from_the_roster_is_not_graded_and_says_why(roster_zip, tmp_path):
    base = tmp_path / "autograder"
    with zipfile.ZipFile(roster_zip) as archive:
        archive.extractall(base / "source")
    (base / "submission").mkdir()
    shutil.copyfile(REPO / "release" / LAB / f"{LAB}.ipynb", base / "submission" / f"{LAB}.ipynb")
    (base / "submission_metadata.json").write_text(json.dumps({"users": [{"email": "grace@uni.edu"}]}))
    results = exports.run_gradescope(base, base / "source")
    assert results["score"] == 0.0 and "'grace@uni.edu' is not in the course's roster" in results["output"]


@pytest.mark.parametrize("text", ["name,email\nada,ada@uni.edu\n", "email,id\nada@uni.edu,../ada\n"])
def test_a_roster_the_grader_cannot_use_is_refused_when_the_zip_is_built(tmp_path, text):
    (tmp_path / "roster.csv").write_text(text)
    with pytest.raises(ValueError, match="roster.csv"):
        exports.build_gradescope(REPO, LAB, tmp_path / "lab.zip", roster=tmp_path / "roster.csv")
