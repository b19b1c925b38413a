"""Where things live in a course root, through nbgrader's own CourseDirectory."""

import os
from contextlib import contextmanager
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.coursedir import CourseDirectory


DB_URL_ENV = "AUTOGRAD_LABS_DB_URL"


class Layout:
    """The course root's folders: `{source,release,submitted,autograded,feedback}/<student>/<lab>`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.directory = CourseDirectory(root=str(self.root))

    def folder(self, step: str, lab: str, student: str = ".") -> Path:
        """The folder of one lab at one step (`submitted`, ...) for one student (`.` for none)."""
        return Path(os.path.normpath(self.directory.format_path(step, student, lab)))

    def notebook(self, step: str, lab: str, student: str = ".") -> Path:
        """The lab's notebook in that folder (each lab is one notebook named after it)."""
        return self.folder(step, lab, student) / f"{lab}.ipynb"

    def students(self, step: str, lab: str) -> list[str]:
        """Ids of the students with a folder for this lab at this step."""
        base = self.root / getattr(self.directory, f"{step}_directory")
        return sorted(p.parent.name for p in base.glob(f"*/{lab}") if p.is_dir()) if base.is_dir() else []

    @property
    def db_url(self) -> str:
        """The gradebook's URL: DB_URL_ENV when set (as nbgrader_config.py reads it too), else
        nbgrader's SQLite file in the root."""
        return os.environ.get(DB_URL_ENV) or self.directory.db_url

    def has_assignment(self, lab: str) -> bool:
        """Whether the gradebook exists and knows the lab (a missing SQLite file is not created)."""
        if self.db_url.startswith("sqlite:///") and not self.gradebook.is_file():
            return False
        with Gradebook(self.db_url) as gb:
            try:
                gb.find_assignment(lab)
                return True
            except MissingEntry:
                return False

    @property
    def gradebook(self) -> Path:
        """nbgrader's SQLite gradebook file in the root (the one a scratch course always uses)."""
        return Path(self.directory.db_url.removeprefix("sqlite:///"))


@contextmanager
def whole_file(path: Path):
    """A temporary path beside `path` to write to; on success it replaces `path` in one rename,
    so a failure (a full disk, a kill) leaves the previous file, never a half-written one."""
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
