"""Our grading (sandbox, warm service, forked kernels) scores every test cell as stock
`nbgrader autograde` does, on the same example submissions; the only differences are the cells
our out-of-kernel verification overturned, each reported with its reason."""

import shutil
import subprocess
import sys

import pytest
from nbgrader.api import Gradebook

from autograder.pipeline import examples, gradebooks, grading, submission
from autograder.pipeline.layout import Layout
from autograder.pipeline.nbgrader_cmd import run_nbgrader

from helpers import make_course_root

pytestmark = pytest.mark.slow
LABS = ["lab2", "lab5"]  # all of Lab 2's and Lab 5's examples: right, wrong, blank, tampering


def scores_by_cell(root, lab):
    """{(student, cell): auto score} of the lab's autograded test cells."""
    tests = {name for name, _ in gradebooks.graded_cells(root, lab)[0]}
    with Gradebook(Layout(root).db_url) as gb:
        return {(sub.student.id, g.name): g.auto_score for sub in gb.find_assignment(lab).submissions
                for nb in sub.notebooks for g in nb.grades if g.name in tests}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    ours = make_course_root(tmp_path_factory.mktemp("ours"))
    for lab in LABS:
        subprocess.run([sys.executable, "-m", "autograder", "--root", str(ours), "release", "--lab", lab],
                       check=True, capture_output=True)
        examples.write_submissions(ours, lab)
    stock = tmp_path_factory.mktemp("stock") / "course"
    shutil.copytree(ours, stock)
    for lab in LABS:
        run_nbgrader("autograde", lab, "--force", f"--CourseDirectory.root={stock}", root=stock)
    outcomes = grading.grade_class(ours, LABS, 2, submission.Settings(threads=1), log=lambda line: None)
    return ours, stock, outcomes


@pytest.mark.parametrize("lab", LABS)
def test_every_cell_scores_as_stock_nbgrader_scores_it_unless_verification_overturned_it(both, lab):
    ours, stock, outcomes = both
    theirs, mine = scores_by_cell(stock, lab), scores_by_cell(ours, lab)
    assert set(theirs) == set(mine) and len(mine) >= len(examples.load(lab)) * 4
    overturned = {(o.student, line.split(":")[0].strip()) for o in outcomes[lab] for line in o.overrides}
    for key, score in mine.items():
        if key in overturned:
            assert score == 0 < theirs[key], key  # passed in the kernel, failed the grader's own check
        else:
            assert score == theirs[key], key
