"""The split holds: a student notebook reaches only the kit, the kit gives nothing away, and each
check is declared once."""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.labs import FunctionCheck, load
from autograder.pipeline import kitdata, notebooks

from helpers import REPO, SEED, hidden_probes

LABS = notebooks.labs()


def notebook_imports(lab: str) -> list[str]:
    """The import statements of a released notebook's code cells."""
    nb = nbformat.read(REPO / "release" / lab / f"{lab}.ipynb", as_version=4)
    lines = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        lines += [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    return lines


@pytest.fixture(scope="module")
def reachable() -> dict[str, str]:
    """{module: file} of everything a fresh interpreter loads running every notebook's imports."""
    code = "\n".join(line for lab in LABS for line in notebook_imports(lab)) + (
        "\nimport json, sys\nprint(json.dumps({n: getattr(m, '__file__', None) for n, m in sys.modules.items()}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/").stdout
    return json.loads(out.splitlines()[-1])


def test_notebooks_import_the_kit_and_never_the_grader_or_nbgrader(reachable):
    assert any(name.startswith("course.lab") for name in reachable)
    assert not [n for n in reachable if n.split(".")[0] in ("autograder", "nbgrader", "sqlalchemy", "sqlite3")]
    ours = {n: f for n, f in reachable.items()
            if f and f.startswith(str(REPO)) and not f.startswith(str(REPO / ".venv"))}
    assert all(f.startswith(str(REPO / "course")) for f in ours.values()), ours


def kit_texts(reachable) -> dict[str, str]:
    files = [f for f in reachable.values() if f and f.startswith(str(REPO / "course"))]
    files += [str(p) for p in (REPO / "course" / "expected").glob("*.json")]
    return {f: open(f).read() for f in files}


def probe_spellings(probes: list) -> set[str]:
    """How hidden probes could be written in code or data: the whole list, and each probe that is
    more than a single number (a lone number such as 0.05 is no secret worth searching for)."""
    spellings = {json.dumps(probes), repr(probes)}
    for probe in probes:
        if isinstance(probe, str):
            spellings.add(probe)
        elif isinstance(probe, (list, dict)):
            spellings |= {json.dumps(probe), repr(probe)}
    return spellings


def test_no_hidden_probe_and_no_reference_function_is_reachable_from_a_notebook(reachable):
    texts = kit_texts(reachable)
    for lab in LABS:
        grader = load(lab)
        for check in grader.checks.values():
            drawn = check.hidden_probes() + check.hidden_probes(SEED) if isinstance(check, FunctionCheck) else []
            for spelling in probe_spellings(drawn) if drawn else ():
                leaks = [f for f, text in texts.items() if spelling in text]
                assert not leaks, (lab, check.grade_id, spelling, leaks)
        module = REPO / "autograder" / "labs" / f"{lab}.py"
        defined = {n.name for n in ast.parse(module.read_text()).body
                   if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")}
        for name in defined:
            leaks = [f for f, text in texts.items() if re.search(rf"\bdef {re.escape(name)}\b", text)]
            assert not leaks, (lab, name, leaks)


@pytest.mark.parametrize("lab", LABS)
def test_each_check_id_is_written_once_in_the_grader_and_once_in_its_notebook(lab):
    grader_text = "\n".join(p.read_text() for p in (REPO / "autograder").rglob("*.py")
                             if p.name != "newlab.py")  # a new lab's templates are not the grader's checks
    kit_text = "\n".join(p.read_text() for p in (REPO / "course").rglob("*.py"))
    source = (REPO / "source" / lab / f"{lab}.py").read_text()
    for grade_id in load(lab).checks:
        word = re.compile(rf"\b{re.escape(grade_id)}\b")
        assert len(word.findall(grader_text)) == 1, grade_id
        assert len(word.findall(source)) == 1, grade_id
        assert not word.search(kit_text), grade_id


@pytest.mark.parametrize("lab", LABS)
def test_every_test_cell_has_a_declared_check_and_every_check_a_cell(lab):
    nb = notebooks.instructor_notebook(lab)
    cells = {c.metadata.nbgrader["grade_id"] for c in nb.cells if c.cell_type == "code"
             and c.metadata.get("nbgrader", {}).get("grade") and not c.metadata.nbgrader.get("solution")}
    assert cells == set(load(lab).checks)


@pytest.mark.parametrize("lab", LABS)
def test_hidden_probes_are_written_once_in_the_graders_declaration(lab):
    source = (REPO / "source" / lab / f"{lab}.py").read_text()
    for grade_id, check in load(lab).checks.items():
        if not isinstance(check, FunctionCheck) or not check.hidden_probes():
            continue
        assert not any(spelling in source for spelling in probe_spellings(check.hidden_probes())), grade_id
        if check.kind == "function":  # a formula's are run by the grader alone: not even the instructor notebook has them
            assert hidden_probes(lab, grade_id) == check.hidden_probes(), grade_id  # written in by the build


@pytest.mark.parametrize("lab", LABS)
def test_kit_data_is_what_the_grader_writes(lab):
    assert kitdata.up_to_date(lab), "run `make release`"


def test_kit_data_agreement_ignores_only_the_last_bits():
    assert kitdata.agree({"x": [0.042199449138673316, -0.0]}, {"x": [0.04219944913867333, 0.0]})
    for other in ({"x": [0.04219945, 0.0]}, {"x": [0.042199449138673316]}, {"y": [0.042199449138673316, 0.0]},
                  {"x": [0.042199449138673316, False]}, {"x": ["0.042199449138673316", 0.0]}):
        assert not kitdata.agree({"x": [0.042199449138673316, 0.0]}, other), other


def test_the_kit_has_no_pipeline():
    text = "\n".join(p.read_text() for p in (REPO / "course").rglob("*.py"))
    for word in ("nbgrader", "gradebook", "sqlite", "autograder"):
        assert not re.search(rf"^\s*(import|from)\s+\S*{word}", text, re.M | re.I), word


LINT_IMPORTS = REPO / ".venv" / "bin" / "lint-imports"
UPWARD_IMPORTS = {  # a module, and an import that breaks one of pyproject.toml's contracts
    "autograder/labs/__init__.py": "from ..pipeline import sandbox",  # a layer reaching up
    "autograder/verification.py": "from .pipeline.intake import precheck",
    "course/checks.py": "import nbgrader",  # the kit reaching the grader's tools
    "course/protocol.py": "import autograder.labs",
    "autograder/pipeline/autograde_unit.py": "from autograder.pipeline import layout",  # mounted alone
    "autograder/pipeline/speedups.py": "from autograder.pipeline import sandbox",  # mounted beside it
}


def lint_imports(root) -> subprocess.CompletedProcess:
    """`lint-imports` with the repository's contracts, on the packages in `root`."""
    return subprocess.run([str(LINT_IMPORTS), str(REPO / "pyproject.toml"), "--no-cache"],
                          cwd=root, env={"PATH": os.environ["PATH"], "PYTHONPATH": str(root)},
                          capture_output=True, text=True)


@pytest.fixture
def packages(tmp_path):
    """A copy of the grader and the kit, to break."""
    for package in ("autograder", "course"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_import_contracts_hold_and_each_upward_import_breaks_one(packages):
    kept = lint_imports(packages)
    assert kept.returncode == 0 and "3 kept, 0 broken" in kept.stdout, kept.stdout + kept.stderr
    for module, line in UPWARD_IMPORTS.items():
        path = packages / module
        text = path.read_text()
        path.write_text(f"{text}\n{line}\n")
        broken = lint_imports(packages)
        path.write_text(text)
        assert broken.returncode == 1 and "0 broken" not in broken.stdout, (module, broken.stdout + broken.stderr)


def test_a_release_is_stale_when_any_file_it_was_made_from_changes(tmp_path):
    """`make release` skips a lab whose digest is unchanged: the digest must cover the source, the
    config, every kit module, every lab declaration and the releasing code, and move with each."""
    (tmp_path / "source" / "lab1").mkdir(parents=True)
    copies = [shutil.copy2(REPO / "source" / "lab1" / "lab1.py", tmp_path / "source" / "lab1"),
              shutil.copy2(REPO / "nbgrader_config.py", tmp_path)]
    inputs = set(notebooks.release_inputs("lab1", tmp_path))
    code = {*(REPO / "course").glob("*.py"), *(REPO / "autograder" / "labs").glob("*.py"),
            REPO / "autograder" / "pipeline" / "notebooks.py", REPO / "autograder" / "pipeline" / "kitdata.py"}
    assert inputs == {p.resolve() for p in code} | {tmp_path / "source" / "lab1" / "lab1.py", tmp_path / "nbgrader_config.py"}
    before = notebooks.release_digest("lab1", tmp_path)
    for copy in map(Path, copies):
        text = copy.read_bytes()
        copy.write_bytes(text + b"\n")
        assert notebooks.release_digest("lab1", tmp_path) != before, copy
        copy.write_bytes(text)
    assert notebooks.release_digest("lab1", tmp_path) == before
    assert not notebooks.up_to_date("lab1", tmp_path)  # never released in this root


def test_no_submission_draws_a_visible_probe_as_a_hidden_one():
    for lab in LABS:
        for check in load(lab).checks.values():
            if isinstance(check, FunctionCheck) and check.cases:
                for number in range(300):
                    seen = [p for p in check.hidden_probes(number.to_bytes(4, "big")) if p in check.visible]
                    assert not seen, (lab, check.grade_id, number, seen)
