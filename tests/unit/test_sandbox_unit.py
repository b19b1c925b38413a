"""The sandbox on its own: what code inside it can reach and how much it may take (bubblewrap, no nbgrader)."""

import json
import subprocess
import sys
import time

import pytest

from autograder.pipeline import sandbox

from helpers import REPO

PROBE = r'''
import importlib.util, json, os, socket
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines())
seen = {"root": os.getuid() == 0, "capabilities": status["CapEff"].strip(), "no_new_privs": status["NoNewPrivs"],
        "kit": importlib.util.find_spec("course.lab4") is not None,
        "grader": importlib.util.find_spec("autograder") is not None,
        "sources": os.path.exists(%(repo)r + "/source/lab4/lab4.py"),
        "home": os.path.exists("/root/.bashrc") or os.path.exists("/root/.cache"),
        "processes": len([p for p in os.listdir("/proc") if p.isdigit()])}
for place in ("/tmp", "/dev/shm", "/usr", %(repo)r):
    try:
        open(place + "/x", "w").close()
        seen["writes " + place] = True
    except OSError:
        seen["writes " + place] = False
try:
    socket.create_connection(("1.1.1.1", 80), timeout=3)
    seen["network"] = True
except OSError:
    seen["network"] = False
open("written.txt", "w").write("from inside")
print(json.dumps(seen))
'''


def sandboxed(code: str, folder, **kwargs) -> subprocess.CompletedProcess:
    with sandbox.unit_user() as uid:
        sandbox.give_folder(folder, uid)
        return subprocess.run(sandbox.wrap([sys.executable, "-c", code], folder, {"X": "1"}, uid),
                              capture_output=True, text=True, timeout=120, **kwargs)


def test_inside_the_sandbox_there_is_the_kit_and_the_folder_and_nothing_else(tmp_path):
    assert sandbox.unavailable() is None
    proc = sandboxed(PROBE % {"repo": str(REPO)}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "root": False, "capabilities": "0000000000000000", "no_new_privs": "1", "processes": 2,
        "kit": True, "grader": False, "sources": False, "home": False, "network": False,
        "writes /tmp": False, "writes /dev/shm": False, "writes /usr": False, f"writes {REPO}": False}
    assert (tmp_path / "written.txt").read_text() == "from inside"


@pytest.mark.slow  # a sweep or a subprocess: `make test` runs it, `make check` does not
def test_nothing_started_inside_outlives_the_sandbox(tmp_path):
    leave = ("import subprocess, sys; subprocess.Popen([sys.executable, '-c', "
             "'import time; time.sleep(3); open(\"late.txt\", \"w\").write(\"x\")'], start_new_session=True)")
    assert sandboxed(leave, tmp_path).returncode == 0
    time.sleep(4)
    assert not (tmp_path / "late.txt").exists()


FORK_BOMB = '''
import os, time
children = 0
try:
    for _ in range(2000):
        if os.fork() == 0:
            time.sleep(20)
            os._exit(0)
        children += 1
except OSError:
    pass
print(children, flush=True)
time.sleep(%s)
'''


def test_a_fork_bomb_stops_at_the_process_limit_and_costs_a_neighbour_nothing(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    with sandbox.unit_user() as uid:
        sandbox.give_folder(tmp_path / "a", uid)
        bomb = subprocess.Popen(sandbox.wrap([sys.executable, "-c", FORK_BOMB % 5], tmp_path / "a", {}, uid),
                                stdout=subprocess.PIPE, text=True)
        assert int(bomb.stdout.readline()) < sandbox.LIMITS["nproc"]  # it is still holding them all
        neighbour = sandboxed(FORK_BOMB % 0, tmp_path / "b")  # another unit, graded meanwhile
        assert int(neighbour.stdout) > sandbox.LIMITS["nproc"] - 20
        bomb.kill()
        bomb.wait()


def test_memory_and_file_size_are_limited(tmp_path):
    hog = "x = bytearray(%d)" % (sandbox.LIMITS["data"] + 2**20)
    assert "MemoryError" in sandboxed(hog, tmp_path).stderr
    big = "open('big', 'wb').write(b'0' * %d)" % (sandbox.LIMITS["fsize"] + 2**20)
    proc = sandboxed(big, tmp_path)
    assert proc.returncode != 0 and (tmp_path / "big").stat().st_size <= sandbox.LIMITS["fsize"]


@pytest.mark.slow  # a sweep or a subprocess: `make test` runs it, `make check` does not
@pytest.mark.parametrize("code, seconds, why", [
    ("import time; time.sleep(60)", 3, "it ran over 3 s"),
    ("import os\nfor i in range(10**6): open(f'f{i}', 'w').close()", 300, f"it made over {sandbox.FOLDER_FILES} files"),
    ("for i in range(20): open(f'f{i}', 'wb').write(b'0' * (60 * 2**20))", 300,
     f"it wrote over {sandbox.FOLDER_BYTES >> 20} MB"),
])
def test_a_unit_past_its_time_or_disk_is_stopped_whole(tmp_path, code, seconds, why):
    lingers = code + "\nimport time\ntime.sleep(600)"  # only the watch can end it
    with sandbox.unit_user() as uid:
        sandbox.give_folder(tmp_path, uid)
        finished = sandbox.watched_run(sandbox.wrap([sys.executable, "-c", lingers], tmp_path, {}, uid), tmp_path, seconds)
    assert (finished.returncode, finished.stopped) == (None, why)
