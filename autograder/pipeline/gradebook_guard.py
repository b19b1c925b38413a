"""The gradebook is checked before it is trusted, and kept in copies.

- `problem(root)`: why the gradebook cannot be graded into (None: it can). A SQLite gradebook
  must exist (unless the course never had one), be more than 0 bytes and pass SQLite's
  `PRAGMA quick_check`; a PostgreSQL one must answer. nbgrader itself would give a missing or
  empty file a fresh, empty schema, and the course would silently start its grades over.
- `backup(root)`: a copy of the SQLite gradebook, taken by SQLite's own backup (consistent even
  while the formgrader writes), in `.gradebook-backups/`, the newest KEEP kept.
- `restore(root, source)`: put a backup in place (the newest if none is named), the damaged file
  kept beside it: `python -m autograder restore-gradebook [--from FILE]`.
A PostgreSQL gradebook is backed up with PostgreSQL's own tools (`pg_dump`); see docs/RELIABILITY.md.
"""

import shutil
import sqlite3
import time
from pathlib import Path

import sqlalchemy

from .layout import Layout

BACKUPS = ".gradebook-backups"
KEEP = 5
RESTORE = "python -m autograder --root {root} restore-gradebook"


def backups(root: Path) -> list[Path]:
    """The backups of a course's SQLite gradebook, newest first."""
    return sorted((root / BACKUPS).glob("gradebook-*.db"), reverse=True)


def sqlite_file(root: Path) -> Path | None:
    url = Layout(root).db_url
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def damage(path: Path) -> str | None:
    """Why the SQLite file at `path` cannot be trusted (None: it passes SQLite's own check)."""
    if path.stat().st_size == 0:
        return "it is empty (0 bytes)"
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as error:
        return f"SQLite cannot read it ({error})"
    return None if verdict == "ok" else f"SQLite's quick_check finds it damaged ({verdict})"


def problem(root: Path) -> str | None:
    """Why the course's gradebook cannot be trusted now, with what to do (None: it can)."""
    path = sqlite_file(root)
    if path is None:
        try:
            with sqlalchemy.create_engine(Layout(root).db_url).connect() as connection:
                connection.execute(sqlalchemy.text("SELECT 1"))
            return None
        except sqlalchemy.exc.SQLAlchemyError as error:
            return f"The gradebook cannot be reached ({str(error.orig if hasattr(error, 'orig') else error)[:200]})."
    newest = backups(root)[:1]
    restore = (f" The newest backup is {newest[0]} ({RESTORE.format(root=root)} puts it in place)." if newest
               else " There is no backup of it.")
    if not path.exists():
        return f"There is no gradebook at {path}, though this course had one.{restore}" if newest else None
    why = damage(path)
    return f"The gradebook {path} cannot be trusted: {why}.{restore}" if why else None


def backup(root: Path) -> Path | None:
    """Copy the SQLite gradebook into the backups (the newest KEEP are kept); the copy, or None."""
    path = sqlite_file(root)
    if path is None or not path.exists():
        return None
    folder = root / BACKUPS
    folder.mkdir(exist_ok=True)
    copy = folder / f"gradebook-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.db"
    partial = copy.with_suffix(".partial")
    try:
        with sqlite3.connect(path) as source, sqlite3.connect(partial) as target:
            source.backup(target)
        partial.replace(copy)
    finally:
        partial.unlink(missing_ok=True)
    for old in backups(root)[KEEP:]:
        old.unlink()
    return copy


def restore(root: Path, source: Path | None = None) -> str:
    """Put the backup `source` (default: the newest) in place of the SQLite gradebook, the file
    it replaces kept beside it; what was done, in words."""
    path = sqlite_file(root)
    if path is None:
        raise ValueError("this course's gradebook is not a SQLite file: restore it with PostgreSQL's tools")
    source = source or next(iter(backups(root)), None)
    if source is None:
        raise ValueError(f"there is no backup in {root / BACKUPS}")
    why = damage(source)
    if why:
        raise ValueError(f"the backup {source} cannot be trusted either: {why}")
    kept = ""
    if path.exists():
        aside = path.with_name(f"{path.name}.replaced-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")
        path.rename(aside)
        kept = f"; the file it replaced is {aside}"
    partial = path.with_name(f".{path.name}.restoring")
    shutil.copyfile(source, partial)
    partial.replace(path)
    return f"restored {path} from {source}{kept}"
