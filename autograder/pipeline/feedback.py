"""One unit's feedback page, rendered in this process by nbgrader's own GenerateFeedback with the
course's configuration (hidden tests cleared, outputs as data, the summary first): from notebooks
in any folder, into any folder, so that a save can render it from its staged notebooks before
they go live (`saving`)."""

import logging
import os
import re
import threading
from functools import cache
from pathlib import Path

from nbgrader.converters import GenerateFeedback
from nbgrader.converters.base import FilesWriter
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
        WarmFeedback(coursedir=CourseDirectory(config=config), config=config, log=log).start()
    except Exception as error:  # nbgrader logs the cause and raises only "see the traceback above"
        raise RenderFailed(said.cause() or f"{type(error).__name__}: {error}") from error


class WarmFeedback(GenerateFeedback):
    """nbgrader's GenerateFeedback, but the HTML exporter and its preprocessors (the same for every
    page of a course: its configuration, the feedback template) are made once per grading process
    and reused, instead of once per page with their templates compiled again. What they keep
    between pages is none of a page's own: that comes in each notebook's resources."""

    exporters: dict[Path, object] = {}
    one_at_a_time = threading.Lock()  # a preprocessor keeps the page it works on in its attributes

    def start(self) -> None:
        self.init_notebooks()
        self.writer = FilesWriter(parent=self, config=self.config)
        root = Path(self.coursedir.root)
        with self.one_at_a_time:
            if root not in self.exporters:
                exporter = self.exporter_class(parent=self, config=self.config)
                for preprocessor in self.preprocessors:
                    exporter.register_preprocessor(preprocessor)
                self.exporters[root] = exporter
            self.exporter = self.exporters[root]
            for part in [self.exporter, *self.exporter._preprocessors]:
                part.log = self.log  # what goes wrong is said on this page's log
            here = os.getcwd()
            os.chdir(self.coursedir.root)
            try:
                self.convert_notebooks()
            finally:
                os.chdir(here)


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
