"""`python -m autograder new-lab`, as a course author runs it, in a copy of this repository: the
stub lab releases, its examples grade as stated, and its one failing test says what to write."""

import os
import shutil
import subprocess
import sys

import nbformat
import pytest

from autograder.pipeline import examples, gradebooks

from helpers import REPO

pytestmark = pytest.mark.slow


def run(args: list[str], cwd, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=900)
    assert not check or proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A copy of the repository's files (what git tracks or would), with `new-lab lab9` run in it."""
    copy = tmp_path_factory.mktemp("repo")
    listed = run(["git", "ls-files", "-co", "--exclude-standard"], REPO).stdout.splitlines()
    for name in listed:
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    out = run([sys.executable, "-m", "autograder", "new-lab", "lab9"], copy).stdout
    return copy, out


def test_new_lab_writes_the_hand_written_files_and_releases_the_lab(repo):
    copy, out = repo
    written = ["source/lab9/lab9.py", "course/lab9.py", "autograder/labs/lab9.py", "examples/lab9.toml",
               "tests/labs/test_lab9.py"]
    for name in written:
        assert f"wrote {copy / name}" in out and (copy / name).is_file(), name
    assert (copy / "course/expected/lab9.json").is_file() and (copy / "release/lab9/lab9.ipynb").is_file()
    again = run([sys.executable, "-m", "autograder", "new-lab", "lab9"], copy, check=False)
    assert again.returncode == 2 and "lab9 exists already" in again.stderr
    bad = run([sys.executable, "-m", "autograder", "new-lab", "Lab 9"], copy, check=False)
    assert bad.returncode == 2 and "a lab's name is" in bad.stderr


def test_the_release_asks_for_answers_and_hides_the_graders_probes(repo):
    copy, _ = repo
    release = nbformat.read(copy / "release/lab9/lab9.ipynb", as_version=4)
    text = "\n".join(cell.source for cell in release.cells)
    assert "raise NotImplementedError" in text and "BEGIN HIDDEN TESTS" not in text and "[-1.5, 0.4" not in text


def test_its_examples_grade_as_its_examples_file_says(repo):
    copy, _ = repo
    run([sys.executable, "-m", "autograder", "examples", "--lab", "lab9"], copy)
    run([sys.executable, "-m", "autograder", "grade", "--lab", "lab9", "--jobs", "2"], copy)
    expected = {student: example["expected"] for student, example in examples.load("lab9", copy).items()}
    assert gradebooks.cell_scores(copy, "lab9") == expected
    graded = nbformat.read(copy / "autograded/halved/lab9/lab9.ipynb", as_version=4)
    assert "forgot the factor 2 from the square" in nbformat.writes(graded)


def test_its_one_failing_test_says_what_to_write(repo):
    copy, _ = repo
    proc = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/labs/test_lab9.py"], copy,
               check=False)
    assert "1 failed, 3 passed" in proc.stdout, proc.stdout[-3000:]
    assert "lab9 is the stub" in proc.stdout and "then delete this test" in proc.stdout
