"""Grade one generated class three ways in the same run and compare speed and scores.

    python benchmarks/bench.py [--per-lab N] [--jobs J] [--labs lab1 lab2 ...]

N submissions per lab are generated from the release: most solve every task (the source's
solution code, which computes each student's own numbers), some solve the first half, some
are blank, and each lab has one that loops forever in Task 2 and one whose kernel crashes
there. The same submissions are then graded by
  1. stock nbgrader, one lab after the other (it has no parallel mode), in one copy of the
     course: `nbgrader autograde` of each lab (grading), then `generate_feedback` of each lab and
     one `export` (end to end);
  2. ours (`python -m autograder grade`: the sandbox and the warm service, J units at a time,
     each feedback page as its grade is saved, then the CSVs, tables and reports), once before
     stock and once after it, each in a fresh copy of the course: the machine's speed drifts
     over the half hour stock takes, and the mean of the two runs brackets it. Its grading time
     is what its summary line says, its end-to-end time the whole command's;
  3. a raw execution of each notebook in a fresh kernel with nbclient, nothing else: the cost of
     running the code, one notebook at a time, as stock pays it.
It prints the seconds (in all and per submission) of each, grading and end to end, with both
ratios to stock, checks that every cell's score is the same in both gradebooks (a crashed kernel
excepted: stock grades nothing of that notebook, ours keeps the cells before the crash), and
prints each lab's student-code time.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbgrader.api import Gradebook
from nbgrader.utils import setenv
from traitlets.config.loader import PyFileConfigLoader

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autograder.pipeline import gradebooks, grading, notebooks  # noqa: E402
from autograder.pipeline.layout import DB_URL_ENV, Layout  # noqa: E402
from autograder.pipeline.nbgrader_cmd import environment, run_nbgrader  # noqa: E402
from course.identity import STUDENT_ENV  # noqa: E402

FAULTS = {"endless_loop": "while True:\n    pass", "crash": "import os\nos._exit(1)"}
ROTATION = ["correct", "correct", "correct", "half", "blank"]
SETUP_CELL = "setup"  # the import cell, left out of a lab's student-code time
LAZY_IMPORT_CELL = "bench-lazy-import"


def solution_sources(lab: str, root: Path) -> dict[str, str]:
    """{grade id: code} of every solution code cell of the source notebook, markers removed."""
    nb = nbformat.read(notebooks.build(lab, root), as_version=4)
    return {c.metadata.nbgrader["grade_id"]: "\n".join(line for line in c.source.splitlines()
                                                      if line.strip() not in notebooks.SOLUTION_MARKERS)
            for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}


def make_submission(release, solutions: dict[str, str], kind: str):
    """The release answered as `kind` says."""
    nb = nbformat.from_dict(release)
    answers = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") in solutions]
    solved = {"correct": answers, "half": answers[: len(answers) // 2], "blank": []}.get(kind, answers)
    for cell in solved:
        cell.source = solutions[cell.metadata.nbgrader["grade_id"]]
    if kind in FAULTS:  # just before the second answer cell, i.e. in Task 2
        at = nb.cells.index(answers[1])
        nb.cells.insert(at, nbformat.v4.new_code_cell(FAULTS[kind]))
    return nb


def generate(root: Path, labs: list[str], per_lab: int) -> dict[tuple[str, str], str]:
    """Write the class under submitted/; {(lab, student): kind}."""
    layout, kinds = Layout(root), {}
    for lab in labs:
        release = nbformat.read(layout.notebook("release", lab), as_version=4)
        solutions = solution_sources(lab, root)
        plan = ["endless_loop", "crash"] + [ROTATION[i % len(ROTATION)] for i in range(max(0, per_lab - 2))]
        for i, kind in enumerate(plan[:per_lab]):
            student = f"s{i:03d}_{kind}"
            out = layout.notebook("submitted", lab, student)
            out.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(make_submission(release, solutions, kind), out)
            kinds[(lab, student)] = kind
    return kinds


def scores(root: Path, labs: list[str]) -> dict[tuple[str, str, str], float | None]:
    """{(lab, student, test cell): auto score} from a course's gradebook."""
    out = {}
    for lab in labs:
        tests = {name for name, _ in gradebooks.graded_cells(root, lab)[0]}
        with Gradebook(Layout(root).db_url) as gb:
            for sub in gb.find_assignment(lab).submissions:
                out.update({(lab, sub.student.id, g.name): g.auto_score
                            for nb in sub.notebooks for g in nb.grades if g.name in tests})
    return out


def run_stock(root: Path, labs: list[str]) -> tuple[float, float]:
    """Stock nbgrader as an instructor runs it: `autograde` of each lab, then `generate_feedback`
    of each lab and one `export` of the grades; (seconds grading, seconds end to end)."""
    start = time.monotonic()
    for lab in labs:
        run_nbgrader("autograde", lab, "--force", f"--CourseDirectory.root={root}", root=root, check=False)
    grading_done = time.monotonic()
    for lab in labs:
        run_nbgrader("generate_feedback", lab, "--force", f"--CourseDirectory.root={root}", root=root, check=False)
    run_nbgrader("export", f"--CourseDirectory.root={root}", root=root, check=False)
    return grading_done - start, time.monotonic() - start


def run_ours(root: Path, labs: list[str], jobs: int, dask: bool) -> tuple[float, float]:
    """Ours as an instructor runs it (`python -m autograder grade`: the warm service's start, the
    grading with each feedback page, the CSVs, the tables and the reports); (seconds grading, as
    its summary line says, seconds end to end)."""
    command = [sys.executable, "-m", "autograder", "--root", str(root), "grade", "--jobs", str(jobs)]
    command += [arg for lab in labs for arg in ("--lab", lab)] + ["--dask"] * dask
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=environment(), cwd=REPO)
    seconds = time.monotonic() - start
    said = re.search(r"^time: [\d.]+ s in all: .*\bgrading ([\d.]+) s", done.stdout, re.MULTILINE)
    if said is None:
        raise RuntimeError(f"ours did not finish (exit {done.returncode}): {done.stderr[-2000:]}")
    return float(said.group(1)), seconds


def run_raw(root: Path, labs: list[str], timeout: int) -> float:
    """Each submitted notebook in a fresh kernel with nbclient, where nbgrader would run it."""
    layout, start = Layout(root), time.monotonic()
    os.environ["NBGRADER_EXECUTION"] = "autograde"
    for lab in labs:
        for student in layout.students("submitted", lab):
            folder = root / "raw" / "autograded" / student / lab
            shutil.copytree(layout.folder("submitted", lab, student), folder)
            nb = nbformat.read(folder / f"{lab}.ipynb", as_version=4)
            try:
                NotebookClient(nb, timeout=timeout, allow_errors=True, interrupt_on_timeout=True,
                               resources={"metadata": {"path": str(folder)}}).execute()
            except Exception:  # a dead kernel: nbclient gives up on the notebook, as stock nbgrader does
                pass
    return time.monotonic() - start


def reset_database(db_url: str) -> None:
    """Drop every table of a gradebook database, so the next run starts from an empty one."""
    import sqlalchemy
    engine = sqlalchemy.create_engine(db_url)
    try:
        metadata = sqlalchemy.MetaData()
        metadata.reflect(engine)
        metadata.drop_all(engine)
    finally:
        engine.dispose()


def student_code_seconds(root: Path, lab: str, student: str) -> tuple[float, float]:
    """Seconds a solved notebook's code cells run, and its slowest cell's (the import cell
    excluded, nbclient's timing; the per-cell limit in nbgrader_config.py is set from this),
    alone on an idle machine in a fresh kernel on one thread: the bench's grading runs share the
    cores among several kernels, which would stretch the cells' wall-clock time."""
    folder = Path(tempfile.mkdtemp(prefix="student-code-"))
    try:
        shutil.copy2(Layout(root).notebook("submitted", lab, student), folder / f"{lab}.ipynb")
        nb = nbformat.read(folder / f"{lab}.ipynb", as_version=4)
        # torch imports its compiler package (~0.9 s) when the first optimizer is made: an import,
        # so it is done here, in a cell that is not counted, instead of in the first training cell
        at = next(i for i, c in enumerate(nb.cells) if c.get("id") == SETUP_CELL) + 1
        nb.cells.insert(at, nbformat.v4.new_code_cell("import torch._dynamo", id=LAZY_IMPORT_CELL))
        env = {STUDENT_ENV: student, "OMP_NUM_THREADS": "1"}
        with setenv(**env):
            NotebookClient(nb, timeout=120, record_timing=True,
                           resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    cells = []
    for cell in nb.cells:
        timing = cell.get("metadata", {}).get("execution", {})
        if cell.cell_type == "code" and cell.get("id") not in (SETUP_CELL, LAZY_IMPORT_CELL) \
                and "shell.execute_reply" in timing:
            began, ended = (datetime.fromisoformat(timing[key].replace("Z", "+00:00"))
                            for key in ("iopub.execute_input", "shell.execute_reply"))
            cells.append((ended - began).total_seconds())
    return sum(cells), max(cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-lab", type=int, default=10, help="submissions per lab (N)")
    parser.add_argument("--jobs", type=int, default=grading.default_jobs(), help="our units at once")
    parser.add_argument("--labs", nargs="*", default=None)
    parser.add_argument("--dask", action="store_true", help="ours on a LocalCluster of --jobs Dask workers")
    parser.add_argument("--db-url", help="ours with this (empty) gradebook database, e.g. PostgreSQL")
    parser.add_argument("--no-raw", action="store_true", help="leave out the raw nbclient run (as long as stock's)")
    args = parser.parse_args()
    os.environ["PATH"] = environment()["PATH"]
    labs = args.labs or notebooks.labs(REPO)
    with tempfile.TemporaryDirectory(prefix="autograd-labs-bench-") as scratch:
        base = Path(scratch) / "course"
        base.mkdir()
        shutil.copytree(REPO / "source", base / "source", ignore=shutil.ignore_patterns("*.ipynb"))
        shutil.copy2(REPO / "nbgrader_config.py", base)
        subprocess.run([sys.executable, "-m", "autograder", "--root", str(base), "release"], check=True,
                       capture_output=True, env=environment())
        kinds = generate(base, labs, args.per_lab)
        stock = Path(scratch) / "stock"
        shutil.copytree(base, stock)
        count = len(kinds)
        print(f"{count} submissions ({args.per_lab} per lab: {', '.join(sorted(set(kinds.values())))}), "
              f"{os.cpu_count()} CPU cores, ours with {args.jobs} jobs")
        timeout = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config().Execute.timeout
        database = args.db_url.split(":")[0] if args.db_url else "SQLite"
        ours_name = "ours" + " on Dask" * args.dask + " with " + database

        def ours_run(name: str) -> tuple[tuple[float, float], dict]:
            """Ours on a fresh copy of the course: ((seconds grading, end to end), its scores)."""
            ours = Path(scratch) / name
            shutil.copytree(base, ours)
            if args.db_url:  # the lab's rows first, as a release writes them, in an emptied database
                os.environ[DB_URL_ENV] = args.db_url
                subprocess.run([sys.executable, "-m", "autograder", "--root", str(ours), "release", "--force"],
                               check=True, capture_output=True, env=environment())
            try:
                return run_ours(ours, labs, args.jobs, args.dask), scores(ours, labs)
            finally:
                os.environ.pop(DB_URL_ENV, None)
                if args.db_url:
                    reset_database(args.db_url)

        os.environ.pop(DB_URL_ENV, None)
        before, our_scores = ours_run("ours-before")
        stock_name = "stock nbgrader (autograde; + generate_feedback + export)"
        seconds = {stock_name: run_stock(stock, labs)}
        after, scores_after = ours_run("ours-after")
        seconds[f"{ours_name}, before stock"] = before
        seconds[f"{ours_name}, after stock"] = after
        seconds[f"{ours_name}, mean"] = tuple((b + a) / 2 for b, a in zip(before, after, strict=True))
        if not args.no_raw:
            raw = run_raw(base, labs, timeout)
            seconds["raw nbclient, fresh kernels"] = (raw, raw)
        width = max(map(len, seconds)) + 2
        print(f"\n{'grader':<{width}}{'grading s':>10}{'per sub':>9}{'vs stock':>10}"
              f"{'end to end s':>14}{'per sub':>9}{'vs stock':>10}")
        stock_grading, stock_total = seconds[stock_name]
        for name, (grading_s, total_s) in seconds.items():
            print(f"{name:<{width}}{grading_s:>10.1f}{grading_s / count:>9.2f}{stock_grading / grading_s:>9.1f}×"
                  f"{total_s:>14.1f}{total_s / count:>9.2f}{stock_total / total_s:>9.1f}×")
        stock_scores = scores(stock, labs)
        cells = set(stock_scores) | set(our_scores)  # a cell one of them did not grade differs
        same = {k for k in cells if k in our_scores and k in stock_scores and stock_scores[k] == our_scores[k]}
        differ = sorted({(lab, student) for (lab, student, cell) in cells if (lab, student, cell) not in same})
        print(f"\nper-cell scores: {len(same)} of {len(cells)} identical in both gradebooks")
        for lab, student in differ:
            print(f"  differ: {lab} {student} ({kinds[(lab, student)]})")
        unexpected = [unit for unit in differ if kinds[unit] != "crash"]
        ours_cells = set(our_scores) | set(scores_after)
        again = sorted(k for k in ours_cells if k not in our_scores or k not in scores_after
                       or scores_after[k] != our_scores[k])
        print(f"ours, second run: {len(ours_cells) - len(again)} of {len(ours_cells)} cell scores as in the first")
        for lab, student, cell in again:
            print(f"  differ: {lab} {student} ({kinds[(lab, student)]}) {cell}: "
                  f"{our_scores.get((lab, student, cell))} then {scores_after.get((lab, student, cell))}")
        print("\nstudent code per lab (a solved submission, import cell excluded, alone on one thread):")
        for lab in labs:
            solved = next(s for (name, s), k in kinds.items() if name == lab and k == "correct")
            total, slowest = student_code_seconds(Path(scratch) / "ours-before", lab, solved)
            print(f"  {lab}: {total:.2f} s, slowest cell {slowest:.2f} s (the per-cell limit: {timeout} s)")
        return 1 if unexpected or again else 0


if __name__ == "__main__":
    sys.exit(main())
