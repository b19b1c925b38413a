"""Run student code with bubblewrap: it sees one folder, the Python environment and the kit.

`wrap(argv, folder, env, slot)` gives the command line that runs `argv` in fresh namespaces (no
network, its own process tree), as an unprivileged user that cannot raise its rights, with
`folder` as the only writable place and the only part of the course in sight. The Python
environment, the student kit (`course/`) and the grading program (`autograde_unit.py`, alone)
are mounted read-only; the grader (`autograder/`), the course's sources, the gradebook and
every other submission are simply not there. Every process the command starts ends with it
(`--die-with-parent`, its own PID namespace), and each process is held to `LIMITS`.

Run by root, bubblewrap mounts as root and the command then drops to a user id of its own
(`SANDBOX_UID + slot`, one per parallel slot, so a process limit counts one unit's processes
only). Run by anyone else, bubblewrap makes a user namespace and the command runs as `nobody`.
"""

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import course

BWRAP = "bwrap"
UNIT_PROGRAM = Path(__file__).with_name("autograde_unit.py")
UNIT_PROGRAM_INSIDE = "/opt/autograd-labs/autograde_unit.py"
SANDBOX_UID = 61000  # + slot, when grading as root; ids no account on this machine uses
# Per process (prlimit): processes and threads of the unit's user, data memory, size of any one
# file written, open files, no core dumps. The unit's folder as a whole is watched by the grader.
LIMITS = {"nproc": 256, "data": 4 * 2**30, "fsize": 64 * 2**20, "nofile": 1024, "core": 0}
FOLDER_BYTES = 512 * 2**20  # the unit's folder, all files together
FOLDER_FILES = 20_000
LOG_TAIL = 20_000  # characters of the unit's log kept for the report


def readonly_paths() -> list[Path]:
    """The Python environment (the venv and the interpreter it was made from) and the kit."""
    return sorted({Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(course.__file__).resolve().parent})


def as_root() -> bool:
    return os.geteuid() == 0


def unit_uid(slot: int) -> int:
    """The user id that runs slot `slot`'s submissions when grading as root (-1: not root)."""
    if not as_root():
        return -1
    uid = SANDBOX_UID + slot
    while True:
        try:
            pwd.getpwuid(uid)
            uid += 1000  # an account uses it: never share a user id with one
        except KeyError:
            return uid


def give_folder(folder: Path, slot: int) -> None:
    """Make `folder` (and all in it) writable by the slot's sandbox user."""
    uid = unit_uid(slot)
    if uid < 0:
        return
    for path in [folder, *folder.rglob("*")]:
        os.lchown(path, uid, uid)
    folder.chmod(0o711)  # bubblewrap, holding no capability by then, must still enter it


def wrap(argv: list[str], folder: Path, env: dict[str, str], slot: int = 0) -> list[str]:
    """The bubblewrap command line that runs `argv` inside `folder`, with only `env` set."""
    uid = unit_uid(slot)
    if uid >= 0:  # root: mount as root, then drop to the slot's own user before anything runs
        args = [BWRAP, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all"]
    else:
        args = [BWRAP, "--unshare-all", "--uid", "65534", "--gid", "65534"]
        drop = []
    # /tmp first: what is mounted later under /tmp (a venv, the kit, the folder) lands on top of it.
    args += ["--die-with-parent", "--new-session", "--tmpfs", "/tmp"]
    system = [Path("/usr")] + [Path("/etc/fonts")] * Path("/etc/fonts").is_dir()  # fonts: for matplotlib
    mounts = [*system, *readonly_paths(), Path(UNIT_PROGRAM_INSIDE), folder]
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
    for path in readonly_paths():
        args += ["--ro-bind", str(path), str(path)]
    args += ["--ro-bind", str(UNIT_PROGRAM), UNIT_PROGRAM_INSIDE,
             "--proc", "/proc", "--dev", "/dev", "--bind", str(folder), str(folder),
             # Nothing writable but the folder: no RAM-backed /tmp or /dev/shm to fill.
             "--remount-ro", "/tmp", "--remount-ro", "/dev",
             "--clearenv", "--setenv", "HOME", str(folder), "--setenv", "TMPDIR", str(folder),
             "--setenv", "PATH", f"{Path(sys.executable).parent}:/usr/bin"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    limits = ["prlimit", *(f"--{name}={value}" for name, value in LIMITS.items()), "--"]
    return args + ["--chdir", str(folder), *drop, *limits, *argv]


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
    with tempfile.TemporaryDirectory() as folder:
        give_folder(Path(folder), 0)
        proc = subprocess.run(wrap([sys.executable, "-c", check], Path(folder), {}), capture_output=True,
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
        size += sum(os.lstat(os.path.join(top, n)).st_blocks * 512 for n in names if os.path.lexists(os.path.join(top, n)))
        if files > FOLDER_FILES:
            return f"it made over {FOLDER_FILES} files"
        if size > FOLDER_BYTES:
            return f"it wrote over {FOLDER_BYTES >> 20} MB"
    return None


def watched_run(cmd: list[str], folder: Path, seconds: float, env: dict | None = None) -> Finished:
    """Run `cmd` in `folder`; stop it (and all it started) past `seconds` or when the folder holds too much."""
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a chatty command cannot fill memory
        proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline, stopped = time.monotonic() + seconds, None
        while True:
            try:
                proc.wait(timeout=1)
                break
            except subprocess.TimeoutExpired:
                stopped = (f"it ran over {seconds:.0f} s" if time.monotonic() > deadline
                           else folder_over_limit(folder))
                if stopped:
                    os.killpg(proc.pid, signal.SIGKILL)  # bubblewrap's death ends the sandbox's processes
                    proc.wait()
                    break
        log.seek(max(0, log.seek(0, os.SEEK_END) - LOG_TAIL))
        return Finished(None if stopped else proc.returncode, log.read().decode(errors="replace"), stopped)
