"""A local JupyterHub for trying the course as its users do (`make hub`): an instructor and
students as Unix accounts, nbgrader's exchange, the instructor's course in their HOME.

Run as root (a hub starts each user's server as that user). Accounts it creates are marked in
their GECOS field; `--remove` deletes exactly those.

What students must not read is closed to them (`lock_down`): the HOMEs it creates are private,
the instructor's course is theirs alone, the hub's database and cookie secret are root's, and of
this repository a student reaches only what their server runs (the venv, the kit, the student
configuration, the release, the hub's folder) and the documentation. The rest (the solutions in
source/, the grader's hidden probes in autograder/, examples/, .git, ...) is readable by the
course's staff group, which the instructor joins. What it changed in the repository, and the
group if it created it, are recorded in the hub's folder, and `--remove` undoes them.
"""

import grp
import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from . import notebooks
from .notebooks import ROOT
from .on_submit import POLICY_FILE

ACCOUNT_MARK = "autograd-labs hub account"
STAFF_GROUP = "autograd-labs-staff"  # reads all of this repository: the instructor, TAs
FOR_STUDENTS = {".venv", "course", "jupyter", "release", "README.md", "docs"}  # of the repository's top level
RECORD = "hub-changes.json"  # in the hub's folder: what `remove` undoes
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


def instructor_course(home: Path, owner: str, labs: list[str], on_submit: list[str]) -> Path:
    """The instructor's course root in their HOME: this repo's sources and release, released
    into its own gradebook; kept as it is when it already exists. Its grade_on_submit.toml names
    the labs `on_submit` (written when it is missing, or when labs are given)."""
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
    if on_submit or not (course / POLICY_FILE).exists():
        (course / POLICY_FILE).write_text(policy_text(on_submit))
    # The formgrader reads nbgrader's configuration from the folder the server started in (the
    # HOME): point it at the course's, as nbgrader's docs do for a hub.
    user_config = home / ".jupyter" / "nbgrader_config.py"
    user_config.parent.mkdir(exist_ok=True)
    user_config.write_text(f'c = get_config()  # noqa: F821\nload_subconfig({str(course / "nbgrader_config.py")!r})\n')
    subprocess.run(["chown", "-R", f"{owner}:", str(course), str(user_config.parent)], check=True)
    return course


def policy_text(labs: list[str]) -> str:
    """A grade_on_submit.toml that switches on `labs`, explaining each setting."""
    return ("# Grading on submission (the hub's grade-on-submit service reads this file every few seconds).\n"
            "# labs: the labs graded as soon as a student submits; their feedback is released at once.\n"
            f"labs = {json.dumps(labs)}\n"
            "# attempts: graded hand-ins per student and lab (0: no limit); later ones get a page saying why not.\n"
            "attempts = 0\n"
            "# cooldown_minutes: minutes between two graded hand-ins of a student (0: none).\n"
            "cooldown_minutes = 0\n")


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


def prepare(state: Path, instructor: str, students: list[str], password: str, labs: list[str],
            on_submit: list[str]) -> dict:
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
    course = instructor_course(homes_of[instructor], instructor, labs, on_submit)
    remember(state, lock_down(instructor, homes_of, course, state))
    report("readable by root alone (0600)", private_hub_files(state))
    return environment(state, course, instructor, students)


def lock_down(instructor: str, homes_of: dict[str, Path], course: Path, state: Path) -> dict:
    """Close to students what they must not read, printing each change: the HOMEs of the accounts
    this module made (0700; others are only warned about), the instructor's course (0700), and
    the repository's top level but FOR_STUDENTS and the hub's folder `state` (no access for other
    users, read for STAFF_GROUP, which the instructor joins). Returns what `unlock` undoes."""
    report("made private (0700)", private_homes(homes_of) + owner_only(course))
    created = ensure_group(STAFF_GROUP)
    if created:
        print(f"created group {STAFF_GROUP}")
    if join(instructor, STAFF_GROUP):
        print(f"added {instructor} to group {STAFF_GROUP}")
    modes = restrict_repository(STAFF_GROUP, FOR_STUDENTS | top_level_entry(state))
    report(f"in {ROOT}, no access for other users, read for group {STAFF_GROUP}",
           [Path(path).name for path, _, _ in modes])
    return {"created_group": created, "modes": modes}


def unlock(changes: dict) -> None:
    """Undo `lock_down`'s changes to the repository, and delete the group if it created it
    (the HOMEs and the course go with the accounts)."""
    for path, gid, mode in reversed(changes["modes"]):
        if os.path.lexists(path):
            os.chown(path, -1, gid, follow_symlinks=False)
            os.chmod(path, mode)
    report(f"in {ROOT}, access as before", [Path(path).name for path, _, _ in changes["modes"]])
    if changes["created_group"] and group_exists(STAFF_GROUP):
        subprocess.run(["groupdel", STAFF_GROUP], check=True)
        print(f"deleted group {STAFF_GROUP}")


def remove(state: Path, names: list[str]) -> None:
    """Undo `make hub`: delete the accounts among `names` it created, give the repository its
    modes back and delete the group it created."""
    print("removed accounts:", ", ".join(remove_accounts(names)) or "none")
    unlock(recorded(state))
    (state / RECORD).unlink(missing_ok=True)


def remember(state: Path, changes: dict) -> None:
    """Add `changes` to the record in the hub's folder that `remove` undoes (newest last)."""
    record = recorded(state)
    record["created_group"] = record["created_group"] or changes["created_group"]
    record["modes"] += changes["modes"]
    (state / RECORD).write_text(json.dumps(record, indent=1) + "\n")


def recorded(state: Path) -> dict:
    path = state / RECORD
    return json.loads(path.read_text()) if path.exists() else {"created_group": False, "modes": []}


def report(what: str, changed: list) -> None:
    if changed:
        print(f"{what}: {', '.join(map(str, changed))}")


def private_homes(homes_of: dict[str, Path]) -> list[Path]:
    """Make the HOMEs of the accounts this module created 0700; warn about any other account's
    HOME that other users can read or enter, and leave it as it is. Returns the HOMEs changed."""
    changed = []
    for name, home in homes_of.items():
        if not home.stat().st_mode & 0o077:
            continue
        if ours(name):
            changed += owner_only(home)
        else:
            print(f"warning: other users can read {name}'s HOME, {home}; make hub did not create {name}, "
                  "so it leaves the folder as it is", file=sys.stderr)
    return changed


def owner_only(folder: Path) -> list[Path]:
    """Make `folder` 0700; returns it if that changed its mode."""
    if stat.S_IMODE(folder.stat().st_mode) == 0o700:
        return []
    folder.chmod(0o700)
    return [folder]


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def ensure_group(name: str) -> bool:
    """The group `name`, created if missing; True if this call created it."""
    if group_exists(name):
        return False
    subprocess.run(["groupadd", name], check=True)
    return True


def join(user: str, group: str) -> bool:
    """Add `user` to `group`; True if they were not a member yet."""
    if user in grp.getgrnam(group).gr_mem:
        return False
    subprocess.run(["usermod", "--append", "--groups", group, user], check=True)
    return True


def top_level_entry(path: Path) -> set[str]:
    """The name of the repository's top-level entry that holds `path`, if `path` is in the repository."""
    try:
        return set(path.resolve().relative_to(ROOT).parts[:1])
    except ValueError:
        return set()


def restrict_repository(group: str, keep: set[str]) -> list[list]:
    """Every top-level entry of the repository but `keep`: no access for other users; `group`
    gets the owner's read (and, for a folder, search) rights. Returns [path, gid, mode] of each
    entry changed, as they were."""
    gid = grp.getgrnam(group).gr_gid
    changed = []
    for entry in sorted(ROOT.iterdir()):
        if entry.name in keep:
            continue
        info = entry.lstat()
        if stat.S_ISLNK(info.st_mode):
            print(f"warning: {entry} is a link; make hub leaves it and what it points to as they are",
                  file=sys.stderr)
            continue
        mode = stat.S_IMODE(info.st_mode)
        closed = (mode & ~0o007) | ((mode & 0o500) >> 3)
        if (info.st_gid, mode) != (gid, closed):
            changed.append([str(entry), info.st_gid, mode])
            os.chown(entry, -1, gid)
            os.chmod(entry, closed)
    return changed


def private_hub_files(state: Path) -> list[Path]:
    """The hub's database and cookie secret, for root alone (0600): made before JupyterHub first
    writes them (an empty database, which it fills; a new secret), so they are never readable by
    others. Returns those made or changed."""
    first_contents = {"jupyterhub.sqlite": "", "jupyterhub_cookie_secret": secrets.token_hex(32) + "\n"}
    changed = []
    for name, content in first_contents.items():
        path = state / name
        if not path.exists():
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(descriptor, content.encode())
            os.close(descriptor)
            changed.append(path)
        elif stat.S_IMODE(path.stat().st_mode) != 0o600:
            path.chmod(0o600)
            changed.append(path)
    return changed


def serve(env: dict, port: int) -> None:
    """Replace this process by the hub on 127.0.0.1:`port`."""
    env = {**env, "AUTOGRAD_LABS_HUB_PORT": str(port), "AUTOGRAD_LABS_HUB_API_PORT": str(port + 1)}
    os.chdir(env["AUTOGRAD_LABS_HUB_STATE"])
    hub = str(Path(sys.executable).parent / "jupyterhub")
    os.execve(hub, [hub, "-f", str(CONFIG)], env)
