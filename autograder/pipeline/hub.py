"""A local JupyterHub for trying the course as its users do (`make hub`): an instructor and
students as Unix accounts, nbgrader's exchange, the instructor's course in their HOME.

Run as root (a hub starts each user's server as that user). Accounts it creates are marked in
their GECOS field; `--remove` deletes exactly those.
"""

import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from . import notebooks
from .notebooks import ROOT

ACCOUNT_MARK = "autograd-labs hub account"
CONFIG = ROOT / "jupyter" / "hub" / "jupyterhub_config.py"
PROXY_PACKAGE = "configurable-http-proxy@4.6.3"


def exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def ours(name: str) -> bool:
    return exists(name) and pwd.getpwnam(name).pw_gecos == ACCOUNT_MARK


def ensure_account(name: str, homes: Path, password: str) -> Path:
    """The account `name` (created, with HOME under `homes`, if missing); its password is set
    only on accounts this module made."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--home-dir", str(homes / name), "--comment", ACCOUNT_MARK,
                        "--shell", "/bin/bash", name], check=True)
        entry = pwd.getpwnam(name)
    if entry.pw_gecos == ACCOUNT_MARK:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
    return Path(entry.pw_dir)


def remove_accounts(names: list[str]) -> list[str]:
    """Delete the accounts among `names` that this module created; returns those deleted."""
    removed = []
    for name in names:
        if ours(name):
            subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
            subprocess.run(["userdel", "--remove", name], capture_output=True)
            removed.append(name)
    return removed


def open_paths(*paths: Path) -> list[Path]:
    """Let every user reach `paths` (the venv, its base interpreter): add o+x to each folder on
    the way that lacks it. Returns the folders changed."""
    changed = []
    for path in paths:
        real = Path(os.path.realpath(path))
        for folder in [*reversed(real.parents), *[real] * real.is_dir()]:
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                folder.chmod(mode | stat.S_IXOTH)
                changed.append(folder)
    return changed


def instructor_course(home: Path, owner: str, labs: list[str]) -> Path:
    """The instructor's course root in their HOME: this repo's sources and release, released
    into its own gradebook; kept as it is when it already exists."""
    course = home / "course"
    if not (course / "nbgrader_config.py").exists():
        course.mkdir()
        for name in ("source", "release", "examples"):
            shutil.copytree(ROOT / name, course / name, ignore=shutil.ignore_patterns("*.ipynb", "__pycache__")
                            if name != "release" else None)
        shutil.copy2(ROOT / "nbgrader_config.py", course)
    for lab in labs:
        if not notebooks.up_to_date(lab, course):
            notebooks.release(lab, course)
    # The formgrader reads nbgrader's configuration from the folder the server started in (the
    # HOME): point it at the course's, as nbgrader's docs do for a hub.
    user_config = home / ".jupyter" / "nbgrader_config.py"
    user_config.parent.mkdir(exist_ok=True)
    user_config.write_text(f'c = get_config()  # noqa: F821\nload_subconfig({str(course / "nbgrader_config.py")!r})\n')
    subprocess.run(["chown", "-R", f"{owner}:", str(course), str(user_config.parent)], check=True)
    return course


def proxy(state: Path) -> Path:
    """configurable-http-proxy from npm, installed into the hub's folder once."""
    command = state / "node_modules" / ".bin" / "configurable-http-proxy"
    if not command.exists():
        if not shutil.which("npm"):
            raise SystemExit("JupyterHub's proxy comes from npm: install Node.js and npm (Debian: apt install npm)")
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(state),
                        PROXY_PACKAGE], check=True)
    return command


def environment(state: Path, course: Path, instructor: str, students: list[str]) -> dict:
    """What jupyter/hub/jupyterhub_config.py reads (the port aside)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "AUTOGRAD_LABS_VENV_BIN": str(Path(sys.executable).parent), "AUTOGRAD_LABS_HUB_STATE": str(state),
            "AUTOGRAD_LABS_COURSE": str(course), "AUTOGRAD_LABS_EXCHANGE": str(state / "exchange"),
            "AUTOGRAD_LABS_INSTRUCTORS": instructor, "AUTOGRAD_LABS_STUDENTS": ",".join(students)}


def prepare(state: Path, instructor: str, students: list[str], password: str, labs: list[str]) -> dict:
    """Everything the hub needs, idempotently; returns the hub's environment."""
    if os.geteuid() != 0:
        raise SystemExit("make hub runs as root: the hub starts each user's JupyterLab as that user")
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o755)
    proxy(state)
    homes = state / "home"
    homes.mkdir(exist_ok=True)
    homes.chmod(0o755)
    exchange = state / "exchange"
    exchange.mkdir(exist_ok=True)
    exchange.chmod(0o1777)  # nbgrader's exchange: everyone writes, the sticky bit guards
    opened = open_paths(Path(sys.executable).parent, Path(os.path.realpath(sys.executable)), ROOT, state)
    if opened:
        print("made reachable by every user (o+x):", ", ".join(map(str, opened)))
    homes_of = {name: ensure_account(name, homes, password) for name in [instructor, *students]}
    course = instructor_course(homes_of[instructor], instructor, labs)
    return environment(state, course, instructor, students)


def serve(env: dict, port: int) -> None:
    """Replace this process by the hub on 127.0.0.1:`port`."""
    env = {**env, "AUTOGRAD_LABS_HUB_PORT": str(port), "AUTOGRAD_LABS_HUB_API_PORT": str(port + 1)}
    os.chdir(env["AUTOGRAD_LABS_HUB_STATE"])
    hub = str(Path(sys.executable).parent / "jupyterhub")
    os.execve(hub, [hub, "-f", str(CONFIG)], env)
