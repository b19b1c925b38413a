"""JupyterHub for the course: local Unix accounts (PAM), each user's own single-user JupyterLab
from the course's venv, nbgrader's exchange shared by all.

`python -m autograder hub` (`make hub`) sets the AUTOGRAD_LABS_* variables below and starts
the hub with this file; docs/deployment.md says what to change for a real course.
"""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(os.environ["AUTOGRAD_LABS_VENV_BIN"])
STATE = Path(os.environ["AUTOGRAD_LABS_HUB_STATE"])  # the hub's database, secrets, proxy
COURSE = os.environ["AUTOGRAD_LABS_COURSE"]  # the instructor's course root (nbgrader_config.py)
EXCHANGE = os.environ["AUTOGRAD_LABS_EXCHANGE"]
INSTRUCTORS = set(os.environ["AUTOGRAD_LABS_INSTRUCTORS"].split(","))
STUDENTS = set(os.environ["AUTOGRAD_LABS_STUDENTS"].split(","))

c = get_config()  # noqa: F821 (provided by traitlets)

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(os.environ.get("AUTOGRAD_LABS_HUB_PORT", "8000"))
c.JupyterHub.hub_port = int(os.environ.get("AUTOGRAD_LABS_HUB_API_PORT", "8081"))
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.command = [str(STATE / "node_modules/.bin/configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{c.JupyterHub.port + 2}"

# Who may log in: the course's accounts, by their Unix password. A container has no login
# session to open, so PAM only checks the password.
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.open_sessions = False
c.Authenticator.allowed_users = INSTRUCTORS | STUDENTS
c.Authenticator.admin_users = INSTRUCTORS

# Each user's server runs as that user, from the course's venv (JupyterLab, nbgrader, the kit).
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(VENV_BIN / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.http_timeout = 120
c.Spawner.environment = {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "AUTOGRAD_LABS_EXCHANGE": EXCHANGE}


def per_role(spawner):
    """Instructors open the course root (the formgrader grades there) with the instructor
    configuration (the formgrader's pages with a content security policy, its Autograde button
    on the course's sandboxed grader); students open their HOME with the student configuration:
    the Assignments tab and Validate, no instructor tools, a private Submit."""
    if spawner.user.name in INSTRUCTORS:
        spawner.notebook_dir = COURSE
        spawner.environment["JUPYTER_CONFIG_PATH"] = str(REPO / "jupyter" / "instructor")
    else:
        spawner.environment["JUPYTER_CONFIG_PATH"] = str(REPO / "jupyter" / "student")


c.Spawner.pre_spawn_hook = per_role


# Grading on submission: a service the hub starts (and starts again if it stops) as the first
# instructor, with its own API token. It grades each hand-in of the labs named in the course's
# grade_on_submit.toml and releases its feedback at once (autograder/pipeline/on_submit.py).
c.JupyterHub.services = [{
    "name": "grade-on-submit",
    "user": sorted(INSTRUCTORS)[0],
    "command": [str(VENV_BIN / "python"), "-m", "autograder", "--root", COURSE, "on-submit", "--exchange", EXCHANGE],
    "cwd": COURSE,
    "environment": {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "AUTOGRAD_LABS_EXCHANGE": EXCHANGE,
                    "PYTHONUNBUFFERED": "1"},
}]
