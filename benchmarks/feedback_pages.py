"""Time one feedback page, ours against nbgrader's, on a graded course (after `make demo`).

    python benchmarks/feedback_pages.py [--root ROOT] [--rounds R]

For every graded notebook under ROOT/autograded, each round renders its page twice in this
process, into scratch folders: with ours (`feedback.render`, the grading run's warm exporter)
and with stock nbgrader's GenerateFeedback made afresh, as `nbgrader generate_feedback` makes it
for each student. Prints seconds per page of each, their ratio, and whether every page of ours,
parsed, is stock's (node for node, as `tests/pipeline/test_pipeline.py` checks)."""

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from bs4 import BeautifulSoup
from nbgrader.converters import GenerateFeedback
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autograder.pipeline import feedback  # noqa: E402


def stock_page(root: Path, lab: str, student: str, out: Path) -> None:
    config = Config(feedback.course_config(root))
    config.merge(Config({"CourseDirectory": {"root": str(root), "assignment_id": lab, "student_id": student,
                                             "feedback_directory": str(out)}}))
    GenerateFeedback(coursedir=CourseDirectory(config=config), config=config,
                     log=logging.getLogger("stock")).start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = args.root.resolve()
    pages = sorted((path.parent.parent.name, path.parent.name) for path in root.glob("autograded/*/*/*.ipynb"))
    if not pages:
        print(f"no graded notebooks under {root}/autograded: run `make demo` first", file=sys.stderr)
        return 2
    seconds = {"ours": 0.0, "stock": 0.0}
    differ = set()
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            for student, lab in pages:
                outs = {name: Path(scratch) / f"{name}-{round_}" for name in seconds}
                started = time.perf_counter()
                feedback.render(root, lab, student, root / "autograded", outs["ours"])
                seconds["ours"] += time.perf_counter() - started
                started = time.perf_counter()
                stock_page(root, lab, student, outs["stock"])
                seconds["stock"] += time.perf_counter() - started
                ours, stock = ((outs[name] / student / lab / f"{lab}.html").read_text() for name in ("ours", "stock"))
                if str(BeautifulSoup(ours, features="html.parser")) != stock:
                    differ.add((lab, student))
    count = len(pages) * args.rounds
    print(f"{len(pages)} pages, {args.rounds} rounds: ours {seconds['ours'] / count:.3f} s a page, "
          f"stock {seconds['stock'] / count:.3f} s a page, {seconds['stock'] / seconds['ours']:.1f}×")
    print(f"pages whose parsed content differs from stock's: {len(differ)}" +
          "".join(f"\n  {lab} {student}" for lab, student in sorted(differ)))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
