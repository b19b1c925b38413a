"""How long a lab takes, estimated from what its notebook asks of a student.

Not measured with students: one rule of thumb applied the same way to every lab, so that labs
can be compared, each states its time, and none grows past a 90-minute session unnoticed
(tests/unit/test_minutes.py). The rates are for a student who knows single-variable calculus.
"""

import importlib
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from .notebooks import ROOT, instructor_notebook

WORDS_PER_MINUTE = 150            # prose with formulas, read carefully (answers and hidden tests excluded)
MINUTES_PER_HAND_VALUE = 1.5      # one number worked out by hand and typed in
MINUTES_PER_TABLE_ROW = 1.0       # one prediction in a table
MINUTES_PER_CELL_RUN = 1.0        # a cell to run, and its output or plot to look at
MINUTES_PER_WRITTEN_ANSWER = 5.0
MINUTES_PER_CHECK = {"formula": 10.0, "function": 10.0, "engine": 25.0}
SESSION_MINUTES = 90

CHECK_CALL = re.compile(r"check\.(values|formula|function|table|engine)\(globals\(\),\s*([^)]*)\)")
SOLUTION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS).*?### END \1", re.S)
HEADING = re.compile(r"^## (.+)$", re.M)
TIME_PARAGRAPH = re.compile(r"^# \*\*Time\.\*\*.*?(?=\n#\n|\n\n)", re.M | re.S)


@dataclass
class Estimate:
    lab: str
    sections: dict[str, float]  # minutes per `## ` section, in the notebook's order

    @property
    def total(self) -> int:
        """The whole lab, to the nearest 5 minutes."""
        return 5 * round(sum(self.sections.values()) / 5)

    def statement(self) -> str:
        """The paragraph each lab's introduction carries (`stamp` writes it; a test compares)."""
        tasks = ", ".join(f"{name} {round(m)}" for name, m in self.sections.items() if name.startswith("Task "))
        return (f"**Time.** About {self.total} minutes ({tasks}; the rest is reading, running and written "
                "answers), as `make minutes` estimates from what the lab asks. Not yet timed with students.")


def answer_minutes(lab: str, source: str) -> float:
    """The time to answer the visible checks called in one test cell."""
    kit = importlib.import_module(f"course.{lab}").check
    minutes = 0.0
    for kind, args in CHECK_CALL.findall(SOLUTION.sub("", source)):
        names = re.findall(r'"(\w+)"', args)
        if kind == "values":
            minutes += MINUTES_PER_HAND_VALUE * len(names)
        elif kind == "table":
            minutes += MINUTES_PER_TABLE_ROW * len(kit.tables[names[0]].keys(kit.numbers("anonymous")))
        else:
            minutes += MINUTES_PER_CHECK[kind]
    return minutes


def estimate(lab: str) -> Estimate:
    """Minutes per section of the lab's instructor notebook."""
    sections: dict[str, float] = {"introduction": 0.0}
    current = "introduction"
    for cell in instructor_notebook(lab).cells:
        grading = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown":
            heading = HEADING.search(cell.source)
            if heading:
                current = re.split(r" [—(]", heading.group(1))[0].strip()
                sections.setdefault(current, 0.0)
            prose = SOLUTION.sub("", cell.source)
            sections[current] += len(re.findall(r"\w+", prose)) / WORDS_PER_MINUTE
            if grading.get("grade"):
                sections[current] += MINUTES_PER_WRITTEN_ANSWER
        elif grading.get("grade"):
            sections[current] += answer_minutes(lab, cell.source)
        elif not grading.get("solution"):
            sections[current] += MINUTES_PER_CELL_RUN
    return Estimate(lab, sections)


def stamp(lab: str, root: Path = ROOT) -> bool:
    """Write the lab's time paragraph into its source, in place of the old one; True if it changed."""
    path = root / "source" / lab / f"{lab}.py"
    text = path.read_text()
    paragraph = "\n".join("# " + line for line in textwrap.wrap(estimate(lab).statement(), 96))
    if TIME_PARAGRAPH.search(text):
        new = TIME_PARAGRAPH.sub(paragraph, text, count=1)
    else:  # a lab without one yet: the paragraph goes before the grading rules
        new = text.replace("# **How answers are graded.**", paragraph + "\n#\n# **How answers are graded.**", 1)
    if new == text:
        return False
    path.write_text(new)
    return True


def report(labs: list[str]) -> str:
    """One line per lab: its total and each section's minutes."""
    lines = []
    for lab in labs:
        e = estimate(lab)
        flag = "" if e.total <= SESSION_MINUTES else f"  (over {SESSION_MINUTES})"
        parts = ", ".join(f"{name} {m:.0f}" for name, m in e.sections.items())
        lines.append(f"{lab}: about {e.total} min{flag}: {parts}")
    return "\n".join(lines)
