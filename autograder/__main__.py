"""Command line: `python -m autograder {build,grade,table,examples}` (see --help)."""

import argparse
import os
import sys
from pathlib import Path

from . import examples, grading, notebooks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    parser.add_argument("--root", type=Path, default=notebooks.ROOT, help="course root (default: the repo)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("build", "build source/<lab>/<lab>.ipynb from the jupytext sources"),
                       ("release", "build, then nbgrader generate_assignment into release/<lab>/"),
                       ("validate", "nbgrader's validator: every source passes, every release passes no test")):
        sub.add_parser(name, help=text).add_argument("--lab", action="append")
    grade = sub.add_parser("grade", help="autograde every submission, then feedback, CSV and table")
    grade.add_argument("--lab", action="append", help="lab to grade (repeatable; default: all)")
    grade.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="submissions graded at once")
    table = sub.add_parser("table", help="print the grade table from the gradebook")
    table.add_argument("--lab", action="append")
    ex = sub.add_parser("examples", help="copy the bundled example submissions into submitted/")
    ex.add_argument("--lab", action="append")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    labs = getattr(args, "lab", None) or notebooks.labs(root)

    if args.command == "build":
        for lab in labs:
            print(notebooks.build(lab, root).relative_to(root))
    elif args.command == "release":
        for lab in labs:
            print(notebooks.release(lab, root).relative_to(root))
    elif args.command == "validate":
        bad = 0
        for lab in labs:
            for path, invert in ((notebooks.build(lab, root), False), (root / "release" / lab / f"{lab}.ipynb", True)):
                results, _ = notebooks.execute_and_validate(path, invert)
                verdict = "passes no test, as it should" if invert else "passes every test"
                print(f"{path.relative_to(root)}: " + (f"FAILED {results}" if results else verdict))
                bad += bool(results)
        return 1 if bad else 0
    elif args.command == "examples":
        for lab in labs:
            for path in examples.write_submissions(root, lab):
                print(path.relative_to(root))
    elif args.command == "grade":
        failed = 0
        for lab in labs:
            outcomes = grading.grade_lab(root, lab, args.jobs)
            failed += sum(not o.ok for o in outcomes)
            if any(o.ok for o in outcomes):
                grading.generate_feedback_and_export(root, lab)
            print(grading.format_table(root, lab, outcomes))
        print(f"feedback: {root / 'feedback'}   grades CSV: {root / 'grades.csv'}")
        if failed:
            print(f"{failed} submission(s) could not be graded; see NOT GRADED above.", file=sys.stderr)
    elif args.command == "table":
        for lab in labs:
            print(grading.format_table(root, lab, []))
    return 0


if __name__ == "__main__":
    sys.exit(main())
