"""Run student code with bubblewrap: it sees one folder, the Python environment and the kit.

`wrap(argv, folder, env, uid)` gives the command line that runs `argv` in fresh namespaces (no
network, its own process tree), as an unprivileged user that cannot raise its rights, with
`folder` as the only writable place and the only part of the course in sight. The Python
environment, the student kit (`course/`) and the grading program (`autograde_unit.py`, alone)
are mounted read-only; the grader (`autograder/`), the course's sources, the gradebook and
every other submission are simply not there. Every process the command starts ends with it
(`--die-with-parent`, its own PID namespace), and each process is held to `LIMITS`.

Run by root, bubblewrap mounts as root and the command then drops to a user id that no other
unit on the machine holds meanwhile (`unit_user`, leased with a file lock from `SANDBOX_UID` up),
so a process limit counts one unit's processes only, whichever grading run they belong to.
Run by anyone else, bubblewrap makes a user namespace and the command runs as `nobody`.
"""

import fcntl
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import course
from course import formulas

BWRAP = "bwrap"
UNIT_PROGRAM = Path(__file__).with_name("autograde_unit.py")
UNIT_PROGRAM_INSIDE = "/opt/autograd-labs/autograde_unit.py"
# The grading program and the one module it imports beside it, each mounted alone, read-only.
PROGRAM_FILES = [(UNIT_PROGRAM, Path(UNIT_PROGRAM_INSIDE)),
                 (UNIT_PROGRAM.with_name("speedups.py"), Path(UNIT_PROGRAM_INSIDE).with_name("speedups.py"))]
SANDBOX_UID = 61000  # the first user id a unit may lease when grading as root
LEASES = Path(tempfile.gettempdir(), "autograd-labs-sandbox-uids")  # one lock file per leased id
# Per process (prlimit): processes and threads of the unit's user, data memory, size of any one
# file written, open files, no core dumps. The unit's folder as a whole is watched by the grader.
LIMITS = {"nproc": 256, "data": 4 * 2**30, "fsize": 64 * 2**20, "nofile": 1024, "core": 0}
FOLDER_BYTES = 512 * 2**20  # the unit's folder, all files together
FOLDER_FILES = 20_000
# Characters of the unit's log kept for the report.
LOG_TAIL = 20_000


# This environment's Python by its real path: the sandbox mounts the environment where it really
# is, so a venv reached through a link must be run from there (its own `python` link kept).
PYTHON = Path(os.path.realpath(Path(sys.executable).parent)) / Path(sys.executable).name


def kit_folder() -> Path:
    return Path(course.__file__).resolve().parent


def readonly_paths() -> list[Path]:
    """The Python environment (the venv and the interpreter it was made from) and the kit."""
    return sorted({Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), kit_folder()})


def as_root() -> bool:
    return os.geteuid() == 0


@contextmanager
def unit_user():
    """A user id for one unit that no other unit on this machine holds while this one runs
    (grading as root); -1 when not root (the user namespace keeps units apart)."""
    if not as_root():
        yield -1
        return
    LEASES.mkdir(mode=0o700, exist_ok=True)
    for uid in range(SANDBOX_UID, SANDBOX_UID + 10_000):
        if has_account(uid):
            continue
        lease = os.open(LEASES / str(uid), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lease)
            continue
        try:
            yield uid
        finally:
            os.close(lease)  # the lock goes with it; the unit's processes went with its PID namespace
        return
    raise RuntimeError(f"no free sandbox user id from {SANDBOX_UID} on")


def has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def give_folder(folder: Path, uid: int) -> None:
    """Make `folder` (and all in it) the sandbox user's (nothing to do when not root: uid -1)."""
    if uid < 0:
        return
    for path in [folder, *folder.rglob("*")]:
        os.lchown(path, uid, uid)
    folder.chmod(0o711)  # bubblewrap, holding no capability by then, must still enter it


def unit_environment(folder: Path, env: dict[str, str]) -> dict[str, str]:
    """The whole environment of a unit's processes: `env` and what every unit has."""
    return {"HOME": str(folder), "TMPDIR": str(folder), "PATH": f"{PYTHON.parent}:/usr/bin",
            # The kit the grader imported, wherever the environment's own install points.
            "PYTHONPATH": str(kit_folder().parent), **env}


def inside_uid(uid: int) -> int:
    """The user id a unit's processes run as inside the sandbox (`nobody` in a user namespace)."""
    return uid if uid >= 0 else 65534


def wrap(argv: list[str], folder: Path, env: dict[str, str], uid: int, info_fd: int | None = None,
         stdlib_only: bool = False) -> list[str]:
    """The bubblewrap command line that runs `argv` inside `folder` as `uid` (from `unit_user`),
    with only `env` set (and, with `info_fd`, the sandbox's process id written there as JSON).
    `stdlib_only`: of Python, only the base interpreter is mounted (no venv, no kit, no unit program),
    and every interpreter's site-packages and dist-packages folders are empty."""
    readonly = [Path(sys.base_prefix).resolve()] if stdlib_only else readonly_paths()
    programs = [] if stdlib_only else PROGRAM_FILES
    if uid >= 0:  # root: mount as root, then drop to the unit's own user before anything runs
        args = [BWRAP, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all"]
    else:
        args = [BWRAP, "--unshare-all", "--uid", str(inside_uid(uid)), "--gid", str(inside_uid(uid))]
        drop = []
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    # /tmp first: what is mounted later under /tmp (a venv, the kit, the folder) lands on top of it.
    args += ["--die-with-parent", "--new-session", "--tmpfs", "/tmp"]
    system = [Path("/usr")] + [Path("/etc/fonts")] * Path("/etc/fonts").is_dir()  # fonts: for matplotlib
    mounts = [*system, *readonly, *(inside for _, inside in programs), folder]
    for path in parents_to_make(mounts):
        args += ["--perms", "0755", "--dir", str(path)]
    for path in system:
        args += ["--ro-bind", str(path), str(path)]
    for name in ("bin", "sbin", "lib", "lib64"):
        top = Path("/", name)
        if top.is_symlink():
            args += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            args += ["--ro-bind", str(top), str(top)]
    for path in readonly:
        args += ["--ro-bind", str(path), str(path)]
    hidden = package_folders([*system, *readonly, Path("/")]) if stdlib_only else []
    for path in hidden:  # an empty, read-only folder over each: nothing to import from
        args += ["--tmpfs", str(path), "--remount-ro", str(path)]
    for outside, inside in programs:
        args += ["--ro-bind", str(outside), str(inside)]
    args += ["--proc", "/proc", "--dev", "/dev", "--bind", str(folder), str(folder),
             # Nothing writable but the folder: no RAM-backed /tmp or /dev/shm to fill.
             "--remount-ro", "/tmp", "--remount-ro", "/dev",
             "--clearenv"]
    for key, value in unit_environment(folder, env).items():
        args += ["--setenv", key, value]
    limits = ["prlimit", *(f"--{name}={value}" for name, value in LIMITS.items()), "--"]
    return args + ["--chdir", str(folder), *drop, *limits, *argv]


PACKAGE_FOLDERS = ("lib*/python3*/site-packages", "lib*/python3*/dist-packages", "local/lib*/python3*/site-packages",
                   "local/lib*/python3*/dist-packages")


def package_folders(roots: list[Path]) -> list[Path]:
    """Every site-packages and dist-packages folder of any interpreter under `roots`, as real paths."""
    return sorted({path.resolve() for root in roots for pattern in PACKAGE_FOLDERS for path in root.glob(pattern)
                   if path.is_dir()})


def stdlib_only_prefix(folder: Path, uid: int) -> list[str]:
    """The command-line prefix that runs a command in a sandbox where Python has its standard
    library and nothing else (graded formulas: no torch, no kit, no grader)."""
    return wrap([], folder, {}, uid, stdlib_only=True)


def parents_to_make(mounts: list[Path]) -> list[Path]:
    """The folders above the mount points, outermost first, that no mount provides.

    Made explicitly, world-readable: bubblewrap would make them private to root, and the
    sandbox's user could not walk through them."""
    parents = {p for m in mounts for p in m.parents if p != Path("/")}
    return sorted(p for p in parents if p != Path("/tmp") and not any(p.is_relative_to(m) for m in mounts))


def unavailable() -> str | None:
    """Why the sandbox cannot run here (None when it can): bubblewrap missing or refused."""
    if shutil.which(BWRAP) is None:
        return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    check = ("import course, importlib.util as u, pathlib; assert u.find_spec('autograder') is None, "
             "'the grader is in reach'; pathlib.Path('written').write_text('ok')")
    with tempfile.TemporaryDirectory() as folder, unit_user() as uid:
        give_folder(Path(folder), uid)
        proc = subprocess.run(wrap([str(PYTHON), "-c", check], Path(folder), {}, uid), capture_output=True,
                              text=True, timeout=60)
    if proc.returncode != 0:
        return f"bubblewrap cannot start a sandbox here: {(proc.stderr or proc.stdout).strip()[-300:]}"
    return None


@dataclass
class Finished:
    """How a watched command ended: its exit status (None: stopped), its log's tail, why stopped."""

    returncode: int | None
    log: str
    stopped: str | None = None


def folder_over_limit(folder: Path) -> str | None:
    """Why `folder` holds too much (links not followed), or None."""
    size = files = 0
    for top, dirs, names in os.walk(folder):
        files += len(names) + len(dirs)
        size += sum(disk_bytes(os.path.join(top, name)) for name in names)
        if files > FOLDER_FILES:
            return f"it made over {FOLDER_FILES} files"
        if size > FOLDER_BYTES:
            return f"it wrote over {FOLDER_BYTES >> 20} MB"
    return None


def disk_bytes(path: str) -> int:
    """Bytes a file takes on disk (0 if it is gone already: the unit goes on while it is measured)."""
    try:
        return os.lstat(path).st_blocks * 512
    except FileNotFoundError:
        return 0


def watch(wait, stop, folder: Path, seconds: float) -> tuple[int | None, str | None]:
    """Wait for a unit (`wait(timeout)`: its exit status, None while it runs) and `stop()` it past
    `seconds` or when its folder holds too much. Returns (exit status, None) or (None, why stopped)."""
    deadline = time.monotonic() + seconds
    while True:
        status = wait(1)
        if status is not None:
            return status, None
        stopped = f"it ran over {seconds:.0f} s" if time.monotonic() > deadline else folder_over_limit(folder)
        if stopped:
            stop()
            return None, stopped


def tail(log) -> str:
    """The last LOG_TAIL bytes of an open log file, as text."""
    log.seek(max(0, log.seek(0, os.SEEK_END) - LOG_TAIL))
    return log.read().decode(errors="replace")


RUNNING: set[subprocess.Popen] = set()  # every sandbox of this process still running (`end_all`)


def watched_run(cmd: list[str], folder: Path, seconds: float, env: dict | None = None) -> Finished:
    """Run `cmd` in `folder`; stop it (and all it started) past `seconds` or when the folder holds too much."""
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a chatty command cannot fill memory
        proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        RUNNING.add(proc)

        def wait(timeout):
            try:
                return proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return None

        status, stopped = watch(wait, lambda: end(proc), folder, seconds)
        RUNNING.discard(proc)
        return Finished(status, tail(log), stopped)


def end(proc: subprocess.Popen) -> None:
    """Kill a bubblewrap command and everything in its sandbox (its PID namespace dies with it)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    RUNNING.discard(proc)


def end_all() -> None:
    """End every sandbox this process started that still runs (grading was stopped)."""
    for proc in list(RUNNING):
        end(proc)


def first_pid(info_fd: int) -> int | None:
    """The host pid of the sandbox's first process, from bubblewrap's --info-fd (None if it failed)."""
    data = b""
    with os.fdopen(info_fd, "rb", buffering=0) as info:
        while chunk := info.read(4096):
            data += chunk
            try:
                return json.loads(data)["child-pid"]
            except ValueError:
                continue
    return None


def hold(folder: Path, env: dict[str, str], uid: int) -> tuple[subprocess.Popen, int]:
    """Start a sandbox for `folder` that runs nothing but waits, fully set up, for the warm service
    to join it (`zygote.py`). Returns the bubblewrap process and the host pid of the sandbox's first
    process, whose namespaces are the sandbox's. Ending the first ends the sandbox."""
    read, write = os.pipe()
    try:
        proc = subprocess.Popen(wrap(["sh", "-c", "echo ready && exec sleep infinity"], folder, env, uid, write),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                pass_fds=[write], start_new_session=True)
    finally:
        os.close(write)
    RUNNING.add(proc)
    first = first_pid(read)
    if proc.stdout.readline() != b"ready\n" or first is None:
        end(proc)
        raise RuntimeError(f"bubblewrap could not set up the sandbox: {proc.stderr.read().decode()[-300:]}")
    return proc, first


def run_formulas(jobs: list[dict], seconds: float = formulas.TIME_LIMIT) -> list[dict]:
    """`course.formulas.evaluate` in a sandbox that holds Python's standard library and nothing
    else (the grader's `FormulaRunner`, see `autograder.labs`)."""
    with tempfile.TemporaryDirectory() as folder, unit_user() as uid:
        give_folder(Path(folder), uid)
        return formulas.evaluate(jobs, stdlib_only_prefix(Path(folder), uid), seconds)
