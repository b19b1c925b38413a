"""The grader of Autograd Labs: how students are graded. Never imported by a student notebook.

- `labs/`: one module per lab declaring its checks once (references, probes, verifiers).
- `verification.py`: the out-of-kernel authority that decides every graded cell.
- `pipeline/`: build, release, examples, batch grading, gradebook, feedback, export, bundle.
- `__main__.py`: the command line (`python -m autograder --help`).

It may import the student kit (`course`), torch and nbgrader; the kit never imports it.
"""

from .pipeline import speedups  # noqa: F401  first: before anything imports jsonschema (see its docstring)
