"""nbgrader's settings on a student's side: what the Validate button runs the notebook with, and
where the Assignments tab finds the course on a hub.

The per-cell limit is the grader's (nbgrader_config.py in the course root; a test keeps the two
equal), so a cell that Validate lets finish is not cut off when the notebook is graded.
"""

import os

c = get_config()  # noqa: F821  (defined by traitlets when it loads this file)

c.Execute.timeout = 10
c.Execute.interrupt_on_timeout = True

# The course's exchange on a JupyterHub (release → fetch → submit): the hub sets the folder.
c.CourseDirectory.course_id = "autograd-labs"
if os.environ.get("AUTOGRAD_LABS_EXCHANGE"):
    c.Exchange.root = os.environ["AUTOGRAD_LABS_EXCHANGE"]
