"""Build instructor notebooks from their text sources and check their nbgrader metadata.

Each lab's single source of truth is source/<lab>/<lab>.py, a jupytext percent file with
nbgrader metadata in the cell headers. `build` turns it into source/<lab>/<lab>.ipynb with
stable cell ids, so that regenerating the release gives byte-identical notebooks. A hidden test
names its probes `GRADER_PROBES`: the build writes in the hidden probes the lab's declaration
holds (`autograder/labs/<lab>.py`), so they are written once.
"""

import hashlib
import os
import re
import tempfile
from pathlib import Path

import jupytext
import nbformat

import course.checks

from ..labs import FunctionCheck, load
from . import kitdata
from .layout import Layout
from .nbgrader_cmd import run_nbgrader

ROOT = Path(__file__).resolve().parents[2]
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN_MARKERS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
GRADE_ID = re.compile(r"^[a-z][a-z0-9_]*$")
GRADER_PROBES = "GRADER_PROBES"  # in a hidden test of the source: the check's hidden probes, written in by `build`


def labs(root: Path = ROOT) -> list[str]:
    """Names of the labs that have a text source, in order."""
    return sorted(p.parent.name for p in (root / "source").glob("*/*.py") if p.stem == p.parent.name)


def stable_ids(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Give every cell a deterministic id: its grade_id, else its position."""
    for index, cell in enumerate(nb.cells):
        cell["id"] = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"cell-{index:03d}"
    return nb


def write_if_changed(nb: nbformat.NotebookNode, path: Path) -> bool:
    """Write the notebook unless the file already holds exactly this text; whole or not at all,
    since tests running in parallel build the same notebooks and read them."""
    text = nbformat.writes(nb) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as part:
        part.write(text)
    os.replace(part.name, path)
    return True


def instructor_notebook(lab: str, root: Path = ROOT) -> nbformat.NotebookNode:
    """The instructor notebook of source/<lab>/<lab>.py (outputs empty, ids stable), checked."""
    text_path = Layout(root).folder("source", lab) / f"{lab}.py"
    nb = stable_ids(jupytext.read(text_path))
    nb.metadata.pop("jupytext", None)
    nb.metadata["autograd_labs"] = {"lab": lab}
    write_in_hidden_probes(nb, lab)
    problems = metadata_problems(nb)
    if problems:
        raise ValueError(f"{text_path}:\n" + "\n".join(problems))
    return nb


def write_in_hidden_probes(nb: nbformat.NotebookNode, lab: str) -> None:
    """Replace `GRADER_PROBES` in each test cell by its check's hidden probes (their repr; where
    they are drawn for each submission, the notebook's own draw, which each unit replaces:
    `draw_hidden_probes`)."""
    checks = load(lab).checks
    for cell in nb.cells:
        if GRADER_PROBES not in cell.source:
            continue
        check = checks.get(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id"))
        if not isinstance(check, FunctionCheck) or not check.hidden_probes():
            raise ValueError(f"{lab}: {GRADER_PROBES} in a cell whose check declares no hidden probes")
        cell.source = cell.source.replace(GRADER_PROBES, repr(check.hidden_probes()))


def with_drawn_probes(source: str, check: FunctionCheck, seed: bytes) -> str:
    """A hidden test cell's code with the submission's draw in place of the notebook's."""
    written = repr(check.hidden_probes())
    if written not in source:
        raise ValueError(f"{check.grade_id}: the hidden test cell does not hold the notebook's draw of probes")
    return source.replace(written, repr(check.hidden_probes(seed)))


def build(lab: str, root: Path = ROOT) -> Path:
    """source/<lab>/<lab>.py → source/<lab>/<lab>.ipynb (`instructor_notebook`)."""
    out = Layout(root).folder("source", lab) / f"{lab}.ipynb"
    write_if_changed(instructor_notebook(lab, root), out)
    return out


def normalize_release(path: Path) -> None:
    """Make a generated student notebook deterministic (ids) and free of execution state, and
    give it the language_info this Python's kernel reports: JupyterLab writes that in when the
    kernel starts, and a notebook without it (or with another Python version) opens as modified."""
    from ipykernel.ipkernel import IPythonKernel

    nb = stable_ids(nbformat.read(path, as_version=4))
    nb.metadata.language_info = IPythonKernel.language_info
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    write_if_changed(nb, path)


def metadata_problems(nb: nbformat.NotebookNode) -> list[str]:
    """Everything wrong with a source notebook's nbgrader metadata (empty when valid)."""
    problems, seen = [], set()
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader")
        source = cell.source
        where = f"cell {index}"
        has_solution = SOLUTION_MARKERS[0] in source
        if meta is None:
            if has_solution or HIDDEN_MARKERS[0] in source:
                problems.append(f"{where}: has solution or hidden-test markers but no nbgrader metadata")
            continue
        grade_id = meta.get("grade_id", "")
        where = f"cell {index} ({grade_id})"
        if meta.get("schema_version") != 3:
            problems.append(f"{where}: schema_version must be 3")
        if not GRADE_ID.match(grade_id):
            problems.append(f"{where}: grade_id must be lower_snake_case")
        if grade_id in seen:
            problems.append(f"{where}: duplicate grade_id")
        seen.add(grade_id)
        for begin, end in (SOLUTION_MARKERS, HIDDEN_MARKERS):
            if source.count(begin) != source.count(end):
                problems.append(f"{where}: {begin!r} and {end!r} are unbalanced")
        if meta.get("solution") and not has_solution:
            problems.append(f"{where}: solution cell without ### BEGIN SOLUTION")
        if has_solution and not meta.get("solution"):
            problems.append(f"{where}: solution markers in a cell that is not a solution cell")
        if HIDDEN_MARKERS[0] in source and not (meta.get("grade") and not meta.get("solution")):
            problems.append(f"{where}: hidden tests outside an autograder test cell")
        if meta.get("grade"):
            if not isinstance(meta.get("points"), (int, float)) or meta["points"] <= 0:
                problems.append(f"{where}: graded cell needs positive points")
            if not meta.get("solution") and not meta.get("locked"):
                problems.append(f"{where}: autograder test cells must be locked")
            if cell.cell_type == "markdown" and not meta.get("solution"):
                problems.append(f"{where}: a graded markdown cell must be a solution cell")
    if not any(c.get("metadata", {}).get("nbgrader", {}).get("grade") for c in nb.cells):
        problems.append("no graded cells")
    return problems


STAMPS = ".released"  # in the course root: one digest per lab, of what its last release was made from


def release_inputs(lab: str, root: Path) -> list[Path]:
    """Every file a lab's release depends on: its source, the config, the kit and the grader's
    declarations (they make the kit's data), and the code that releases."""
    code = Path(__file__).resolve().parents[1]
    return [root / "source" / lab / f"{lab}.py", root / "nbgrader_config.py",
            *sorted(Path(course.checks.__file__).parent.glob("*.py")), *sorted((code / "labs").glob("*.py")),
            Path(__file__).resolve(), Path(kitdata.__file__).resolve()]


def release_digest(lab: str, root: Path) -> str:
    digest = hashlib.sha256()
    for path in release_inputs(lab, root):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def up_to_date(lab: str, root: Path) -> bool:
    """Whether the lab's release, kit data and gradebook entry were made from today's inputs."""
    stamp, layout = root / STAMPS / lab, Layout(root)
    made = [stamp, layout.notebook("release", lab), Path(course.checks.EXPECTED_DIR) / f"{lab}.json"]
    if not all(path.is_file() for path in made) or stamp.read_text() != release_digest(lab, root):
        return False
    return layout.has_assignment(lab)


def release(lab: str, root: Path = ROOT) -> Path:
    """Build the source notebook and the kit's data, run `nbgrader generate_assignment`,
    normalize the result."""
    build(lab, root)
    kitdata.write(lab)
    run_nbgrader("generate_assignment", lab, "--force", f"--CourseDirectory.root={root}", root=root)
    out = Layout(root).notebook("release", lab)
    normalize_release(out)
    (root / STAMPS).mkdir(exist_ok=True)
    (root / STAMPS / lab).write_text(release_digest(lab, root))
    return out


def execute(path: Path) -> nbformat.NotebookNode:
    """Run a notebook top to bottom as nbgrader's validator does: its Execute preprocessor, in
    the notebook's folder, with NBGRADER_EXECUTION=validate."""
    from nbgrader.preprocessors import Execute
    from nbgrader.utils import setenv

    nb = nbformat.read(path, as_version=4)
    with setenv(NBGRADER_VALIDATING="1", NBGRADER_EXECUTION="validate"):
        nb, _ = Execute().preprocess(nb, {"metadata": {"path": str(path.parent)}})
    return nb


def graded_scores(nb: nbformat.NotebookNode) -> dict[str, tuple[float, float]]:
    """{grade id: (score, max score)} of every executed autograder test cell, as nbgrader scores it."""
    from nbgrader.utils import determine_grade, is_grade, is_solution

    return {cell.metadata.nbgrader["grade_id"]: determine_grade(cell)
            for cell in nb.cells if cell.cell_type == "code" and is_grade(cell) and not is_solution(cell)}


def validate(path: Path, invert: bool = False) -> tuple[bool, str]:
    """Stock `nbgrader validate` (with --invert: the notebook must pass no test); (ok, its output)."""
    proc = run_nbgrader("validate", *(["--invert"] if invert else []), str(path), root=path.parent, check=False)
    output = proc.stdout + proc.stderr
    return proc.returncode == 0 and "Success!" in output, output
