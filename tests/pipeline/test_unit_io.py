"""What one unit costs the grader's own process in notebook reads and writes: the executed
notebook that comes back from the sandbox is read (and validated) once, made inert, verified,
and written back once, not read again by each step."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.pipeline import examples, grading, runs, submission

from helpers import make_course_root

pytestmark = pytest.mark.slow
LAB = "lab2"


def test_each_executed_notebook_is_read_once_and_written_once_by_the_grader(tmp_path, monkeypatch):
    root = make_course_root(tmp_path / "course")
    subprocess.run([sys.executable, "-m", "autograder", "--root", str(root), "release", "--lab", LAB],
                   check=True, capture_output=True)
    students = sorted(path.parent.parent.name for path in examples.write_submissions(root, LAB))[:2]
    reads, writes = [], []

    def executed(path) -> bool:  # the scratch copy the sandbox wrote, not the course's saved one
        parts = Path(path).parts if isinstance(path, (str, Path)) else ()  # nbconvert passes open files
        return runs.SCRATCH in parts and "autograded" in parts

    def counting_read(path, *args, **kwargs):
        if executed(path):
            reads.append(Path(path).name)
        return real_read(path, *args, **kwargs)

    def counting_write(nb, path, *args, **kwargs):
        if executed(path):
            writes.append(Path(path).name)
        return real_write(nb, path, *args, **kwargs)

    real_read, real_write = nbformat.read, nbformat.write
    monkeypatch.setattr(nbformat, "read", counting_read)
    monkeypatch.setattr(nbformat, "write", counting_write)
    outcomes = grading.grade_class(root, [LAB], 1, submission.Settings(threads=1), log=lambda line: None,
                                   students=set(students))
    assert [(o.student, o.ok, o.message) for o in outcomes[LAB]] == [(student, True, "") for student in students]
    assert reads == writes == [f"{LAB}.ipynb"] * len(students)
