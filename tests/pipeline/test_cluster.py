"""Grading on Dask worker processes: the examples' exact scores, and a worker killed in the
middle of a unit loses nothing (the unit runs again elsewhere; nothing is half-saved)."""

import os
import signal
import subprocess
import sys
import threading
import time

import nbformat
import pytest
from distributed import Client, LocalCluster
from nbgrader.api import Gradebook

from autograder.pipeline import examples, gradebooks, grading, submission
from autograder.pipeline.layout import Layout

from helpers import REPO, make_course_root

pytestmark = pytest.mark.slow
LAB = "lab2"
SLOW_STUDENT = "grace"  # her notebook gets a 6 s pause: a unit still running when the worker dies


def kill_a_busy_worker(client: Client, pids: dict[str, int], killed: list[int]) -> None:
    """Once a worker has run a unit for a second, kill its process (SIGKILL: no clean-up at all)."""
    deadline = time.monotonic() + 120
    busy_since: dict[str, float] = {}
    while time.monotonic() < deadline and not killed:
        for address, tasks in client.processing().items():
            if tasks:
                busy_since.setdefault(address, time.monotonic())
                if time.monotonic() - busy_since[address] > 1.0 and address in pids:
                    os.kill(pids[address], signal.SIGKILL)
                    killed.append(pids[address])
                    return
            else:
                busy_since.pop(address, None)
        time.sleep(0.1)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = make_course_root(tmp_path_factory.mktemp("cluster"))
    subprocess.run([sys.executable, "-m", "autograder", "--root", str(root), "release", "--lab", LAB],
                   check=True, capture_output=True)
    examples.write_submissions(root, LAB)
    layout = Layout(root)
    nb = nbformat.read(layout.notebook("submitted", LAB, SLOW_STUDENT), as_version=4)
    nb.cells.insert(len(nb.cells) // 2, nbformat.v4.new_code_cell("import time\ntime.sleep(6)"))
    nbformat.write(nb, layout.notebook("submitted", LAB, SLOW_STUDENT))
    return root


def test_a_worker_killed_mid_unit_loses_nothing(course):
    expected = {s: e["expected"] for s, e in examples.load(LAB).items()}
    killed: list[int] = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=0) as cluster, Client(cluster) as client:
        killer = threading.Thread(target=kill_a_busy_worker, args=(client, client.run(os.getpid), killed))
        killer.start()
        outcomes = grading.grade_class(course, [LAB], 2, submission.Settings(threads=1), log=lambda line: None,
                                       executor=client.get_executor(pure=False))[LAB]
        killer.join()
    assert killed, "no worker was busy long enough to be killed"
    assert [o.student for o in outcomes if not o.ok] == []
    autograded = {name for name, _ in gradebooks.graded_cells(course, LAB)[0]}
    scores = {s: {k: v for k, v in cells.items() if k in autograded}
              for s, cells in gradebooks.cell_scores(course, LAB).items()}
    assert scores == expected
    with Gradebook(Layout(course).db_url) as gb:  # one submission per student: nothing saved twice
        assert sorted(s.student.id for s in gb.find_assignment(LAB).submissions) == sorted(expected)


def test_the_command_line_grades_on_a_local_dask_cluster(course):
    proc = subprocess.run([sys.executable, "-m", "autograder", "--root", str(course), "grade", "--dask",
                           "--jobs", "2", "--lab", LAB], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    count = len(examples.load(LAB))
    assert f"graded {count} of {count} submission(s)" in proc.stdout
