"""nbgrader's settings on a student's machine: what the Validate button runs the notebook with.

The per-cell limit is the grader's (nbgrader_config.py in the course root; a test keeps the two
equal), so a cell that Validate lets finish is not cut off when the notebook is graded.
"""

c = get_config()  # noqa: F821  (defined by traitlets when it loads this file)

c.Execute.timeout = 10
c.Execute.interrupt_on_timeout = True
