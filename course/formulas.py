"""Run a formula cell's functions with nothing but Python's standard library.

A formula cell holds a derivation written as a closed form: a plain Python function of the
inputs (`math` only). Its code is first checked to be one (`course.rules`, whose source
runs with RUNNER's), then run in a fresh interpreter started with `-I -S`: no site-packages, so
no torch and no course kit, whatever the cell tries to import. The kit does this on the
visible inputs while the student works; the grader does the same inside a sandbox, on inputs
the student never sees, with the cell's source taken from the submitted notebook.

`evaluate` sends the jobs as JSON on stdin; RUNNER answers with one JSON line: per job, the
value of each call as a list of floats, or the error that stopped it. An engine job (Lab 6) is
checked by `rules.engine` instead and carries a harness: the kit's own code, run after the cell,
that builds each probe's graph with the cell's classes and returns what the call measures.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from . import rules

TIME_LIMIT = 5  # seconds for every job of one evaluation together

RUNNER = r'''
import io, json, math, os, sys
jobs = json.loads(sys.stdin.read())
out = sys.stdout
sys.stdout = sys.stderr = io.StringIO()  # what the cell prints is not the answer

def numbers(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)]
    if isinstance(value, (tuple, list)) and value and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return [float(v) for v in value]
    raise TypeError(f"returned {type(value).__name__} {value!r:.60}; return a number or a tuple of numbers")

def failed(why, exc, call=None):
    result = {"error": why}
    if isinstance(exc, NotImplementedError):  # as the released answer cell raises
        result["unanswered"] = True
    if call is not None:  # which call: the caller words it (the grader's inputs are not shown)
        result["call"] = call
    return result

def run(job):
    if job.get("rule") == "without autograd":  # a torch function's cell: its code is read, not run
        try:
            without_autograd(job["source"], job["functions"], job["may_call"])
        except BrokenRule as exc:
            return {"error": str(exc), "rule": "autograd"}
        return {"values": []}
    try:  # the rule first, on a graded function or engine: code that breaks it is never run
        if "function" in job:
            closed_form(job["source"], job["function"])
        elif job.get("rule") == "engine":
            engine(job["source"])
    except BrokenRule as exc:
        return {"error": str(exc), "rule": "numerical" if exc.numerical else job.get("rule", "closed form")}
    namespace = {"__name__": "formulas"}
    try:
        exec(compile(job["source"], "<your cell>", "exec"), namespace)
    except BaseException as exc:
        return failed(f"the cell itself raised {type(exc).__name__}: {exc}", exc)
    if "harness" in job:  # an engine: the kit's code that builds each probe's graph with it
        exec(compile(job["harness"], "<the graph builder>", "exec"), namespace)
    values = []
    for index, (name, args) in enumerate(job["calls"]):
        fn = namespace.get(name)
        if not callable(fn):
            return {"error": f"the cell does not define the function `{name}`"}
        try:
            values.append(numbers(fn(*args)))
        except BaseException as exc:
            return failed(f"raised {type(exc).__name__}: {exc}", exc, index)
    return {"values": values}

results = [run(job) for job in jobs]
out.write("\n" + json.dumps(results) + "\n")
out.flush()
os._exit(0)  # nothing the cell left behind (atexit, threads) writes after the results
'''


def base_python() -> str:
    """The interpreter this environment was made from (a venv's own has the same stdlib)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)  # a sandbox mounts real paths


def command() -> list[str]:
    """The command that runs RUNNER, after the closed-form rule's code: standard library only,
    environment variables ignored."""
    return [base_python(), "-I", "-S", "-c", Path(rules.__file__).read_text() + RUNNER]


def evaluate(jobs: list[dict[str, Any]], prefix: Sequence[str] = (),
             seconds: float = TIME_LIMIT) -> list[dict[str, Any]]:
    """Run each job ({"source": cell code, "function": the graded function's name, "calls":
    [[function name, [args...]], ...]}) in one fresh stdlib-only interpreter (started through
    `prefix`, e.g. a sandbox); per job, its {"values": [[floats] per call]} or {"error": why}, with
    "rule": "closed form" or "numerical" where the code breaks the closed-form rule for "function"
    (and was not run; a job without "function" is run as it is: the sandbox's own tests),
    "call": the index of the call that raised (its arguments are not in `why`) and "unanswered":
    true where it was NotImplementedError, as the released answer cell raises. A job {"source",
    "rule": "without autograd", "functions", "may_call"} is only read (`rules.without_autograd`):
    {"values": []}, or the error with "rule": "autograd". A job {"source", "rule": "engine",
    "harness", "calls"} is checked by `rules.engine` (a broken rule: "rule": "engine" or
    "numerical"), then run with the harness's functions called."""
    try:
        proc = subprocess.run([*prefix, *command()], input=json.dumps(jobs), capture_output=True, text=True,
                              timeout=seconds)
    except subprocess.TimeoutExpired:
        return [{"error": f"the formulas did not finish within {seconds:g} s"}] * len(jobs)
    try:
        results = json.loads(proc.stdout.strip().splitlines()[-1])
        if isinstance(results, list) and len(results) == len(jobs) and all(isinstance(r, dict) for r in results):
            return results
    except (ValueError, IndexError):
        pass
    why = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1][:300]
    return [{"error": f"the formulas could not be run ({why})"}] * len(jobs)
