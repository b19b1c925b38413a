"""The instructor's command line: `python -m autograder [--root ROOT] COMMAND` (see --help)."""

import argparse
import importlib
import os
import sqlite3
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import sqlalchemy.exc

from .pipeline import (bundle, cluster, examples, exports, feedback, gradebook_guard, grading, hub, minutes, newlab,
                       notebooks, on_submit, report, runs, sandbox, saving, speedups, submission, terminal)
from .pipeline.layout import Layout
from .pipeline.nbgrader_cmd import environment


def build(args, root: Path) -> int:
    for lab in args.labs:
        print(notebooks.build(lab, root).relative_to(root))
    return 0


def release(args, root: Path) -> int:
    if problem := gradebook_guard.problem(root):
        print(f"Not releasing: {problem}", file=sys.stderr)
        return 2
    for count, lab in enumerate(args.labs, 1):
        step = f"[{count}/{len(args.labs)}]"
        if not args.force and notebooks.up_to_date(lab, root):
            print(f"{step} {Layout(root).notebook('release', lab).relative_to(root)}: up to date with its source")
            continue
        print(f"{step} {lab}: building, checking and releasing (several seconds)...", flush=True)
        start = time.monotonic()
        released = notebooks.release(lab, root)
        print(f"{step} {released.relative_to(root)} ({time.monotonic() - start:.1f} s)")
    return 0


def validate(args, root: Path) -> int:
    bad = 0
    for lab in args.labs:
        for path, invert in ((notebooks.build(lab, root), False), (Layout(root).notebook("release", lab), True)):
            ok, output = notebooks.validate(path, invert)
            verdict = "passes no test, as it should" if invert else "passes every test"
            print(f"{path.relative_to(root)}: " + (verdict if ok else f"FAILED\n{output}"))
            bad += not ok
    return 1 if bad else 0


def write_examples(args, root: Path) -> int:
    for lab in args.labs:
        for path in examples.write_submissions(root, lab):
            print(path.relative_to(root))
    return 0


def grade(args, root: Path) -> int:
    """0: every submission graded and saved; 1: some were not (each says why); 2: nothing graded;
    130: stopped by Ctrl-C or SIGTERM (every grade saved so far is whole)."""
    if problem := gradebook_guard.problem(root):
        print(f"Not grading: {problem}", file=sys.stderr)
        return 2
    layout = Layout(root)
    unreleased = [lab for lab in args.labs if layout.students("submitted", lab) and not layout.has_assignment(lab)]
    if unreleased:
        print(f"Not grading: {', '.join(unreleased)} not in this course's gradebook ({root}). Release first: "
              f"make release ROOT={root}, or python -m autograder --root {root} release", file=sys.stderr)
        return 2
    if args.no_sandbox:
        print("sandbox: OFF (--no-sandbox): student code runs with your rights and sees the whole course")
    elif problem := sandbox.unavailable():
        print(f"Not grading: {problem}.\nGrading without it lets student code read and write the whole course; "
              "pass --no-sandbox to do so anyway.", file=sys.stderr)
        return 2
    else:
        print("sandbox: bubblewrap (no network, the submission's folder only, unprivileged)")
    threads = max(1, (os.cpu_count() or 1) // max(1, args.jobs))
    settings = submission.Settings(not args.no_sandbox, args.notebook_timeout, threads=threads,
                                fast=not args.stock)
    print(speed_ups(settings.fast))
    runs.stop_on_sigterm()
    stopped, unread, unwritten = False, [], None
    clock = Clock()
    try:
        with runs.course_run(root) as run:
            gradebook_guard.backup(root)
            try:
                with cluster.dask_executor(args.scheduler, args.jobs) if args.dask else nullcontext() as executor:
                    results = grading.grade_class(root, args.labs, args.jobs, settings, executor=executor,
                                                  students=set(args.students) if args.students else None, run=run)
            except grading.Stopped as stop:
                results, stopped = stop.outcomes, True
            clock.lap("grading")
            clock.phases["feedback"] = run.seconds["feedback"]
            try:
                with terminal.after_grading("writing grades.csv, the Canvas CSV and the gradebook's backup"):
                    unread = exports.write_class_exports(root, notebooks.labs(root))
                    gradebook_guard.backup(root)
            except Exception as error:  # the grades are saved; only their copies could not be written
                unwritten = saving.cause(error)
            clock.lap("exports")
    except runs.Busy as busy:
        print(f"Not grading: {busy}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before any unit was graded, or while the exports were written
        print("Grading was stopped; every grade saved is whole. Grade again to finish (python -m autograder "
              "recover rewrites the exports).", file=sys.stderr)
        return 130
    except (OSError, sqlite3.Error, sqlalchemy.exc.SQLAlchemyError) as error:
        # before any unit was graded: the lock, the scratch folder, the backup, the lab gradebooks
        print(f"Not grading: {saving.cause(error)}. Nothing was changed.", file=sys.stderr)
        return 2
    try:
        for lab, outcomes in results.items():
            try:
                with terminal.after_grading(f"{lab}: the grade table and the class report"):
                    grade_table = terminal.format_table(root, lab, outcomes)
                    class_report = report.class_report(root, lab) if any(o.ok for o in outcomes) else None
                print(grade_table)
                if class_report is not None:
                    print(class_report)
            except Exception as error:  # the gradebook gone again, a full disk: the grades are saved
                print(f"{lab}: the table and report could not be made: {saving.cause(error)}", file=sys.stderr)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM once every grade was saved
        print("Grading was stopped while the tables and reports were written; every grade is saved (python -m "
              "autograder report writes the reports again).", file=sys.stderr)
        return 130
    clock.lap("tables and reports")
    print(clock.summary())
    print(f"feedback: {root / 'feedback'}   grades CSV: {root / exports.GRADES_CSV}   Canvas import: "
          f"{root / exports.CANVAS_CSV}"
          + (f" ({len(unread)} submission(s) with written answers not read yet, counted as 0)" if unread else ""))
    failed = sum(not o.ok for outcomes in results.values() for o in outcomes)
    if unwritten:
        print(f"{exports.GRADES_CSV}, {exports.CANVAS_CSV} or the gradebook's backup not written: {unwritten}. The "
              "previous files are kept; every grade is in the gradebook (python -m autograder recover writes them).",
              file=sys.stderr)
    if stopped:
        print(f"Grading was stopped: {failed} submission(s) not graded; every grade saved is whole. Grade again "
              "to finish.", file=sys.stderr)
        return 130
    if failed:
        print(f"{failed} submission(s) could not be graded or saved; see NOT GRADED above (their earlier grades, "
              "if any, are kept).", file=sys.stderr)
    return 1 if failed or unwritten else 0


def new_lab(args, root: Path) -> int:
    try:
        written = newlab.write(args.name, root)
    except (ValueError, FileExistsError) as error:
        print(f"Not writing: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    importlib.invalidate_caches()  # the new kit and declarations are imported by the release
    args.labs, args.force = [args.name], True
    status = release(args, root)
    print(f"Next: python -m pytest tests/labs/test_{args.name}.py says what is left to write.")
    return status


def speed_ups(fast: bool) -> str:
    """What grading does faster than stock nbgrader, and what it leaves stock here (a library at a
    version a speed-up was not tested with)."""
    if not fast:
        return "speed-ups: OFF (--stock, FAST=0): every unit is stock nbgrader autograde in a new interpreter"
    left_out = {name: why for name, why in speedups.status().items() if why}
    return (f"speed-ups: {len(speedups.PATCHES) - len(left_out)} of {len(speedups.PATCHES)} patches of private "
            "APIs" + (", units forked by the warm service" if sandbox.as_root() else "")
            + "".join(f"\n  left stock: {name}: {why}" for name, why in left_out.items()))


def recover(args, root: Path) -> int:
    """Settle what a killed run left half-done, and rewrite the grade exports."""
    try:
        with runs.course_run(root):
            exports.write_class_exports(root, notebooks.labs(root))
    except runs.Busy as busy:
        print(f"Not recovering: {busy}", file=sys.stderr)
        return 2
    print(f"{root}: every save settled; {exports.GRADES_CSV} and {exports.CANVAS_CSV} rewritten from the gradebook")
    return 0


def restore_gradebook(args, root: Path) -> int:
    try:
        with runs.course_run(root):
            print(gradebook_guard.restore(root, args.source))
    except (runs.Busy, ValueError) as error:
        print(f"Not restoring: {error}", file=sys.stderr)
        return 2
    return 0


class Clock:
    """Where a run's time went, phase by phase, for its summary line; the first phase, start-up,
    is the command's own start (the interpreter, its imports, the checks) up to the clock."""

    def __init__(self):
        self.last = time.monotonic()
        self.start = self.last - seconds_since_start()
        self.phases: dict[str, float] = {"start-up": self.last - self.start}

    def lap(self, phase: str) -> None:
        now = time.monotonic()
        self.phases[phase], self.last = now - self.last, now

    def summary(self) -> str:
        feedback = self.phases.pop("feedback", 0.0)
        parts = [f"{name} {seconds:.1f} s" + (f" (feedback pages {feedback:.1f} s of it)" if name == "grading" else "")
                 for name, seconds in self.phases.items()]
        return f"time: {time.monotonic() - self.start:.1f} s in all: " + ", ".join(parts)


def seconds_since_start() -> float:
    """How long this process has run, from /proc (0 where there is none)."""
    try:
        started = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # clock ticks after boot
        return max(0.0, float(Path("/proc/uptime").read_text().split()[0]) - started / os.sysconf("SC_CLK_TCK"))
    except (OSError, IndexError, ValueError):
        return 0.0


def table(args, root: Path) -> int:
    for lab in args.labs:
        print(terminal.format_table(root, lab, []))
    return 0


def class_reports(args, root: Path) -> int:
    for lab in args.labs:
        print(report.class_report(root, lab))
    return 0


def lab_minutes(args, root: Path) -> int:
    """Print each lab's estimated minutes; --write puts each estimate into its source's introduction."""
    changed = [lab for lab in args.labs if args.write and minutes.stamp(lab, root)]
    print(minutes.report(args.labs))
    for lab in changed:
        print(f"wrote the time paragraph of source/{lab}/{lab}.py (run `make release`)")
    return 0 if all(minutes.estimate(lab).total <= minutes.SESSION_MINUTES for lab in args.labs) else 1


def gradescope(args, root: Path) -> int:
    for lab in args.labs:
        print(exports.build_gradescope(root, lab, args.dest.resolve() / f"{lab}.zip", args.unsandboxed,
                                       args.roster and args.roster.resolve()))
    return 0


def gradescope_run(args, root: Path) -> int:
    results = exports.run_gradescope(args.base.resolve(), root)
    print(f"score {results['score']:g}; {args.base / 'results' / 'results.json'}")
    return 0


def student_bundle(args, root: Path) -> int:
    print(bundle.write(root, args.dest.resolve()))
    return 0


def grade_on_submit(args, root: Path) -> int:
    """Grade each hand-in of the labs switched on in grade_on_submit.toml as it arrives (on_submit.py)."""
    exchange = args.exchange or Path(feedback.course_config(root).Exchange.get("root", "/srv/nbgrader/exchange"))
    return on_submit.serve(root, exchange.resolve(), args.jobs, once=args.once,
                           log=lambda line: print(line, flush=True))


def local_hub(args, root: Path) -> int:
    students = args.students.split(",")
    if args.remove:
        hub.remove(args.state.resolve(), [args.instructor, *students])
        return 0
    password = os.environ.get("HUB_PASSWORD")
    if not password:
        print("Set HUB_PASSWORD: every account this creates logs in with it", file=sys.stderr)
        return 2
    env = hub.prepare(args.state.resolve(), args.instructor, students, password, args.labs, args.on_submit or [])
    print(f"JupyterHub on http://127.0.0.1:{args.port}/ : instructor {args.instructor}, students "
          f"{', '.join(students)}, password from HUB_PASSWORD; "
          f"the instructor's course is {env['AUTOGRAD_LABS_COURSE']}",
          flush=True)
    hub.serve(env, args.port)
    return 0


COMMANDS = {
    "build": (build, "build source/<lab>/<lab>.ipynb from the jupytext sources"),
    "release": (release, "build, write the kit's expected data, nbgrader generate_assignment into release/"),
    "validate": (validate, "stock nbgrader validate: every source passes, every release passes no test"),
    "examples": (write_examples, "copy the bundled example submissions (examples/<lab>.toml) into submitted/"),
    "grade": (grade, "autograde every submission, then feedback, CSV and grade table"),
    "table": (table, "print the grade table from the gradebook"),
    "report": (class_reports, "per lab: the histogram of scores and every mistake with its number of students"),
    "minutes": (lab_minutes, "estimate each lab's minutes from what it asks; fail if one is over a 90-minute session"),
    "student-bundle": (student_bundle, "write the student distribution (dist/student/ and its zip)"),
    "gradescope": (gradescope, "write a Gradescope autograder zip per lab (dist/gradescope/<lab>.zip)"),
    "hub": (local_hub, "as root: a local JupyterHub with an instructor, students and nbgrader's exchange"),
    "on-submit": (grade_on_submit, "grade each hand-in of the labs in grade_on_submit.toml as it arrives; "
                                   "release its feedback at once (on a hub: its service)"),
    "gradescope-run": (gradescope_run, "on Gradescope (run_autograder): grade /autograder/submission"),
    "recover": (recover, "settle the saves a killed grading run left half-done; rewrite the grade CSVs"),
    "restore-gradebook": (restore_gradebook, "put a backup of the SQLite gradebook in place (the newest, or --from)"),
    "new-lab": (new_lab, "write the files of a new lab, a small lab that works, and release it (docs/ARCHITECTURE.md)"),
}


def default_root() -> Path:
    """The course an instructor stands in (nbgrader's own rule: the folder with the
    nbgrader_config.py), else this repository."""
    return Path.cwd() if (Path.cwd() / "nbgrader_config.py").is_file() else notebooks.ROOT


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    parser.add_argument("--root", type=Path, default=default_root(),
                        help="course root (default: this folder if it has an nbgrader_config.py, else the repo)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (run, text) in COMMANDS.items():
        command = sub.add_parser(name, help=text)
        command.set_defaults(run=run)
        command.add_argument("--lab", dest="labs", action="append", help="one lab (repeatable; default: all)")
    sub.choices["grade"].add_argument("--jobs", type=int, default=grading.default_jobs(),
                                      help="submissions graded at once (default: three per CPU core)")
    sub.choices["grade"].add_argument("--student", dest="students", action="append",
                                      help="grade only this student's submissions (repeatable; default: all)")
    sub.choices["minutes"].add_argument("--write", action="store_true",
                                        help="write each estimate into the lab's introduction (then `make release`)")
    sub.choices["grade"].add_argument("--no-sandbox", action="store_true",
                                      help="run student code without bubblewrap (it then sees the whole course)")
    sub.choices["grade"].add_argument("--stock", action="store_true",
                                      help="no speed-ups: no warm service, no patch of nbgrader's or IPython's "
                                           "private parts; every unit is stock nbgrader autograde in a new "
                                           "interpreter (slower; to tell a bug of a speed-up from one of the grader)")
    sub.choices["grade"].add_argument("--notebook-timeout", type=int, default=submission.NOTEBOOK_TIMEOUT_S,
                                      help="seconds a notebook may run; cells after that are not run and score 0")
    sub.choices["grade"].add_argument("--dask", action="store_true",
                                      help="grade on Dask: a LocalCluster of --jobs worker processes, or --scheduler's")
    sub.choices["grade"].add_argument("--scheduler", metavar="ADDRESS",
                                      help="a running Dask scheduler (tcp://host:8786); implies --dask")
    sub.choices["restore-gradebook"].add_argument(
        "--from", dest="source", type=Path, help="the backup to restore (default: the newest in .gradebook-backups/)")
    sub.choices["release"].add_argument("--force", action="store_true",
                                        help="release even a lab whose inputs have not changed since its last release")
    sub.choices["new-lab"].add_argument("name", help="the lab's name, e.g. lab6")
    sub.choices["student-bundle"].add_argument("--dest", type=Path, default=Path("dist/student"))
    sub.choices["gradescope"].add_argument("--dest", type=Path, default=Path("dist/gradescope"))
    sub.choices["gradescope"].add_argument("--unsandboxed", action="store_true",
                                           help="grade even where bubblewrap cannot run on Gradescope's image")
    sub.choices["gradescope"].add_argument("--roster", type=Path, help="a CSV with the columns email and id (or "
                                           "SID): each account is graded as the course's id for its email")
    sub.choices["gradescope-run"].add_argument("base", type=Path, nargs="?", default=Path("/autograder"),
                                               help="Gradescope's folder (submission/, results/)")
    sub.choices["hub"].add_argument("--state", type=Path, default=Path("hub"),
                                    help="the hub's folder: database, proxy, exchange, HOMEs (default: hub/)")
    sub.choices["hub"].add_argument("--port", type=int, default=8000, help="the hub's port (the next one is its API's)")
    sub.choices["hub"].add_argument("--instructor", default="instructor", help="the instructor's account")
    sub.choices["hub"].add_argument("--students", default="ada,grace", help="the students' accounts, comma-separated")
    sub.choices["hub"].add_argument("--on-submit", action="append", metavar="LAB",
                                    help="grade this lab as soon as a student submits (repeatable; written into the "
                                         "course's grade_on_submit.toml)")
    sub.choices["on-submit"].add_argument("--exchange", type=Path,
                                          help="nbgrader's exchange (default: the course configuration's)")
    sub.choices["on-submit"].add_argument("--jobs", type=int, default=grading.default_jobs(),
                                          help="hand-ins graded at once (default: three per CPU core)")
    sub.choices["on-submit"].add_argument("--once", action="store_true",
                                          help="one look at the exchange, then stop (default: until stopped)")
    sub.choices["hub"].add_argument("--remove", action="store_true",
                                    help="undo this command: delete the accounts and the group it made, "
                                         "give the repository its modes back")
    args = parser.parse_args(argv)
    if getattr(args, "scheduler", None):
        args.dask = True
    os.environ["PATH"] = environment()["PATH"]  # a new gradebook runs alembic by name
    root = args.root.resolve()
    args.labs = args.labs or notebooks.labs(root)
    return args.run(args, root)


if __name__ == "__main__":
    sys.exit(main())
