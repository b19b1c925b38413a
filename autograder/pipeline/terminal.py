"""What the instructor reads in the terminal: the progress of a run and the grade table."""

import sys
import time
from pathlib import Path

from .gradebooks import cell_scores, graded_cells
from .submission import Outcome


class Progress:
    """What grading has done so far: a bar redrawn in place on a terminal, plain lines otherwise
    (CI, a log file); every unit's problems in full; a summary at the end."""

    def __init__(self, total: int, log=print):
        self.total, self.log, self.done, self.failed = total, log, [], []
        self.start = time.monotonic()
        self.bar = log is print and sys.stdout.isatty()

    def later(self, outcome: Outcome) -> None:
        """A unit that hit a time limit beside the others, to be graded again alone."""
        if self.bar:
            print("\r\033[K", end="")
        why = outcome.message if not outcome.ok else "a time limit was hit"
        self.log(f"{outcome.lab} {outcome.student}: {why} beside other units; graded again alone at the end")
        if self.bar:
            print(self.status(), end="", flush=True)

    def add(self, outcome: Outcome) -> None:
        self.done.append(outcome)
        if not outcome.ok:
            self.failed.append(outcome)
        note = f"graded ({outcome.seconds:.1f} s)" if outcome.ok else f"NOT GRADED: {outcome.message}"
        lines = [f"{outcome.lab} {outcome.student}: {note}"] * (not outcome.ok or not self.bar)
        lines += [f"    {outcome.fault}"] * bool(outcome.fault) + [f"    {line}" for line in outcome.overrides]
        if self.bar:
            print("\r\033[K", end="")
        for line in lines:
            self.log(f"{line}  [{len(self.done)}/{self.total}]" if line is lines[0] else line)
        if self.bar:
            print(self.status(), end="", flush=True)

    def status(self) -> str:
        """`[#####.....] 12/34 graded, 1 not graded, 2.1 per s, 10 s left`."""
        count, elapsed = len(self.done), time.monotonic() - self.start
        rate = count / elapsed if elapsed > 0 else 0.0
        filled = 30 * count // self.total
        left = (self.total - count) / rate if rate else 0.0
        return (f"[{'#' * filled}{'.' * (30 - filled)}] {count - len(self.failed)}/{self.total} graded, "
                f"{len(self.failed)} not graded, {rate:.1f} per s, {left:.0f} s left")

    def summary(self) -> None:
        if self.bar:
            print("\r\033[K", end="")
        elapsed = time.monotonic() - self.start
        graded = [o for o in self.done if o.ok]
        self.log(f"graded {len(graded)} of {self.total} submission(s) in {elapsed:.1f} s "
                 f"({elapsed / max(1, self.total):.2f} s per submission; each took "
                 f"{sum(o.seconds for o in graded) / max(1, len(graded)):.2f} s on its own)")
        reasons: dict[str, list[str]] = {}
        for outcome in self.failed:
            reasons.setdefault(outcome.message, []).append(f"{outcome.lab} {outcome.student}")
        for reason, units in reasons.items():
            self.log(f"not graded ({len(units)}): {reason}: {', '.join(units)}")


def format_table(root: Path, lab: str, outcomes: list[Outcome]) -> str:
    """A plain-text grade table: one row per student, one column per autograded cell."""
    scores = cell_scores(root, lab)
    auto, manual = graded_cells(root, lab)
    manual_points = sum(m for _, m in manual)
    widths = [max(len(n), 5) for n, _ in auto]
    name_width = max([len(s) for s in scores] + [len(o.student) for o in outcomes] + [7])
    head = (f"{'student':<{name_width}}  " + "  ".join(f"{n:>{w}}" for (n, _), w in zip(auto, widths, strict=True))
            + f"  {'auto':>9}  written")
    lines = [f"{lab}: points per autograded cell", head, "-" * len(head)]
    failures = {o.student: o.message for o in outcomes if not o.ok}
    for student in sorted(set(scores) | set(failures)):
        if student not in scores:
            lines.append(f"{student:<{name_width}}  NOT GRADED: {failures[student]}")
            continue
        got = [scores[student].get(n) for n, _ in auto]
        written = [scores[student].get(n) for n, _ in manual]
        to_read = sum(m for (_, m), v in zip(manual, written, strict=True) if v is None)
        line = (f"{student:<{name_width}}  "
                + "  ".join(f"{'?' if v is None else f'{v:g}':>{w}}" for v, w in zip(got, widths, strict=True))
                + f"  {sum(v or 0 for v in got):>4g}/{sum(m for _, m in auto):<4g}"
                + (f"  {to_read:g} pts to read" if to_read else f"  {sum(written):g}/{manual_points:g}"))
        if student in failures:
            line += f"  (newest submission NOT GRADED, earlier grades kept: {failures[student]})"
        lines.append(line)
    return "\n".join(lines)
