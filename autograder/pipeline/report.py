"""A lab's class report: how the scores are spread, and which mistakes were made most often.

Made from what grading saved (the gradebook's scores and the graded notebooks' published
answers, re-read by the grader's own checks), so it can be made again at any time:
`python -m autograder report`. It writes `reports/<lab>-scores.png` (a histogram of the
autograded totals) and `reports/<lab>.txt`, which it also returns:

    lab4: 34 graded, autograded points: mean 19.2 / 23, median 21 (histogram: reports/lab4-scores.png)
    Mistakes per graded cell, each with the number of students who made it:
      <test cell> (1 pt; 12 students lost it)
          7  used m2·(1 − m2) for the sigmoid's derivative (in `dloss_dw1`, `dloss_dw2`)
          2  flipped the sign (in `dloss_dw1`)

A mistake made in several answers of one cell counts once for that student, and every mistake
is listed, so that one student's slip repeated in four answers hides nobody else's.
"""

import re
import shutil
import statistics
from collections import Counter, defaultdict
from pathlib import Path

import nbformat
from nbgrader.utils import is_grade, is_solution

from .. import verification
from ..labs import load
from . import gradebooks, similarity
from .layout import Layout, whole_file

def folder(root: Path) -> Path:
    return root / "reports"


def cell_mistakes(root: Path, lab: str, student: str, lost: set[str],
                  classmates: list[str]) -> tuple[dict[str, list[str]], str | None, dict[str, str]]:
    """{test cell: its mistakes} for the cells in `lost` of one student's graded notebooks: as
    the audit wrote them down when it graded (`verification.MISTAKES_KEY`), else worked out again;
    the other id the notebooks were worked under, if the audit found one; and {test cell: the
    classmate whose numbers its answers are right for} (`verification.COPIED_KEY`)."""
    checks, found, worked_as, owners = load(lab), {}, None, {}
    for path in sorted(Layout(root).folder("autograded", lab, student).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        worked_as = worked_as or nb.metadata.get(verification.WORKED_AS_KEY)
        owners.update({str(cell): str(owner) for cell, owner in nb.metadata.get(verification.COPIED_KEY, {}).items()})
        written = nb.metadata.get(verification.MISTAKES_KEY)
        if isinstance(written, dict) and lost <= set(written):
            found.update({grade_id: [str(words) for words in written[grade_id]] for grade_id in lost})
            continue
        seed = bytes.fromhex(nb.metadata.get(verification.SEED_KEY, ""))  # the audit wrote it
        for cell in nb.cells:
            if cell.cell_type == "code" and is_grade(cell) and not is_solution(cell) \
                    and cell.metadata.nbgrader["grade_id"] in lost:
                grade_id = cell.metadata.nbgrader["grade_id"]
                found[grade_id] = verification.cell_mistakes(cell, checks, student, classmates, seed)
    return found, worked_as, owners


def class_report(root: Path, lab: str) -> str:
    """Write the lab's histogram (drawn again only when the totals changed) and report (every
    mistake per cell, with its number of students) under reports/; return the report's text."""
    scores = gradebooks.cell_scores(root, lab)
    auto, _ = gradebooks.graded_cells(root, lab)
    possible = sum(points for _, points in auto)
    totals = {s: sum(cells.get(name) or 0 for name, _ in auto) for s, cells in scores.items()}
    out = folder(root)
    out.mkdir(exist_ok=True)
    png = out / f"{lab}-scores.png"
    if not totals:
        return f"{lab}: nothing graded yet"
    drawn = out / f".{lab}-scores.drawn"  # what the histogram shows, to skip drawing it again
    shows = f"{possible:g}: {sorted(totals.values())}"
    if not (png.is_file() and drawn.is_file() and drawn.read_text() == shows):
        histogram(lab, totals, possible, png)
        with whole_file(drawn) as partial:
            partial.write_text(shows)
    return mistakes_report(root, lab, scores, auto, totals, possible, png)


def histogram(lab: str, totals: dict[str, float], possible: float, png: Path) -> None:
    """The autograded totals' histogram, written whole to `png`."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(list(totals.values()), bins=[x - 0.5 for x in range(int(possible) + 2)], color="#4c72b0",
            edgecolor="white")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel=f"autograded points (of {possible:g})", ylabel="students",
           title=f"{lab}: {len(totals)} graded submission(s)")
    fig.tight_layout()
    with whole_file(png) as partial:
        fig.savefig(partial, dpi=100, format="png")
    plt.close(fig)


def similar_work(root: Path, lab: str, students: list[str], copied: list[str]) -> list[str]:
    """The report's section on work that looks shared: answer cells with similar code
    (`similarity`), and hand values right for a classmate's numbers."""
    out = folder(root) / f"{lab}-similar"
    shutil.rmtree(out, ignore_errors=True)  # pages of pairs that are no longer similar go
    similar = similarity.similar_work(root, lab, students, out)
    groups = similar.groups()
    if not groups and not copied:
        return []
    lines = ["Work that looks shared (evidence to look at, not proof; short answers written independently can "
             "look alike):"]
    lines += [f"  {cell}: {', '.join(members)} (each shares at least {similarity.THRESHOLD:.0%} of its code with "
              "another of them)" for cell, members in groups]
    if groups:
        lines.append(f"  who wrote what, and similar pairs side by side: {(out / 'index.html').relative_to(root)}")
    lines += [f"  {line}" for line in copied]
    return lines


def misconception(mistake: str) -> tuple[str, str]:
    """A mistake as (what was done, the answer it was done in): "`df_dx`: used …" → ("used …", "df_dx");
    ("no answer reached the check", "") where it names no answer."""
    named = re.fullmatch(r"`([^`]+)`: (.+)", mistake, re.DOTALL)
    return (named.group(2), named.group(1)) if named else (mistake, "")


def mistakes_report(root: Path, lab: str, scores: dict, auto: list, totals: dict[str, float], possible: float,
                    png: Path) -> str:
    """The report's text, written to reports/<lab>.txt: the totals, then per cell each mistake
    with the number of students who made it, most frequent first."""
    out = folder(root)
    students = {name: Counter() for name, _ in auto}  # {cell: {what was done: students}}
    answers = {name: defaultdict(set) for name, _ in auto}  # {cell: {what was done: answers it was in}}
    lost_by, other_ids, copied = Counter(), [], []
    classmates = sorted(scores)
    for student, cells in scores.items():
        lost = {name for name, points in auto if (cells.get(name) or 0) < points}
        lost_by.update(lost)
        found, worked_as, owners = cell_mistakes(root, lab, student, lost, classmates) if lost else ({}, None, {})
        if worked_as:
            other_ids.append(verification.other_id(str(worked_as), student))
        for owner in sorted(set(owners.values())):
            cells = ", ".join(sorted(cell for cell, whose in owners.items() if whose == owner))
            copied.append(f"{student}'s answers in {cells} are right for {owner}'s numbers")
        for grade_id, mistakes in found.items():
            done = [misconception(mistake) for mistake in mistakes]
            students[grade_id].update({what for what, _ in done})
            for what, answer in done:
                answers[grade_id][what].update([answer] if answer else [])
    lines = [f"{lab}: {len(totals)} graded, autograded points: mean {statistics.mean(totals.values()):.1f} / "
             f"{possible:g}, median {statistics.median(totals.values()):g} (histogram: {png.relative_to(root)})",
             "Mistakes per graded cell, each with the number of students who made it:"]
    for name, points in auto:
        if lost_by[name]:
            lines.append(f"  {name} ({points:g} pt{'s' * (points != 1)}; "
                         f"{lost_by[name]} student{'s' * (lost_by[name] != 1)} lost {'them' if points != 1 else 'it'})")
            for what, n in sorted(students[name].items(), key=lambda item: (-item[1], item[0])):
                where = sorted(answers[name][what])
                lines.append(f"    {n:>3}  {what}" + (f" (in {', '.join(f'`{a}`' for a in where)})" if where else ""))
    if len(lines) == 2:
        lines.append("  none: every graded cell got its points")
    if other_ids:
        lines += ["Worked under another student id than the one graded (their hand values lose points):",
                  *[f"  {line}" for line in sorted(other_ids)]]
    lines += similar_work(root, lab, classmates, copied)
    text = "\n".join(lines)
    with whole_file(out / f"{lab}.txt") as partial:
        partial.write_text(text + "\n")
    return text
