"""Verify published answers again, outside the student's kernel.

Each test cell publishes the answers it checked as plain data (kernel.publish). After
nbgrader has scored a submission, `audit` re-runs the lab's pure `verify` on that data
in the grading process, with the student id taken from the submission's folder. A cell
that passed in the kernel but fails here (its check was tampered with, its id changed,
or its data is missing) loses its points, and the notebook says why.
"""

import importlib
from pathlib import Path

import nbformat

from .kernel import ANSWERS_MIME


def published(cell) -> list[dict]:
    """The answer payloads a test cell's outputs carry."""
    return [out["data"][ANSWERS_MIME] for out in cell.get("outputs", [])
            if out.get("output_type") == "display_data" and ANSWERS_MIME in out.get("data", {})]


def cell_problems(lab_module, grade_id: str, payloads: list[dict], student: str) -> list[str]:
    """Why a passed test cell does not hold up when verified here (empty if it does)."""
    expected = sorted(lab_module.PUBLISHED.get(grade_id, ()))
    items = sorted(str(p.get("item")) for p in payloads if isinstance(p, dict))
    if items != expected:
        return [f"expected checked answers for {expected}, found {items}"]
    problems = []
    for payload in payloads:
        try:
            problems += lab_module.verify(payload["item"], payload["data"], student)
        except Exception as exc:  # malformed data is a failed check, never a crash
            problems.append(f"{payload['item']}: unreadable answer data ({type(exc).__name__})")
    return problems


def audit(graded: Path, lab: str, student: str, result: dict) -> list[str]:
    """Zero every passed test cell whose answers fail out-of-kernel verification.

    Updates `result["grades"]` and the autograded notebooks in place; returns one line
    per overturned cell.
    """
    lab_module = importlib.import_module(f"autograder.{lab}")
    overturned = []
    for path in sorted(graded.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        changed = False
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
                continue
            key = (path.stem, meta["grade_id"])
            if not result["grades"].get(key):
                continue
            problems = cell_problems(lab_module, meta["grade_id"], published(cell), student)
            if problems:
                result["grades"][key] = 0.0
                cell.outputs.append(nbformat.v4.new_output(
                    "error", ename="RecheckFailed", traceback=[],
                    evalue="Passed in the notebook, but not when the grader verified the answers "
                           "again: " + "; ".join(problems)))
                overturned.append(f"{meta['grade_id']}: overturned by the out-of-kernel check: {problems[0]}")
                changed = True
        if changed:
            nbformat.write(nb, path)
    return overturned
