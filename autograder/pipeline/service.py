"""The grader's side of the warm grading service (`zygote.py`): start it, hand it units, stop it.

One service per grading process: set starting early (`start()`) or on first use (`shared()`),
stopped at exit. Each unit still gets its own sandbox (`sandbox.hold`), its own user id and its
own wall-clock and disk watch; the service only saves the seconds a new interpreter would spend
importing.
"""

import atexit
import hmac
import json
import os
import secrets
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from . import runs, sandbox
from .nbgrader_cmd import environment

ZYGOTE = Path(__file__).with_name("zygote.py")
START_SECONDS = 120  # importing torch and nbgrader on a busy machine


class WarmService:
    """A running zygote.py, ready to grade units in their sandboxes."""

    def __init__(self):
        self.folder = tempfile.mkdtemp(prefix=runs.SERVICE_PREFIX)  # 0700: only this user connects
        Path(self.folder, runs.SERVICE_OWNER).write_text(str(os.getpid()))  # a later run clears it once we are gone
        self.socket = os.path.join(self.folder, "socket")
        env = {"PATH": environment()["PATH"], "OMP_NUM_THREADS": "1",
               "PYTHONPATH": str(sandbox.kit_folder().parent),
               "PYDEVD_DISABLE_FILE_VALIDATION": "1"}  # debugpy (imported by ipykernel) warns on stderr
        self.process = subprocess.Popen([sys.executable, str(ZYGOTE), self.socket], cwd="/", env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.started = False

    def wait_ready(self) -> None:
        """Wait until the service has warmed up (at most START_SECONDS)."""
        if self.started:
            return
        timer = threading.Timer(START_SECONDS, self.process.kill)
        timer.start()
        try:
            if self.process.stdout.readline() != b"ready\n":
                raise RuntimeError(f"the warm grading service did not start (exit status {self.process.wait()})")
            self.started = True
        finally:
            timer.cancel()

    def run(self, folder: Path, uid: int, env: dict[str, str], argv: list[str], seconds: float) -> sandbox.Finished:
        """Run autograde_unit.py's `main(argv)` in a new sandbox for `folder`, watched as
        `sandbox.watched_run` watches a command."""
        holder, first = sandbox.hold(folder, env, uid)
        secret = secrets.token_hex(32)  # the service's reply carries it; no unit ever sees it
        with tempfile.NamedTemporaryFile() as log, socket.socket(socket.AF_UNIX) as connection:
            try:
                os.chmod(log.name, 0o600)
                connection.connect(self.socket)
                request = {"holder": first, "uid": sandbox.inside_uid(uid), "folder": str(folder), "log": log.name,
                           "env": sandbox.unit_environment(folder, env), "argv": argv, "limits": sandbox.LIMITS}
                connection.sendall(json.dumps(request).encode() + b"\n" + secret.encode() + b"\n")
                reply = Reply(secret)

                def wait(timeout):
                    if not select.select([connection], [], [], timeout)[0]:
                        return None
                    return reply.add(connection.recv(4096))

                status, stopped = sandbox.watch(wait, lambda: sandbox.end(holder), folder, seconds)
            finally:
                sandbox.end(holder)
            return sandbox.Finished(status, sandbox.tail(log), stopped)

    def close(self) -> None:
        """Stop the service (again: nothing to do)."""
        if not self.process.stdin.closed:
            self.process.stdin.close()  # the service's signal to stop
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


class Reply:
    """The service's answer about one unit, read as it arrives: only a line that carries the unit's
    secret counts; anything else on the connection is ignored."""

    def __init__(self, secret: str):
        self.secret, self.pending = secret, b""

    def add(self, chunk: bytes) -> int | None:
        """The unit's exit status once its reply has arrived; -1 when the connection closed
        without one (the service died); None while there is none yet."""
        if not chunk:
            return -1
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
                if hmac.compare_digest(str(message["secret"]), self.secret):
                    return int(message["status"])
            except (ValueError, TypeError, KeyError):
                continue
        return None


_shared: WarmService | None = None
_lock = threading.Lock()


def start() -> WarmService:
    """This process's warm service, set starting if it is not running; it takes seconds
    (torch, nbgrader), which the grader's own preparations can overlap."""
    global _shared
    with _lock:
        if _shared is None or _shared.process.poll() is not None:
            _shared = WarmService()
            atexit.register(_shared.close)
        return _shared


def shared() -> WarmService:
    """This process's warm service, started and warm."""
    service = start()
    with _lock:
        service.wait_ready()
    return service


def stop() -> None:
    """Stop this process's warm service, if one runs; the next grading starts a new one."""
    global _shared
    with _lock:
        if _shared is not None:
            _shared.close()
            _shared = None
