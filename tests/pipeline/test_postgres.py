"""The examples graded on Dask into a PostgreSQL gradebook: a real server (Debian's postgresql
package, started privately for this test), nbgrader's own db_url, the exact expected scores."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from autograder.pipeline import examples, gradebooks, notebooks
from autograder.pipeline.layout import DB_URL_ENV

from helpers import REPO, make_course_root

pytestmark = pytest.mark.slow
SERVERS = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))


def as_server_user(*command: str) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the package's `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


@pytest.fixture(scope="module")
def postgres_url():
    if not SERVERS:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run installs it)")
    bin_dir = SERVERS[-1].parent
    data = Path(tempfile.mkdtemp(prefix="autograd-labs-pg-"))  # pytest's folders are private to us
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    subprocess.run(as_server_user(str(bin_dir / "initdb"), "-D", str(data), "-U", "grader", "-A", "trust"),
                   check=True, capture_output=True)
    subprocess.run(as_server_user(str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "log"), "-o",
                                  f"-k {data} -c listen_addresses=''", "start"), check=True, capture_output=True)
    try:
        subprocess.run([str(bin_dir / "createdb"), "-h", str(data), "-U", "grader", "gradebook"], check=True,
                       capture_output=True)
        yield f"postgresql+psycopg2://grader@/gradebook?host={data}"
    finally:
        subprocess.run(as_server_user(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"),
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def test_the_examples_graded_on_dask_into_postgresql_get_their_expected_scores(tmp_path, postgres_url, monkeypatch):
    root = make_course_root(tmp_path)
    proc = subprocess.run(["make", "--no-print-directory", "demo", f"ROOT={root}", "JOBS=2", "DASK=1",
                           f"DB_URL={postgres_url}"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (root / "gradebook.db").exists()  # every grade went to PostgreSQL
    monkeypatch.setenv(DB_URL_ENV, postgres_url)
    for lab in notebooks.labs():
        autograded = {name for name, _ in gradebooks.graded_cells(root, lab)[0]}
        scores = {s: {k: v for k, v in cells.items() if k in autograded}
                  for s, cells in gradebooks.cell_scores(root, lab).items()}
        assert scores == {s: e["expected"] for s, e in examples.load(lab).items()}, lab
