"""What the instructor reads in the terminal: the progress of a run and the grade table."""

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as Bar

from .gradebooks import cell_scores, graded_cells
from .submission import Outcome


class Progress:
    """What grading has done so far: on a terminal, rich's progress bar (the phase, counts, time
    left) with each unit's problems printed above it; plain lines otherwise (CI, a log file, a
    test's `log`); a summary at the end. What a unit's lines quote of a submission is printed as text, never
    read as markup."""

    def __init__(self, total: int, log: Callable[[str], None] = print, console: Console | None = None):
        self.total, self.log, self.done, self.failed = total, log, [], []
        self.start = time.monotonic()
        console = console or Console(highlight=False)
        self.bar = None
        if log is print and console.is_terminal:
            self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("done, {task.fields[failed]} not graded,"),
                           TimeElapsedColumn(), TextColumn("so far,"), TimeRemainingColumn(), TextColumn("left"),
                           console=console, transient=True)
            self.task = self.bar.add_task("starting", total=total, failed=0)
            self.bar.start()

    def say(self, line: str) -> None:
        if self.bar is None:
            self.log(line)
        else:
            self.bar.console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def phase(self, name: str, detail: str = "") -> None:
        """The run is now in phase `name` (the bar's label; a line where there is no bar)."""
        if self.bar is None:
            self.log(f"{name}: {detail}" if detail else name)
        else:
            self.bar.update(self.task, description=name)

    def later(self, outcome: Outcome) -> None:
        """A unit that hit a time limit beside the others, to be graded again alone."""
        why = outcome.message if not outcome.ok else "a time limit was hit"
        self.say(f"{outcome.lab} {outcome.student}: {why} beside other units; graded again alone at the end")

    def add(self, outcome: Outcome) -> None:
        self.done.append(outcome)
        if not outcome.ok:
            self.failed.append(outcome)
        note = f"graded ({outcome.seconds:.1f} s)" if outcome.ok else f"NOT GRADED: {outcome.message}"
        lines = [f"{outcome.lab} {outcome.student}: {note}"] * (not outcome.ok or self.bar is None)
        lines += [f"    {outcome.fault}"] * bool(outcome.fault) + [f"    {line}" for line in outcome.overrides]
        for line in lines:
            self.say(f"{line}  [{len(self.done)}/{self.total}]" if line is lines[0] else line)
        if self.bar is not None:
            self.bar.update(self.task, completed=len(self.done), failed=len(self.failed))

    def summary(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
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


@contextmanager
def after_grading(phase: str, console: Console | None = None):
    """On a terminal, a spinner that names `phase` (exports, tables) while it runs; elsewhere nothing."""
    console = console or Console(highlight=False)
    if not console.is_terminal:
        yield
        return
    with console.status(f"{phase} ..."):
        yield


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
