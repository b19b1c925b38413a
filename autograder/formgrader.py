"""The instructor's formgrader, safe with what students wrote: a Jupyter server extension.

Enabled by `jupyter/instructor/jupyter_server_config.json` (`make formgrader`, `make hub`). It
loads before nbgrader's own extension (extensions load in name order), so its two routes answer
first:

- A submission's page (`/formgrader/submissions/<id>/`) carries a content security policy: of
  scripts, only the formgrader's files and the inline ones of nbgrader's template (by hash) run,
  and the page loads nothing from anywhere else but MathJax. What a student's notebook holds is
  cleaned before it is saved (`pipeline.outputs`); should anything slip through, it cannot run.
- The *Autograde* button grades with this course's grader (`python -m autograder grade`: in the
  sandbox, verified out of the kernel), never with stock `nbgrader autograde` in the
  instructor's own account.
"""

import asyncio
import base64
import hashlib
import json
import re
import sys

from jupyter_server.utils import url_path_join
from nbgrader.server_extensions.formgrader.apihandlers import AutogradeHandler
from nbgrader.server_extensions.formgrader.base import check_notebook_dir, check_xsrf
from nbgrader.server_extensions.formgrader.handlers import SubmissionHandler
from tornado import web

NOTEBOOK_START = 'id="notebook-container"'  # where nbgrader's template puts the student's notebook
MATHJAX = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/"  # nbconvert's mathjax() macro loads it there


def digest(code: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode()).digest()).decode() + "'"


def content_security_policy(page: str, static: str) -> str:
    """The policy for a submission page: the inline scripts and handlers that come before the
    notebook (nbgrader's template) by hash, script files only from `static` and MathJax."""
    template = page.split(NOTEBOOK_START, 1)[0]
    scripts = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", template, flags=re.S)
    handlers = re.findall(r"\son[a-z]+=\"([^\"]*)\"", template)
    allowed = " ".join(sorted({digest(code) for code in scripts + handlers}))
    return (f"default-src 'none'; script-src {static} {MATHJAX} 'unsafe-hashes' {allowed}; "
            "style-src 'self' 'unsafe-inline' https://cdnjs.cloudflare.com; img-src 'self' data:; "
            "font-src 'self' data: https://cdnjs.cloudflare.com; connect-src 'self'; frame-src 'none'; "
            "frame-ancestors 'self'; object-src 'none'; base-uri 'none'; form-action 'self'")


class GuardedSubmissionHandler(SubmissionHandler):
    """nbgrader's page of a graded notebook, sent with `content_security_policy`."""

    def write(self, chunk):
        if isinstance(chunk, str) and NOTEBOOK_START in chunk:
            origin = f"{self.request.protocol}://{self.request.host}"
            static = origin + url_path_join("/", self.base_url, "formgrader", "static") + "/"
            self.set_header("Content-Security-Policy", content_security_policy(chunk, static))
        return super().write(chunk)


class SandboxedAutogradeHandler(AutogradeHandler):
    """The formgrader's Autograde button: this course's grader on one student's submission."""

    @web.authenticated
    @check_xsrf
    @check_notebook_dir
    async def post(self, assignment_id, student_id):
        command = [sys.executable, "-m", "autograder", "--root", self.coursedir.root, "grade",
                   "--lab", assignment_id, "--student", student_id, "--jobs", "1"]
        process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.STDOUT)
        log = (await process.communicate())[0].decode(errors="replace")
        graded = process.returncode == 0 and "graded 1 of 1 submission(s)" in log
        result = {"success": graded, "log": log}
        if not graded:
            result["error"] = "The grader could not grade this submission; its log says why."
        self.write(json.dumps(result))


def _jupyter_server_extension_points():
    return [{"module": "autograder.formgrader"}]


def _load_jupyter_server_extension(server_app) -> None:
    base = server_app.web_app.settings["base_url"]
    server_app.web_app.add_handlers(".*$", [
        (url_path_join(base, r"/formgrader/submissions/([^/]+)/?"), GuardedSubmissionHandler),
        (url_path_join(base, r"/formgrader/api/submission/([^/]+)/([^/]+)/autograde"), SandboxedAutogradeHandler),
    ])
    server_app.log.info("autograder.formgrader: submission pages with a content security policy; "
                        "Autograde runs this course's sandboxed grader")
