"""Running nbgrader's command line with this environment's tools first on PATH.

nbgrader starts `alembic` (new gradebooks) and kernels by name, so the venv's bin folder
must lead PATH even when the caller did not activate the venv.
"""

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def environment(extra: dict | None = None) -> dict[str, str]:
    """This process's environment, plus `extra`, with this environment's tools first on PATH."""
    return {**os.environ, **(extra or {}), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def run_nbgrader(*args: str, root: Path, env: dict | None = None, check: bool = True,
                 timeout: float | None = None) -> subprocess.CompletedProcess:
    """`nbgrader ARGS` in the course root `root`, output captured."""
    return subprocess.run([str(BIN / "nbgrader"), *args], cwd=root, env=environment(env), check=check,
                          capture_output=True, text=True, timeout=timeout, start_new_session=True)
