"""The warm grading service: one process that has imported nbgrader, ipykernel, torch,
matplotlib and the kit once, and grades each submission in a fresh fork of itself, inside that
submission's own sandbox.

Run as `python zygote.py SOCKET` (by `service.py`, never by hand). It prints `ready` once warm,
then takes one request per connection on the Unix socket SOCKET, as two lines: the JSON
    {"holder": PID, "uid": UID, "folder": PATH, "env": {...}, "argv": [...], "log": PATH}
and then the unit's secret, which the service reads only after it has forked the unit (so no
unit ever holds it) and returns with the reply. HOLDER is a process that bubblewrap started in
the unit's sandbox (`sandbox.hold`): the fork enters that sandbox's namespaces (its mounts,
process tree, network, IPC, host name, cgroups), so it sees exactly what a command bubblewrap
started there would see. Joining needs root (`submission.run_autograde` uses the service only
then): in the user-namespace sandbox bubblewrap makes for anyone else, the kernel refuses a
joiner its cgroup namespace. A second fork becomes a member of the sandbox's process tree,
takes the same limits and user as `sandbox.wrap` gives (no capabilities, no new privileges),
and runs `autograde_unit.main(argv)`, whose kernels are forks of it in turn. The reply is the exit
status and the secret, {"status": N, "secret": S}, when that process ends. Before it joins the
sandbox, a unit closes every descriptor but its log and /dev/null: it holds no connection to
the grader and none of another unit's, so nothing it writes can pass for a reply.

This file is started as a script, not imported from `autograder`: nothing of the grader is in
the forks' memory. It never runs student code itself, and never holds two submissions at once
in one interpreter.
"""

import ctypes
import gc
import importlib
import json
import os
import pkgutil
import resource
import selectors
import shutil
import socket
import sys
import tempfile
import threading
import warnings

import speedups

SANDBOX_PROGRAM_DIR = "/opt/autograd-labs"  # where `sandbox.wrap` mounts autograde_unit.py
NAMESPACES = ["cgroup", "ipc", "uts", "net", "pid", "mnt"]  # in nsenter's order
RLIMIT = {"nproc": resource.RLIMIT_NPROC, "data": resource.RLIMIT_DATA, "fsize": resource.RLIMIT_FSIZE,
          "nofile": resource.RLIMIT_NOFILE, "core": resource.RLIMIT_CORE}
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_CAP_AMBIENT = 1, 38, 24, 47
libc = ctypes.CDLL(None, use_errno=True)


def warm_up() -> None:
    """Import and exercise once what every unit needs, leaving no thread running and the random
    state as a fresh interpreter has it. What a kernel needs comes first: the modules and warning
    filters at that point are what each kernel fork keeps (`autograde_unit.as_new_kernel`)."""
    warm_kernel()
    kernel_baseline = (frozenset(sys.modules), list(warnings.filters))
    speedups.kernel_baseline = kernel_baseline
    import autograde_unit  # nbgrader, nbclient, jupyter_client
    speedups.apply("unit")
    from nbgrader import api
    api.get_alembic_version()  # asked once, remembered by every fork
    warm_gradebook(autograde_unit)
    from nbgrader.nbgraderformat import MetadataValidator
    speedups.schema_validator(json.dumps(MetadataValidator().schema, sort_keys=True))
    warm_notebook_validators()
    from jupyter_client.provisioning import KernelProvisionerFactory
    KernelProvisionerFactory.instance()  # reads every installed package's entry points (~10 ms)
    from sqlalchemy.orm import configure_mappers
    configure_mappers()  # nbgrader's gradebook tables, set up once
    if threading.active_count() != 1:
        raise RuntimeError("warming up started a thread; a fork would not have it")
    gc.collect()
    gc.freeze()  # the forks' garbage collector leaves these objects alone, so their pages stay shared


def warm_kernel() -> None:
    """What a kernel imports as it starts and as a lab's first cell runs, and its first steps."""
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")  # as ipykernel sets it
    import ipykernel.debugger  # noqa: F401
    import ipykernel.ipkernel  # noqa: F401
    import ipykernel.kernelapp  # noqa: F401
    import matplotlib.pyplot  # noqa: F401
    import pdb  # noqa: F401
    # What a kernel imports as it starts, runs and shows a plot; not matplotlib_inline, whose
    # import hooks it into the running IPython shell, which must be the kernel's own.
    for module in ("IPython.core.completerlib", "IPython.core.debugger", "IPython.core.logger",
                   "IPython.core.oinspect", "IPython.core.pylabtools", "IPython.extensions.storemagic",
                   "PIL.PngImagePlugin", "faulthandler", "matplotlib.backends.backend_agg", "psutil", "sqlite3",
                   "tornado.platform.asyncio"):
        importlib.import_module(module)
    import torch
    from torch import nn
    torch.set_num_threads(1)  # no OpenMP pool in the parent: a fork must not inherit one
    with torch.random.fork_rng(devices=[]):
        model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
        for optimizer in (torch.optim.SGD, torch.optim.Adam):  # their first step imports much of torch
            opt = optimizer(model.parameters(), lr=1e-3)
            nn.functional.mse_loss(model(torch.ones(3, 2)).squeeze(1), torch.ones(3)).backward()
            opt.step()
    import course  # the kit, as the sandbox mounts it (PYTHONPATH)
    for lab in pkgutil.iter_modules(course.__path__):
        importlib.import_module(f"course.{lab.name}")
    speedups.apply("warm")  # before the kernels' modules are counted: their patches stay
    warm_tracebacks()


def warm_gradebook(autograde_unit) -> None:
    """Release a one-cell assignment and grade a submission of it with nbgrader's own converters
    (every step of the unit program but Execute), in a folder removed afterwards: the SQL
    statements nbgrader's gradebook runs, and the ORM's loaders behind them, are compiled here
    once instead of once per unit (`speedups.Gradebooks`)."""
    import logging

    import nbformat
    from nbgrader.converters import Autograde, GenerateAssignment
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import Execute
    from traitlets.config import Config

    code = nbformat.v4.new_code_cell("### BEGIN SOLUTION\nanswer = 1\n### END SOLUTION", metadata={"nbgrader": {
        "grade": False, "solution": True, "locked": False, "task": False, "grade_id": "answer", "schema_version": 3}})
    test = nbformat.v4.new_code_cell("assert answer == 1", metadata={"nbgrader": {
        "grade": True, "solution": False, "locked": True, "task": False, "grade_id": "test", "points": 1,
        "schema_version": 3}})
    written = nbformat.v4.new_markdown_cell("YOUR ANSWER HERE", metadata={"nbgrader": {
        "grade": True, "solution": True, "locked": False, "task": False, "grade_id": "written", "points": 1,
        "schema_version": 3}})
    nb = nbformat.v4.new_notebook(cells=[code, test, written], metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    quiet = logging.getLogger("traitlets"), logging.getLogger("NbGraderApp")
    levels, filters = [logger.level for logger in quiet], list(warnings.filters)
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "source", "warm"))
        nbformat.write(nb, os.path.join(root, "source", "warm", "warm.ipynb"))
        config = Config()
        config.CourseDirectory.root = root
        config.CourseDirectory.assignment_id = "warm"
        try:
            for logger in quiet:
                logger.setLevel(logging.CRITICAL)
            warnings.simplefilter("ignore")  # nbgrader's own SAWarnings, each printed once by every unit
            GenerateAssignment(coursedir=CourseDirectory(config=config), config=config).start()
            os.makedirs(os.path.join(root, "submitted", "warm"))
            shutil.copytree(os.path.join(root, "release", "warm"), os.path.join(root, "submitted", "warm", "warm"))
            config.CourseDirectory.student_id = "warm"
            config.Autograde.autograde_preprocessors = [step for step in autograde_unit.unit_steps()
                                                        if not issubclass(step, Execute)]
            Autograde(coursedir=CourseDirectory(config=config), config=config).start()
        finally:
            warnings.filters[:] = filters
            warnings._filters_mutated()
            for logger, level in zip(quiet, levels, strict=True):
                logger.setLevel(level)
            if speedups.gradebooks is not None:
                speedups.gradebooks.forget()


def warm_notebook_validators() -> None:
    """Compile once the schema validators that nbformat and nbconvert ask for while grading (a
    notebook of any v4 minor version, strict and relaxed), instead of once per submission."""
    import nbformat
    from nbformat import validator
    for minor in range(nbformat.v4.nbformat_minor + 1):
        for relaxed in (False, True):
            validator.get_validator(4, minor, relax_add_props=relaxed)


def warm_tracebacks() -> None:
    """Format a traceback through torch as a kernel does (IPython's context mode, every
    colour scheme): fills the caches a kernel's first error would otherwise spend ~0.1 s on
    (each module's source file, the syntax highlighter's compiled rules)."""
    import torch
    from IPython.core import ultratb
    from IPython.utils.PyColorize import theme_table
    try:
        torch.ones(2).view(3)
    except RuntimeError as error:
        for theme in theme_table:
            ultratb.AutoFormattedTB(mode="Context", theme_name=theme, tb_offset=0).structured_traceback(
                type(error), error, error.__traceback__)
    try:
        compile("1 +", "<warm-up>", "exec")
    except SyntaxError as error:
        ultratb.SyntaxTB(theme_name="neutral").structured_traceback(type(error), error, [])


def check(result: int, what: str) -> None:
    if result != 0:
        raise OSError(ctypes.get_errno(), f"{what} failed")


def enter_namespaces(holder: int) -> None:
    """Join every namespace of `holder` that differs from ours (this process must be single-threaded)."""
    files = {name: os.open(f"/proc/{holder}/ns/{name}", os.O_RDONLY) for name in NAMESPACES}
    try:
        for name, fd in files.items():
            if os.fstat(fd).st_ino != os.stat(f"/proc/self/ns/{name}").st_ino:
                check(libc.setns(fd, 0), f"joining the sandbox's {name} namespace")
    finally:
        for fd in files.values():
            os.close(fd)


def drop_privileges(uid: int, limits: dict) -> None:
    """The limits and rights `sandbox.wrap` gives its command: `limits` per process, user `uid`,
    no capability in any set, no way to gain one."""
    for name, value in limits.items():
        resource.setrlimit(RLIMIT[name], (value, value))
    for cap in range(64):  # the bounding set, as bubblewrap's --cap-drop ALL
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    libc.prctl(PR_CAP_AMBIENT, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    check(libc.capset(header, (ctypes.c_uint32 * 6)()), "clearing capabilities")
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "setting no_new_privs")


def close_all_but_standard_descriptors() -> None:
    """Close every descriptor above 2, whoever opened it: the service's listener, its pidfds,
    the connections of the units running beside this one, files imported modules left open."""
    for name in os.listdir("/proc/self/fd"):  # the listing's own descriptor is gone by the loop's end
        if int(name) > 2:
            try:
                os.close(int(name))
            except OSError:
                pass


def read_line(connection: socket.socket) -> bytes:
    """One line from `connection`, without reading past its end (what follows stays in the socket)."""
    line = b""
    while not line.endswith(b"\n"):
        waiting = connection.recv(65536, socket.MSG_PEEK)
        if not waiting:
            raise EOFError("the connection closed before the end of a line")
        end = waiting.find(b"\n") + 1 or len(waiting)
        line += connection.recv(end)
    return line


def run_unit(request: dict) -> int:
    """In a fork of the service: enter the unit's sandbox, fork into its process tree, grade."""
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    close_all_but_standard_descriptors()
    enter_namespaces(request["holder"])
    os.chdir(request["folder"])
    pid = os.fork()  # a new PID namespace takes children only
    if pid:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    os.setsid()
    drop_privileges(request["uid"], request["limits"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # worked out again from TMPDIR, as a new interpreter would
    import autograde_unit
    sys.argv = [os.path.join(SANDBOX_PROGRAM_DIR, "autograde_unit.py"), *request["argv"]]
    sys.path[0] = SANDBOX_PROGRAM_DIR
    try:
        autograde_unit.main(request["argv"])
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


def serve(path: str) -> None:
    """Answer requests on the Unix socket `path` until stdin closes (the grader is gone)."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(sys.stdin, selectors.EVENT_READ, "stdin")
    print("ready", flush=True)
    while True:
        for key, _ in selector.select():
            if key.data == "stdin":
                return
            if key.data == "accept":
                connection, _ = listener.accept()
                selector.register(connection, selectors.EVENT_READ, "request")
            elif key.data == "request":
                connection = key.fileobj
                selector.unregister(connection)
                try:
                    request = json.loads(read_line(connection))
                except (OSError, EOFError, ValueError):
                    connection.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    status = 1
                    try:
                        for open_key in list(selector.get_map().values()):
                            if isinstance(open_key.data, tuple):
                                open_key.data[1].close()  # another unit's connection (its pidfd: below)
                        selector.close()
                        listener.close()
                        connection.close()
                        status = run_unit(request)
                    except BaseException as exc:  # reported in the unit's log; the service goes on
                        print(f"ERROR: the warm service could not run the unit: {exc!r}", file=sys.stderr)
                    finally:
                        sys.stdout.flush()
                        sys.stderr.flush()
                        os._exit(status)
                connection.settimeout(10)  # the grader sends the secret with the request
                try:
                    secret = read_line(connection).strip().decode()
                except (OSError, EOFError, UnicodeDecodeError):
                    secret = ""  # the reply then carries none, and the grader takes none
                selector.register(os.pidfd_open(pid), selectors.EVENT_READ, (pid, connection, secret))
            else:
                pid, connection, secret = key.data
                selector.unregister(key.fileobj)
                os.close(key.fileobj)
                status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
                try:
                    connection.sendall(json.dumps({"status": status, "secret": secret}).encode() + b"\n")
                except OSError:
                    pass  # the grader stopped waiting
                connection.close()


if __name__ == "__main__":
    warm_up()
    serve(sys.argv[1])
