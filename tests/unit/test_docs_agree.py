"""The limits and defaults that the README and the docs state are the ones the code uses: each
claim is found in its document by a pattern, and its number compared with the code's."""

import os
import re

import pytest
from traitlets.config.loader import PyFileConfigLoader

from autograder.pipeline import grading, intake, on_submit, sandbox, submission
from course import formulas

from helpers import REPO, unit_program

COURSE_CONFIG = PyFileConfigLoader("nbgrader_config.py", str(REPO)).load_config()
MB = 2**20

# (document, a pattern whose group is the number the document states, the code's number)
CLAIMS = [
    ("README.md", r"A cell of the student's may\s+use (\d+) s of CPU time \(`c\.Execute\.timeout`", COURSE_CONFIG.Execute.timeout),
    ("README.md", r"60 s, and each (three) times that on\s+the clock", unit_program().WALL_FACTOR),
    ("README.md", r"instructor's own code, unchanged \(imports, plots\),\s+(\d+) s", submission.INSTRUCTOR_CELL_S),
    ("README.md", r"a notebook may run (\d+) s\s+\(`NOTEBOOK_TIMEOUT=`\)", submission.NOTEBOOK_TIMEOUT_S),
    ("docs/THREATS.md", r"at (three) times that on the clock \(a cell that sleeps\)", unit_program().WALL_FACTOR),
    ("README.md", r"\(`JOBS=`, default: (three) per core\)", grading.default_jobs() // (os.cpu_count() or 1)),
    ("docs/THREATS.md", r"`c\.Execute\.timeout`, (\d+) s\)", COURSE_CONFIG.Execute.timeout),
    ("docs/THREATS.md", r"`--notebook-timeout` \((\d+) s\)", submission.NOTEBOOK_TIMEOUT_S),
    ("docs/THREATS.md", r"one wall-clock limit \(notebook \+ (\d+) s\)", submission.STARTUP_AND_SAVE_S),
    ("docs/THREATS.md", r"`RLIMIT_NPROC` \((\d+)\)", sandbox.LIMITS["nproc"]),
    ("docs/THREATS.md", r"`RLIMIT_DATA` \((\d+) GiB\)", sandbox.LIMITS["data"] // 2**30),
    ("docs/THREATS.md", r"`RLIMIT_FSIZE` \((\d+) MiB\)", sandbox.LIMITS["fsize"] // MB),
    ("docs/THREATS.md", r"past (\d+) MB or [\d,]+ files", sandbox.FOLDER_BYTES // MB),
    ("docs/THREATS.md", r"past \d+ MB or ([\d,]+) files", sandbox.FOLDER_FILES),
    ("docs/THREATS.md", r"cut at ([\d,]+) characters", unit_program().MAX_TEXT),
    ("docs/THREATS.md", r"each rich output over (\d+) MB dropped", unit_program().MAX_DATA // MB),
    ("docs/THREATS.md", r"an executed notebook over (\d+) MB is not taken", intake.MAX_NOTEBOOK_BYTES // MB),
    ("docs/THREATS.md", r"of bounded size \(a notebook (\d+) MB", intake.MAX_NOTEBOOK_BYTES // MB),
    ("docs/THREATS.md", r"a hand-in (\d+) MB in all\)", intake.MAX_FOLDER_BYTES // MB),
    ("docs/THREATS.md", r"leaves its full (\d+) s", formulas.TIME_LIMIT),
    ("docs/deployment.md", r"A hand-in that cannot be graded is tried (twice)", on_submit.TRIES),
]
WORDS = {"three": 3, "twice": 2}


@pytest.mark.parametrize("document, pattern, value", CLAIMS, ids=[f"{d}:{p[:30]}" for d, p, _ in CLAIMS])
def test_a_number_the_docs_state_is_the_codes(document, pattern, value):
    stated = re.findall(pattern, (REPO / document).read_text())
    assert stated, f"{document} no longer says this: update the claim here with the text"
    assert {WORDS.get(s, None) or int(s.replace(",", "")) for s in stated} == {value}, (document, pattern)


def test_notebooks_readme_names_test_files_that_exist():
    text = (REPO / "notebooks" / "README.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)`", text)
    assert named and all((REPO / path).is_file() for path in named), named
