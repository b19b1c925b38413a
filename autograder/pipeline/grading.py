"""Grade a whole class: every submission alone, every result saved in one step.

One submission is one unit of work (`submission.grade_unit`), graded in its own sandbox and
saving nothing. Only the grading thread saves (one writer), each result as it comes, whole or
not at all: notebooks, gradebook rows and feedback (`saving.py`). One run holds the course at a
time (`runs.py`). A broken, hung or hostile submission, or a crash halfway through the class,
therefore leaves every grade already saved as it was, and running the grader again is always
safe. Units are independent, so they run in parallel (`--jobs`, threads or Dask workers:
`cluster.py`).
"""

import os
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from pathlib import Path

from nbgrader.api import Gradebook

from ..labs import load
from . import intake, runs, sandbox, saving, service, speedups
from .gradebooks import known_students, lab_gradebook, lab_template, test_cells
from .layout import Layout
from .submission import Outcome, Settings, grade_unit
from .terminal import Progress


def default_jobs() -> int:
    """Three units per core: while one waits (its kernel starting, answering, shutting down),
    the others keep the core busy (measured on 2 cores: 91% busy with two per core, 96% with
    three, no better with four). Every unit's student code runs on one thread."""
    return 3 * (os.cpu_count() or 1)


class Stopped(KeyboardInterrupt):
    """Grading stopped by Ctrl-C or SIGTERM, once every grade saved so far was saved whole;
    `outcomes` says what was graded and what was not."""

    def __init__(self, outcomes: dict[str, list["Outcome"]]):
        super().__init__("grading was stopped")
        self.outcomes = outcomes


STOPPED = "not graded: grading was stopped (Ctrl-C or SIGTERM) before it was saved; grade again"


def grade_class(root: Path, labs: list[str], jobs: int, settings: Settings, log=print,
                executor: Executor | None = None, students: set[str] | None = None,
                run: runs.Run | None = None, on_saved=None) -> dict[str, list[Outcome]]:
    """Grade every submission of `labs` (of `students` only, if given), `jobs` units at a time
    across all labs (or on `executor`, e.g. a Dask cluster's), in `run` (else in a run of its
    own: the course's lock, see `runs`). Workers only grade; this thread alone writes the course
    (one writer), saving each result whole as it comes (`saving`). A unit whose worker failed is
    reported, never half-saved. A unit that hit a time limit beside the others is graded again
    alone at the end, and only that second result counts: a busy machine costs time, never
    points. Ctrl-C or SIGTERM stops the units running and raises Stopped, every saved grade whole.
    `on_saved(outcome)`, if given, is called in this thread as each unit's result is saved (or not)."""
    if run is None:
        with runs.course_run(root) as own:
            return grade_class(root, labs, jobs, settings, log, executor, students, own, on_saved)
    layout = Layout(root)
    candidates = [(lab, student) for lab in labs for student in layout.students("submitted", lab)
                  if students is None or student in students]
    outcomes = {lab: [] for lab in labs}
    patience = saving.Patience()  # one budget for the run: a database restart is waited out, once
    clashes = intake.case_clashes([student for _, student in candidates],
                                  patience.run(lambda: known_students(layout), log))
    units = [unit for unit in candidates if unit[1] not in clashes]
    for lab in labs:
        if not any(unit_lab == lab for unit_lab, _ in candidates):
            log(f"{lab}: no submissions under submitted/*/{lab}/")
    report = Progress(len(candidates), log)
    for lab, student in candidates:
        if student in clashes:
            report.add(Outcome(student, lab, False, clashes[student]))
            outcomes[lab].append(report.done[-1])
    if not units:
        report.summary()
        return outcomes
    report.phase("starting", "the sandbox service and each lab's gradebook")
    if executor is None and settings.sandboxed and settings.fast and sandbox.as_root():
        service.start()  # warms up while the lab gradebooks are built
    if settings.fast:
        speedups.apply("grader")
    graded_labs = sorted({lab for lab, _ in units})
    for lab in graded_labs:
        load(lab)  # the grader's lab module, imported before any student code runs
        patience.run(lambda lab=lab: lab_gradebook(root, lab, lab_template(run.scratch, lab)), log)
    tests = patience.run(lambda: {lab: test_cells(layout.db_url, lab) for lab in graded_labs}, log)
    saved = set()
    with executor or ThreadPoolExecutor(max_workers=jobs) as pool, \
            patience.run(lambda: Gradebook(layout.db_url), log) as gb:
        def record(outcome: Outcome, result: dict | None, files: dict) -> None:
            if result is not None:
                outcome = saving.save_unit(run, gb, outcome, result, files, patience, log)
            saved.add((outcome.lab, outcome.student))
            outcomes[outcome.lab].append(outcome)
            report.add(outcome)
            if on_saved is not None:
                on_saved(outcome)

        def grade(lab: str, student: str):
            return pool.submit(grade_unit, root, lab, student, tests[lab], settings, run.scratch)

        try:
            report.phase("grading", f"{len(units)} submission(s), {jobs} at a time")
            futures = {grade(lab, student): (lab, student) for lab, student in units}
            again = []
            for future in as_completed(futures):
                outcome, result, files = unit_result(future, *futures[future])
                if outcome.timed_out:
                    report.later(outcome)
                    again.append(futures[future])
                else:
                    record(outcome, result, files)
            if again:
                report.phase("grading again alone", f"{len(again)} submission(s) that hit a time limit")
            for lab, student in again:  # one at a time: nothing else of ours runs meanwhile
                record(*graded_alone(*unit_result(grade(lab, student), lab, student)))
        except KeyboardInterrupt:
            stop(pool)
            for lab, student in units:
                if (lab, student) not in saved:
                    record(Outcome(student, lab, False, STOPPED), None, {})
            report.summary()
            raise Stopped({lab: sorted(found, key=lambda o: o.student) for lab, found in outcomes.items()}) from None
    report.summary()
    return {lab: sorted(found, key=lambda o: o.student) for lab, found in outcomes.items()}


def stop(pool: Executor) -> None:
    """No unit starts any more, and the running ones end now (their sandboxes with them)."""
    try:
        pool.shutdown(wait=False, cancel_futures=True)
    except TypeError:  # an executor without cancel_futures (Dask's)
        pool.shutdown(wait=False)
    sandbox.end_all()


def unit_result(future, lab: str, student: str) -> tuple[Outcome, dict | None, dict]:
    """What a unit's worker returned, or why it returned nothing."""
    try:
        return future.result()
    except Exception as exc:  # the worker died (Dask gave up retrying) or could not be reached, or the disk is full
        return Outcome(student, lab, False, f"not graded: {saving.cause(exc)}" if saving.out_of_space(str(exc))
                       else f"its worker failed: {type(exc).__name__}: {exc}"), None, {}


def graded_alone(outcome: Outcome, result: dict | None, files: dict) -> tuple[Outcome, dict | None, dict]:
    """A unit's second grading, alone: a time limit hit again is the notebook's own (the fault
    note says so), or, when the grader itself ran out of time, nothing is recorded."""
    if outcome.timed_out and outcome.ok and outcome.fault:
        outcome.fault += " (The same happened when it was graded again with nothing else running.)"
    elif outcome.timed_out and not outcome.ok:
        outcome.message += (", even graded alone: nothing recorded, earlier grades kept; grade it again on a less "
                            "busy machine")
    return outcome, result, files
