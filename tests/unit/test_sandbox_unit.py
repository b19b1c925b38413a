"""The sandbox on its own: what code inside it can and cannot reach (bubblewrap, no nbgrader)."""

import json
import subprocess
import sys

from autograder.pipeline import sandbox

from conftest import REPO

PROBE = r'''
import importlib.util, json, os, socket
seen = {"uid": os.getuid(), "kit": importlib.util.find_spec("course.lab4") is not None,
        "grader": importlib.util.find_spec("autograder") is not None,
        "sources": os.path.exists(%(repo)r + "/source/lab4/lab4.py"),
        "home": os.path.exists("/root/.bashrc") or os.path.exists("/root/.cache")}
try:
    socket.create_connection(("1.1.1.1", 80), timeout=3)
    seen["network"] = True
except OSError:
    seen["network"] = False
open("written.txt", "w").write("from inside")
print(json.dumps(seen))
'''


def test_inside_the_sandbox_there_is_the_kit_and_the_folder_and_nothing_else(tmp_path):
    assert sandbox.unavailable() is None
    command = sandbox.wrap([sys.executable, "-c", PROBE % {"repo": str(REPO)}], tmp_path, {"X": "1"})
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"uid": 65534, "kit": True, "grader": False, "sources": False,
                                       "home": False, "network": False}
    assert (tmp_path / "written.txt").read_text() == "from inside"


def test_nothing_started_inside_outlives_the_sandbox(tmp_path):
    leave = ("import subprocess, sys; subprocess.Popen([sys.executable, '-c', "
             "'import time; time.sleep(3); open(\"late.txt\", \"w\").write(\"x\")'], start_new_session=True)")
    subprocess.run(sandbox.wrap([sys.executable, "-c", leave], tmp_path, {}), check=True, timeout=60)
    subprocess.run(["sleep", "4"], check=True)
    assert not (tmp_path / "late.txt").exists()
