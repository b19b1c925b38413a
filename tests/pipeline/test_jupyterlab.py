"""`make lab`'s JupyterLab: the student's nbgrader extensions load, the instructor's do not, and the
Validate button's backend works."""

import json
import re
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import nbformat
import pytest

from autograder.pipeline import examples

from helpers import REPO

pytestmark = pytest.mark.slow
TOKEN = "autograd-labs-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, path: str, data: bytes | None = None) -> bytes:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(req, timeout=120) as response:
        return response.read()


@pytest.fixture(scope="module")
def server_log(tmp_path_factory):
    return tmp_path_factory.mktemp("log") / "jupyterlab.log"


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory, server_log):
    """JupyterLab serving a student's work folder with ada's answers and the blank release."""
    work = tmp_path_factory.mktemp("work")
    release = nbformat.read(REPO / "release/lab4/lab4.ipynb", as_version=4)
    for name, answers in (("answered", examples.load("lab4")["ada"]["answers"]), ("blank", {})):
        (work / name).mkdir()
        nbformat.write(examples.fill(release, answers), work / name / "lab4.ipynb")
    port = free_port()
    server = subprocess.Popen(["make", "--no-print-directory", "lab", f"WORK={work}", "STUDENT=ada", f"PORT={port}",
                               f"TOKEN={TOKEN}"], cwd=REPO, stdout=server_log.open("w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        for _ in range(120):
            try:
                request(port, "/api/status")
                break
            except OSError:
                time.sleep(0.5)
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_lab_page_loads_the_nbgrader_validate_extension(jupyterlab):
    page = request(jupyterlab, "/lab").decode()
    assert re.search(r'"name": "@jupyter\\?/nbgrader"', page), "nbgrader's labextension is not loaded"


@pytest.mark.parametrize("folder, passes", [("answered", True), ("blank", False)])
def test_validate_button_backend(jupyterlab, folder, passes):
    reply = json.loads(request(jupyterlab, "/assignments/validate", data=f"path={folder}/lab4.ipynb".encode()))
    assert reply["success"], reply
    result = json.loads(reply["value"]) if isinstance(reply["value"], str) else reply["value"]
    assert ("failed" not in result) == passes, result


def test_validate_runs_with_the_course_settings_and_no_missing_config_warning(jupyterlab, server_log):
    request(jupyterlab, "/assignments/validate", data=b"path=answered/lab4.ipynb")
    log = server_log.read_text()
    assert "Jupyter Server" in log, log[-2000:]  # the server's output is in the log
    assert "No nbgrader_config.py file found" not in log


def test_the_students_validate_time_limit_is_the_graders():
    from traitlets.config.loader import PyFileConfigLoader
    student = PyFileConfigLoader("nbgrader_config.py", str(REPO / "jupyter" / "student")).load_config()
    grader = PyFileConfigLoader("nbgrader_config.py", str(REPO)).load_config()
    assert student.Execute == {name: grader.Execute[name] for name in student.Execute}
    assert student.Execute.timeout == 10 and student.Execute.interrupt_on_timeout is True
    assert student.CourseDirectory.course_id == grader.CourseDirectory.course_id  # the hub's Assignments tab


def test_a_students_jupyterlab_has_no_instructor_tools(jupyterlab):
    page = request(jupyterlab, "/lab").decode()
    config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                  page, re.S).group(1))
    disabled = config["disabledExtensions"]
    for plugin in ("formgrader", "create-assignment", "course-list"):
        assert f"@jupyter/nbgrader:{plugin}" in disabled
    assert "@jupyter/nbgrader:validate-assignment" not in disabled
    with pytest.raises(urllib.error.HTTPError) as refused:
        request(jupyterlab, "/formgrader")
    assert refused.value.code == 404
