"""One unit's feedback page, rendered in this process by nbgrader's own GenerateFeedback with the
course's configuration (hidden tests cleared, outputs as data, the summary first): from notebooks
in any folder, into any folder, so that a save can render it from its staged notebooks before
they go live (`saving`)."""

import logging
import re
from functools import cache
from pathlib import Path

from nbgrader.converters import GenerateFeedback
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader


@cache
def course_config(root: Path) -> Config:
    """The course's nbgrader_config.py, read once per grading process."""
    return PyFileConfigLoader("nbgrader_config.py", str(root)).load_config()


def render(root: Path, lab: str, student: str, autograded: Path, out: Path) -> None:
    """Write into `out/<student>/<lab>/` the feedback of the graded notebooks in
    `autograded/<student>/<lab>/`, with the scores and comments the course's gradebook holds."""
    config = Config(course_config(root))
    config.merge(Config({"CourseDirectory": {
        "root": str(root), "assignment_id": lab, "student_id": student,
        "autograded_directory": str(autograded), "feedback_directory": str(out)}}))
    said = Said()
    log = logging.Logger("autograd-labs.feedback", logging.ERROR)  # its own, unshared: nothing else sees it
    log.addHandler(said)
    try:
        GenerateFeedback(coursedir=CourseDirectory(config=config), config=config, log=log).start()
    except Exception as error:  # nbgrader logs the cause and raises only "see the traceback above"
        raise RenderFailed(said.cause() or f"{type(error).__name__}: {error}") from error


class RenderFailed(Exception):
    """nbgrader could not write the feedback page; the text is the cause it logged."""


class Said(logging.Handler):
    """Keeps the messages nbgrader logs while it renders, so that a failure can say its cause."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.extend(record.getMessage().splitlines())

    def cause(self) -> str:
        """The last exception line of the tracebacks logged, such as `OSError: [Errno 28] ...`."""
        raised = [line for line in self.lines if re.match(r"[\w.]+(Error|Exception)\b.*:", line)]
        return f"feedback page not written: {raised[-1]}" if raised else ""
