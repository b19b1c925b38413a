"""The program that grades one submission: stock `nbgrader autograde`, where a fault costs cells,
not the grade.

Run as `python autograde_unit.py LIMITS autograde LAB --student ID ...` (no sandbox; LIMITS is
the JSON of `Limits`),
or called as `main(argv)` by the warm service (`zygote.py`) in a process that has joined the
unit's sandbox, where kernels are forks of that process. In the sandbox this file is mounted
read-only beside `speedups.py`, its one import from this folder: it imports nbgrader and
nbclient, of the course only the shared names (`course.protocol`), nothing of the grader. It
differs from stock nbgrader in two ways. It writes no scores (the grader works them out outside
the sandbox, from the executed notebook). And its execution goes on past faults:
- a kernel that dies (`os._exit`, a segfault, a signal) ends the run at that cell;
- so does a notebook that is still running after its time (`Limits.notebook_seconds`);
- every cell that ran before the fault keeps its outputs and its score, every code cell after it
  gets an error output saying it did not run (so its tests score 0), and a note at the top of
  the notebook tells the student what happened and where.
Stock nbgrader gives up on the whole notebook instead, and the student gets no grade at all.
A cell's time limit is the student's (`Execute.timeout`) unless the cell is the instructor's own
code, unchanged from the release (imports, plots: `Limits.instructor_cells`), which gets
`Limits.instructor_cell_seconds`, so that a slow machine does not spend the student's time. The
limit is counted in the kernel's CPU seconds, which a busy machine does not make run faster, with
`WALL_FACTOR` times as much on the clock for a cell that waits rather than computes. Every limit
hit is listed in the notebook's metadata (`TIME_LIMITS_KEY`) with the clock it was counted on:
the grader records a CPU limit as the notebook's own, and grades a unit that hit a clock limit
again alone before it records that.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

import speedups  # before nbgrader: it keeps a slow optional part of jsonschema from loading
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_markdown_cell, new_output
from nbgrader.apps import NbGraderApp
from nbgrader.converters import Autograde
from nbgrader.preprocessors import AssignLatePenalties, Execute, SaveAutoGrades
from nbgrader.utils import is_grade, is_solution
from traitlets import Integer, List, Unicode
from traitlets.config import Config

from course.protocol import CELL_TIMEOUT, CPU_CLOCK, FAULT_CELL_ID, TIME_LIMITS_KEY, WALL_CLOCK, source_digest

MAX_TEXT = 100_000  # characters of one text output kept; the rest is cut, with a note
MAX_DATA = 2 * 2**20  # characters of one rich output (a plot, published answers); larger ones are dropped
WALL_FACTOR = 3  # a cell may run its limit in CPU seconds, and this many times its limit on the clock
CPU_CHECK_S = 0.25  # how often a running cell's CPU time is read
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


class FaultTolerantExecute(Execute):
    """nbgrader's Execute, ending at a dead kernel or a spent time budget instead of failing."""

    notebook_timeout = Integer(600, help="Seconds the whole notebook may run.").tag(config=True)
    instructor_cells = List(Unicode(), help="`source_digest` of each code cell of the release that is "
                            "the instructor's own (not an answer, not a test).").tag(config=True)
    instructor_cell_timeout = Integer(60, help="Seconds one of those cells may run.").tag(config=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if speedups.kernel_manager is not None:  # after nbgrader's own __init__, which sets the class it wants
            self.kernel_manager_class = speedups.kernel_manager
        self.timeout_func = self.cell_timeout

    def cell_timeout(self, cell) -> int:
        """The student's per-cell limit, or the instructor's for their own unchanged code."""
        instructors = not (is_solution(cell) or is_grade(cell)) and source_digest(cell.source) in self.instructor_cells
        return self.instructor_cell_timeout if instructors else self.timeout

    async def _async_poll_for_reply(self, msg_id, cell, timeout, *tasks):
        """nbclient's wait for a cell's reply, but the cell's `timeout` is counted in the kernel's
        CPU seconds, and `WALL_FACTOR` times it on the clock; at either, nbclient stops the cell."""
        self.clock = WALL_CLOCK
        start = self.kernel_cpu_seconds()
        if timeout is not None and start is not None:
            shell, wall = self.kc.shell_channel.socket, time.monotonic() + WALL_FACTOR * timeout
            while not await shell.poll(timeout=CPU_CHECK_S * 1000):  # no reply yet
                used = self.kernel_cpu_seconds()
                if used is not None and used - start >= timeout or time.monotonic() >= wall:
                    self.clock = CPU_CLOCK if used is not None and used - start >= timeout else WALL_CLOCK
                    return await super()._async_poll_for_reply(msg_id, cell, 0, *tasks)
            timeout = max(wall - time.monotonic(), 0)
        return await super()._async_poll_for_reply(msg_id, cell, timeout, *tasks)

    def kernel_cpu_seconds(self) -> float | None:
        """The CPU time the kernel process has used (its threads' included), None where unknown."""
        try:
            pid = self.km.provisioner.pid
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime, stime
        except (AttributeError, OSError, IndexError, ValueError):
            return None

    async def _async_handle_timeout(self, timeout, cell=None):
        """nbgrader's: interrupt the kernel, and the cell's error says which limit it ran over."""
        limit = self.cell_timeout(cell) if cell is not None else timeout
        seconds = limit if self.clock == CPU_CLOCK else limit * WALL_FACTOR
        self.limits_hit.append({"cell": self.index + 1, "seconds": seconds, "clock": self.clock})
        reply = await super()._async_handle_timeout(seconds, cell)
        if reply is not None:
            message = (f"This cell used its {limit} s of CPU time and was stopped." if self.clock == CPU_CLOCK else
                       f"This cell was still running after {seconds} s and was stopped.")
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
            self.limits_hit.append({"cell": index + 1, "seconds": self.notebook_timeout, "clock": WALL_CLOCK})
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
            self.fault = (f"Running {where(index, cell)} went over its time limit ({self.cell_timeout(cell)} s of CPU "
                          "time), and the kernel did not stop when interrupted.")
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


def unit_steps() -> list[type]:
    """Stock autograde's steps, with Execute made fault-tolerant and without the two that write
    scores: the grader works those out outside the sandbox, from the executed notebook."""
    return [FaultTolerantExecute if step is Execute else step for step in Autograde().autograde_preprocessors
            if step not in (SaveAutoGrades, AssignLatePenalties)]


def main(argv: list[str]) -> None:
    """`argv`: the unit's settings as JSON ({"notebook_seconds": S, "instructor_cells": [digest,
    ...], "instructor_cell_seconds": S, "fast": B}), then nbgrader's arguments. With "fast", the
    grading program's speed-ups are installed (`speedups`; in the warm service they already are,
    and each notebook's kernel is a fork of this process)."""
    limits = json.loads(argv[0])
    config = Config()
    if limits["fast"]:
        speedups.apply("unit")
        # nbconvert's public option: the notebook is validated once, after the last step, not after each
        config.NotebookExporter.optimistic_validation = True
    config.FaultTolerantExecute.notebook_timeout = int(limits["notebook_seconds"])
    config.FaultTolerantExecute.instructor_cells = list(limits["instructor_cells"])
    config.FaultTolerantExecute.instructor_cell_timeout = int(limits["instructor_cell_seconds"])
    # The notebook is graded once its last cell has run: its kernel is killed then, not asked to
    # shut down (which would import psutil to look for child processes that `end_strays` stops).
    config.FaultTolerantExecute.shutdown_kernel = "immediate"
    config.Autograde.autograde_preprocessors = unit_steps()
    NbGraderApp.launch_instance(argv=argv[1:], config=config)


if __name__ == "__main__":
    main(sys.argv[1:])
