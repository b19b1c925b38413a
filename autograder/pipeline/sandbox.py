"""Run student code with bubblewrap: it sees one folder, the Python environment and the kit.

`wrap(argv, folder)` gives the command line that runs `argv` in fresh namespaces (no network,
its own process tree, an unprivileged user that cannot raise its rights), with `folder` as the
only writable place and the only part of the course in sight. The Python environment and the
student kit (`course/`) are mounted read-only; the grader (`autograder/`), the course's
sources, the gradebook and every other submission are simply not there. Every process the
command starts ends with it (`--die-with-parent`, its own PID namespace).
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import course

BWRAP = "bwrap"


def readonly_paths() -> list[Path]:
    """The Python environment (the venv and the interpreter it was made from) and the kit."""
    return sorted({Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(course.__file__).resolve().parent})


def wrap(argv: list[str], folder: Path, env: dict[str, str]) -> list[str]:
    """The bubblewrap command line that runs `argv` inside `folder`, with only `env` set."""
    # /tmp first: what is mounted later under /tmp (a venv, the kit, the folder) lands on top of it.
    args = [BWRAP, "--unshare-all", "--die-with-parent", "--new-session", "--uid", "65534", "--gid", "65534",
            "--tmpfs", "/tmp", "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib64"):
        top = Path("/", name)
        if top.is_symlink():
            args += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            args += ["--ro-bind", str(top), str(top)]
    if Path("/etc/fonts").is_dir():  # matplotlib's fontconfig, or it complains on stderr
        args += ["--ro-bind", "/etc/fonts", "/etc/fonts"]
    for path in readonly_paths():
        args += ["--ro-bind", str(path), str(path)]
    args += ["--proc", "/proc", "--dev", "/dev", "--bind", str(folder), str(folder),
             "--clearenv", "--setenv", "HOME", "/tmp", "--setenv", "PATH", f"{Path(sys.executable).parent}:/usr/bin"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args + ["--chdir", str(folder), *argv]


def unavailable() -> str | None:
    """Why the sandbox cannot run here (None when it can): bubblewrap missing or refused."""
    if shutil.which(BWRAP) is None:
        return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    check = "import course, importlib.util as u; assert u.find_spec('autograder') is None, 'the grader is in reach'"
    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.run(wrap([sys.executable, "-c", check], Path(folder), {}), capture_output=True,
                              text=True, timeout=60)
    if proc.returncode != 0:
        return f"bubblewrap cannot start a sandbox here: {(proc.stderr or proc.stdout).strip()[-300:]}"
    return None
