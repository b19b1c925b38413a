"""One unit's feedback page, rendered in this process by nbgrader's own GenerateFeedback with the
course's configuration (hidden tests cleared, outputs as data, the summary first): from notebooks
in any folder, into any folder, so that a save can render it from its staged notebooks before
they go live (`saving`)."""

import logging
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
    quiet = logging.getLogger("autograd-labs.feedback")
    quiet.setLevel(logging.ERROR)
    GenerateFeedback(coursedir=CourseDirectory(config=config), config=config, log=quiet).start()
