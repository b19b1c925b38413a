"""The student distribution: released notebooks and the student kit, nothing of the instructor's.

`write(root, dest)` fills `dest` (normally dist/student/) with the released notebooks, the
`course` package with its data, the student's Jupyter configuration (no instructor tools), a
README for students, the pinned requirements and a pyproject.toml that installs the kit, and
zips it beside itself. It copies no `source/`, no
`autograder/`, no examples: a test greps the result for every solution and hidden-test line.
"""

import re
import shutil
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .layout import Layout
from .notebooks import ROOT, labs

# What a student runs: the kit's imports (torch, matplotlib, IPython), a kernel, JupyterLab, and
# nbgrader for its Validate button and Assignment List. Nothing of the grader's (JupyterHub, Dask,
# PostgreSQL, Playwright, pytest).
STUDENT_RUNS = ("torch", "matplotlib", "ipython", "ipykernel", "jupyterlab", "nbgrader")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

KIT_PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "autograd-labs-kit"
version = "0.1.0"
description = "The student kit of Autograd Labs: your numbers, the visible checks, plots"
requires-python = ">=3.11,<3.12"
dependencies = [{dependencies}]

[tool.setuptools]
packages = ["course"]

[tool.setuptools.package-data]
course = ["expected/*.json"]
'''

STUDENT_README = '''# Autograd Labs — student kit

Jupyter labs on how PyTorch builds computation graphs and computes gradients:
{labs}.

## Install (once)

You need Python 3.11. In this folder:

```bash
python3.11 -m venv .venv
.venv/bin/pip install --extra-index-url {torch_index} -r requirements.txt .
```

That installs the kit the notebooks import (`course`) with what the labs run, each pinned in
`requirements.txt`: torch {torch} (its CPU build, {size_hint}), JupyterLab, matplotlib, and
nbgrader's Validate button. Keep the `--extra-index-url`: PyTorch's own index is where the
CPU build is. Without it, pip on Linux takes torch from PyPI with its CUDA libraries, several GB
that the labs never use.

With conda: `conda env create -f environment.yml && conda activate autograd-labs-kit`.

## Work on a lab

```bash
AUTOGRAD_LABS_STUDENT=<your id> JUPYTER_CONFIG_PATH=jupyter .venv/bin/jupyter lab
```

(`JUPYTER_CONFIG_PATH=jupyter` hides nbgrader's instructor tools, which students do not need.)

**Your student id** picks your numbers. Here it is what you give as `AUTOGRAD_LABS_STUDENT`:
use the id your course grades you as (on a course JupyterHub it is your login, set for you; if
your course grades on Gradescope, the id your instructor says Gradescope grades you as). To
change it, quit JupyterLab and start it again: restarting the kernel keeps the old id. A
notebook graded as another id than the one it was run under loses its hand values, and its
feedback says so.

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
    pins = student_pins(ROOT / "requirements.lock")
    (dest / "requirements.txt").write_text(
        "# What the student kit runs, pinned as the course's requirements.lock pins it (`make student-bundle`)\n"
        + "".join(f"{pin}\n" for pin in pins.values()))
    top = ", ".join(f'"{pins[canonicalize_name(name)].split("+")[0]}"' for name in STUDENT_RUNS)
    (dest / "pyproject.toml").write_text(KIT_PYPROJECT.format(dependencies=top))
    (dest / "environment.yml").write_text(ENVIRONMENT)
    torch = pins["torch"].split("==")[1].split("+")[0]
    (dest / "README.md").write_text(STUDENT_README.format(labs=", ".join(names), torch_index=TORCH_CPU_INDEX,
                                                          torch=torch, size_hint="about 200 MB"))
    return Path(shutil.make_archive(str(dest), "zip", dest.parent, dest.name))


def student_pins(lock: Path) -> dict[str, str]:
    """{package: its line of `lock`} for STUDENT_RUNS and everything they require, followed
    through the installed packages' own requirements (extras left out)."""
    locked = {canonicalize_name(re.split(r"==", line)[0]): line.strip() for line in lock.read_text().splitlines()
              if "==" in line and not line.startswith(("#", " "))}
    needed, todo = set(), [canonicalize_name(name) for name in STUDENT_RUNS]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        for text in metadata.distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return {name: locked[name] for name in sorted(needed) if name in locked}
