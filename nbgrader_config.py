"""nbgrader settings for the Autograd Labs course (the course root is this folder)."""

import os
from pathlib import Path

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.course_id = "autograd-labs"
c.CourseDirectory.root = str(Path(__file__).resolve().parent)
# source/<lab>/<lab>.py is the jupytext text the notebook is built from: it holds the
# solutions, so it must never be copied into a release.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.py"]

# The gradebook: SQLite in this folder, unless AUTOGRAD_LABS_DB_URL names another database
# (`make autograde DB_URL=postgresql://...`; see the README).
if os.environ.get("AUTOGRAD_LABS_DB_URL"):
    c.CourseDirectory.db_url = os.environ["AUTOGRAD_LABS_DB_URL"]

# Per cell: the slowest cell of any lab's solution takes about 1.3 s (the imports, in a fresh
# kernel; `make bench` prints each lab's student-code time). 10 s leaves a wide margin for a
# loaded machine, and an endless loop costs 10 s of the class's time, not minutes.
c.Execute.timeout = 10
c.Execute.interrupt_on_timeout = True

# Feedback shows each test's result, never the hidden tests' code (their probes stay unknown).
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
