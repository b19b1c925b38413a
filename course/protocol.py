"""The names that the kit, the sandboxed grading program (`autograde_unit.py`), the grader and
`nbgrader_config.py` must agree on, in one place. Plain constants and the standard library only:
the sandboxed program imports this module and nothing else of the course."""

import hashlib

COURSE_MIME_PREFIX = "application/vnd.autograd-labs."  # data outputs that only code reads, never shown
ANSWERS_MIME = COURSE_MIME_PREFIX + "answers+json"  # the plain data a test cell's check hands over
FORMULA_VERDICT_MIME = COURSE_MIME_PREFIX + "formula-verdict+json"  # the grader's verdict on a formula
IDENTITY_MIME = COURSE_MIME_PREFIX + "identity+json"  # {"student": id}: the id a notebook was last run under

FAULT_CELL_ID = "autograde-fault"  # the note on top of a notebook whose grading stopped early
SUMMARY_CELL_ID = "autograde-summary"  # the grader's summary of the scores, on top (below the note)
CELL_TIMEOUT = "CellTimeoutError"  # the error of a cell stopped at its time limit (nbclient's name)
TIME_LIMITS_KEY = "autograd_labs_time_limits"  # notebook metadata: [{"cell": N, "seconds": S, "clock": C}] per hit
CPU_CLOCK, WALL_CLOCK = "cpu", "wall"  # C: the kernel's CPU time (the notebook's own doing) or the clock's


def source_digest(source: str) -> str:
    """How the grader names an instructor's cell to the grading program (the SHA-256 of its code)."""
    return hashlib.sha256(source.encode()).hexdigest()
