"""Every single-operator or single-constant change to a lab's solution cells loses points, for
student ada or the other students of tests/mutate_solutions.py, or is listed: as equivalent (it cannot change a grade), or as a known survivor."""

import pytest

import mutate_solutions
from autograder.pipeline import notebooks

pytestmark = pytest.mark.slow
SURVIVING = mutate_solutions.REPO / "tests" / "surviving_solution_mutants.txt"


def listed(path) -> set[str]:
    return {line.split("#")[0].strip() for line in path.read_text().splitlines() if line.strip() and line[0] != "#"}


@pytest.mark.parametrize("lab", notebooks.labs())
def test_every_solution_mutant_loses_points_or_is_listed(monkeypatch, lab):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    alive, ran = mutate_solutions.survivors(lab)
    known = {identity for identity in listed(SURVIVING) if identity.startswith(f"{lab} |")}
    assert ran >= 10
    assert {mutant.identity for mutant in alive} == known  # a new survivor, or one now caught: update the list
