"""Time from a hand-in to its feedback in the exchange, with grading on submission running.

    python benchmarks/on_submit.py [--burst N] [--jobs J] [--lab lab4]

A scratch course is released, switched on for the lab, and `python -m autograder on-submit`
started on it as it runs on a hub. Hand-ins are then put in the exchange as the student
configuration's Submit puts them (the whole folder renamed into inbound in one step), each
solving every task with the source's solution code for its own student id, and the script
watches the exchange's feedback folder for each hand-in's page. It prints, in seconds from the
rename to the page:
  1. the first hand-in after the service started (it warms up on its first grading);
  2. one hand-in to the warm service, alone;
  3. a burst of N hand-ins at once: the median, the slowest, and the whole burst,
then checks that every page is a full-marks feedback page.
"""

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat
from nbgrader.utils import notebook_hash

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench import make_submission, solution_sources  # noqa: E402

from autograder.pipeline import grading, on_submit  # noqa: E402
from autograder.pipeline.layout import Layout  # noqa: E402
from autograder.pipeline.nbgrader_cmd import environment  # noqa: E402

COURSE_ID = "autograd-labs"


class Class:
    """A scratch course switched on for `lab`, its exchange, and solved hand-ins to put in it."""

    def __init__(self, scratch: Path, lab: str):
        self.lab, self.root, self.exchange = lab, scratch / "course", scratch / "exchange"
        self.root.mkdir()
        shutil.copytree(REPO / "source", self.root / "source", ignore=shutil.ignore_patterns("*.ipynb"))
        shutil.copy2(REPO / "nbgrader_config.py", self.root)
        subprocess.run([sys.executable, "-m", "autograder", "--root", str(self.root), "release", "--lab", lab],
                       check=True, capture_output=True, env=environment())
        (self.root / on_submit.POLICY_FILE).write_text(f'labs = ["{lab}"]\n')
        self.inbound = self.exchange / COURSE_ID / "inbound"
        self.inbound.mkdir(parents=True)
        release = nbformat.read(Layout(self.root).notebook("release", lab), as_version=4)
        self.solved = make_submission(release, solution_sources(lab, self.root), "correct")

    def hand_in(self, student: str) -> tuple[str, float]:
        """`student`'s solved hand-in, renamed into inbound; its secret and the time it arrived."""
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f %Z")
        staging = Path(tempfile.mkdtemp(prefix=".submitting-", dir=self.inbound))
        nbformat.write(self.solved, staging / f"{self.lab}.ipynb")
        (staging / "timestamp.txt").write_text(stamp)
        secret = secrets.token_hex(64)
        (staging / "submission_secret.txt").write_text(secret)
        staging.chmod(0o755)
        staging.rename(self.inbound / f"{student}+{self.lab}+{stamp}+{secrets.token_hex(4)}")
        return secret, time.monotonic()

    def page(self, secret: str) -> Path:
        return self.exchange / COURSE_ID / "feedback" / f"{notebook_hash(secret=secret, notebook_id=self.lab)}.html"

    def wait(self, handed: dict[str, tuple[str, float]], limit: float) -> dict[str, float]:
        """Seconds from each hand-in to its page."""
        took, deadline = {}, time.monotonic() + limit
        while len(took) < len(handed) and time.monotonic() < deadline:
            for student, (secret, at) in handed.items():
                if student not in took and self.page(secret).exists():
                    took[student] = time.monotonic() - at
            time.sleep(0.05)
        missing = sorted(set(handed) - set(took))
        if missing:
            raise SystemExit(f"no page after {limit:.0f} s for {len(missing)} hand-in(s): {', '.join(missing[:5])}")
        return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=100, help="hand-ins at once (N)")
    parser.add_argument("--jobs", type=int, default=grading.default_jobs(), help="the service's units at once "
                        "(default: the service's own, three per CPU core)")
    parser.add_argument("--lab", default="lab4")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autograd-labs-on-submit-") as scratch:
        course = Class(Path(scratch), args.lab)
        log = (Path(scratch) / "service.log").open("w")
        service = subprocess.Popen([sys.executable, "-m", "autograder", "--root", str(course.root), "on-submit",
                                    "--exchange", str(course.exchange), "--jobs", str(args.jobs)],
                                   stdout=log, stderr=subprocess.STDOUT, env=environment())
        try:
            first = course.wait({"warmup": course.hand_in("s_first")}, 600)["warmup"]
            one = course.wait({"s_one": course.hand_in("s_one")}, 600)["s_one"]
            started = time.monotonic()
            burst = {f"s{k:03d}": course.hand_in(f"s{k:03d}") for k in range(args.burst)}
            took = course.wait(burst, 60 * args.burst)
            whole = time.monotonic() - started
        finally:
            service.terminate()
            service.wait(timeout=60)
        full = sum("Autograded:" in course.page(secret).read_text() and "points" in course.page(secret).read_text()
                   for secret, _ in burst.values())
        scores = {line for secret, _ in burst.values() for line in course.page(secret).read_text().splitlines()
                  if "Autograded:" in line}
        print(f"grading on submission, {args.lab}, {os.cpu_count()} CPU cores, {args.jobs} units at once, "
              f"as {'root' if os.geteuid() == 0 else 'a regular user'}:")
        print(f"  first hand-in after the service started: {first:.1f} s to its feedback")
        print(f"  one hand-in, service warm:               {one:.1f} s")
        print(f"  a burst of {args.burst} hand-ins: median {statistics.median(took.values()):.1f} s, slowest "
              f"{max(took.values()):.1f} s, all {args.burst} pages in {whole:.1f} s "
              f"({whole / args.burst:.2f} s per hand-in)")
        print(f"  {full} of {args.burst} pages are feedback pages; their score lines: {sorted(scores)}")
    return 0 if full == args.burst else 1


if __name__ == "__main__":
    sys.exit(main())
