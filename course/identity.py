"""Whose notebook is this? The student id behind the per-student numbers.

While a student works, the id comes from (first match wins):
  1. the environment variable AUTOGRAD_LABS_STUDENT (students with the kit set it as they start
     JupyterLab; the repository's `make lab STUDENT=ada` sets it too);
  2. JUPYTERHUB_USER, which JupyterHub sets for every user's server.
With neither, the notebook shows practice numbers for the id "anonymous" and says so
(`HOW_TO_SET_ID`, in the words the notebooks use too).

While nbgrader autogrades (NBGRADER_EXECUTION=autograde), the id is never read
from the notebook: nbgrader runs the kernel in autograded/<student>/<lab>/, so
the id is that folder's name, i.e. the name of the submission's folder. The
course's batch grader also sets AUTOGRAD_LABS_STUDENT to the same id; if the two
disagree, grading stops with an error rather than guess.
"""

import copy
import functools
import hashlib
import os
from pathlib import Path
from typing import Any, Callable

STUDENT_ENV = "AUTOGRAD_LABS_STUDENT"
ANONYMOUS = "anonymous"
HOW_TO_SET_ID = (
    "On the course JupyterHub your id is your login, set for you. With the student kit on your own "
    f"computer, quit JupyterLab and start it again as `{STUDENT_ENV}=<your id> jupyter lab` (restarting "
    "the kernel keeps the old setting). If your course grades on Gradescope, use the id your instructor "
    "says Gradescope grades you as.")


class UnknownStudent(RuntimeError):
    """Autograding a notebook whose owner cannot be told."""


def autograding() -> bool:
    return os.environ.get("NBGRADER_EXECUTION") == "autograde"


def student_from_course_layout(cwd: Path) -> str | None:
    """The <student> in .../autograded/<student>/<lab>, or None."""
    parts = cwd.resolve().parts
    if len(parts) >= 3 and parts[-3] == "autograded":
        return parts[-2]
    return None


def student_id() -> tuple[str, str]:
    """Return (student id, where it came from)."""
    env_id = os.environ.get(STUDENT_ENV, "").strip()
    if autograding():
        folder_id = student_from_course_layout(Path.cwd())
        if folder_id and env_id and folder_id != env_id:
            raise UnknownStudent(f"submission folder says {folder_id!r} but {STUDENT_ENV} says {env_id!r}")
        if folder_id:
            return folder_id, "the submission's folder"
        if env_id:
            return env_id, STUDENT_ENV
        raise UnknownStudent("cannot tell whose submission this is: not in autograded/<student>/<lab>/ "
                             f"and {STUDENT_ENV} is not set")
    if env_id:
        return env_id, STUDENT_ENV
    hub_user = os.environ.get("JUPYTERHUB_USER", "").strip()
    if hub_user:
        return hub_user, "JUPYTERHUB_USER"
    return ANONYMOUS, "no setting (practice numbers)"


def stable_digest(*parts: str) -> bytes:
    """A hash of the parts that is the same in every process and on every machine.

    Python's built-in hash() is salted per process, so it must never choose numbers.
    """
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


def pick_all(digest: bytes, grids: dict[str, tuple[Any, ...]]) -> dict[str, Any]:
    """One choice from each grid, the i-th made by bytes 2i and 2i + 1 of the digest: nearly
    uniform for grids of up to a few thousand choices; a SHA-256 digest gives 16 picks."""
    return {name: choices[int.from_bytes(digest[2 * i:2 * i + 2], "big") % len(choices)]
            for i, (name, choices) in enumerate(grids.items())}


def draw_numbers(lab: str, student: str, draw: Callable[[bytes], dict[str, Any]],
                 accept: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first numbers `draw(digest)` makes, over digests of (lab, student, attempt), that `accept` takes
    (a copy: each check asks again, and `accept` may run autograd on every draw it rejects)."""
    return copy.deepcopy(first_accepted(lab, student, draw, accept))


@functools.lru_cache(maxsize=1024)
def first_accepted(lab: str, student: str, draw: Callable[[bytes], dict[str, Any]],
                   accept: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for attempt in range(1000):
        numbers = draw(stable_digest(lab, student, str(attempt)))
        if accept(numbers):
            return numbers
    raise RuntimeError(f"no acceptable {lab} numbers for student id {student!r}")
