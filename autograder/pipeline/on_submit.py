"""Grading on submission (`python -m autograder on-submit`; on the hub, its managed service).

Every few seconds the service reads the course's `grade_on_submit.toml` (the labs switched on, an
optional limit on graded attempts, an optional cool-down) and the exchange's inbound folder. Each
student's hand-ins of a switched-on lab are put in the order the kernel saw them arrive (a
folder's ctime, which no user can set back; the name's time is the student's to write), and
each gets a verdict (`verdicts`): an attempt, or refused because the limit is reached, the
cool-down has not ended, or its name's time is earlier than that of a hand-in that arrived before
it (nbgrader's submit names folders with the time; such a folder was named by hand, and the
grader never lets an older hand-in replace a newer one). The newest attempt is collected
(`SafeCollect`, the instructor's own checks), graded in the sandbox, and its feedback released
to the exchange at once, with the attempt's number and the policy at the top. Every other
hand-in gets a page too, saying why it was not graded, so the student's *Fetch Feedback* always
answers.

Nothing is kept but what the exchange and the gradebook hold: a hand-in is done when a page for
it is in the exchange's feedback folder, so a restart (or a crash between grading and release)
grades again exactly what has no page yet. Grading holds the course's lock (`runs`): while the
instructor grades, the service waits for its turn.
"""

import html
import math
import os
import stat
import sys
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from nbgrader.auth import Authenticator
from nbgrader.coursedir import CourseDirectory
from nbgrader.utils import notebook_hash
from traitlets.config import Config

from . import feedback, grading, intake, runs, sandbox, saving, submission
from .exchange import NO_LINKS, SECRET, Refused, SafeCollect
from .layout import Layout

POLICY_FILE = "grade_on_submit.toml"
POLL_SECONDS = 2.0
TRIES = 2  # a hand-in whose grading failed this often (not counting a busy course) gets a page that says so


class PolicyError(ValueError):
    """grade_on_submit.toml cannot be used; the message says why."""


@dataclass(frozen=True)
class Policy:
    """What the instructor switched on: the labs graded on submission, the graded attempts per
    student and lab (0: no limit), and the minutes between two graded attempts (0: none)."""

    labs: tuple[str, ...] = ()
    attempts: int = 0
    cooldown_minutes: float = 0.0

    @classmethod
    def read(cls, root: Path) -> "Policy":
        """The course's policy; switched off (no labs) when it has no grade_on_submit.toml."""
        path = root / POLICY_FILE
        if not path.exists():
            return cls()
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise PolicyError(f"{path} cannot be read: {error}") from None
        unknown = set(data) - {"labs", "attempts", "cooldown_minutes"}
        labs, attempts, cooldown = data.get("labs", []), data.get("attempts", 0), data.get("cooldown_minutes", 0)
        if unknown:
            raise PolicyError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))} (known: labs, attempts, "
                              "cooldown_minutes)")
        if not (isinstance(labs, list) and all(isinstance(lab, str) for lab in labs)):
            raise PolicyError(f'{path}: labs must be a list of lab names, e.g. labs = ["lab4"]')
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise PolicyError(f"{path}: attempts must be a whole number, 0 for no limit")
        if isinstance(cooldown, bool) or not isinstance(cooldown, int | float) or not 0 <= cooldown < math.inf:
            raise PolicyError(f"{path}: cooldown_minutes must be a number of minutes, 0 for none")
        return cls(tuple(labs), attempts, float(cooldown))

    def describe(self) -> str:
        """The policy in one sentence for students."""
        limit = f"at most {self.attempts} graded attempt(s)" if self.attempts else "no limit on attempts"
        pause = f", {self.cooldown_minutes:g} minute(s) apart" if self.cooldown_minutes else ""
        return f"This lab is graded when you submit: {limit}{pause}."


@dataclass(frozen=True)
class HandIn:
    """A folder in inbound that counts (SafeCollect's checks), with what the service needs of it."""

    name: str
    student: str
    lab: str
    arrived: float  # the folder's ctime
    named: datetime  # the time in its name
    secret: str


@dataclass(frozen=True)
class Verdict:
    """What becomes of a hand-in: "graded" (the newest attempt), "superseded" (an older attempt),
    "limit", "cooldown" or "misnamed" (not an attempt). `attempt` numbers the attempts; `until` is when a
    cool-down ends."""

    hand_in: HandIn
    kind: str
    attempt: int = 0
    until: float = 0.0


def verdicts(hand_ins: list[HandIn], policy: Policy) -> list[Verdict]:
    """One student's hand-ins of one lab, judged in the order they arrived."""
    ordered = sorted(hand_ins, key=lambda h: (h.arrived, h.name))
    judged, used, last = [], 0, None
    for index, hand_in in enumerate(ordered):
        if any(earlier.named > hand_in.named for earlier in ordered[:index]):
            judged.append(Verdict(hand_in, "misnamed", used))
        elif policy.attempts and used >= policy.attempts:
            judged.append(Verdict(hand_in, "limit", used))
        elif policy.cooldown_minutes and last is not None and hand_in.arrived < last + 60 * policy.cooldown_minutes:
            judged.append(Verdict(hand_in, "cooldown", used, last + 60 * policy.cooldown_minutes))
        else:
            used, last = used + 1, hand_in.arrived
            judged.append(Verdict(hand_in, "attempt", used))
    newest = max((v.attempt for v in judged if v.kind == "attempt"), default=0)
    return [Verdict(v.hand_in, ("graded" if v.attempt == newest else "superseded"), v.attempt) if v.kind == "attempt"
            else v for v in judged]


def collector(root: Path, exchange: Path, lab: str, student: str = "", log=None) -> SafeCollect:
    """The instructor's collect for `lab` (and `student`), configured as the course configures it."""
    config = Config(feedback.course_config(root))
    config.merge(Config({"CourseDirectory": {"root": str(root), "assignment_id": lab, "student_id": student},
                         "Exchange": {"root": str(exchange)},
                         # SafeCollect checks owners itself, strictly; nbgrader's check only warns
                         "ExchangeCollect": {"update": True, "check_owner": False}}))
    kwargs = {"log": log} if log else {}
    return SafeCollect(coursedir=CourseDirectory(config=config), authenticator=Authenticator(config=config),
                       config=config, **kwargs)


def hand_ins(collect: SafeCollect, lab: str) -> list[HandIn]:
    """Every hand-in of `lab` in inbound that counts and has a secret; the others are left to
    the instructor's collect, which logs why it refuses them."""
    inbound = Path(collect.root) / collect.coursedir.course_id / "inbound"
    collect.inbound_path = str(inbound)
    found = []
    for name in sorted(os.listdir(inbound)) if inbound.is_dir() else []:
        parts = name.rsplit("+", 3)  # student+lab+time+random, as nbgrader's submit names it
        if len(parts) == 4 and parts[1] == lab and (found_one := hand_in(collect, name, parts[0], lab)):
            found.append(found_one)
    return found


def hand_in(collect: SafeCollect, name: str, student: str, lab: str) -> HandIn | None:
    """The folder `name` in inbound as a hand-in, if it counts and has a secret."""
    try:
        folder = collect.open_submission(name)
    except (Refused, ValueError, OverflowError):
        return None
    try:
        secret = read_secret(folder)
        named = collect._path_to_record(name)["timestamp"]
        return HandIn(name, student, lab, os.fstat(folder).st_ctime, named, secret) if secret else None
    finally:
        os.close(folder)


def of_record(collect: SafeCollect, records: list[dict]) -> dict | None:
    """Of one student's records (nbgrader's, of folders that count), the one graded on submission
    (see `verdicts`) when the lab is switched on; else None (nbgrader's own choice stands)."""
    try:
        policy = Policy.read(Path(collect.coursedir.root))
    except PolicyError as error:
        collect.log.warning("%s: collecting as nbgrader does", error)
        return None
    lab = collect.coursedir.assignment_id
    if lab not in policy.labs:
        return None
    found = {h.name: h for r in records if (h := hand_in(collect, r["filename"], r["username"], lab))}
    graded = [v.hand_in.name for v in verdicts(list(found.values()), policy) if v.kind == "graded"]
    return next((r for r in records if graded and r["filename"] == graded[0]), None)


def read_secret(folder: int) -> str | None:
    """The submission's secret (nbgrader's key to its feedback): a short regular file of the folder's owner."""
    try:
        descriptor = os.open(SECRET, os.O_RDONLY | NO_LINKS, dir_fd=folder)
    except OSError:
        return None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.fstat(folder).st_uid or info.st_size > 256:
            return None
        secret = os.read(descriptor, 256).decode("ascii", "replace").strip()
        return secret if secret.isalnum() else None
    finally:
        os.close(descriptor)


@dataclass
class Exchange:
    """The exchange's feedback folder, where a released page is named by its submission's secret."""

    root: Path
    course_id: str
    notebooks: list[str]

    @property
    def folder(self) -> Path:
        return self.root / self.course_id / "feedback"

    def page(self, secret: str, notebook: str) -> Path:
        return self.folder / f"{notebook_hash(secret=secret, notebook_id=notebook)}.html"

    def answered(self, hand_in: HandIn) -> bool:
        return all(self.page(hand_in.secret, name).exists() for name in self.notebooks)

    def release(self, secret: str, pages: dict[str, str]) -> None:
        """Put each notebook's page in place whole (written aside, then renamed), readable by its student."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for notebook, text in pages.items():
            target = self.page(secret, notebook)
            aside = target.with_name(f".{target.name}.{os.getpid()}")
            aside.write_text(text)
            aside.chmod(0o644)
            aside.replace(target)


def clock(seconds: float) -> str:
    return time.strftime("%H:%M", time.localtime(seconds))


def status_line(verdict: Verdict, policy: Policy) -> str:
    """What the top of a page tells the student about this hand-in."""
    arrived = clock(verdict.hand_in.arrived)
    if verdict.kind == "limit":
        return (f"Not graded: you had used all {policy.attempts} graded attempts before this hand-in "
                f"({arrived}). Your grade is your last graded attempt's.")
    if verdict.kind == "cooldown":
        return (f"Not graded: handed in at {arrived}, during the {policy.cooldown_minutes:g}-minute cool-down "
                f"after attempt {verdict.attempt}. Submit again from {clock(verdict.until)} to have it graded.")
    if verdict.kind == "misnamed":
        return (f"Not graded: this hand-in ({arrived}) is named with an earlier time than one you handed in "
                "before it. Hand in with the Submit button (or nbgrader submit), which names it with the time.")
    if verdict.kind == "superseded":
        return (f"Not graded: attempt {verdict.attempt} ({arrived}) was followed by a newer hand-in before the "
                "grader reached it; the newest is graded.")
    of = f" of {policy.attempts}" if policy.attempts else ""
    after = (f" Your next graded attempt can be handed in from "
             f"{clock(verdict.hand_in.arrived + 60 * policy.cooldown_minutes)}." if policy.cooldown_minutes else "")
    return f"Graded on submission: attempt {verdict.attempt}{of}, handed in at {arrived}.{after}"


def banner(verdict: Verdict, policy: Policy) -> str:
    return (f'<div class="alert alert-info" role="status"><strong>{html.escape(status_line(verdict, policy))}'
            f"</strong> {html.escape(policy.describe())}</div>")


def with_banner(page: str, verdict: Verdict, policy: Policy) -> str:
    """The feedback page with the hand-in's status first in its body."""
    head, separator, body = page.partition("</head>")
    container = '<div class="container">'
    if separator and container in body:
        return head + separator + body.replace(container, container + banner(verdict, policy), 1)
    return page.replace("<body>", "<body>" + banner(verdict, policy), 1)


def status_page(lab: str, verdict: Verdict, policy: Policy, reason: str = "") -> str:
    """A page for a hand-in that was not graded: why, and what to do."""
    line = html.escape(status_line(verdict, policy) if not reason else
                       f"Not graded automatically: {reason.rstrip('.')}. Your instructor sees this in the grading log.")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\">"
            f"<title>{html.escape(lab)}</title></head><body><h1>{html.escape(lab)}</h1>"
            f"<p><strong>{line}</strong></p><p>{html.escape(policy.describe())}</p></body></html>\n")


@dataclass
class OnSubmit:
    """The service's state between rounds: how often each hand-in failed to grade, and what it
    said last round (the rest is in the exchange and the gradebook)."""

    root: Path
    exchange: Path
    jobs: int
    log: object = print
    failures: dict[str, int] = field(default_factory=dict)
    said_before: set[str] = field(default_factory=set)
    said_now: set[str] = field(default_factory=set)

    def note(self, line: str) -> None:
        """Log a state (waiting, a lab skipped, a bad policy file) once, not every round it lasts."""
        if line not in self.said_before:
            self.log(line)
        self.said_now.add(line)

    def round(self) -> int:
        """One look at the exchange: every hand-in without a page gets one. Returns how many were
        graded; raises runs.Busy while another run grades the course."""
        self.said_before, self.said_now = self.said_now, set()
        policy = Policy.read(self.root)
        graded = 0
        for lab in policy.labs:
            if not Layout(self.root).has_assignment(lab):
                self.note(f"{lab}: switched on in {POLICY_FILE} but not released; skipped")
                continue
            graded += self.lab_round(lab, policy)
        return graded

    def lab_round(self, lab: str, policy: Policy) -> int:
        collect = collector(self.root, self.exchange, lab)
        exchange = Exchange(self.exchange, collect.coursedir.course_id, intake.lab_notebooks(self.root, lab))
        by_student: dict[str, list[HandIn]] = {}
        for hand_in in hand_ins(collect, lab):
            by_student.setdefault(hand_in.student, []).append(hand_in)
        to_grade = {}
        for student, theirs in by_student.items():
            for verdict in verdicts(theirs, policy):
                if exchange.answered(verdict.hand_in):
                    continue
                if verdict.kind == "graded":
                    to_grade[student] = verdict
                else:
                    exchange.release(verdict.hand_in.secret,
                                     {name: status_page(lab, verdict, policy) for name in exchange.notebooks})
                    self.log(f"{lab} {student}: {status_line(verdict, policy)}")
        if to_grade:
            self.grade(lab, to_grade, policy, exchange)
        return len(to_grade)

    def grade(self, lab: str, to_grade: dict[str, Verdict], policy: Policy, exchange: Exchange) -> None:
        """Collect and grade the hand-ins `to_grade` (one per student), releasing each page as
        soon as its grade is saved."""
        settings = submission.Settings(True, submission.NOTEBOOK_TIMEOUT_S, threads=1, fast=True)
        with runs.course_run(self.root) as run:
            for student in to_grade:
                self.collect(lab, student)
            graded = grading.grade_class(self.root, [lab], self.jobs, settings, log=self.log, students=set(to_grade),
                                         run=run, on_saved=lambda outcome: self.release(outcome, to_grade, policy,
                                                                                         exchange))[lab]
        for student in set(to_grade) - {outcome.student for outcome in graded}:
            self.failed(lab, to_grade[student], policy, exchange, "it could not be collected (see the collect "
                                                                  "lines above)")

    def release(self, outcome, to_grade: dict[str, Verdict], policy: Policy, exchange: Exchange) -> None:
        """The page of a unit whose result was just saved (or not). A page that cannot be written
        (a full disk) is left for the next round; the other units go on."""
        verdict = to_grade[outcome.student]
        folder = Layout(self.root).folder("feedback", outcome.lab, outcome.student)
        try:
            if not outcome.ok:
                self.failed(outcome.lab, verdict, policy, exchange, outcome.message)
            elif read_text(folder / SECRET) != verdict.hand_in.secret:
                self.failed(outcome.lab, verdict, policy, exchange, None)
            else:
                pages = {name: with_banner((folder / f"{name}.html").read_text(), verdict, policy)
                         for name in exchange.notebooks}
                exchange.release(verdict.hand_in.secret, pages)
                self.log(f"{outcome.lab} {outcome.student}: feedback released ({status_line(verdict, policy)})")
        except OSError as error:
            self.log(f"{outcome.lab} {outcome.student}: page not released, next round: {saving.cause(error)}")

    def failed(self, lab: str, verdict: Verdict, policy: Policy, exchange: Exchange, reason: str | None) -> None:
        """A hand-in graded without a page to release: tried again next round, and after TRIES
        failures given a page that says why (`reason`; None: a newer hand-in was collected
        meanwhile, which the next round grades)."""
        hand_in = verdict.hand_in
        if reason is None:
            self.log(f"{lab} {hand_in.student}: a newer hand-in arrived while this one was collected; next round")
            return
        tries = self.failures[hand_in.name] = self.failures.get(hand_in.name, 0) + 1
        self.log(f"{lab} {hand_in.student}: not graded ({reason}); try {tries} of {TRIES}")
        if tries >= TRIES:
            exchange.release(hand_in.secret, {name: status_page(lab, verdict, policy, reason)
                                              for name in exchange.notebooks})

    def collect(self, lab: str, student: str) -> None:
        """The student's hand-in to grade into submitted/, by the instructor's collect (which
        chooses it by the same `verdicts`)."""
        collector(self.root, self.exchange, lab, student, log=quiet_log()).start()


def read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def quiet_log():
    import logging
    log = logging.getLogger("autograd-labs.on-submit.collect")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("collect: %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.WARNING)
    return log


def serve(root: Path, exchange: Path, jobs: int, once: bool = False, log=print) -> int:
    """Grade on submission until stopped (SIGTERM or Ctrl-C); with `once`, one round. Refuses to
    run where the sandbox cannot: student code is never run unsandboxed here."""
    if problem := sandbox.unavailable():
        log(f"Not grading on submission: {problem}.")
        return 2
    service = OnSubmit(root, exchange, jobs, log)
    runs.stop_on_sigterm()
    log(f"grading on submission: {root}, exchange {exchange}, policy in {root / POLICY_FILE}")
    try:
        while True:
            status = 0
            try:
                service.round()
            except runs.Busy as busy:
                service.note(f"waiting: {busy}")
            except PolicyError as error:
                service.note(f"not grading on submission: {error}")
            except Exception as error:  # the exchange or the gradebook gone for a while: try again next round
                service.note(f"round stopped, tried again in {POLL_SECONDS:g} s: {saving.cause(error)}")
                status = 1
            if once:
                return status
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        log("grading on submission stopped; every grade saved is whole, and hand-ins without a page are "
            "graded when it starts again")
        return 130
