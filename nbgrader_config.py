"""nbgrader settings for the Autograd Labs course (the course root is this folder)."""

from pathlib import Path

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.course_id = "autograd-labs"
c.CourseDirectory.root = str(Path(__file__).resolve().parent)
# source/<lab>/<lab>.py is the jupytext text the notebook is built from: it holds the
# solutions, so it must never be copied into a release.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.py"]

# Generous per-cell limit for slow machines; one runaway cell cannot stall a whole class.
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True

# Feedback shows each test's result, never the hidden tests' code (their probes stay unknown).
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
