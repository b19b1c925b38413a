"""The exchange's two doors, in-process on a temporary exchange: collect takes only what the file
system proves is the student's (autograder/pipeline/exchange.py), submit hands in privately
(jupyter/student/nbgrader_config.py). With real Unix users, end to end: tests/pipeline/test_exchange.py."""

import logging
import os
import pwd
import stat
from pathlib import Path

import pytest
from nbgrader.api import Gradebook
from nbgrader.auth import Authenticator
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from autograder.pipeline.exchange import SafeCollect

from helpers import REPO

# The students' Submit, as their nbgrader loads it: from the student configuration.
PrivateSubmit = PyFileConfigLoader("nbgrader_config.py", str(REPO / "jupyter" / "student")).load_config(
).ExchangeFactory.submit

COURSE, LAB = "autograd-labs", "lab4"
OLDER, NEWER = "2025-01-01 10:00:00.000000 UTC", "2025-01-02 10:00:00.000000 UTC"
ME = pwd.getpwuid(os.geteuid()).pw_name


def needs_root():
    if os.geteuid() != 0:
        pytest.skip("giving files to other accounts needs root")


@pytest.fixture(scope="module")
def gradebook(tmp_path_factory) -> str:
    """One empty gradebook for the module (collect reads the assignment's due date from it)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('gradebook') / 'gradebook.db'}"
    Gradebook(url, COURSE).close()
    return url


def config(tmp_path: Path, gradebook: str | None = None, **course) -> Config:
    c = Config()
    c.CourseDirectory.root = str(tmp_path / "course")
    if gradebook:
        c.CourseDirectory.db_url = gradebook
    c.CourseDirectory.course_id = COURSE
    c.CourseDirectory.assignment_id = LAB
    c.Exchange.root = str(tmp_path / "exchange")
    for name, value in course.items():
        setattr(c.CourseDirectory, name, value)
    return c


@pytest.fixture
def inbound(tmp_path) -> Path:
    folder = tmp_path / "exchange" / COURSE / "inbound"
    folder.mkdir(parents=True)
    (tmp_path / "course").mkdir()
    return folder


def hand_in(inbound: Path, student: str, timestamp: str, owner: str | None = None, **files: bytes) -> Path:
    folder = inbound / f"{student}+{LAB}+{timestamp}+random"
    folder.mkdir()
    for name, content in {"timestamp.txt": timestamp.encode(), f"{LAB}.ipynb": b"{}", **files}.items():
        (folder / name).write_bytes(content)
    if owner:
        for path in [folder, *folder.iterdir()]:
            os.chown(path, pwd.getpwnam(owner).pw_uid, -1, follow_symlinks=False)
    return folder


def collect(tmp_path: Path, gradebook: str, caplog, **course) -> str:
    """SafeCollect as `nbgrader collect` runs it; what it logged."""
    c = config(tmp_path, gradebook, **course)
    with caplog.at_level(logging.DEBUG):
        SafeCollect(coursedir=CourseDirectory(config=c), authenticator=Authenticator(config=c), config=c).start()
    return caplog.text


def collected(tmp_path: Path, student: str) -> dict[str, bytes]:
    folder = tmp_path / "course" / "submitted" / student / LAB
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_named_for_a_student_counts_only_if_their_account_owns_it(tmp_path, inbound, gradebook, caplog):
    """`daemon` and `nobody` stand for two students: a newer folder named for daemon but owned by
    nobody is refused and named; daemon's own older folder is collected instead."""
    needs_root()
    hand_in(inbound, "daemon", OLDER, owner="daemon", **{f"{LAB}.ipynb": b"daemon's own work"})
    forged = hand_in(inbound, "daemon", NEWER, owner="nobody", **{f"{LAB}.ipynb": b"nobody's forgery"})
    log = collect(tmp_path, gradebook, caplog)
    assert f"Refused {forged}: it is owned by nobody, not by daemon" in log
    assert collected(tmp_path, "daemon")[f"{LAB}.ipynb"] == b"daemon's own work"


def test_links_pipes_and_other_accounts_files_are_skipped_and_named(tmp_path, inbound, gradebook, caplog):
    secret = tmp_path / "course" / "solution.ipynb"
    secret.write_bytes(b"the solution")
    folder = hand_in(inbound, ME, NEWER, **{"notes.txt": b"mine", "cache.pyc": b"excluded"})
    (folder / "linked.ipynb").symlink_to(secret)
    os.mkfifo(folder / "pipe")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.csv").write_bytes(b"1,2")
    (folder / "sub" / "away").symlink_to(tmp_path / "course")
    if os.geteuid() == 0:
        os.link(secret, folder / "hardlinked.ipynb")
        os.chown(secret, pwd.getpwnam("nobody").pw_uid, -1)  # the instructor's, not the student's
    log = collect(tmp_path, gradebook, caplog)
    assert collected(tmp_path, ME) == {"lab4.ipynb": b"{}", "notes.txt": b"mine", "sub/data.csv": b"1,2",
                                       "timestamp.txt": NEWER.encode()}
    for name, why in [("linked.ipynb", "a link (links are never followed)"), ("pipe", "not a regular file"),
                      ("sub/away", "a link")] + ([("hardlinked.ipynb", "owned by nobody")] * (os.geteuid() == 0)):
        assert f"Skipped {folder / name}: {why}" in log, name


def test_a_link_or_an_odd_name_in_inbound_is_refused_and_the_rest_collected(tmp_path, inbound, gradebook, caplog):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / f"{LAB}.ipynb").write_bytes(b"someone else's")
    link = inbound / f"{ME}+{LAB}+{NEWER}+link"
    link.symlink_to(elsewhere)
    odd = inbound / f"{ME}+{LAB}+not a time+x"
    odd.mkdir()
    hand_in(inbound, ME, OLDER, **{f"{LAB}.ipynb": b"my own"})
    log = collect(tmp_path, gradebook, caplog)
    assert f"Refused {link}: it is a link" in log
    assert f"Refused {odd}: its name does not end in a time" in log
    assert collected(tmp_path, ME)[f"{LAB}.ipynb"] == b"my own"


def test_nbgraders_ignore_include_and_size_rules_still_hold(tmp_path, inbound, gradebook, caplog):
    hand_in(inbound, ME, NEWER, **{"big.ipynb": b"x" * 3000, "notes.txt": b"mine", "skip.md": b"excluded"})
    log = collect(tmp_path, gradebook, caplog, include=["*.ipynb", "*.txt"], ignore=["skip.*"], max_file_size=2)
    assert collected(tmp_path, ME) == {"lab4.ipynb": b"{}", "notes.txt": b"mine", "timestamp.txt": NEWER.encode()}
    assert "big.ipynb: too large" in log


def test_a_submission_over_the_folder_limit_is_refused_whole(tmp_path, inbound, gradebook, caplog):
    folder = hand_in(inbound, ME, NEWER, **{"big.bin": b"x" * 3000})
    log = collect(tmp_path, gradebook, caplog, max_dir_size=2)
    assert f"Refused {folder}: it holds more than 2000 bytes" in log
    assert not (tmp_path / "course" / "submitted" / ME / LAB).exists()


def test_submit_hands_in_for_the_student_and_inbounds_group_only(tmp_path):
    """The hand-in appears whole under its nbgrader name: files 0640, folders 0770 (2770 where the
    submitter is in inbound's group), of inbound's group; nothing is left behind while building it."""
    needs_root()
    outbound = tmp_path / "exchange" / COURSE / "outbound" / LAB
    outbound.mkdir(parents=True)
    (outbound / f"{LAB}.ipynb").write_text("{}")
    inbound = tmp_path / "exchange" / COURSE / "inbound"
    inbound.mkdir()
    os.chown(inbound, -1, pwd.getpwnam("daemon").pw_gid)
    inbound.chmod(0o2733)  # as nbgrader makes it
    work = tmp_path / "home" / LAB
    (work / "data").mkdir(parents=True)
    (work / f"{LAB}.ipynb").write_text('{"answers": 1}')
    (work / "data" / "points.csv").write_text("1,2")
    c = config(tmp_path)
    c.Exchange.assignment_dir = str(tmp_path / "home")
    c.Exchange.cache = str(tmp_path / "cache")
    PrivateSubmit(coursedir=CourseDirectory(config=c), authenticator=Authenticator(config=c), config=c).start()
    (submission,) = inbound.iterdir()
    assert submission.name.startswith(f"{ME}+{LAB}+")
    paths = [submission, *submission.rglob("*")]
    assert {p.relative_to(submission).as_posix() for p in paths[1:]} == {
        f"{LAB}.ipynb", "data", "data/points.csv", "timestamp.txt", "submission_secret.txt"}
    for path in paths:
        info = path.stat()
        assert info.st_gid == pwd.getpwnam("daemon").pw_gid, path
        assert stat.S_IMODE(info.st_mode) & ~stat.S_ISGID == (0o770 if path.is_dir() else 0o640), path
    assert (submission / f"{LAB}.ipynb").read_text() == '{"answers": 1}'


def test_the_assignments_tab_listing_stays_out_of_the_servers_log(tmp_path, caplog):
    """The tab asks every few seconds; nbgrader logs each answer at info level."""
    import logging

    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    from autograder.pipeline.exchange import QuietList

    (tmp_path / "autograd-labs" / "outbound" / "lab4").mkdir(parents=True)
    (tmp_path / "autograd-labs" / "outbound" / "lab4" / "lab4.ipynb").write_text("{}")
    config = Config({"Exchange": {"root": str(tmp_path)}, "CourseDirectory": {"course_id": "autograd-labs"}})
    log = logging.getLogger("a-jupyter-server")
    with caplog.at_level(logging.DEBUG, logger="a-jupyter-server"):
        listed = QuietList(coursedir=CourseDirectory(config=config), authenticator=Authenticator(config=config),
                           config=config, log=log).start()  # as the tab's handler makes it
    assert [a["assignment_id"] for a in listed] == ["lab4"]
    assert not [r for r in caplog.records if r.levelno >= logging.INFO], caplog.text
