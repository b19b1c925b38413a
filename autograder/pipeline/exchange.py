"""Collect what the file system proves is each student's own work: nbgrader's collect, for
`nbgrader collect` and the formgrader's Collect button (`c.ExchangeFactory.collect` in the
course's nbgrader_config.py).

nbgrader's own collect takes a folder in `inbound/` named for a student whoever owns it (it only
logs "cheating attempt?"), and copies a link in a hand-in as the file it points to, with the
instructor's rights. Here:

- a submission folder counts only if the Unix account of the student it names owns it (or the
  collecting user does: a course where one account does everything); any other is refused, and
  that student's newest folder that counts is collected instead;
- nothing is opened through a link: every entry is opened relative to its folder's descriptor
  with O_NOFOLLOW, and what is copied is what `fstat` of the open descriptor says;
- only folders and regular files owned by the folder's owner are copied (a hard link to someone
  else's file has that someone's uid), within nbgrader's ignore, include and size rules;
- each refused folder is logged as an error and each skipped entry as a warning, so both show in
  `nbgrader collect`'s output and in the formgrader's collect dialog.
"""

import fnmatch
import glob
import os
import pwd
import shutil
import stat
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.exchange.default.collect import ExchangeCollect, groupby
from nbgrader.exchange.default.list import ExchangeList
from nbgrader.utils import check_mode

NO_LINKS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # never through a link, never waiting on a pipe
CHUNK = 1 << 20
SECRET = "submission_secret.txt"  # nbgrader's key to a hand-in's feedback


class QuietList(ExchangeList):
    """nbgrader's list. The Assignments tab of a Jupyter server asks for it every few seconds, and
    nbgrader logs each answer at info level ("Released assignments:", then a line per lab), which
    buries everything else in the server's log; there it is logged at debug level. `nbgrader list`
    still prints it: there the listing is the output."""

    def list_files(self):
        from nbgrader.apps import ListApp
        from traitlets.config import Application

        if Application.initialized() and isinstance(Application.instance(), ListApp):
            return super().list_files()
        assignments = self.parse_assignments()
        self.log.debug("listed %d assignment(s) for the Assignments tab", len(assignments))
        return assignments


class Refused(Exception):
    """A submission folder that does not count, and why."""


class SafeCollect(ExchangeCollect):
    """nbgrader's collect, taking only folders and files the file system proves are the student's."""

    def init_src(self):
        """nbgrader's choice of one folder per student (the newest, or with `before_duedate` the
        newest before the due date), made among the folders that count."""
        if self.coursedir.course_id == "":
            self.fail("No course id specified. Re-run with --course flag.")
        self.course_path = os.path.join(self.root, self.coursedir.course_id)
        self.inbound_path = os.path.join(self.course_path, "inbound")
        if not os.path.isdir(self.inbound_path):
            self.fail("Course not found: {}".format(self.inbound_path))
        if not check_mode(self.inbound_path, read=True, execute=True):
            self.fail("You don't have read permissions for the directory: {}".format(self.inbound_path))
        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            try:
                self.duedate = gb.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                self.duedate = None
        pattern = "{}+{}+*".format(self.coursedir.student_id or "*", self.coursedir.assignment_id)
        names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(self.inbound_path, pattern)))
        records = [record for record in map(self.counted_record, names) if record]
        self.src_records = [self.chosen(own) for own in groupby(records, lambda r: r["username"]).values()]

    def counted_record(self, name: str) -> dict | None:
        """nbgrader's record of the folder `name`, or None (logged) if the folder does not count."""
        try:
            os.close(self.open_submission(name))
            return self._path_to_record(name)
        except Refused as refusal:
            self.log.error("Refused %s: %s. Not collected.", os.path.join(self.inbound_path, name), refusal)
            return None

    def chosen(self, records: list[dict]) -> dict:
        from .on_submit import of_record  # a lab graded on submission: the hand-in its service grades
        if chosen := of_record(self, records):
            return chosen
        newest_first = self._sort_by_timestamp(records)
        if self.duedate is not None and self.before_duedate:
            in_time = [r for r in newest_first if r["timestamp"] <= self.duedate]
            return (in_time or newest_first)[0]
        return newest_first[0]

    def open_submission(self, name: str) -> int:
        """A descriptor of the folder `name` in inbound, opened without following a link.
        Refused unless the student the name gives, or the collecting user, owns it."""
        try:
            student = self._path_to_record(name)["username"]
        except (ValueError, OverflowError):
            raise Refused("its name does not end in a time, as nbgrader's submit names a folder") from None
        inbound = os.open(self.inbound_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            kind = os.stat(name, dir_fd=inbound, follow_symlinks=False).st_mode
            if stat.S_ISLNK(kind):
                raise Refused("it is a link")
            if not stat.S_ISDIR(kind):
                raise Refused("it is not a folder")
            folder = os.open(name, os.O_RDONLY | os.O_DIRECTORY | NO_LINKS, dir_fd=inbound)
        except OSError as error:  # gone, swapped for a link, or unreadable
            raise Refused(f"it cannot be opened as a folder ({error.strerror})") from None
        finally:
            os.close(inbound)
        owner = os.fstat(folder).st_uid
        if owner not in (os.geteuid(), uid_of(student)):
            os.close(folder)
            raise Refused(f"it is owned by {name_of(owner)}, not by {student}: only a student's own "
                          "account can hand in for them")
        return folder

    def do_copy(self, src, dest, log=None):
        """Copy the submission folder `src` (in inbound) to `dest`: again checked as it is
        opened, and copied through descriptors, so a folder swapped in meanwhile is refused."""
        try:
            folder = self.open_submission(os.path.basename(src))
        except Refused as refusal:
            self.log.error("Refused %s: %s. Not collected.", src, refusal)
            return
        try:
            self.bytes_left = 1000 * self.coursedir.max_dir_size  # of this submission, by nbgrader's rule
            self.copy_folder(folder, Path(dest), os.fstat(folder).st_uid, src)
        except Refused as refusal:
            shutil.rmtree(dest, ignore_errors=True)
            self.log.error("Refused %s: %s. Not collected.", src, refusal)
        finally:
            os.close(folder)

    def copy_folder(self, folder: int, dest: Path, owner: int, shown: str) -> None:
        """Copy the folder open as `folder` into the new folder `dest`: its folders and regular
        files that `owner` owns, within nbgrader's rules; any other entry is skipped, with a warning."""
        dest.mkdir()
        for name in sorted(os.listdir(folder)):
            path = os.path.join(shown, name)
            if any(fnmatch.fnmatch(name, pattern) for pattern in self.coursedir.ignore):
                self.log.debug("Ignoring excluded file '%s' (see config option CourseDirectory.ignore)", path)
                continue
            problem = self.copy_entry(folder, name, dest / name, owner, path)
            if problem:
                self.log.warning("Skipped %s: %s", path, problem)

    def copy_entry(self, folder: int, name: str, dest: Path, owner: int, shown: str) -> str | None:
        """Copy the entry `name` of the open `folder` to `dest`; why not, if it is skipped."""
        try:
            problem = self.skip_reason(os.stat(name, dir_fd=folder, follow_symlinks=False), owner)
            if problem:
                return problem  # told without opening it: a pipe or a device is never opened
            entry = os.open(name, os.O_RDONLY | NO_LINKS, dir_fd=folder)
        except OSError as error:  # gone, or replaced by a link, since the folder was listed
            return error.strerror
        try:
            info = os.fstat(entry)  # what is read is what is checked
            problem = self.skip_reason(info, owner) or self.rule_breach(name, info)
            if problem:
                return problem
            if stat.S_ISDIR(info.st_mode):
                self.copy_folder(entry, dest, owner, shown)
            else:
                self.copy_file(entry, dest, info.st_size)
            return None
        finally:
            os.close(entry)

    @staticmethod
    def skip_reason(info: os.stat_result, owner: int) -> str | None:
        """Why an entry is not copied: not a folder or a regular file, or someone else's."""
        if stat.S_ISLNK(info.st_mode):
            return "a link (links are never followed)"
        if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
            return "not a regular file"
        if info.st_uid != owner:
            return f"owned by {name_of(info.st_uid)}, not by the submission's owner {name_of(owner)}"
        return None

    def rule_breach(self, name: str, info: os.stat_result) -> str | None:
        """nbgrader's include and max_file_size rules for a file (None for a folder); a file
        past max_dir_size refuses the whole submission, as nbgrader's copy does."""
        if stat.S_ISDIR(info.st_mode):
            return None
        if self.coursedir.include and not any(fnmatch.fnmatch(name, pattern) for pattern in self.coursedir.include):
            return "not included (see config option CourseDirectory.include)"
        if self.coursedir.max_file_size and info.st_size > 1000 * self.coursedir.max_file_size:
            return "too large (see config option CourseDirectory.max_file_size)"
        self.bytes_left -= info.st_size
        if self.bytes_left < 0:
            raise Refused(f"it holds more than {1000 * self.coursedir.max_dir_size} bytes "
                          "(see config option CourseDirectory.max_dir_size)")
        return None

    @staticmethod
    def copy_file(source: int, dest: Path, size: int) -> None:
        """The first `size` bytes of the open file `source` into the new file `dest`."""
        with open(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666), "wb") as out:
            while size > 0:
                chunk = os.read(source, min(CHUNK, size))
                if not chunk:
                    break
                out.write(chunk)
                size -= len(chunk)


def uid_of(user: str) -> int | None:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def name_of(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
