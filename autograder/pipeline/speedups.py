"""Every speed-up of grading that replaces a private part of another library, in one file.

Each is a `Patch`: what it replaces, the versions of the libraries it was written and tested
against, and how to install it. `apply(group)` installs a group's patches where every library
is at a tested version and leaves the others stock: an upgrade makes grading slower, never
different. `status()` says which would be installed here, and why not where one would not
(`python -m autograder grade` prints it).

Groups:
- "grader": the grading run's own process (`grading.py`) builds each lab's gradebook template
  without starting an interpreter for nbgrader's schema version.
- "unit": the grading program (`autograde_unit.py`) reaches nbgrader's gradebook and its schema
  checks once instead of on every open.
- "warm": the warm service (`zygote.py`, as root) forks kernels from itself instead of starting
  interpreters, and the errors those kernels format cost less. Installed in the service before it
  forks; the kernels inherit them.

Grading with `FAST=0` (`python -m autograder grade --stock`) installs none of them and starts no
warm service: each unit is stock nbgrader autograde in a new interpreter, to tell a bug of a
speed-up from one of the grader. `tests/pipeline/test_pipeline.py` grades the example class
both ways and compares every score.

Imported as the top-level module `speedups` by zygote.py and autograde_unit.py, run as scripts
from this folder (in the sandbox it is mounted beside autograde_unit.py): it imports nothing of
the grader, and of other libraries only what a kernel has loaded anyway; the rest (nbgrader,
SQLAlchemy, jsonschema) where a patch needs it.

Not a patch, and done on import, in every process that imports this module before jsonschema
(stock units included; `autograder/__init__.py` imports it first for the instructor's
commands): `rfc3987_syntax`, jsonschema's optional checker of the "iri" formats, is kept from
loading. It compiles 38 Lark grammars as jsonschema is imported, about 2 CPU-seconds in every
interpreter that imports nbformat; jsonschema then leaves those formats unchecked, as it does
where the package is not installed, and no schema that grading or feedback validates has one.
"""

import asyncio
import functools
import importlib.metadata
import inspect
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

from jupyter_client.manager import AsyncKernelManager
from traitlets.config import Application


@dataclass(frozen=True)
class Patch:
    """One replacement of another library's private part, and the versions it was tested with."""

    name: str  # what it replaces
    groups: tuple[str, ...]  # "grader", "unit", "warm" (see the module's docstring)
    tested: dict[str, tuple[str, str]]  # distribution ("python": the interpreter) -> [first, first untested)
    install: Callable[[], None]


def version(distribution: str) -> tuple[int, ...]:
    """The installed version of `distribution` ("python": the interpreter's), as numbers."""
    text = platform.python_version() if distribution == "python" else importlib.metadata.version(distribution)
    return as_numbers(text)


def as_numbers(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def unsupported(patch: Patch) -> str | None:
    """Why `patch` is left out here (a library at a version it was not tested with), or None."""
    for distribution, (first, untested) in patch.tested.items():
        try:
            have = version(distribution)
        except importlib.metadata.PackageNotFoundError:
            return f"{distribution} is not installed"
        if not as_numbers(first) <= have < as_numbers(untested):
            return (f"{distribution} {'.'.join(map(str, have))} (tested from {first} to before {untested})")
    return None


installed: set[str] = set()  # names of the patches installed in this process


def apply(group: str) -> None:
    """Install, once per process, every patch of `group` whose libraries are at a tested version."""
    for patch in PATCHES:
        if group in patch.groups and patch.name not in installed and unsupported(patch) is None:
            patch.install()
            installed.add(patch.name)


def status() -> dict[str, str | None]:
    """{patch name: None where it would be installed here, else why not}."""
    return {patch.name: unsupported(patch) for patch in PATCHES}


# ---------------------------------------------------------------- the grading program and the gradebook

class Gradebooks:
    """How nbgrader reaches its gradebook in the grading program: one SQLAlchemy engine for every SQLite
    database (connecting to the one asked for last; a unit has one), instead of a new engine per
    open, and one look at the tables per database.

    nbgrader opens the gradebook eight times per submission. Each open made a new engine, which
    compiled every SQL statement afresh, and looked for every table (about 15 queries). With one
    engine, the statements the warm service compiled while it warmed up (`zygote.warm_gradebook`)
    serve every unit; once a database's tables exist (nothing here drops one), later opens are
    told what the first look found."""

    def __init__(self):
        from nbgrader import api
        self.engine, self.url, self.others = None, None, {}
        self.created, self.tables = False, None  # of the database at self.url
        self.inspect, self.create_all_tables = api.inspect, api.Base.metadata.create_all

    def create_engine(self, db_url, **options):
        import sqlalchemy
        url = sqlalchemy.engine.make_url(db_url)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            if db_url not in self.others:
                self.others[db_url] = sqlalchemy.create_engine(db_url, **options)
            return self.others[db_url]
        if self.engine is None:
            self.engine = sqlalchemy.create_engine(url, creator=self.connect, **options)
        if url != self.url:
            self.engine.dispose()  # no connection to the previous database is handed out again
            self.url, self.created, self.tables = url, False, None
        return self.engine

    def connect(self):
        """A DB-API connection to the current database, made as SQLAlchemy makes it from its URL."""
        args, kwargs = self.engine.dialect.create_connect_args(self.url)
        return self.engine.dialect.connect(*args, **kwargs)

    def inspect_tables(self, engine):
        """`sqlalchemy.inspect`, as nbgrader uses it: to list the tables."""
        if engine is not self.engine or not self.created:
            return self.inspect(engine)
        if self.tables is None:
            self.tables = self.inspect(engine).get_table_names()
        return KnownTables(self.tables)

    def create_all(self, bind, **options):
        """nbgrader's `Base.metadata.create_all`, once per database."""
        if bind is not self.engine or not self.created:
            self.create_all_tables(bind=bind, **options)
            self.created = bind is self.engine

    def forget(self) -> None:
        """Close every connection and forget the current database (before a fork)."""
        if self.engine is not None:
            self.engine.dispose()
        self.url, self.created, self.tables = None, False, None


class KnownTables:
    """What `sqlalchemy.inspect(engine)` gives nbgrader, for a database whose tables are known."""

    def __init__(self, names: list[str]):
        self.names = names

    def get_table_names(self) -> list[str]:
        return list(self.names)


@functools.cache
def schema_validator(schema_text: str):
    """A checked validator for one JSON schema, as `jsonschema.validate` builds on every call."""
    import jsonschema
    schema = json.loads(schema_text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate_metadata(instance, schema) -> None:
    """`jsonschema.validate`, the same errors, without checking the schema itself again."""
    import jsonschema
    error = jsonschema.exceptions.best_match(schema_validator(json.dumps(schema, sort_keys=True)).iter_errors(instance))
    if error is not None:
        raise error



gradebooks: Gradebooks | None = None  # the grading program's, once "unit" is applied


def alembic_version_in_process() -> None:
    """nbgrader runs `alembic heads` for its schema version every time it creates a gradebook: a
    new interpreter that imports nbgrader (2 to 3 s of CPU). The answer is the head of nbgrader's
    own migration scripts, read here with alembic's API from the same folder, once per process."""
    from alembic.script import ScriptDirectory
    from nbgrader import api, dbutil
    api.get_alembic_version = functools.cache(lambda: ScriptDirectory(dbutil.ALEMBIC_DIR).get_current_head())


def reuse_gradebook_work() -> None:
    """In the grading program only (the grader's own gradebook handles are left alone), nbgrader's
    gradebook opens go through `Gradebooks`."""
    from nbgrader import api
    global gradebooks
    gradebooks = Gradebooks()
    api.create_engine = gradebooks.create_engine
    api.inspect = gradebooks.inspect_tables
    api.Base.metadata.create_all = gradebooks.create_all


def reuse_metadata_validator() -> None:
    """nbgrader's check of each cell's metadata uses one validator per schema."""
    from nbgrader.nbgraderformat import common
    common.jsonschema = SimpleNamespace(validate=validate_metadata)


# ---------------------------------------------------------------- the warm service's kernels

def traceback_highlighter():
    """stack_data's `_pygmented_with_ranges` (how IPython colours each frame of a traceback), the
    same output, with one lexer class: stack_data defines a new subclass on every call, and
    pygments compiles a lexer class's rules the first time it is used (~4 ms of every traceback a
    kernel formats, twice per error: once shown, once kept in its history)."""
    import pygments
    from pygments.lexers import get_lexer_by_name

    class RangeLexer(type(get_lexer_by_name("python3"))):
        ranges = ()  # (start, end) character offsets of the node being executed

        def get_tokens(self, text):
            length = 0
            for ttype, value in super().get_tokens(text):
                if any(start <= length < end for start, end in self.ranges):
                    ttype = ttype.ExecutingNode
                length += len(value)
                yield ttype, value

    def pygmented_with_ranges(formatter, code, ranges):
        lexer = RangeLexer(stripnl=False)
        lexer.ranges = ranges
        try:
            highlighted = pygments.highlight(code, lexer, formatter)
        except Exception:  # as stack_data does: plain code rather than no traceback
            highlighted = code
        return highlighted.splitlines()

    return pygmented_with_ranges


def formatted_once(structured_traceback):
    """IPython's `AutoFormattedTB.structured_traceback`, which a kernel calls twice for each error:
    once to show it, then again, with the same exception and settings, to keep it in its history
    (~40 % of what a wrong answer costs). The second of two such calls in a row gets a copy of the
    first one's lines; a call with any other exception, frame, offset or setting formats afresh."""
    last = []  # at most one (key, settings, lines), taken by the next call

    @functools.wraps(structured_traceback)
    def format_once(self, etype, evalue, etb=None, tb_offset=None, context=5):
        key = (self, etype, evalue, etb)
        numbers = (self.tb_offset if tb_offset is None else tb_offset, context)
        settings = {name: value for name, value in vars(self).items() if name != "tb"}
        if last:
            (old_key, old_numbers, old_settings), lines = last.pop()
            same = all(a is b for a, b in zip(old_key, key, strict=True))
            if same and old_numbers == numbers and old_settings == settings:
                self.tb = etb[0] if isinstance(etb, tuple) else etb  # as the formatter records it
                return list(lines)
        lines = structured_traceback(self, etype, evalue, etb, tb_offset, context)
        last.append(((key, numbers, settings), list(lines)))
        return lines

    return format_once


def remembering_misses(getmodule):
    """`inspect.getmodule`, which for a frame of a notebook cell (a file of no module) scans all
    ~1,500 loaded modules on every call, about ten calls per error IPython formats (~1 ms each).
    Such a miss is remembered, and the scan skipped, while the loaded modules stay the same: the
    same number, the same last name (an import adds its name at the end of `sys.modules`).
    Anything that can have a module of its own (`__module__`, `__name__`, a module) is passed on."""
    misses = {}  # absolute file -> (number of modules, last module name) when the scan missed it

    @functools.wraps(getmodule)
    def remembering(object, _filename=None):
        if inspect.ismodule(object) or hasattr(object, "__module__") or hasattr(object, "__name__"):
            return getmodule(object, _filename)
        try:
            file = inspect.getabsfile(object, _filename)
        except (TypeError, FileNotFoundError):
            return None  # as getmodule answers
        loaded = (len(sys.modules), next(reversed(sys.modules)))
        known = file in inspect.modulesbyfile or (_filename is not None and _filename in inspect.modulesbyfile)
        if not known and misses.get(file) == loaded:
            return None
        module = getmodule(object, _filename)
        if module is None and file not in inspect.modulesbyfile:
            misses[file] = loaded
        return module

    return remembering


class ForkedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel is a fork of this (warm) process instead of a new interpreter:
    the same ipykernel, command line, environment and folder, without re-importing torch."""

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        process = Forked(fork_kernel(kernel_cmd, kw.get("env") or dict(os.environ), kw.get("cwd") or os.getcwd()))
        self.provisioner.process, self.provisioner.pid, self.provisioner.pgid = process, process.pid, process.pid
        self.provisioner.cwd = kw.get("cwd")
        self._reconcile_connection_info(self.provisioner.connection_info)


def fork_kernel(kernel_cmd: list[str], env: dict, cwd: str) -> int:
    """Fork a process that becomes `python -m ipykernel_launcher -f CONNECTION` would; its pid."""
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        os.setsid()  # as jupyter_client starts kernels: a session of its own
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env, JPY_PARENT_PID=str(os.getppid()))  # as jupyter_client's launcher sets it
        sys.path[0] = cwd  # `python -m` puts the working folder first
        fresh_random_state()
        as_new_kernel()
        asyncio.set_event_loop(asyncio.new_event_loop())  # never the parent's loop
        if Application.initialized():  # nbgrader's app: the kernel's app must be the only one
            type(Application.instance()).clear_instance()
        from ipykernel import kernelapp
        sys.argv = [kernelapp.__file__, *kernel_cmd[3:]]
        # Read from the environment when ipykernel was imported, before this fork: given here.
        kernelapp.launch_new_instance(argv=kernel_cmd[3:], parent_handle=os.getppid())
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()  # into the unit's log, as a kernel that fails to start prints it
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def fresh_random_state() -> None:
    """Seed Python's and NumPy's global generators from the OS, as a new interpreter does
    (torch's starts from its fixed default seed either way)."""
    import random
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()


def as_new_kernel() -> None:
    """In a kernel forked from the warm service: forget the modules that only grading imported
    (nbgrader, SQLAlchemy, nbconvert... about 900) and the warning filters they added, so the
    student's code finds what a new kernel has. IPython also scans every loaded module on each
    error it formats."""
    if kernel_baseline is None:
        return
    modules, filters = kernel_baseline
    for name in sys.modules.keys() - modules:
        del sys.modules[name]
    warnings.filters[:] = filters
    warnings._filters_mutated()


class Forked:
    """The parts of subprocess.Popen that jupyter_client uses, for a forked child."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid, self.returncode = pid, None

    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None):
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


# Set by zygote.py before it imports the grading program: the modules and warning filters it had after
# importing what a kernel needs, and nothing of nbgrader yet.
kernel_baseline: tuple[frozenset[str], list] | None = None




kernel_manager: type | None = None  # the grading program's kernel manager, once "warm" is applied


def fork_kernels() -> None:
    """Each notebook's kernel is a fork of the warm process (`ForkedKernelManager`)."""
    global kernel_manager
    kernel_manager = ForkedKernelManager


def share_traceback_lexer() -> None:
    import stack_data.core
    stack_data.core._pygmented_with_ranges = traceback_highlighter()


def format_tracebacks_once() -> None:
    from IPython.core import ultratb
    ultratb.AutoFormattedTB.structured_traceback = formatted_once(ultratb.AutoFormattedTB.structured_traceback)


def remember_module_misses() -> None:
    inspect.getmodule = remembering_misses(inspect.getmodule)


NBGRADER = {"nbgrader": ("0.9.0", "0.10"), "sqlalchemy": ("2.0", "2.2")}
PATCHES = [
    Patch("nbgrader.api.get_alembic_version", ("grader", "unit"), {**NBGRADER, "alembic": ("1.8", "2")},
          alembic_version_in_process),
    Patch("nbgrader.api.create_engine, inspect, Base.metadata.create_all", ("unit",), NBGRADER, reuse_gradebook_work),
    Patch("nbgrader.nbgraderformat.common.jsonschema", ("unit",), {**NBGRADER, "jsonschema": ("4.0", "5")},
          reuse_metadata_validator),
    Patch("jupyter_client.AsyncKernelManager._async_launch_kernel", ("warm",),
          {"jupyter_client": ("8.0", "9"), "ipykernel": ("6.0", "8")}, fork_kernels),
    Patch("stack_data.core._pygmented_with_ranges", ("warm",), {"stack_data": ("0.6", "0.7"), "pygments": ("2.0", "3")},
          share_traceback_lexer),
    Patch("IPython.core.ultratb.AutoFormattedTB.structured_traceback", ("warm",), {"ipython": ("9.0", "10")},
          format_tracebacks_once),
    Patch("inspect.getmodule", ("warm",), {"python": ("3.11", "3.14")}, remember_module_misses),
]


def skip_slow_optional_imports() -> None:
    """Keep jsonschema's optional IRI checker from loading (see the module's docstring)."""
    sys.modules.setdefault("rfc3987_syntax", None)  # `import rfc3987_syntax` then raises ImportError


skip_slow_optional_imports()
