"""One grading run of a course at a time, and nothing left behind by one that died.

`course_run(root)` is held for the whole of a `grade` (or `recover`, or a gradebook restore):
- an exclusive `flock` on `.grading/lock`, which the operating system lets go of when its holder
  dies however it dies, so a second grader is told at once who holds the course (`Busy`), and a
  killed one never blocks the next;
- a scratch folder of the run's own, `.grading/run-<time>-<pid>/`, for the lab gradebooks and
  the units' private courses;
- under the lock, before anything else: interrupted saves are finished or undone (`saving.recover`),
  then the scratch folders of dead runs (owned by sandbox users, possibly) and the warm-service
  folders in /tmp whose grader is gone are removed.

SIGTERM (what systemd, Kubernetes and Slurm send) stops a run as Ctrl-C does (`stop_on_sigterm`).
"""

import fcntl
import os
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SCRATCH = ".grading"
LOCK = "lock"
JOURNAL = "journal"  # saves in progress (`saving`), kept across runs until finished or undone
SERVICE_PREFIX = "autograd-labs-service-"
SERVICE_OWNER = "grader.pid"  # in a warm service's folder: the pid of the grading process it serves
HELD = (signal.SIGINT, signal.SIGTERM)


class Busy(Exception):
    """Another grading run holds the course."""


@dataclass(frozen=True)
class Run:
    """A grading run that holds its course: its root, its own scratch folder, and the seconds
    spent on each phase that is not grading itself (e.g. "feedback"), for the summary."""

    root: Path
    scratch: Path
    seconds: Counter = field(default_factory=Counter, compare=False)


def holder(lock_file: Path) -> str:
    """Who holds the lock, as the holder wrote it ('' if unknown)."""
    try:
        return lock_file.read_text().strip()
    except OSError:
        return ""


@contextmanager
def course_run(root: Path):
    """Hold `root` for one run (see the module's text); raises Busy if another run holds it."""
    from . import saving  # saving uses this module's folders

    folder = root / SCRATCH
    folder.mkdir(exist_ok=True)
    lock_file = folder / LOCK
    descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"another grading run holds {root} ({holder(lock_file) or 'pid unknown'}); wait for it to "
                       f"finish, or stop it (Ctrl-C or SIGTERM): nothing was changed") from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        saving.recover(root)
        clear_leftovers(folder)
        scratch = Path(tempfile.mkdtemp(prefix=f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-", dir=folder))
        try:
            yield Run(root, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    finally:
        os.close(descriptor)  # the lock goes with it


def clear_leftovers(folder: Path) -> None:
    """Remove what dead runs left: their scratch folders in `folder` (not the lock, not the
    journal) and warm-service folders in /tmp whose grading process is gone."""
    for entry in folder.iterdir():
        if entry.name not in (LOCK, JOURNAL):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
    for service in Path(tempfile.gettempdir()).glob(SERVICE_PREFIX + "*"):
        try:
            gone = not alive(int((service / SERVICE_OWNER).read_text()))
        except (OSError, ValueError):  # no owner written: one that died, or one starting this instant
            gone = time.time() - service.stat().st_mtime > 600
        if gone:
            shutil.rmtree(service, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True


def stop_on_sigterm() -> None:
    """From now on SIGTERM stops this process as Ctrl-C does (a KeyboardInterrupt in the main thread)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


@contextmanager
def signals_held():
    """Hold SIGINT and SIGTERM back while the block runs, then deliver them: a unit's save is
    never cut in the middle by them. (Python runs signal handlers in the main thread only, so
    the block must run there; elsewhere it holds nothing back.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = {number: signal.signal(number, lambda got, frame: caught.append(got)) for number in HELD}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if caught:
            signal.raise_signal(caught[0])  # to the handler it would have reached
