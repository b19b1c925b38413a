"""The student distribution holds the released notebooks and the kit, and nothing that grades.

Built as `make student-bundle` builds it, searched for every solution and hidden-test line of
every lab, then installed into a fresh virtual environment where a released notebook runs
with one visible check passing and one failing, as nbgrader's Validate reports it.
"""

import os
import re
import subprocess
import sys
import zipfile

import nbformat
import pytest

from autograder.pipeline.examples import fill
from autograder.pipeline import bundle, notebooks
from course import lab2

from helpers import REPO

TEXT = (".py", ".md", ".json", ".txt", ".toml", ".yml", ".ipynb")


def cell_lines(path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [line for cell in nb.cells for line in cell.source.splitlines()]


def plain(line: str) -> str:
    return line.strip().removeprefix("#").strip()


def secret_lines() -> dict[str, str]:
    """Every line between solution or hidden-test markers in the sources, that no release shows."""
    given = {plain(line) for lab in notebooks.labs() for line in cell_lines(REPO / "release" / lab / f"{lab}.ipynb")}
    secrets = {}
    for lab in notebooks.labs():
        text = (REPO / "source" / lab / f"{lab}.py").read_text()
        for begin, end in (notebooks.SOLUTION_MARKERS, notebooks.HIDDEN_MARKERS):
            for block in re.findall(re.escape(begin) + "(.*?)" + re.escape(end), text, re.S):
                secrets.update({plain(line): lab for line in block.splitlines()
                                if len(plain(line)) >= 12 and plain(line) not in given})
    return secrets


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    dest = tmp_path_factory.mktemp("dist") / "student"
    return dest, bundle.write(REPO, dest)


def test_the_bundle_has_the_notebooks_and_the_kit_and_nothing_of_the_instructor(built):
    dest, archive = built
    names = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert {f"{lab}/{lab}.ipynb" for lab in notebooks.labs()} <= names
    assert {"README.md", "pyproject.toml", "requirements.txt", "environment.yml", "course/checks.py",
            "jupyter/labconfig/page_config.json", "jupyter/jupyter_server_config.json"} <= names
    assert not [n for n in names if n.split("/")[0] in ("source", "autograder", "examples", "tests")]
    assert not [n for n in names if "secret" in n or n.endswith(".db")]  # the course secret, a gradebook
    with zipfile.ZipFile(archive) as z:
        assert {n.split("/", 1)[1] for n in z.namelist() if not n.endswith("/")} == names


def test_the_bundle_pins_what_a_student_runs_and_nothing_of_the_graders(built):
    dest, _ = built
    pins = [line for line in (dest / "requirements.txt").read_text().splitlines() if "==" in line]
    names = {line.split("==")[0].lower() for line in pins}
    assert "torch==2.13.0+cpu" in pins and {"jupyterlab", "matplotlib", "nbgrader", "ipykernel"} <= names
    assert not names & {"jupyterhub", "dask", "distributed", "playwright", "pytest", "psycopg2-binary", "ruff"}
    locked = set((REPO / "requirements.lock").read_text().splitlines())
    assert set(pins) <= locked  # the course's own pins, no others
    kit = (dest / "pyproject.toml").read_text()
    assert '"torch==2.13.0"' in kit and "jupyterlab==" in kit and "nbgrader==" in kit


def test_no_solution_or_hidden_test_line_is_in_the_bundle(built):
    dest, _ = built
    secrets = secret_lines()
    assert len(secrets) > 100  # the search has something to find
    found = []
    for path in dest.rglob("*"):
        if path.is_file() and path.suffix in TEXT:
            lines = cell_lines(path) if path.suffix == ".ipynb" else path.read_text().splitlines()
            found += [(path.name, plain(line)) for line in lines if plain(line) in secrets]
    assert not found


def run(venv, *args, cwd, **kw):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", AUTOGRAD_LABS_STUDENT="ada", **kw)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_the_bundle_installs_in_a_fresh_venv_and_validates_a_notebook(built, tmp_path):
    dest, _ = built
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (command,) = [line for line in (dest / "README.md").read_text().splitlines() if "pip install" in line]
    words = command.split()  # the documented command, as a student types it in the bundle's folder
    assert words[:2] == [".venv/bin/pip", "install"] and words[-3:] == ["-r", "requirements.txt", "."]
    # PyTorch's index is out of this machine's reach; the torch CPU wheel it serves is on its disk
    at = words.index("--extra-index-url")
    assert words[at + 1] == bundle.TORCH_CPU_INDEX
    del words[at:at + 2]
    proc = run(venv, str(venv / "bin" / "pip"), *words[1:], "-q", "--disable-pip-version-check", cwd=dest)
    assert proc.returncode == 0, proc.stderr[-2000:]
    installed = run(venv, "python", "-m", "pip", "list", "--format=freeze", cwd=tmp_path).stdout.lower()
    for grader_only in ("jupyterhub", "dask", "playwright", "pytest", "psycopg2", "nvidia"):
        assert grader_only not in installed, grader_only
    probe = run(venv, "python", "-c", "import course.lab4, importlib.util as u; print(u.find_spec('autograder'))",
                cwd=tmp_path)
    assert probe.stdout.strip() == "None", probe.stderr  # the kit installs, the grader does not exist

    release = nbformat.read(dest / "lab2" / "lab2.ipynb", as_version=4)
    n = lab2.student_numbers("ada")  # the id `run` sets
    right = lab2.squared_error_values(n["x4"], n["y4"], n["w4"])
    work = tmp_path / "lab2"
    work.mkdir()
    nbformat.write(fill(release, {
        "t4_forward_answer": f"yhat = {right['yhat']!r}\ns = {right['s']!r}\nloss = {right['loss']!r}",
        "t4_backward_answer": f"dloss_ds = {right['s']!r}\nds_dyhat = 1.0\ndyhat_dw = {n['x4']!r}\n"
                              f"dloss_dw = {right['s'] * n['x4']!r}"}), work / "lab2.ipynb")
    validated = run(venv, "nbgrader", "validate", "lab2.ipynb", cwd=work)
    assert "forgot the factor 2 from the square" in validated.stdout, validated.stdout + validated.stderr
    executed = run(venv, "jupyter", "nbconvert", "--to", "notebook", "--execute", "--allow-errors",
                   "--output", "executed.ipynb", "lab2.ipynb", cwd=work)
    assert executed.returncode == 0, executed.stderr[-2000:]
    outputs = {c.id: "".join(o.get("text", "") + o.get("evalue", "") for o in c.get("outputs", []))
               for c in nbformat.read(work / "executed.ipynb", as_version=4).cells}
    assert "✔ yhat, s, loss: all 3 values are right." in outputs["t4_forward"]
    assert "forgot the factor 2 from the square" in outputs["t4_backward"]
