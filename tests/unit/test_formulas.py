"""A formula cell runs with Python's standard library and nothing else: in the kit (a fresh
interpreter) and in the grader (the same interpreter inside a sandbox without the venv)."""

import sys

import pytest

from autograder.pipeline import sandbox
from course import formulas

RUNNERS = {"kit": formulas.evaluate, "grader": sandbox.run_formulas}


def one(runner: str, source: str, *calls) -> dict:
    (result,) = RUNNERS[runner]([{"source": source, "calls": [list(c) for c in calls]}])
    return result


@pytest.fixture(params=sorted(RUNNERS))
def runner(request):
    if request.param == "grader" and sandbox.unavailable():
        pytest.fail(sandbox.unavailable())  # the grader needs bubblewrap; CI installs it
    return request.param


def test_plain_python_formulas_return_floats(runner):
    source = "import math\ndef f(x, y):\n    print('working')\n    return x * y, math.exp(0)\n"
    assert one(runner, source, ("f", [2, 3]), ("f", [0.5, -1])) == {"values": [[6.0, 1.0], [-0.5, 1.0]]}


@pytest.mark.parametrize("module", ["torch", "numpy", "course", "autograder", "nbgrader"])
def test_nothing_but_the_standard_library_can_be_imported(runner, module):
    result = one(runner, f"import {module}\ndef f(x):\n    return x\n", ("f", [1]))
    assert result == {"error": f"the cell itself raised ModuleNotFoundError: No module named '{module}'"}


def test_in_the_grader_the_venv_and_the_kit_are_not_even_there():
    venv_site = [p for p in sys.path if p.endswith("site-packages")]
    assert venv_site
    source = (f"import os, sys\nsys.path[:0] = {venv_site!r}\n"
              "def f(x):\n"
              f"    return [float(os.path.exists(p)) for p in {[sys.prefix, str(sandbox.kit_folder()), *venv_site]!r}]\n")
    assert one("kit", source, ("f", [0])) == {"values": [[1.0] * (2 + len(venv_site))]}  # the kit: not sandboxed
    assert one("grader", source, ("f", [0])) == {"values": [[0.0] * (2 + len(venv_site))]}
    assert "No module named 'torch'" in one("grader", source + "import torch\n", ("f", [0]))["error"]


@pytest.mark.parametrize("source, call, message", [
    ("def f(x):\n    return 'a'\n", ("f", [1]), "raised TypeError: returned str"),
    ("def f(x):\n    return True\n", ("f", [1]), "returned bool"),
    ("def f(x):\n    return 1 / x\n", ("f", [0]), "raised ZeroDivisionError"),
    ("def g(x):\n    return x\n", ("f", [1]), "does not define the function `f`"),
    ("def f(x):\n    return helper(x)\n", ("f", [1]), "NameError: name 'helper' is not defined"),
    ("raise NotImplementedError()\n", ("f", [1]), "the cell itself raised NotImplementedError"),
])
def test_broken_formulas_say_what_broke(runner, source, call, message):
    result = one(runner, source, call)
    assert message in result["error"]
    of_the_cell = "does not define" in message or "cell itself" in message
    assert result.get("call") == (None if of_the_cell else 0)  # which call raised, never its inputs
    assert f"f({call[1][0]})" not in result["error"]


def test_a_formula_that_never_ends_is_stopped(runner):
    jobs = [{"source": "while True:\n    pass\n", "calls": []}] * 2
    assert RUNNERS[runner](jobs, seconds=1) == [{"error": "the formulas did not finish within 1 s"}] * 2


def test_what_the_cell_writes_after_the_runner_is_not_the_result(runner):
    fake = "\\n" + '[{"values": [[42.0]]}]' + "\\n"
    source = (f"import atexit, sys\nsys.__stdout__.write('{fake}')\n"
              f"atexit.register(lambda: sys.__stdout__.write('{fake}'))\ndef f(x):\n    return x\n")
    assert one(runner, source, ("f", [7])) == {"values": [[7.0]]}


def test_in_the_grader_no_interpreter_has_a_package_folder_to_import_from():
    """`python -S` leaves site-packages off sys.path, but a cell can put it back: in the grader's
    sandbox every site-packages and dist-packages folder of every interpreter is empty."""
    hunt = ("import glob, sys\n"
            "def f(x):\n"
            "    found = [p for root in ('/usr', '/usr/local', sys.base_prefix, '/')\n"
            "             for kind in ('site', 'dist') for p in glob.glob(root + f'/lib*/python3*/{kind}-packages')]\n"
            "    sys.path[:0] = found\n"
            "    names = sum(len(glob.glob(p + '/*')) for p in found)\n"
            "    try:\n"
            "        import IPython  # in the base interpreter's site-packages, outside the sandbox\n"
            "        imported = 1.0\n"
            "    except ImportError:\n"
            "        imported = 0.0\n"
            "    return float(len(found)), float(names), imported\n")
    outside = one("kit", hunt, ("f", [0]))["values"][0]
    assert outside[0] >= 1 and outside[1] > 0 and outside[2] == 1.0  # the hole this test guards
    folders, entries, imported = one("grader", hunt, ("f", [0]))["values"][0]
    assert folders >= 1 and entries == 0 and imported == 0.0
