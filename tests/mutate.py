"""Plant single changes in the grader and the kit, and see whether the fast tests notice.

    python tests/mutate.py [--sample N] [--seed S] [--jobs J] [PATH ...]

A mutant changes one numeric constant (n → n + 1, x → 2x), one arithmetic operator
(+ ↔ −, * ↔ /, ** → *) or one comparison (< ↔ <=, > ↔ >=, == ↔ !=, < ↔ >) in one module of
`course/` or `autograder/`. Each mutant is written into a scratch copy of the repository and the
fast tests (`-m "not slow"`) run there, stopping at the first failure; a mutant they fail on is
killed. Mutants listed in tests/equivalent_mutants.txt (with the reason they cannot change
behaviour), each as "path | the line's code | change  # why", are left out of the rate, and
so are the modules and functions in SKIPPED. Prints the kill rate
and every survivor.
"""

import argparse
import ast
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGETS = ("course", "autograder")
# Modules and functions left out, and why: no grade, message or file the course produces
# depends on them, only how a figure looks.
SKIPPED = {"course/plots.py": "figures only (sizes, colours, axis limits, sample counts)",
           "course/graphs.py:draw_graph": "the figure's layout (sizes, offsets, colours); graph_layers is tested"}
EQUIVALENT = REPO / "tests" / "equivalent_mutants.txt"
ARITHMETIC = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
              ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv}
COMPARISON = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
              ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.FloorDiv: "//", ast.Mod: "%",
          ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
          ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}


@dataclass(frozen=True)
class Mutant:
    path: str      # relative to the repository
    index: int     # which mutable node of the file, in ast.walk order
    line: int
    code: str      # the line's text, stripped: how equivalent_mutants.txt finds it after edits
    change: str    # e.g. "< → <=" or "2 → 3"

    @property
    def key(self) -> str:
        return f"{self.path}:{self.line} {self.change}"

    @property
    def identity(self) -> str:
        return f"{self.path} | {self.code} | {self.change}"


def docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def sites(tree: ast.AST):
    """(node, change text, how to apply) for every mutable spot, in ast.walk order."""
    skip = docstring_nodes(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in skip and type(node.value) in (int, float):
            new = node.value + 1 if isinstance(node.value, int) else (node.value * 2 if node.value else 1.0)
            yield node, f"{node.value!r} → {new!r}", lambda n, v=new: setattr(n, "value", v)
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in ARITHMETIC:
            new = ARITHMETIC[type(node.op)]
            yield node, f"{SYMBOL[type(node.op)]} → {SYMBOL[new]}", lambda n, o=new: setattr(n, "op", o())
        elif isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in COMPARISON:
                    new = COMPARISON[type(op)]
                    yield node, f"{SYMBOL[type(op)]} → {SYMBOL[new]}", \
                        lambda n, i=i, o=new: n.ops.__setitem__(i, o())


def skipped_nodes(tree: ast.AST, path: str) -> set[int]:
    """Ids of the nodes inside the functions of this file that SKIPPED names."""
    names = {key.split(":", 1)[1] for key in SKIPPED if key.startswith(f"{path}:")}
    return {id(inner) for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name in names
            for inner in ast.walk(node)}


def all_mutants(paths: list[Path]) -> list[Mutant]:
    mutants = []
    for path in paths:
        relative = str(path.relative_to(REPO))
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        skip = skipped_nodes(tree, relative)
        mutants += [Mutant(relative, index, node.lineno, lines[node.lineno - 1].strip(), change)
                    for index, (node, change, _) in enumerate(sites(tree)) if id(node) not in skip]
    return mutants


def mutated_source(mutant: Mutant) -> str:
    tree = ast.parse((REPO / mutant.path).read_text())
    node, _, apply = list(sites(tree))[mutant.index]
    apply(node)
    return ast.unparse(tree) + "\n"


def run_mutant(mutant: Mutant, python: str) -> tuple[Mutant, bool, float]:
    """Copy the repository, plant the mutant, run the fast tests; (mutant, killed, seconds)."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutant-") as scratch:
        work = Path(scratch) / "repo"
        shutil.copytree(REPO, work, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.ipynb_checkpoints",
                                                                  "submitted", "autograded", "feedback", ".grading",
                                                                  "dist", "work", "gradebook.db"))
        (work / mutant.path).write_text(mutated_source(mutant))
        lab = next((part.removesuffix(".py") for part in Path(mutant.path).parts if part.startswith("lab")), None)
        first = [f"tests/labs/test_{lab}.py"] if lab and (work / f"tests/labs/test_{lab}.py").exists() else []
        proc = subprocess.run([python, "-m", "pytest", "-x", "-q", "-m", "not slow", "-p", "no:cacheprovider",
                               *first, "tests"], cwd=work, capture_output=True, text=True, timeout=600,
                              env={"PATH": f"{Path(python).parent}:/usr/bin:/bin", "PYTHONPATH": str(work),
                                   "OMP_NUM_THREADS": "1", "HOME": scratch})
    return mutant, proc.returncode != 0, time.monotonic() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--sample", type=int, default=100, help="mutants drawn at random (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.paths] or sorted(
        p for t in TARGETS for p in (REPO / t).rglob("*.py") if str(p.relative_to(REPO)) not in SKIPPED)
    mutants = all_mutants(paths)
    equivalent = {line.split("#")[0].strip() for line in EQUIVALENT.read_text().splitlines() if line.strip()
                  and not line.startswith("#")} if EQUIVALENT.exists() else set()
    pool = [m for m in mutants if m.identity not in equivalent]
    chosen = random.Random(args.seed).sample(pool, min(args.sample, len(pool))) if args.sample else pool
    print(f"{len(mutants)} mutants in {len(paths)} files; {len(mutants) - len(pool)} listed as equivalent; "
          f"running {len(chosen)} (seed {args.seed})", flush=True)
    survivors, killed = [], 0
    with ThreadPoolExecutor(args.jobs) as executor:
        for done, (mutant, was_killed, seconds) in enumerate(
                executor.map(lambda m: run_mutant(m, sys.executable), chosen), start=1):
            killed += was_killed
            if not was_killed:
                survivors.append(mutant)
            print(f"[{done}/{len(chosen)}] {'killed  ' if was_killed else 'SURVIVED'} {mutant.key} ({seconds:.0f} s)",
                  flush=True)
    rate = killed / len(chosen) if chosen else 1.0
    print(f"\nkill rate: {killed}/{len(chosen)} = {rate:.0%}")
    for mutant in survivors:
        print(f"  survived: {mutant.key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
