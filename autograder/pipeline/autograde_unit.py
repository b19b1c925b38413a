"""The program that grades one submission: stock `nbgrader autograde`, where a fault costs cells,
not the grade.

Run as `python autograde_unit.py NOTEBOOK_SECONDS autograde LAB --student ID ...`. Inside the
sandbox this file is mounted alone, read-only: it imports nbgrader and nbclient, nothing of the
course or the grader. It differs from stock nbgrader in two ways. It writes no scores (the
grader works them out outside the sandbox, from the executed notebook). And its execution goes
on past faults:
- a kernel that dies (`os._exit`, a segfault, a signal) ends the run at that cell;
- so does a notebook that is still running after NOTEBOOK_SECONDS;
- every cell that ran before the fault keeps its outputs and its score, every code cell after it
  gets an error output saying it did not run (so its tests score 0), and a note at the top of
  the notebook tells the student what happened and where.
Stock nbgrader gives up on the whole notebook instead, and the student gets no grade at all.
"""

import os
import signal
import sys
import time
from pathlib import Path

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_markdown_cell, new_output
from nbgrader.apps import NbGraderApp
from nbgrader.converters import Autograde
from nbgrader.preprocessors import AssignLatePenalties, Execute, SaveAutoGrades
from traitlets import Integer
from traitlets.config import Config

FAULT_CELL_ID = "autograde-fault"
MAX_TEXT = 100_000  # characters of one text output kept; the rest is cut, with a note
MAX_DATA = 2 * 2**20  # characters of one rich output (a plot, published answers); larger ones are dropped


class FaultTolerantExecute(Execute):
    """nbgrader's Execute, ending at a dead kernel or a spent time budget instead of failing."""

    notebook_timeout = Integer(600, help="Seconds the whole notebook may run.").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self.fault = None
        self.deadline = time.monotonic() + self.notebook_timeout
        try:
            nb, resources = super().preprocess(nb, resources, km)
        except DeadKernelError:  # shutting down a kernel that died may raise it once more
            if self.fault is None:
                raise
        end_strays(Path(resources.get("metadata", {}).get("path") or "."))
        if self.fault is not None:
            nb.cells.insert(0, new_markdown_cell(f"**Grading stopped early.** {self.fault}", id=FAULT_CELL_ID))
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        if self.fault is None and time.monotonic() > self.deadline:
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
            self.fault = (f"Running {where(index, cell)} took over {self.timeout} s, and the kernel did not "
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
    remove what is not a regular file beside the notebook (nbgrader's chmod would follow a link)."""
    if Path("/proc/1/comm").read_text().strip() == "bwrap":
        try:
            os.kill(-1, signal.SIGKILL)  # every process this user may signal in this PID namespace
        except ProcessLookupError:
            pass  # none left
    for top, dirs, files in os.walk(folder):  # links are not followed
        for name in dirs + files:
            path = Path(top, name)
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                path.unlink(missing_ok=True)


def bounded(output):
    """The output, with long text cut and oversized rich data dropped, so the notebook stays small."""
    if "text" in output and len(output.text) > MAX_TEXT:
        output.text = output.text[:MAX_TEXT] + f"\n[... {len(output.text) - MAX_TEXT} more characters cut by the grader]"
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


def main(argv: list[str]) -> None:
    config = Config()
    config.FaultTolerantExecute.notebook_timeout = int(argv[0])
    # Stock autograde's steps, with Execute made fault-tolerant and without the two that write
    # scores: the grader works those out outside the sandbox, from the executed notebook.
    steps = [FaultTolerantExecute if step is Execute else step for step in Autograde().autograde_preprocessors
             if step not in (SaveAutoGrades, AssignLatePenalties)]
    config.Autograde.autograde_preprocessors = steps
    NbGraderApp.launch_instance(argv=argv[1:], config=config)


if __name__ == "__main__":
    main(sys.argv[1:])
