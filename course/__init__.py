"""The student kit of Autograd Labs: everything a lab notebook imports, and nothing more.

- `labN.py`: a lab's `check` (your numbers, the checks behind the visible test cells) and the
  builders of its probe inputs; `expected/labN.json` holds the visible probes' expected outputs
  as data, written by the grader.
- `checks.py`, `answers.py`, `identity.py`, `device.py`: what the checks are made of.
- `plots.py`, `graphs.py`, `data.py`: plots, the graph drawer, small data sets.

It implements nothing a student is graded for writing, holds no hidden probe and imports
nothing of the grader or of nbgrader (a test walks its imports to prove it).
"""
