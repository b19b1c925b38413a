"""nbgrader's settings on a student's side: what the Validate button runs the notebook with,
where the Assignments tab finds the course on a hub, and how Submit hands in.

The per-cell limit is the grader's (nbgrader_config.py in the course root; a test keeps the two
equal), so a cell that Validate lets finish is not cut off when the notebook is graded.

Handing in privately (`PrivateSubmit`): nbgrader's own submit leaves the files of a hand-in 0644
and its folder 0777, so anyone who learns the folder's name reads, or replaces, the work in it.
Here the hand-in is built in a private folder inside inbound, given its final modes (files 0640,
folders 0770, in inbound's group, which is the instructor's: inbound is setgid), and only then
renamed to its nbgrader name, so it is never readable by other students, not even half-written.
It lives here, not in the kit, because no notebook needs it and a kernel must not load nbgrader.
"""

import os
import secrets
import shutil
import tempfile

from nbgrader.exchange.default.submit import ExchangeSubmit

FILE_MODE = 0o640  # the student reads and writes; inbound's group (the instructor) reads
FOLDER_MODE = 0o770  # the student and inbound's group; no one else may even enter
STAMPS = ("timestamp.txt", "submission_secret.txt")


class PrivateSubmit(ExchangeSubmit):
    """nbgrader's submit, with the hand-in readable only by the student and the instructor."""

    def copy_files(self):
        self.init_release()
        dest_path = os.path.join(self.inbound_path, self.assignment_filename)
        self.log.info("Source: {}".format(self.src_path))
        self.log.info("Destination: {}".format(dest_path))
        self.check_filename_diff()
        submission_secret = secrets.token_hex(64)
        self.hand_in(dest_path, submission_secret)

        # nbgrader's copy in the student's own cache, which `nbgrader list` reads
        cache_name = self.assignment_filename.rsplit("+", 1)[0] if self.add_random_string else self.assignment_filename
        cache_path = os.path.join(self.cache_path, cache_name)
        os.makedirs(self.cache_path, exist_ok=True)
        self.do_copy(self.src_path, cache_path)
        write_stamps(cache_path, self.timestamp, submission_secret)

        self.log.info("Submitted as: {} {} {}".format(self.coursedir.course_id, self.coursedir.assignment_id,
                                                      self.timestamp))

    def hand_in(self, dest_path: str, submission_secret: str) -> None:
        """Copy the assignment into a folder only this user can enter, inside inbound; set its
        final modes; then rename it to `dest_path` in one step."""
        staging = tempfile.mkdtemp(prefix=".submitting-", dir=self.inbound_path)  # mode 0700
        try:
            built = os.path.join(staging, "submission")
            self.do_copy(self.src_path, built)  # nbgrader's ignore, include and size rules
            # nbgrader's copy ends by giving `built` the mode of the student's folder, setgid bit
            # cleared, so a file made in it now would not take inbound's group: the stamps are
            # written in `staging` and moved in.
            write_stamps(staging, self.timestamp, submission_secret)
            for name in STAMPS:
                os.rename(os.path.join(staging, name), os.path.join(built, name))
            for folder, _, files in os.walk(built):
                os.chmod(folder, FOLDER_MODE)
                for name in files:
                    os.chmod(os.path.join(folder, name), FILE_MODE)
            os.rename(built, dest_path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def write_stamps(folder: str, timestamp: str, submission_secret: str) -> None:
    """The two files nbgrader puts in every submission: its time and the secret feedback is released by."""
    for name, text in zip(STAMPS, (timestamp, submission_secret)):
        with open(os.path.join(folder, name), "w") as out:
            out.write(text)


c = get_config()  # noqa: F821  (defined by traitlets when it loads this file)

c.Execute.timeout = 10
c.Execute.interrupt_on_timeout = True

# The course's exchange on a JupyterHub (release → fetch → submit): the hub sets the folder.
c.CourseDirectory.course_id = "autograd-labs"
if os.environ.get("AUTOGRAD_LABS_EXCHANGE"):
    c.Exchange.root = os.environ["AUTOGRAD_LABS_EXCHANGE"]

# Submit (the Assignments tab's button and `nbgrader submit`): the hand-in in the exchange is
# readable only by the student and the instructor.
c.ExchangeFactory.submit = PrivateSubmit
