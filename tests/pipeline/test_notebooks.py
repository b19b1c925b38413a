"""Every source notebook passes its own tests; every release passes none and fails only by design."""

import nbformat
import pytest

from autograder.pipeline import notebooks
from course.answers import Unanswered

from conftest import REPO

LABS = notebooks.labs()
INTENDED_ERRORS = {"NotImplementedError", Unanswered.__name__}


def test_there_are_labs():
    assert "lab4" in LABS


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_source_runs_top_to_bottom_and_passes_every_test(lab, device):
    executed = notebooks.execute(notebooks.build(lab))
    scores = notebooks.graded_scores(executed)
    assert scores and all(score == points for score, points in scores.values()), scores
    for cell in executed.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", (cell.id, out.get("evalue"))
            assert not (out.output_type == "stream" and out.name == "stderr"), (cell.id, out.text)


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_release_has_no_solution_and_fails_only_where_answers_are_missing(lab, device):
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
        if meta.get("grade") and not meta.get("solution"):
            assert errors, f"{cell.id} should fail in the blank release"


def test_sources_are_text_with_valid_metadata():
    for lab in LABS:
        nb = notebooks.stable_ids(nbformat.reads(notebooks.build(lab).read_text(), as_version=4))
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
