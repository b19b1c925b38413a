"""Every source notebook passes its own tests; every release passes none and fails only by design."""

import importlib
import math
import re

import nbformat
import pytest

from autograder.pipeline import notebooks
from course.answers import LINE_WIDTH, Unanswered

from helpers import REPO

LABS = notebooks.labs()
NUMBER = re.compile(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?")
INTENDED_ERRORS = {"NotImplementedError", Unanswered.__name__}


def test_there_are_labs():
    assert "lab4" in LABS


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_source_runs_top_to_bottom_and_passes_every_test(lab, device, tmp_path):
    nbformat.write(notebooks.instructor_notebook(lab), tmp_path / f"{lab}.ipynb")
    executed = notebooks.execute(tmp_path / f"{lab}.ipynb")
    scores = notebooks.graded_scores(executed)
    assert scores and all(score == points for score, points in scores.values()), scores
    for cell in executed.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", (cell.id, out.get("evalue"))
            assert not (out.output_type == "stream" and out.name == "stderr"), (cell.id, out.text)


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_release_has_no_solution_and_fails_only_where_answers_are_missing(lab, device, student):
    path = REPO / "release" / lab / f"{lab}.ipynb"
    text = path.read_text()
    for marker in notebooks.SOLUTION_MARKERS + notebooks.HIDDEN_MARKERS + ("hidden=",):
        assert marker not in text
    executed = notebooks.execute(path)
    scores = notebooks.graded_scores(executed)
    assert scores and not [cell for cell, (score, _) in scores.items() if score], "the release passes a test"
    for cell in executed.cells:
        meta = cell.metadata.get("nbgrader", {})
        errors = [o.ename for o in cell.get("outputs", []) if o.output_type == "error"]
        assert set(errors) <= INTENDED_ERRORS, (cell.id, errors)
        if meta.get("grade") and not meta.get("solution"):  # a check: says "Unanswered", in lines Validate shows whole
            assert errors == [Unanswered.__name__], f"{cell.id} should fail as unanswered in the blank release: {errors}"
            shown = [line for o in cell.outputs if o.output_type == "error" for line in o.traceback]
            assert max(map(len, shown)) <= LINE_WIDTH, (cell.id, shown)
    # Nothing run before answering shows a graded hand value of the student's own numbers.
    assert leaked(own_graded_values(lab, student), printed_numbers(executed)) == []


def own_graded_values(lab: str, student: str) -> dict[str, float]:
    """{name: value} of the hand-computed answers that are `student`'s own (another student's
    differ) and specific enough to recognise in printed output (not 0, ±1, an integer or a half),
    leaving out those equal to one of the student's given numbers (dm1/dw1 = x1, say)."""
    check = importlib.import_module(f"course.{lab}").check
    mine, other = check.expected_answers(student), check.expected_answers(f"not-{student}")
    given = [v for value in check.numbers(student).values() for v in (value if isinstance(value, list) else [value])
             if isinstance(v, (int, float))]
    values = {}
    for name, expected in mine.items():
        flat = expected.value if isinstance(expected.value, list) else [expected.value]
        theirs = other[name].value if isinstance(other[name].value, list) else [other[name].value]
        for i, (value, their) in enumerate(zip(flat, theirs, strict=True)):
            if value != their and (2 * value) % 1 and value not in given:  # integers and halves turn up anywhere
                values[f"{name}[{i}]" if len(flat) > 1 else name] = value
    return values


def printed_numbers(nb) -> list[str]:
    texts = [o.get("text", "") for c in nb.cells for o in c.get("outputs", [])]
    texts += [o.get("data", {}).get("text/plain", "") for c in nb.cells for o in c.get("outputs", [])]
    return [n for text in texts for n in NUMBER.findall(text) if any(ch.isdigit() for ch in n)]


def shows(value: float, printed: str) -> bool:
    """Whether a printed number is `value` to every digit it prints (to 4 significant digits when
    it prints fewer): 1.197375 does not show 1.19743, whose 7 digits are 1.197430."""
    digits = len(printed.lower().split("e")[0].lstrip("+-").replace(".", "").lstrip("0"))
    if digits < 4:
        return math.isclose(value, float(printed), rel_tol=5e-4)
    return math.isclose(float(f"{value:.{digits}g}"), float(printed), rel_tol=1e-12)


def leaked(values: dict[str, float], printed: list[str]) -> list[str]:
    """The names of `values` that a printed number shows."""
    return [name for name, value in values.items() if any(shows(value, number) for number in printed)]


def test_sources_are_text_with_valid_metadata():
    for lab in LABS:
        nb = notebooks.instructor_notebook(lab)
        assert notebooks.metadata_problems(nb) == []
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_metadata_validator_catches_common_mistakes():
    nb = nbformat.v4.new_notebook()
    meta = {"grade": True, "grade_id": "t", "locked": False, "points": 0, "schema_version": 3,
            "solution": False, "task": False}
    nb.cells = [nbformat.v4.new_code_cell("### BEGIN HIDDEN TESTS\nx\n", metadata={"nbgrader": meta}),
                nbformat.v4.new_code_cell("### BEGIN SOLUTION\n", metadata={}),
                nbformat.v4.new_code_cell("y", metadata={"nbgrader": {**meta, "grade_id": "t"}})]
    problems = "\n".join(notebooks.metadata_problems(nb))
    for expected in ("unbalanced", "positive points", "must be locked", "no nbgrader metadata", "duplicate"):
        assert expected in problems


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.py")), ids=lambda p: p.name)
def test_companion_notebook_runs_headless(path):
    import jupytext
    import nbclient

    nb = jupytext.read(path)
    nbclient.NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def test_there_are_companion_notebooks():
    assert len(list((REPO / "notebooks").glob("*.py"))) >= 3
