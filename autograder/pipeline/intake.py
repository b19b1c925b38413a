"""Intake: is a submission folder something the grader can take? Checked before anything runs.

Refused, each with a reason the instructor can pass on: a student id that is not a plain name,
a link anywhere (student folder, lab folder, notebook), a notebook that is not a regular file,
a folder or notebook over the size limits, a notebook with far more cells than a lab has, one
that is not a notebook, the notebook of another lab, and one whose test cells lost their nbgrader
metadata. Ids that differ only in letter case are not graded either (`case_clashes`). Nothing
here follows a link or opens anything but a regular file of bounded size.
"""

import os
import re
import stat
from pathlib import Path

import nbformat

from course.identity import ANONYMOUS
from course.protocol import IDENTITY_MIME

from .layout import Layout

STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
MAX_NOTEBOOK_BYTES = 20 * 2**20
MAX_FOLDER_BYTES = 50 * 2**20
MAX_FILES = 200
MAX_CELLS = 500  # the labs have under 50; students add scratch cells, not hundreds


def lab_notebooks(root: Path, lab: str) -> list[str]:
    """The notebook names of a lab, from its released files."""
    return sorted(p.stem for p in Layout(root).folder("release", lab).glob("*.ipynb"))


def precheck(root: Path, lab: str, student: str) -> str | None:
    """A message if the submission cannot be graded as this lab, else None."""
    if not STUDENT_ID.fullmatch(student) or ".." in student:
        return (f"{student!r} is not a student id the grader takes (letters, digits and . _ @ + -, "
                "up to 64): rename the folder")
    layout = Layout(root)
    folder = layout.folder("submitted", lab, student)
    for path in (folder.parent, folder):
        if path.is_symlink():
            return f"{path.relative_to(root)} is a link, not a folder: only real folders are graded"
    problem = folder_problem(folder, root)
    if problem:
        return problem
    names = lab_notebooks(root, lab)
    if not any(os.path.lexists(folder / f"{name}.ipynb") for name in names):
        found = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        return f"no {' or '.join(n + '.ipynb' for n in names)} in {folder.relative_to(root)}/ (found: {found})"
    for name in names:
        path = folder / f"{name}.ipynb"
        if os.path.lexists(path):  # a missing one: nbgrader scores it 0 and says so
            problem = notebook_problem(path, root, lab)
            if problem:
                return problem
    return None


def worked_as(folder: Path, names: list[str]) -> str | None:
    """The student id the submitted notebooks were last run under, as the kit recorded it in an
    output (`IDENTITY_MIME`), or None: none recorded, or not an id (a student may have written
    anything there; only a plain id comes out). Call it after `precheck` took the folder."""
    for name in names:
        path = folder / f"{name}.ipynb"
        if not path.is_file() or path.is_symlink():
            continue
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # a notebook that nbgrader will refuse in its turn
            continue
        for cell in nb.cells:
            for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
                said = output.get("data", {}).get(IDENTITY_MIME) if isinstance(output, dict) else None
                student = said.get("student") if isinstance(said, dict) else None
                if isinstance(student, str) and (student == ANONYMOUS or STUDENT_ID.fullmatch(student)):
                    return student
    return None


def folder_problem(folder: Path, root: Path) -> str | None:
    """Too many files or bytes in a submission folder (counted without following links)."""
    files = [Path(top, name) for top, _, names in os.walk(folder) for name in names]  # links not followed
    if len(files) > MAX_FILES:
        return f"{folder.relative_to(root)}/ holds {len(files)} files, over the limit of {MAX_FILES}"
    size = sum(p.lstat().st_size for p in files)
    if size > MAX_FOLDER_BYTES:
        return f"{folder.relative_to(root)}/ holds {size / 2**20:.0f} MB, over the limit of {MAX_FOLDER_BYTES >> 20} MB"
    return None


def notebook_problem(path: Path, root: Path, lab: str) -> str | None:
    """Why the notebook at `path` cannot be graded as `lab`, or None."""
    shown = path.relative_to(root)
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        what = "a link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        return f"{shown} is {what}: submit the notebook itself"
    if info.st_size > MAX_NOTEBOOK_BYTES:
        return (f"{shown} is {info.st_size / 2**20:.0f} MB, over the limit of {MAX_NOTEBOOK_BYTES >> 20} MB: "
                "clear the outputs (Edit → Clear Outputs of All Cells) and submit again")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # invalid JSON, wrong format version, unreadable file
        return f"{shown} is not a readable notebook ({type(exc).__name__}: {exc})"
    if len(nb.cells) > MAX_CELLS:
        return f"{shown} has {len(nb.cells)} cells, over the limit of {MAX_CELLS}: delete the extra cells"
    owner = nb.metadata.get("autograd_labs", {}).get("lab")
    if owner is not None and owner != lab:
        return f"{shown} is the notebook of {owner}, not {lab}: ask the student to resubmit"
    lost = lost_metadata(nb, Layout(root).notebook("release", lab))
    if lost:
        return (f"{shown} has lost the nbgrader metadata of {len(lost)} test cell(s) ({', '.join(lost[:4])}"
                f"{', ...' if len(lost) > 4 else ''}): the notebook was likely rebuilt or copied cell by cell, so "
                "its tests cannot be told apart; ask the student to paste their answers into a freshly fetched copy")
    return None


def lost_metadata(nb, release: Path) -> list[str]:
    """The grade ids of the release's test cells that are in `nb` by their code but without
    their nbgrader metadata (a test cell a student deleted is not lost: it scores 0, and says so)."""
    if not release.is_file():
        return []
    ids = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells}
    bare = {c.source.strip() for c in nb.cells if c.cell_type == "code" and "nbgrader" not in c.get("metadata", {})}
    return [c.metadata.nbgrader["grade_id"] for c in nbformat.read(release, as_version=4).cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
            and not c.metadata.nbgrader.get("solution") and c.metadata.nbgrader["grade_id"] not in ids
            and c.source.strip() in bare]


def case_clashes(submitted: list[str], known: list[str]) -> dict[str, str]:
    """{id: why it is not graded} for the submitted ids that differ only in letter case from
    another id, submitted or already in the gradebook: Canvas and most rosters take them for one
    student, so neither is graded until a folder is renamed."""
    ids = set(submitted) | set(known)
    groups = {}
    for student in ids:
        groups.setdefault(student.casefold(), set()).add(student)
    return {student: (f"not graded: the ids {', '.join(sorted(groups[student.casefold()]))} differ only in letter "
                      "case, which Canvas and most rosters take for one student; rename the folder that is wrong")
            for student in set(submitted) if len(groups[student.casefold()]) > 1}
