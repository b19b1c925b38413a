"""Local Unix accounts for tests that play an instructor and students on one machine, as on a
JupyterHub: each account has its own HOME, and runs the course's venv under its own uid."""

import os
import secrets
import shutil
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from autograder.pipeline import hub


def require_root() -> None:
    """Creating accounts needs root; CI runs as root, so there it is a failure, elsewhere a skip."""
    if os.geteuid() != 0:
        message = "needs root to create the instructor's and the students' Unix accounts"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)


@contextmanager
def accounts(names: list[str], homes: Path):
    """Create `names` as Unix accounts (as `make hub` does) with HOME under `homes`; delete them
    afterwards. An account of that name that `make hub` did not make is never touched."""
    for name in names:
        if hub.exists(name) and not hub.ours(name):
            pytest.fail(f"a Unix account {name!r} exists that the tests did not create; not touching it")
    hub.remove_accounts(names)
    try:
        yield {name: hub.ensure_account(name, homes, secrets.token_urlsafe(12)) for name in names}
    finally:
        hub.remove_accounts(names)


@contextmanager
def reachable_by_everyone(*paths: Path):
    """Let other users reach `paths` (the venv's base interpreter under /root, pytest's 0700
    temp folders) as `make hub` does, and take the o+x back afterwards."""
    opened = hub.open_paths(*paths)
    try:
        yield
    finally:
        for folder in reversed(opened):
            folder.chmod(folder.stat().st_mode & ~stat.S_IXOTH)


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
