"""nbgrader settings for the Autograd Labs course (the course root is this folder)."""

import importlib.util
import os
from pathlib import Path

from jinja2.filters import do_float, do_round
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor, Preprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades
from nbgrader.utils import compute_checksum, is_grade, is_solution
from traitlets import Bool

from course.protocol import COURSE_MIME_PREFIX

OWN_ERRORS = ("CheckFailed", "RecheckFailed")  # the kit's and the grader's: their message, no code
NOT_GRADED_YET = ("**Not graded yet.** Your instructor has not read this answer; until they do, it counts 0 "
                  "in the lab's score at the top.")


class NotReadYet(str):
    """The score of a written answer that nobody has read: the feedback page shows these words
    where nbgrader's template would show "0.0" (its headings print each score through the
    `float` and `round` filters, which pass these words through unchanged)."""


def float_or_words(value, default=0.0):
    return value if isinstance(value, NotReadYet) else do_float(value, default)


def round_or_words(value, precision=0, method="common"):
    return value if isinstance(value, NotReadYet) else do_round(value, precision, method)


class DropInvisibleOutputs(Preprocessor):
    """The course's data outputs (the answers a check hands over, the formula verdict) show
    nothing, and HTML would draw each as an empty box: leave them out of the page."""

    enabled = Bool(True)  # nbconvert's preprocessors are off unless told

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not invisible(o)]
        return cell, resources


def invisible(output) -> bool:
    data = output.get("data", {})
    return bool(data) and all(kind.startswith(COURSE_MIME_PREFIX) or value == "" for kind, value in data.items())


class FeedbackTestOutputs(Preprocessor):
    """In feedback, each error of a test cell by its message alone, since a traceback quotes the
    cell's code, hidden tests included (the kit's and the grader's own errors quote none)."""

    enabled = Bool(True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and is_grade(cell) and not is_solution(cell):
            for output in cell.outputs:
                if output.output_type == "error" and output.ename not in OWN_ERRORS:
                    output.traceback = [f"\x1b[31m{output.ename}\x1b[39m: {output.evalue}"]
        return cell, resources


class OutputsAsData(Preprocessor):
    """Every output as data, not code (`autograder.pipeline.outputs.as_data`), on each page."""

    enabled = Bool(True)

    def preprocess(self, nb, resources):
        from autograder.pipeline.outputs import as_data  # pages are made outside the sandbox only
        as_data(nb)
        return nb, resources


class GetGradesNamingUnread(GetGrades):
    """nbgrader's GetGrades, with two changes. A written answer nobody has scored yet says so:
    nbgrader would show only "0.0 / 2.0" under it, as if it had been read and given nothing. And
    the page's grades and comments come from the gradebook in one query each, where nbgrader
    asks it two or three times per cell (two thirds of a feedback page's time)."""

    def preprocess(self, nb, resources):
        self.grades = self.comments = None
        return super().preprocess(nb, resources)

    def read_notebook(self) -> None:
        from nbgrader.api import BaseCell, Comment, Grade
        from sqlalchemy.orm import undefer
        notebook = self.gradebook.find_submission_notebook(self.notebook_id, self.assignment_id, self.student_id)
        rows = self.gradebook.db.query(Grade, BaseCell.name).join(BaseCell, Grade.cell_id == BaseCell.id) \
            .filter(Grade.notebook_id == notebook.id).options(undefer(Grade.max_score))
        self.grades = {name: grade for grade, name in rows}
        rows = self.gradebook.db.query(Comment, BaseCell.name).join(BaseCell, Comment.cell_id == BaseCell.id) \
            .filter(Comment.notebook_id == notebook.id)
        self.comments = {name: comment.comment for comment, name in rows}

    def _get_comment(self, cell, resources):
        if self.comments is None:
            self.read_notebook()
        cell.metadata.nbgrader["comment"] = self.comments[cell.metadata.nbgrader["grade_id"]]

    def _get_score(self, cell, resources):
        if self.grades is None:
            self.read_notebook()
        grade = self.grades[cell.metadata.nbgrader["grade_id"]]
        cell.metadata.nbgrader["score"] = grade.score
        cell.metadata.nbgrader["points"] = grade.max_score
        answered = cell.metadata.nbgrader.get("checksum") != compute_checksum(cell)  # else "No response."
        if cell.cell_type == "markdown" and answered and grade.needs_manual_grade and grade.manual_score is None:
            cell.source = f"{NOT_GRADED_YET}\n\n{cell.source}"
            cell.metadata.nbgrader["score"] = NotReadYet("not read yet")


c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.course_id = "autograd-labs"
c.CourseDirectory.root = str(Path(__file__).resolve().parent)
# source/<lab>/<lab>.py is the jupytext text the notebook is built from: it holds the
# solutions, so it must never be copied into a release.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.py"]

# The gradebook: SQLite in this folder, unless AUTOGRAD_LABS_DB_URL names another database
# (`make autograde DB_URL=postgresql://...`; see the README).
if os.environ.get("AUTOGRAD_LABS_DB_URL"):
    c.CourseDirectory.db_url = os.environ["AUTOGRAD_LABS_DB_URL"]

# The exchange (release → fetch → submit → collect): nbgrader's default folder unless
# AUTOGRAD_LABS_EXCHANGE names another (`make formgrader` uses exchange/ in the course root).
if os.environ.get("AUTOGRAD_LABS_EXCHANGE"):
    c.Exchange.root = os.environ["AUTOGRAD_LABS_EXCHANGE"]

# Collect (`nbgrader collect` and the formgrader's Collect button) takes from the exchange only the
# folders and files the file system proves are each student's own (autograder/pipeline/exchange.py).
# A graded notebook's sandbox reads this file too; it has no grader in it, and never collects.
if importlib.util.find_spec("autograder"):
    c.ExchangeFactory.collect = "autograder.pipeline.exchange.SafeCollect"
    # The instructor's Assignments tab lists the exchange every few seconds: not in the server's log.
    c.ExchangeFactory.list = "autograder.pipeline.exchange.QuietList"

# Per cell: the slowest cell of any lab's solution takes about 1.3 s (the imports, in a fresh
# kernel; `make bench` prints each lab's student-code time). 10 s leaves a wide margin for a
# loaded machine, and an endless loop costs 10 s of the class's time, not minutes. The grader
# counts it in the kernel's CPU seconds (a busy machine does not spend them faster), with three
# times as long on the clock for a cell that sleeps; Validate (stock nbgrader) counts it on the clock.
c.Execute.timeout = 10
c.Execute.interrupt_on_timeout = True

# What a student wrote is data wherever a person reads it: each page shows outputs only as text,
# images and cleaned HTML (the grader cleans them as they come back from the sandbox, and each
# page again), and markdown cells only as cleaned HTML. The grader's code is named, not imported
# here: nbgrader also reads this file inside the sandbox, where the grader is not.
c.HTMLExporter.filters = {"markdown2html": "autograder.pipeline.outputs.markdown_as_data",
                          "float": float_or_words, "round": round_or_words}

# Feedback shows each test's result, never the hidden tests' code (their probes stay unknown),
# neither as the cell's source nor quoted in a traceback, and says which written answers are unread.
c.GenerateFeedback.preprocessors = [GetGradesNamingUnread, ClearHiddenTests, DropInvisibleOutputs,
                                     FeedbackTestOutputs, OutputsAsData, CSSHTMLHeaderPreprocessor]
# The formgrader's pages of graded notebooks: no empty boxes either.
c.HTMLExporter.preprocessors = [DropInvisibleOutputs, OutputsAsData]
