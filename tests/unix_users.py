"""Local Unix accounts for tests that play an instructor and students on one machine, as on a
JupyterHub: each account has its own HOME, and runs the course's venv under its own uid."""

import os
import shutil
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

MARK = "autograd-labs test account"  # the GECOS field: only accounts carrying it are ever deleted


def require_root() -> None:
    """Creating accounts needs root; CI runs as root, so there it is a failure, elsewhere a skip."""
    if os.geteuid() != 0:
        message = "needs root to create the instructor's and the students' Unix accounts"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)


@contextmanager
def accounts(names: list[str], homes: Path):
    """Create `names` as Unix accounts with HOME under `homes`; delete them afterwards."""
    for name in names:
        remove(name)
        subprocess.run(["useradd", "--create-home", "--home-dir", str(homes / name), "--comment", MARK,
                        "--shell", "/bin/bash", name], check=True)
    try:
        yield {name: homes / name for name in names}
    finally:
        for name in names:
            remove(name)


def remove(name: str) -> None:
    entry = subprocess.run(["getent", "passwd", name], capture_output=True, text=True).stdout
    if not entry:
        return
    if entry.split(":")[4] != MARK:
        pytest.fail(f"a Unix account {name!r} exists that this test did not create; not touching it")
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    subprocess.run(["userdel", "--remove", name], capture_output=True)


@contextmanager
def reachable_by_everyone(*paths: Path):
    """Let other users traverse to `paths` (the venv's base interpreter under /root, pytest's 0700
    temp folder): add o+x to each folder above them that lacks it, and take it back afterwards."""
    changed = []
    for path in paths:
        real = Path(os.path.realpath(path))
        for folder in [*reversed(real.parents), *[real] * real.is_dir()]:
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                folder.chmod(mode | stat.S_IXOTH)
                changed.append((folder, mode))
    try:
        yield
    finally:
        for folder, mode in reversed(changed):
            folder.chmod(stat.S_IMODE(mode))


def base_interpreter() -> Path:
    return Path(os.path.realpath(sys.executable))


def as_user(name: str, home: Path, args: list[str], cwd: Path, env: dict | None = None,
            check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `args` as `name` in a clean login-like environment with the venv first on PATH."""
    venv_bin = Path(sys.executable).parent
    clean = {"HOME": str(home), "USER": name, "LOGNAME": name, "LANG": "C.UTF-8",
             "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin", **(env or {})}
    proc = subprocess.run([shutil.which("runuser"), "-u", name, "--", "env", "-i",
                           *[f"{k}={v}" for k, v in clean.items()], *args],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode:
        raise AssertionError(f"{name}: {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc
