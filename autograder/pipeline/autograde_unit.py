"""The program that grades one submission: stock `nbgrader autograde`, where a fault costs cells,
not the grade.

Run as `python autograde_unit.py LIMITS autograde LAB --student ID ...` (no sandbox; LIMITS is
the JSON of `Limits`),
or called as `main(argv, forked_kernels=True)` by the warm service (`zygote.py`) in a process
that has joined the unit's sandbox, where kernels are forks of that process. In the sandbox this
file is mounted alone, read-only: it imports nbgrader and nbclient, of the course only the shared
names (`course.protocol`), nothing of the grader. It differs from stock nbgrader in two ways. It writes no scores (the
grader works them out outside the sandbox, from the executed notebook). And its execution goes
on past faults:
- a kernel that dies (`os._exit`, a segfault, a signal) ends the run at that cell;
- so does a notebook that is still running after its time (`Limits.notebook_seconds`);
- every cell that ran before the fault keeps its outputs and its score, every code cell after it
  gets an error output saying it did not run (so its tests score 0), and a note at the top of
  the notebook tells the student what happened and where.
Stock nbgrader gives up on the whole notebook instead, and the student gets no grade at all.
A cell's time limit is the student's (`Execute.timeout`) unless the cell is the instructor's own
code, unchanged from the release (imports, plots: `Limits.instructor_cells`), which gets
`Limits.instructor_cell_seconds`, so that a slow machine does not spend the student's time. Every
limit hit is listed in the notebook's metadata (`TIME_LIMITS_KEY`), so the grader can grade the
unit again alone before it records a timeout.
"""

import asyncio
import functools
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import sqlalchemy
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_markdown_cell, new_output
from nbgrader import api
from nbgrader.apps import NbGraderApp
from nbgrader.nbgraderformat import common as nbgrader_format
from nbgrader.converters import Autograde
from nbgrader.preprocessors import AssignLatePenalties, Execute, SaveAutoGrades
from nbgrader.utils import is_grade, is_solution
from traitlets import Bool, Integer, List, Unicode
from traitlets.config import Application, Config

from course.protocol import CELL_TIMEOUT, FAULT_CELL_ID, TIME_LIMITS_KEY

# nbgrader asks `alembic heads` (a new process, about 0.3 s) for its schema version every time it
# opens a gradebook; the answer cannot change while a process runs.
api.get_alembic_version = functools.cache(api.get_alembic_version)


class Gradebooks:
    """How nbgrader reaches its gradebook in this program: one SQLAlchemy engine for every SQLite
    database (connecting to the one asked for last; a unit has one), instead of a new engine per
    open, and one look at the tables per database.

    nbgrader opens the gradebook eight times per submission. Each open made a new engine, which
    compiled every SQL statement afresh, and looked for every table (about 15 queries). With one
    engine, the statements the warm service compiled while it warmed up (`zygote.warm_gradebook`)
    serve every unit; once a database's tables exist (nothing here drops one), later opens are
    told what the first look found."""

    def __init__(self):
        self.engine, self.url, self.others = None, None, {}
        self.created, self.tables = False, None  # of the database at self.url
        self.inspect, self.create_all_tables = api.inspect, api.Base.metadata.create_all

    def create_engine(self, db_url, **options):
        url = sqlalchemy.engine.make_url(db_url)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            if db_url not in self.others:
                self.others[db_url] = sqlalchemy.create_engine(db_url, **options)
            return self.others[db_url]
        if self.engine is None:
            self.engine = sqlalchemy.create_engine(url, creator=self.connect, **options)
        if url != self.url:
            self.engine.dispose()  # no connection to the previous database is handed out again
            self.url, self.created, self.tables = url, False, None
        return self.engine

    def connect(self):
        """A DB-API connection to the current database, made as SQLAlchemy makes it from its URL."""
        args, kwargs = self.engine.dialect.create_connect_args(self.url)
        return self.engine.dialect.connect(*args, **kwargs)

    def inspect_tables(self, engine):
        """`sqlalchemy.inspect`, as nbgrader uses it: to list the tables."""
        if engine is not self.engine or not self.created:
            return self.inspect(engine)
        if self.tables is None:
            self.tables = self.inspect(engine).get_table_names()
        return KnownTables(self.tables)

    def create_all(self, bind, **options):
        """nbgrader's `Base.metadata.create_all`, once per database."""
        if bind is not self.engine or not self.created:
            self.create_all_tables(bind=bind, **options)
            self.created = bind is self.engine

    def forget(self) -> None:
        """Close every connection and forget the current database (before a fork)."""
        if self.engine is not None:
            self.engine.dispose()
        self.url, self.created, self.tables = None, False, None


class KnownTables:
    """What `sqlalchemy.inspect(engine)` gives nbgrader, for a database whose tables are known."""

    def __init__(self, names: list[str]):
        self.names = names

    def get_table_names(self) -> list[str]:
        return list(self.names)


@functools.cache
def schema_validator(schema_text: str):
    """A checked validator for one JSON schema, as `jsonschema.validate` builds on every call."""
    schema = json.loads(schema_text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate_metadata(instance, schema) -> None:
    """`jsonschema.validate`, the same errors, without checking the schema itself again."""
    error = jsonschema.exceptions.best_match(schema_validator(json.dumps(schema, sort_keys=True)).iter_errors(instance))
    if error is not None:
        raise error


gradebooks: Gradebooks | None = None


def reuse_gradebook_work() -> Gradebooks:
    """In this program only (the grader's own gradebook handles are left alone): nbgrader's
    gradebook opens go through `Gradebooks`, and its cell-metadata check uses one validator per
    schema. Once per process (the warm service does it before it forks)."""
    global gradebooks
    if gradebooks is None:
        gradebooks = Gradebooks()
        api.create_engine = gradebooks.create_engine
        api.inspect = gradebooks.inspect_tables
        api.Base.metadata.create_all = gradebooks.create_all
        nbgrader_format.jsonschema = SimpleNamespace(validate=validate_metadata)
    return gradebooks


# Set by zygote.py before it imports this program: the modules and warning filters it had after
# importing what a kernel needs, and nothing of nbgrader yet.
kernel_baseline: tuple[frozenset[str], list] | None = None


def source_digest(source: str) -> str:
    """How the grader names an instructor's cell to this program (the SHA-256 of its code)."""
    return hashlib.sha256(source.encode()).hexdigest()


MAX_TEXT = 100_000  # characters of one text output kept; the rest is cut, with a note
MAX_DATA = 2 * 2**20  # characters of one rich output (a plot, published answers); larger ones are dropped


class FaultTolerantExecute(Execute):
    """nbgrader's Execute, ending at a dead kernel or a spent time budget instead of failing."""

    notebook_timeout = Integer(600, help="Seconds the whole notebook may run.").tag(config=True)
    forked_kernels = Bool(False, help="Fork each kernel from this warm process (zygote.py).").tag(config=True)
    instructor_cells = List(Unicode(), help="`source_digest` of each code cell of the release that is "
                            "the instructor's own (not an answer, not a test).").tag(config=True)
    instructor_cell_timeout = Integer(60, help="Seconds one of those cells may run.").tag(config=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.forked_kernels:  # after nbgrader's own __init__, which sets the class it wants
            self.kernel_manager_class = ForkedKernelManager
        self.timeout_func = self.cell_timeout

    def cell_timeout(self, cell) -> int:
        """The student's per-cell limit, or the instructor's for their own unchanged code."""
        instructors = not (is_solution(cell) or is_grade(cell)) and source_digest(cell.source) in self.instructor_cells
        return self.instructor_cell_timeout if instructors else self.timeout

    async def _async_handle_timeout(self, timeout, cell=None):
        """nbgrader's: interrupt the kernel, and the cell's error says which limit it ran over."""
        self.limits_hit.append({"cell": self.index + 1, "seconds": timeout})
        reply = await super()._async_handle_timeout(timeout, cell)
        if reply is not None:
            message = f"This cell ran over its time limit of {timeout} s and was stopped."
            reply["content"].update(evalue=message, traceback=[f"{CELL_TIMEOUT}: {message}"])
        return reply

    def preprocess(self, nb, resources=None, km=None):
        self.fault = None
        self.limits_hit = []
        self.deadline = time.monotonic() + self.notebook_timeout
        try:
            nb, resources = super().preprocess(nb, resources, km)
        except DeadKernelError:  # shutting down a kernel that died may raise it once more
            if self.fault is None:
                raise
        end_strays(Path(resources.get("metadata", {}).get("path") or "."))
        if self.fault is not None:
            nb.cells.insert(0, new_markdown_cell(f"**Grading stopped early.** {self.fault}", id=FAULT_CELL_ID))
        nb.metadata[TIME_LIMITS_KEY] = self.limits_hit
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        self.index = index
        if self.fault is None and time.monotonic() > self.deadline:
            self.limits_hit.append({"cell": index + 1, "seconds": self.notebook_timeout})
            self.fault = (f"The notebook was still running after {self.notebook_timeout} s, at "
                          f"{where(index, cell)}. Cells before it were graded; it and every cell after it were not run "
                          "and score 0.")
        if self.fault is not None:
            if cell.cell_type == "code":
                cell.outputs = [not_run(self.fault)]
            return cell, resources
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
            if cell.cell_type == "code":
                cell.outputs = [bounded(output) for output in cell.outputs]
            return cell, resources
        except DeadKernelError:
            self.fault = f"The Python kernel died while running {where(index, cell)}: {self.kernel_end()}."
        except CellTimeoutError:  # the kernel ignored the interrupt after the cell's time ran out
            self.fault = (f"Running {where(index, cell)} took over {self.cell_timeout(cell)} s, and the kernel did not "
                          "stop when interrupted.")
        self.fault += " Cells before it were graded; it and every cell after it score 0."
        cell.outputs.append(not_run(self.fault))
        return cell, resources

    def kernel_end(self) -> str:
        """How the kernel process ended, as far as its exit status tells."""
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        status = process.poll() if process is not None else None
        if status is None:
            return "it stopped answering"
        if status < 0:
            name = signal.Signals(-status).name
            return {"SIGSEGV": "a segmentation fault", "SIGKILL": "killed, most often for using too much memory"
                    }.get(name, f"killed by {name}")
        return f"it exited with status {status}, as `os._exit` does"


def end_strays(folder: Path) -> None:
    """In the sandbox (PID 1 is bubblewrap): stop every process the notebook left running, then
    remove what is not a regular file beside the notebook (nbgrader's chmod would follow a link).

    Spared: bubblewrap (PID 1), the sandbox's first command (PID 2: this program, or the process
    that holds the sandbox open for the warm service) and this process."""
    if Path("/proc/1/comm").read_text().strip() == "bwrap":
        spared = {1, 2, os.getpid()}
        for _ in range(100):  # new processes may appear while the others are being killed
            strays = [pid for pid in running() if pid not in spared]
            if not strays:
                break
            for pid in strays:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                except PermissionError:  # not ours to stop (the holder, when grading as root)
                    spared.add(pid)
            time.sleep(0.01)
    for top, dirs, files in os.walk(folder):  # links are not followed
        for name in dirs + files:
            path = Path(top, name)
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                path.unlink(missing_ok=True)


def running() -> list[int]:
    """The processes of this PID namespace that are alive (zombies excluded)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if state not in "ZX":
                alive.append(int(entry.name))
    return alive


def bounded(output):
    """The output, with long text cut and oversized rich data dropped, so the notebook stays small."""
    if "text" in output and len(output.text) > MAX_TEXT:
        cut = len(output.text) - MAX_TEXT
        output.text = output.text[:MAX_TEXT] + f"\n[... {cut} more characters cut by the grader]"
    for mime, value in list(output.get("data", {}).items()):
        if len(value if isinstance(value, str) else str(value)) > MAX_DATA:
            del output.data[mime]
            output.data.setdefault("text/plain", f"[{mime} output over {MAX_DATA >> 20} MB removed by the grader]")
    return output


def where(index: int, cell) -> str:
    """'cell 12 (`first line of its code`)', for a student to find the cell."""
    first = next((line for line in cell.source.splitlines() if line.strip()), "").strip()
    return f"cell {index + 1}" + (f" (`{first[:60]}`)" if first else "")


def not_run(reason: str):
    """The error output of a cell that did not run."""
    return new_output("error", ename="NotRun", evalue=reason, traceback=[f"NotRun: {reason}"])


class ForkedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel is a fork of this (warm) process instead of a new interpreter:
    the same ipykernel, command line, environment and folder, without re-importing torch."""

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        process = Forked(fork_kernel(kernel_cmd, kw.get("env") or dict(os.environ), kw.get("cwd") or os.getcwd()))
        self.provisioner.process, self.provisioner.pid, self.provisioner.pgid = process, process.pid, process.pid
        self.provisioner.cwd = kw.get("cwd")
        self._reconcile_connection_info(self.provisioner.connection_info)


def fork_kernel(kernel_cmd: list[str], env: dict, cwd: str) -> int:
    """Fork a process that becomes `python -m ipykernel_launcher -f CONNECTION` would; its pid."""
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        os.setsid()  # as jupyter_client starts kernels: a session of its own
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env, JPY_PARENT_PID=str(os.getppid()))  # as jupyter_client's launcher sets it
        sys.path[0] = cwd  # `python -m` puts the working folder first
        fresh_random_state()
        as_new_kernel()
        asyncio.set_event_loop(asyncio.new_event_loop())  # never the parent's loop
        if Application.initialized():  # nbgrader's app: the kernel's app must be the only one
            type(Application.instance()).clear_instance()
        from ipykernel import kernelapp
        sys.argv = [kernelapp.__file__, *kernel_cmd[3:]]
        # Read from the environment when ipykernel was imported, before this fork: given here.
        kernelapp.launch_new_instance(argv=kernel_cmd[3:], parent_handle=os.getppid())
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()  # into the unit's log, as a kernel that fails to start prints it
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def fresh_random_state() -> None:
    """Seed Python's and NumPy's global generators from the OS, as a new interpreter does
    (torch's starts from its fixed default seed either way)."""
    import random
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()


def as_new_kernel() -> None:
    """In a kernel forked from the warm service: forget the modules that only grading imported
    (nbgrader, SQLAlchemy, nbconvert... about 900) and the warning filters they added, so the
    student's code finds what a new kernel has. IPython also scans every loaded module on each
    error it formats."""
    if kernel_baseline is None:
        return
    modules, filters = kernel_baseline
    for name in sys.modules.keys() - modules:
        del sys.modules[name]
    warnings.filters[:] = filters
    warnings._filters_mutated()


class Forked:
    """The parts of subprocess.Popen that jupyter_client uses, for a forked child."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid, self.returncode = pid, None

    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None):
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def unit_steps() -> list[type]:
    """Stock autograde's steps, with Execute made fault-tolerant and without the two that write
    scores: the grader works those out outside the sandbox, from the executed notebook."""
    return [FaultTolerantExecute if step is Execute else step for step in Autograde().autograde_preprocessors
            if step not in (SaveAutoGrades, AssignLatePenalties)]


def main(argv: list[str], forked_kernels: bool = False) -> None:
    """`argv`: the unit's time limits as JSON ({"notebook_seconds": S, "instructor_cells": [digest,
    ...], "instructor_cell_seconds": S}), then nbgrader's arguments. With `forked_kernels` (a warm
    process, see zygote.py), each notebook's kernel is a fork of this process."""
    reuse_gradebook_work()
    limits = json.loads(argv[0])
    config = Config()
    config.FaultTolerantExecute.notebook_timeout = int(limits["notebook_seconds"])
    config.FaultTolerantExecute.instructor_cells = list(limits["instructor_cells"])
    config.FaultTolerantExecute.instructor_cell_timeout = int(limits["instructor_cell_seconds"])
    config.FaultTolerantExecute.forked_kernels = forked_kernels
    # The notebook is graded once its last cell has run: its kernel is killed then, not asked to
    # shut down (which would import psutil to look for child processes that `end_strays` stops).
    config.FaultTolerantExecute.shutdown_kernel = "immediate"
    config.Autograde.autograde_preprocessors = unit_steps()
    NbGraderApp.launch_instance(argv=argv[1:], config=config)


if __name__ == "__main__":
    main(sys.argv[1:])
