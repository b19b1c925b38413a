"""Every lab states how long it takes, by one rule of thumb applied to all, and fits a session."""

import re

import pytest

from autograder.pipeline import minutes, notebooks

from helpers import REPO


@pytest.mark.parametrize("lab", notebooks.labs())
def test_each_lab_states_its_estimated_time_and_fits_a_90_minute_session(lab):
    estimate = minutes.estimate(lab)
    introduction = " ".join(notebooks.instructor_notebook(lab).cells[0].source.split())
    assert estimate.statement() in introduction, f"run `make minutes WRITE=1` and `make release` ({lab})"
    assert estimate.total <= minutes.SESSION_MINUTES, minutes.report([lab])
    assert f"(`source/{lab}/{lab}.py`, about {estimate.total} minutes)" in (REPO / "README.md").read_text()


def test_the_estimate_counts_what_a_lab_asks():
    """Lab 4b's Task 6: one function (10), its prose, and the cells to run; a written answer is 5."""
    sections = minutes.estimate("lab4b").sections
    assert 10 + 2 < sections["Task 6"] < 10 + 8
    assert sections["Written answer"] == pytest.approx(5 + len(re.findall(r"\w+", written_prose("lab4b"))) / 150)
    assert [name for name in sections if name.startswith("Task ")] == [f"Task {k}" for k in range(1, 7)]


def written_prose(lab: str) -> str:
    cells = notebooks.instructor_notebook(lab).cells
    start = next(i for i, c in enumerate(cells) if c.source.startswith("## Written answer"))
    return "\n".join(minutes.SOLUTION.sub("", c.source) for c in cells[start:] if c.cell_type == "markdown"
                     and "What you learned" not in c.source)
