"""What tests share: the repo root, the devices to test on, scratch course roots, and test cells
run as the notebook runs them (kit in the "kernel", verdict from the grader). Tests import it by
name (`from helpers import ...`); the fixtures are in conftest.py."""

import ast
import importlib
import linecache
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

import course.checks
from autograder.labs import FunctionCheck, load
from autograder.pipeline import notebooks, sandbox

REPO = Path(__file__).resolve().parent.parent
# The labs that give each student numbers of their own (Lab 4b's answers are all functions).
NUMBERED_LABS = [lab for lab in notebooks.labs() if hasattr(importlib.import_module(f"course.{lab}"), "student_numbers")]
# nbgrader's gradebook runs `alembic` from PATH: this environment's tools come first, as in make.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# The seed formula checks draw their hidden probes from in these tests: new each session (a
# right answer must pass every draw), or AGL_SEED's hex to replay one (pytest's header shows it).
SEED = bytes.fromhex(os.environ.get("AGL_SEED") or os.urandom(8).hex())
SEEDS = [SEED + bytes([n]) for n in range(40)]  # for tests that must hold on many draws
HIDDEN = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def unit_program():
    """The sandboxed grading program (`autograde_unit.py`), imported as it runs: a script beside
    the one module it imports (`speedups.py`), not a module of the grader."""
    folder = str(sandbox.UNIT_PROGRAM.parent)
    if folder not in sys.path:
        sys.path.append(folder)
    return importlib.import_module("autograde_unit")


def drawn_probes(check, seeds=SEEDS) -> list:
    """A formula check's hidden probes for each of `seeds`, one list."""
    return [probe for seed in seeds for _, probe in check.drawn(seed)]


def hidden_input_spellings(lab: str, root: Path | None = None) -> set[str]:
    """How each hidden input of the lab's checks (as drawn for every submission in the course
    `root`, where a check draws them per submission) could be written in a message: as the call
    (`f(1.5, 0.8)`), its arguments (`1.5, 0.8`, `x=2, lr=0.05`), the expression it is; spellings
    under 10 characters are left out (they turn up by chance)."""
    from course.checks import describe_call, shown
    from nbgrader.coursedir import CourseDirectory

    from autograder.labs import FormulaCheck
    from autograder.pipeline import draws

    seeds = []
    if root is not None:
        directory = CourseDirectory(root=str(root))
        seeds = [draws.submission_seed(root, lab, folder.name, directory.get_existing_timestamp(str(folder)))
                 for folder in sorted((root / "submitted").glob(f"*/{lab}"))]
    spellings = set()
    for check in load(lab).checks.values():
        probes = (drawn_probes(check, seeds) if getattr(check, "cases", None)
                  else [] if isinstance(check, FormulaCheck) else getattr(check, "hidden", []))
        for probe in probes:
            spellings.add(describe_call(check.called, probe))
            if isinstance(probe, dict):
                spellings.add(", ".join(f"{k}={shown(v)}" for k, v in probe.items()))
            elif isinstance(probe, list):
                spellings.add(", ".join(shown(v) for v in probe))
            else:
                spellings.add(str(probe))
    return {spelling for spelling in spellings if len(spelling) >= 10}


def make_course_root(dest: Path) -> Path:
    """A scratch nbgrader course with this repo's sources, config and examples."""
    for name in ("source", "examples"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("*.ipynb", "__pycache__"))
    shutil.copy2(REPO / "nbgrader_config.py", dest / "nbgrader_config.py")
    return dest


def cell_source(lab: str, grade_id: str, hidden: bool = True) -> str:
    """The code of a test cell in the lab's instructor notebook, with or without its hidden part."""
    (cell,) = [c for c in notebooks.instructor_notebook(lab).cells
               if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    source = cell.source
    if not hidden:
        source = source.split(HIDDEN[0])[0]
    return source.replace(HIDDEN[0], "").replace(HIDDEN[1], "")


def hidden_probes(lab: str, grade_id: str) -> list:
    """The `hidden=[...]` probes written in a test cell's hidden part (literal data and dict())."""
    cell = cell_source(lab, grade_id)
    hidden_part = cell[len(cell_source(lab, grade_id, hidden=False)):]
    (probes,) = [eval(compile(ast.Expression(k.value), "<cell>", "eval"), {"__builtins__": {"dict": dict}})
                 for node in ast.walk(ast.parse(hidden_part)) if isinstance(node, ast.Call)
                 for k in node.keywords if k.arg == "hidden"]
    return probes


def run_cell(source: str, namespace: dict, name: str) -> None:
    """Run code as a notebook cell: like IPython, keep its source in linecache under the
    filename its functions carry (the kit's formula check reads the cell back from there)."""
    filename = f"<cell {name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(compile(source, filename, "exec"), namespace)


def as_cell(source: str, name: str, **namespace) -> dict:
    """The namespace of a notebook in which `source` ran as the cell `name` (torch imported, as
    the labs' setup cells do, and `namespace` from earlier cells)."""
    namespace = {"torch": torch, **namespace}
    run_cell(source, namespace, name)
    return namespace


def texts(problems) -> list[str]:
    """What the student reads of the grader's problems."""
    return [problem.text for problem in problems]


def run_test_cell(lab: str, grade_id: str, namespace: dict, hidden: bool = True, answers: dict | None = None,
                  seed: bytes = SEED):
    """Run a test cell as the kernel would, then verify what it published as the grader would
    (`answers`: the notebook's answer cells' code, for a formula check; `seed`: the submission's,
    its hidden probes are drawn from).

    Returns (the exception the cell raised in the kernel or None, the grader's problems).
    """
    check = load(lab).checks.get(grade_id)
    if answers is None and getattr(check, "answer_cell", "") and callable(namespace.get(check.called)):
        # what the grader reads for the task's rule: the answer cell, as the kit reads it back
        answers = {check.answer_cell: course.checks.defining_cell(namespace[check.called]) or ""}
    published = []
    original = course.checks.publish
    course.checks.publish = published.append
    kit = __import__(f"course.{lab}", fromlist=["check"])
    error = None
    try:
        source = cell_source(lab, grade_id, hidden)
        if hidden and isinstance(check, FunctionCheck) and check.drawn_for_the_kernel:  # as in the unit's gradebook
            source = notebooks.with_drawn_probes(source, check, seed)
        exec(source, {**namespace, "check": kit.check})
    except Exception as exc:  # the cell fails in the kernel: nbgrader scores it 0
        error = exc
    finally:
        course.checks.publish = original
    student = course.identity.student_id()[0]
    return error, texts(load(lab).verify_cell(grade_id, published, student, answers, sandbox.run_formulas, seed))


def assert_named_slips(answers: dict, by_hand: dict, ignore: str = "\0") -> None:
    """Each slip in `by_hand` ({(answer name, words of its name): value worked out in the test})
    is in the answers with that value, and the answers name no other slip (except `ignore`)."""
    for (name, words), value in by_hand.items():
        (slip,) = [wrong for why, wrong in answers[name].slips.items() if words in why]
        assert slip == pytest.approx(value, rel=1e-12, abs=1e-15), (name, words)
    for name, expected in answers.items():
        named = {why for why in expected.slips if ignore not in why}
        assert named == {why for why in expected.slips for (n, words) in by_hand if n == name and words in why}, name


def graded_formula(lab: str, grade_id: str, source: str, seed: bytes = SEED):
    """A formula answer cell run as the notebook runs it, then its test cell:
    (the kernel's error or None, the grader's problems from the cell's code)."""
    namespace = {}
    run_cell(source, namespace, grade_id)
    return run_test_cell(lab, grade_id, namespace, answers={load(lab).checks[grade_id].answer_cell: source}, seed=seed)


def assert_formula_slips_are_far_and_distinct(check, reference, slips) -> None:
    """Test the test, on the hidden probes of each of many submissions' draws: every slip of a
    formula check differs from `reference(*probe)` by a thousandth of it (far beyond the formula
    tolerance) on some hidden input, and no two slips agree on every hidden input (each gets its own name)."""
    from course.answers import close

    for seed in SEEDS:
        gaps, outputs = {}, {}
        for _, probe in check.drawn(seed):
            right = reference(*probe)
            for why, wrong in slips(*probe).items():
                gaps.setdefault(why, []).append(max(abs(a - b) / (abs(b) + 1e-6) for a, b in zip(wrong, right, strict=True)))
                outputs.setdefault(why, []).extend(wrong)
        assert all(max(g) >= 1e-3 for g in gaps.values()), (seed.hex(), gaps)
        for a in outputs:
            for b in outputs:
                assert a == b or not all(close(u, v, 1e-6, 1e-9) for u, v in zip(outputs[a], outputs[b], strict=True)), \
                    (seed.hex(), a, b)
