"""The student distribution: released notebooks and the student kit, nothing of the instructor's.

`write(root, dest)` fills `dest` (normally dist/student/) with the released notebooks, the
`course` package with its data, the student's Jupyter configuration (no instructor tools), a
README for students, the pinned requirements and a pyproject.toml that installs the kit, and
zips it beside itself. It copies no `source/`, no
`autograder/`, no examples: a test greps the result for every solution and hidden-test line.
"""

import shutil
from pathlib import Path

from .layout import Layout
from .notebooks import ROOT, labs

KIT_PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "autograd-labs-kit"
version = "0.1.0"
description = "The student kit of Autograd Labs: your numbers, the visible checks, plots"
requires-python = ">=3.11,<3.12"
dependencies = ["torch==2.13.0", "matplotlib==3.11.2", "ipython"]

[tool.setuptools]
packages = ["course"]

[tool.setuptools.package-data]
course = ["expected/*.json"]
'''

STUDENT_README = '''# Autograd Labs — student kit

Five Jupyter labs on how PyTorch builds computation graphs and computes gradients:
{labs}.

## Install (once)

```bash
python3.11 -m venv .venv
# pinned: torch 2.13.0 (its CPU build, from PyTorch's own index), JupyterLab, nbgrader
.venv/bin/pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt
.venv/bin/pip install .   # the kit the notebooks import (`course`)
```

With conda: `conda env create -f environment.yml && conda activate autograd-labs-kit`.

## Work on a lab

```bash
AUTOGRAD_LABS_STUDENT=<your id> JUPYTER_CONFIG_PATH=jupyter .venv/bin/jupyter lab
```

(`JUPYTER_CONFIG_PATH=jupyter` hides nbgrader's instructor tools, which students do not need.)

Open `labN/labN.ipynb`. Hand computations use numbers made from your student id; the
notebook prints them at the top. Fill in each cell marked `YOUR CODE HERE`, then run the test
cell below it: a ✔ line means the visible checks pass; otherwise the message says what is
wrong and, where it can tell, which mistake gives your value. The **Validate** button in the
notebook toolbar runs every visible test at once. Hidden tests run only when your notebook is
graded, on inputs you have not seen, and the grader decides every grade from the answers your
notebook hands over, on its own machine.

## Hand in

On a course JupyterHub, open *Nbgrader → Assignment List*: **Submit** hands in your saved
notebook (as often as you like: the newest when your instructor collects is the one graded),
and **Fetch Feedback** brings the feedback back. Otherwise hand in the notebook file
`labN/labN.ipynb` the way your instructor asks (keep its name).
'''

ENVIRONMENT = '''name: autograd-labs-kit
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - pip:
      - --extra-index-url https://download.pytorch.org/whl/cpu
      - -r requirements.txt
      - .
'''


def write(root: Path, dest: Path) -> Path:
    """Write the student distribution into `dest` and `dest`.zip; return the zip's path."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    layout = Layout(root)
    names = labs(root)
    for lab in names:
        target = dest / lab
        target.mkdir()
        shutil.copy2(layout.notebook("release", lab), target / f"{lab}.ipynb")
    shutil.copytree(ROOT / "course", dest / "course",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(ROOT / "jupyter" / "student", dest / "jupyter")
    shutil.copy2(ROOT / "requirements.lock", dest / "requirements.txt")
    (dest / "pyproject.toml").write_text(KIT_PYPROJECT)
    (dest / "environment.yml").write_text(ENVIRONMENT)
    (dest / "README.md").write_text(STUDENT_README.format(labs=", ".join(names)))
    return Path(shutil.make_archive(str(dest), "zip", dest.parent, dest.name))
